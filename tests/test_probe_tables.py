"""probe reads an MP4/MOV's sample tables instead of demuxing every packet: the facts
must be those of the packet scan, file by file, and a file whose tables promise more
than it holds must still be found cut short."""

from __future__ import annotations

import dataclasses
import shutil
import struct
from fractions import Fraction
from pathlib import Path

import av
import pytest

from handoff.media.synth import ClipSpec, vfr_times, write_clip
from handoff.probe.reader import MediaInfo, probe
from tests.conftest import CORPUS, corpus_file


def _both_ways(path: Path) -> tuple[MediaInfo, MediaInfo]:
    tables = probe(path)
    packets = probe(path, method="packets")
    assert packets.read_from == "packets"
    return tables, packets


def _same_facts(tables: MediaInfo, packets: MediaInfo) -> None:
    # Every field, the stream lists included, bar the one that says how it was read.
    assert dataclasses.replace(tables, read_from="packets") == packets


_CORPUS_MEDIA = sorted(
    str(p.relative_to(CORPUS))
    for p in CORPUS.glob("*/*")
    if p.suffix in (".mp4", ".mov", ".mkv", ".webm")
    and "no_moov" not in p.name  # no index at all: an error either way (test_probe)
)
# The corpus files whose tables are read: every H.264 + AAC MP4 that is complete.
_READ_FROM_TABLES = {
    "av/auto-editor_example_720p30_aac48k.mp4",
    "av/mediabunny_edts_editlist.mp4",
    "av/mediabunny_video_1080p25_silent_aac.mp4",
    "av/moviepy_smpte-2997_actually25fps.mp4",
    "av/pymediainfo_sample_1080p23976_aac48k.mp4",
    "vfr/mediabunny_cursed-vfr.mp4",
    "vfr/moviepy_fire2_android_phone_vfr.mp4",
}


@pytest.mark.parametrize("name", _CORPUS_MEDIA or ["(corpus absent)"])
def test_corpus_facts_are_the_same_from_tables_and_packets(name: str) -> None:
    path = corpus_file(name)
    tables, packets = _both_ways(path)
    _same_facts(tables, packets)
    expected = "sample tables" if name in _READ_FROM_TABLES else "packets"
    assert tables.read_from == expected


def test_truncated_corpus_file_is_scanned_and_found_short() -> None:
    # Its moov lists 4.8 s of picture; the file holds the first 100,000 bytes of it.
    info = probe(corpus_file("broken/mediabunny_annex-b_TRUNCATED_100000B.mp4"))
    assert info.read_from == "packets"
    assert info.truncated is not None


_X264_NO_B = {"x264-params": "keyint=48:min-keyint=48:scenecut=0:bframes=0"}
_SYNTHETIC = {
    # libx264's defaults: B-frames, so composition offsets and a video edit list.
    "bframes.mp4": ClipSpec(seconds=3.0),
    "gop48_no_b.mp4": ClipSpec(seconds=3.0, video_options=_X264_NO_B),
    "ntsc.mp4": ClipSpec(fps=Fraction(30000, 1001), seconds=2.5),
    "vfr.mp4": ClipSpec(frame_times=vfr_times(3.0, 24, 0.3, seed=7)),
    "audio24k_mono.mp4": ClipSpec(audio_rate=24000, audio_channels=1),
    "audio44k_longer.mp4": ClipSpec(audio_rate=44100, audio_seconds=2.7),
    "no_audio.mp4": ClipSpec(audio_rate=None, fps=Fraction(30)),
    "moov_last.mp4": ClipSpec(faststart=False),
    "open_gop.mp4": ClipSpec(
        seconds=3.0,
        video_options={"x264-params": "keyint=24:min-keyint=24:scenecut=0:open-gop=1:bframes=3"},
    ),
    "h264_aac.mov": ClipSpec(),
    "hevc.mp4": ClipSpec(video_codec="libx265", seconds=2.5, colour_tags=False),
    "h264_alac.mov": ClipSpec(audio_codec="alac", audio_bit_rate=None),
    "prores_pcm.mov": ClipSpec(
        video_codec="prores_ks",
        pix_fmt="yuv422p10le",
        video_options={"profile": "3"},
        audio_codec="pcm_s24le",
        audio_bit_rate=None,
        time_base=Fraction(1, 24),
    ),
}


@pytest.mark.parametrize("name", sorted(_SYNTHETIC))
def test_synthetic_facts_are_the_same_from_tables_and_packets(tmp_path: Path, name: str) -> None:
    path = write_clip(tmp_path / name, _SYNTHETIC[name])
    tables, packets = _both_ways(path)
    assert tables.read_from == "sample tables"
    _same_facts(tables, packets)


def test_open_gop_keyframes_are_read_from_their_samples(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "open.mp4", _SYNTHETIC["open_gop.mp4"])
    info = probe(path)
    assert info.read_from == "sample tables"
    assert info.video is not None and info.video.all_keyframes_idr is False


def _fragmented(path: Path) -> Path:
    src = write_clip(path.with_name("plain.mp4"), ClipSpec(seconds=2.0))
    with (
        av.open(str(src)) as inp,
        av.open(str(path), "w", options={"movflags": "frag_keyframe+empty_moov"}) as out,
    ):
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream_index]
            out.mux(packet)
    return path


def _negative_offsets(path: Path) -> Path:
    src = write_clip(path.with_name("plain.mp4"), ClipSpec(seconds=2.0, audio_rate=None))
    with (
        av.open(str(src)) as inp,
        av.open(str(path), "w", options={"movflags": "negative_cts_offsets"}) as out,
    ):
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return path


@pytest.mark.parametrize("make", [_fragmented, _negative_offsets])
def test_unusual_shapes_fall_back_to_the_packets(tmp_path: Path, make: object) -> None:
    assert callable(make)
    path = make(tmp_path / "unusual.mp4")
    tables, packets = _both_ways(path)
    assert tables.read_from == "packets"
    _same_facts(tables, packets)


def test_tables_promising_more_than_the_file_holds_are_not_trusted(tmp_path: Path) -> None:
    # A faststart file cut short keeps an index listing every sample: the probe must
    # not believe it, and finds the file short as the packet scan always did.
    whole = write_clip(tmp_path / "whole.mp4", ClipSpec(seconds=3.0))
    cut = tmp_path / "cut.mp4"
    shutil.copyfile(whole, cut)
    with cut.open("r+b") as f:
        f.truncate(whole.stat().st_size * 6 // 10)
    tables, packets = _both_ways(cut)
    assert tables.read_from == "packets"
    _same_facts(tables, packets)


def test_an_index_pointing_outside_the_media_data_is_not_trusted(tmp_path: Path) -> None:
    # The file is whole, but its index sends the last chunk of the first track past the
    # end of the file: the tables and the file disagree, so the packets are read.
    path = write_clip(tmp_path / "bad_index.mp4", ClipSpec(seconds=3.0))
    data = bytearray(path.read_bytes())
    at = data.find(b"stco")
    assert at > 0
    (count,) = struct.unpack_from(">I", data, at + 8)
    assert count > 1  # interleaved with the sound: the picture comes in several chunks
    struct.pack_into(">I", data, at + 12 + 4 * (count - 1), len(data) + 4096)
    path.write_bytes(bytes(data))
    tables, packets = _both_ways(path)
    assert tables.read_from == "packets"
    _same_facts(tables, packets)


@pytest.mark.parametrize("name", ["h264_aac.mov", "open_gop.mp4"])
def test_sample_offsets_are_where_ffmpeg_reads_each_packet(tmp_path: Path, name: str) -> None:
    """Each sample's file offset, from the tables, is the position FFmpeg's demuxer gives
    the packet (one sample a packet for H.264 and AAC), in decode order."""
    from handoff.media.isobmff import read_sample_tables

    path = write_clip(tmp_path / name, _SYNTHETIC[name])
    tables = read_sample_tables(path)
    assert not isinstance(tables, str), tables
    with av.open(str(path)) as container:
        for stream in container.streams:
            track = tables.tracks[stream.id]
            read = [(p.pos, p.size) for p in container.demux(stream) if p.size]
            container.seek(0)
            assert read == list(zip(track.offsets.tolist(), track.sizes.tolist(), strict=True))
            assert track.decode_times[0] == 0 and (track.decode_times[1:] > 0).all()
