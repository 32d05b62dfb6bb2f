"""Conform without re-encoding: both engines copy or retag what the plan decided to keep.

Every source is made here, small, with flash frames and beeps at the same instants
(:func:`handoff.media.synth.write_clip`), and each output is read back independently:
its picture packets against the source's (a copy is the same bytes in the same order,
timestamps moved by one constant -- an engine that re-encodes fails that), the flash
against the beep, the exact sound length, and the output's own preset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import pytest
from pymediainfo import MediaInfo as MediaInfoReader

from handoff.export.engines import ENGINES, Engine, execute, ffmpeg_engine
from handoff.export.plan import ExportOptions, ExportPlan, plan_export
from handoff.media.h264 import avcc_length_size
from handoff.media.synth import ClipSpec, write_clip
from handoff.probe.reader import probe
from handoff.validate.spec import load_spec
from tests.conftest import MakeDir, review_clip_kwargs, run_handoff
from tests.test_engines import EXTENSION, check_deliverable, sync_errors

FPS = Fraction(24)
EVENTS = (Fraction(1, 2), Fraction(5, 4))
"""Flash and beep instants, on 24 fps ticks: the flash frame is exactly on them."""
MASTER = ClipSpec(
    width=320,
    height=180,
    seconds=2.0,
    video_codec="prores_ks",
    pix_fmt="yuv422p10le",
    video_options={"profile": "3", "vendor": "apl0"},  # ProRes 422 HQ
    audio_codec="pcm_s24le",
    audio_bit_rate=None,
)
REVIEW = replace(
    ClipSpec(**review_clip_kwargs(FPS, 2.0)),  # type: ignore[arg-type]
    width=320,
    height=180,
    audio_bit_rate=224000,
)

# ------------------------------------------------------------------ reading packets


@dataclass(frozen=True, slots=True)
class Packets:
    """A stream's packets in file order: payloads and exact timestamps."""

    data: list[bytes]
    pts: list[Fraction]
    dts: list[Fraction]
    extradata: bytes


def stream_packets(path: Path, kind: str = "video") -> Packets:
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        tb = stream.time_base
        assert tb is not None
        packets = [p for p in container.demux(stream) if p.size]
        extradata = stream.codec_context.extradata or b""
    assert all(p.pts is not None and p.dts is not None for p in packets)
    return Packets(
        [bytes(p) for p in packets],
        [p.pts * tb for p in packets],  # type: ignore[operator]
        [p.dts * tb for p in packets],  # type: ignore[operator]
        extradata,
    )


def assert_copied(source: Path, out: Path, plan: ExportPlan) -> Packets:
    """The output's picture packets are the source's: the same bytes in the same order,
    every pts and dts moved by the same constant, the source's first frame to 0."""
    src, got = stream_packets(source), stream_packets(out)
    assert len(got.data) == len(src.data) == plan.video.frames
    assert got.data == src.data, "picture packets differ: not a copy"
    shifts = {b - a for a, b in zip(src.pts, got.pts, strict=True)}
    shifts |= {b - a for a, b in zip(src.dts, got.dts, strict=True)}
    assert shifts == {-plan.video.source_start}
    assert min(got.pts) == 0
    return got


def nal_units(data: bytes, length_size: int | None) -> list[bytes]:
    """The NAL units of an access unit: length-prefixed (MP4), or Annex B (start codes,
    MPEG-TS) when ``length_size`` is None."""
    if length_size is None:
        # A unit never ends in a zero byte (its RBSP trailing bits, H.264 7.4.2): zeros
        # before a start code belong to the next (4-byte) start code.
        return [u.rstrip(b"\0") for u in data.split(b"\0\0\1")[1:]]
    units, pos = [], 0
    while pos + length_size <= len(data):
        n = int.from_bytes(data[pos : pos + length_size], "big")
        units.append(data[pos + length_size : pos + length_size + n])
        pos += length_size + n
    assert pos == len(data)
    return units


def colour_read_back(path: Path) -> dict[str, object]:
    """The colour description as PyAV's decoder and MediaInfo each read it."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    (track,) = [t for t in MediaInfoReader.parse(path).tracks if t.track_type == "Video"]
    return {
        "decoded": (frame.color_primaries, frame.color_trc, frame.colorspace),
        "mediainfo": (track.color_primaries, track.transfer_characteristics,
                      track.matrix_coefficients),
        "mediainfo_source": track.colour_description_present_source,
    }  # fmt: skip


# ------------------------------------------------------------------ sources


def events_at(start: Fraction = Fraction(0)) -> tuple[float, ...]:
    """The events in source time, for a source whose picture starts at ``start``."""
    return tuple(float(start + e) for e in EVENTS)


@pytest.fixture(scope="module")
def sources(module_tmp: MakeDir) -> dict[str, Path]:
    folder = module_tmp("conform")
    late = Fraction(1, 4)
    ten_seconds = "keyint=240:min-keyint=240:scenecut=0:open-gop=0"
    specs = {
        # A conformant ProRes HQ master whose sound is 44.1 kHz.
        "master-44k.mov": replace(MASTER, audio_rate=44100, events=events_at()),
        "master-48k.mov": replace(MASTER, audio_rate=48000),
        # Its picture starts at 0.25 s and its 48 kHz sound at 0 and ends 0.5 s early:
        # a copied picture moved to 0, the PCM's head cut and its tail padded.
        "master-48k-offset.mov": replace(
            MASTER,
            frame_times=[late + Fraction(i) / FPS for i in range(48)],
            audio_rate=48000,
            audio_seconds=1.75,
            events=events_at(late),
        ),
        "review.mp4": replace(REVIEW, events=events_at()),
        "untagged.mp4": replace(REVIEW, colour_tags=False, events=events_at()),
        # One channel at 224 kb/s: FFmpeg's AAC spends far less than its target on it.
        "review-mono.mp4": replace(REVIEW, audio_channels=1, events=events_at()),
        "untagged.mov": replace(MASTER, audio_rate=48000, colour_tags=False, events=events_at()),
        "timecode.mp4": replace(REVIEW, timecode="01:00:00:00"),
        # MPEG-TS: the picture starts after 0 (its B-frame delay), its AAC priming is
        # sound (no edit list to hide it).
        "review.ts": replace(REVIEW, events=events_at()),
        # Matroska's millisecond clock: 24 fps steps 41 and 42 ms.
        "review.mkv": replace(REVIEW, events=events_at()),
        "long-gop.mp4": replace(
            REVIEW,
            seconds=3.0,
            gop=240,
            video_options={"preset": "veryfast", "x264-params": ten_seconds},
            events=events_at(),
        ),
    }
    return {name: write_clip(folder / name, spec) for name, spec in specs.items()}


def export(source: Path, preset: str, engine: Engine, out_dir: Path) -> tuple[ExportPlan, Path]:
    dest = out_dir / f"{source.stem}-{engine}{EXTENSION[preset]}"
    plan = plan_export(probe(source), load_spec(preset), ExportOptions(), dest=dest)
    execute(plan, dest, engine)
    return plan, dest


# ------------------------------------------------------------------ ProRes masters


@pytest.mark.parametrize("engine", ENGINES)
def test_prores_master_picture_copied_sound_to_48k(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    source = sources["master-44k.mov"]
    plan, out = export(source, "prores-master", engine, tmp_path)
    assert plan.video.decision.action == "copy"
    assert plan.audio is not None and plan.audio.decision.rule == "sample-rate"
    assert_copied(source, out, plan)
    sync_errors(out, FPS, EVENTS)
    check_deliverable(plan, out, "prores-master")


@pytest.mark.parametrize("engine", ENGINES)
def test_prores_master_pcm_copied_bit_exact_and_placed(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    """The picture starts at 0.25 s: every timestamp moves by 0.25 s. The 48 kHz PCM is
    the right format: copied, its first 0.25 s cut (before the picture) and 0.5 s of
    digital silence added, every other sample the source's bit for bit."""
    source = sources["master-48k-offset.mov"]
    plan, out = export(source, "prores-master", engine, tmp_path)
    a = plan.audio
    assert plan.video.decision.action == "copy" and plan.video.source_start == Fraction(1, 4)
    assert a is not None and a.decision.action == "copy"
    assert (a.offset_samples, a.samples) == (-12000, 96000)
    assert_copied(source, out, plan)
    width = 2 * 3  # stereo, 24-bit
    pcm = b"".join(stream_packets(source, "audio").data)
    assert len(pcm) == 84000 * width
    want = pcm[12000 * width :] + bytes(24000 * width)
    assert b"".join(stream_packets(out, "audio").data) == want
    sync_errors(out, FPS, EVENTS)
    check_deliverable(plan, out, "prores-master")


def delay_sound(source: Path, dest: Path, by: int) -> Path:
    """``source`` remuxed with its sound's packets ``by`` samples later (the MOV muxer
    writes an empty edit before them): a sound that starts after its picture."""
    with av.open(str(source)) as src, av.open(str(dest), "w") as out:
        streams = [s for s in src.streams if s.type in ("video", "audio")]
        outs = {s.index: out.add_stream_from_template(s) for s in streams}
        for packet in src.demux(streams):
            if not packet.size:
                continue
            if packet.stream.type == "audio":
                assert packet.pts is not None and packet.time_base == Fraction(1, 48000)
                packet.pts += by
                packet.dts = packet.pts
            packet.stream = outs[packet.stream.index]
            out.mux(packet)
    return dest


@pytest.mark.parametrize("engine", ENGINES)
def test_pcm_that_starts_late_gets_silence_before_it(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    source = delay_sound(sources["master-48k.mov"], tmp_path / "late-sound.mov", 4800)
    info = probe(source)
    assert info.audio is not None and info.audio.start == Fraction(1, 10)
    plan, out = export(source, "prores-master", engine, tmp_path)
    a = plan.audio
    assert plan.video.decision.action == "copy"
    assert a is not None and a.decision.action == "copy"
    assert (a.offset_samples, a.samples) == (4800, 96000)
    width = 2 * 3
    pcm = b"".join(stream_packets(source, "audio").data)
    want = bytes(4800 * width) + pcm[: (96000 - 4800) * width]
    assert b"".join(stream_packets(out, "audio").data) == want
    check_deliverable(plan, out, "prores-master")


# ------------------------------------------------------------------ H.264 review copies


@pytest.mark.parametrize("engine", ENGINES)
def test_review_copy_is_copied_whole(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    source = sources["review.mp4"]
    plan, out = export(source, "h264-review", engine, tmp_path)
    assert plan.video.decision.action == "copy"
    assert plan.audio is not None and plan.audio.decision.action == "copy"
    assert_copied(source, out, plan)
    # The AAC too: the same packets, the encoder delay still hidden by the edit list.
    src_sound, out_sound = stream_packets(source, "audio"), stream_packets(out, "audio")
    assert out_sound.data == src_sound.data and out_sound.pts == src_sound.pts
    info = probe(out)
    assert info.audio is not None and info.audio.priming_samples == 1024
    sync_errors(out, FPS, EVENTS)
    check_deliverable(plan, out, "h264-review")


@pytest.mark.parametrize("engine", ENGINES)
def test_transport_stream_picture_copied_from_its_late_start(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    """An MPEG-TS review copy: its picture (B-frames) starts after 0 and is copied, moved
    by that constant; its AAC does not start with the picture, so it is encoded (ffmpeg
    cut it 2816 samples short while the copy carried -frames:v)."""
    source = sources["review.ts"]
    plan, out = export(source, "h264-review", engine, tmp_path)
    assert plan.video.decision.action == "copy" and plan.video.source_start > 0
    assert plan.audio is not None and plan.audio.decision.rule == "length"
    # MP4 stores the same NAL units with length prefixes instead of start codes.
    src, got = stream_packets(source), stream_packets(out)
    size = avcc_length_size(got.extradata)
    assert avcc_length_size(src.extradata) is None and size is not None
    assert len(got.data) == len(src.data) == plan.video.frames
    assert [nal_units(d, size) for d in got.data] == [nal_units(d, None) for d in src.data]
    shifts = {b - a for a, b in zip(src.pts, got.pts, strict=True)}
    shifts |= {b - a for a, b in zip(src.dts, got.dts, strict=True)}
    assert shifts == {-plan.video.source_start} and min(got.pts) == 0
    sync_errors(out, FPS, EVENTS)
    check_deliverable(plan, out, "h264-review")


@pytest.mark.parametrize("engine", ENGINES)
def test_untagged_review_copy_is_retagged_bt709(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    """Only the colour tags are missing: h264_metadata writes them into the SPS VUI; the
    slices are the source's, byte for byte."""
    source = sources["untagged.mp4"]
    before = probe(source).video
    assert before is not None and before.color_primaries is None
    plan, out = export(source, "h264-review", engine, tmp_path)
    assert plan.video.decision.action == "retag" and plan.video.retag is not None
    assert plan.video.retag.filter_string() == (
        "h264_metadata=colour_primaries=1:transfer_characteristics=1:matrix_coefficients=1"
    )
    src, got = stream_packets(source), stream_packets(out)
    size = avcc_length_size(got.extradata)
    assert size is not None and size == avcc_length_size(src.extradata)
    # The headers changed (SPS in the avcC record), the slices did not.
    assert got.extradata != src.extradata
    slices = [[u for u in nal_units(d, size) if u[0] & 0x1F in (1, 5)] for d in src.data]
    got_slices = [[u for u in nal_units(d, size) if u[0] & 0x1F in (1, 5)] for d in got.data]
    assert len(got.data) == plan.video.frames and got_slices == slices
    assert {b - a for a, b in zip(src.pts, got.pts, strict=True)} == {Fraction(0)}
    assert colour_read_back(source)["decoded"] == (2, 2, 2)  # unspecified
    assert colour_read_back(out) == {
        "decoded": (1, 1, 1),
        "mediainfo": ("BT.709", "BT.709", "BT.709"),
        "mediainfo_source": "Container / Stream",  # the colr box and the SPS VUI
    }
    after = probe(out).video
    assert after is not None
    assert (after.color_primaries, after.color_transfer, after.color_matrix) == ("bt709",) * 3
    sync_errors(out, FPS, EVENTS)
    check_deliverable(plan, out, "h264-review")
    done = run_handoff("validate", "--spec", "h264-review", str(out))
    assert done.returncode == 0, done.stdout + done.stderr


def prores_header_end(frame: bytes) -> int:
    """Where a ProRes frame's header ends and its picture data begins: after the frame
    size and 'icpf' (8 bytes), the frame header, whose size is its first 16 bits (SMPTE
    RDD 36, 5.1)."""
    assert frame[4:8] == b"icpf"
    return 8 + int.from_bytes(frame[8:10], "big")


@pytest.mark.parametrize("engine", ENGINES)
def test_untagged_prores_master_is_retagged_in_its_frame_headers(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    """prores_metadata writes the colour into each frame header; the picture data after
    it is the source's, byte for byte."""
    source = sources["untagged.mov"]
    plan, out = export(source, "prores-master", engine, tmp_path)
    assert plan.video.decision.action == "retag" and plan.video.retag is not None
    assert plan.video.retag.name == "prores_metadata"
    assert plan.audio is not None and plan.audio.decision.action == "copy"
    src, got = stream_packets(source), stream_packets(out)
    assert len(got.data) == len(src.data) == plan.video.frames
    for before, after in zip(src.data, got.data, strict=True):
        end = prores_header_end(before)
        assert len(after) == len(before) and after[end:] == before[end:]
        assert after[:end] != before[:end]
    assert colour_read_back(out) == {
        "decoded": (1, 1, 1),
        "mediainfo": ("BT.709", "BT.709", "BT.709"),
        "mediainfo_source": "Container / Stream",  # the colr atom and the frame header
    }
    sync_errors(out, FPS, EVENTS)
    check_deliverable(plan, out, "prores-master")


@pytest.mark.parametrize("engine", ENGINES)
def test_copied_aac_declares_the_rate_its_source_declares(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    """A copied AAC stream that averages under the preset's bit rate keeps the rate its
    encode was set to (the esds maxBitrate), as h264-review reads it: the muxer would
    otherwise declare the average and the copy fail the rule its source passes."""
    source = sources["review-mono.mp4"]
    before = probe(source).audio
    assert before is not None and before.declared_max_bit_rate == 224000
    assert before.bit_rate is not None and before.bit_rate < 192000  # the average
    plan, out = export(source, "h264-review", engine, tmp_path)
    assert plan.audio is not None and plan.audio.decision.action == "copy"
    assert stream_packets(out, "audio").data == stream_packets(source, "audio").data
    after = probe(out).audio
    assert after is not None and after.declared_max_bit_rate == 224000
    check_deliverable(plan, out, "h264-review")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_copy_keeps_its_timecode_once(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    source = sources["timecode.mp4"]
    plan, out = export(source, "h264-review", engine, tmp_path)
    assert plan.video.decision.action == "copy" and plan.timecode is not None
    assert_copied(source, out, plan)
    info = probe(out)
    assert info.timecode is not None and info.timecode.label == "01:00:00:00"
    assert [o.codec for o in info.others] == ["tmcd"]


def test_the_command_of_a_copy(sources: dict[str, Path]) -> None:
    """The ffmpeg engine maps a copied stream as it is, its timestamps moved by v0 in its
    own time base, and gives it none of an encoder's options -- bar ``-b:a``, which on a
    copy sets only the rate the stream declares: its source's."""
    plan = plan_export(probe(sources["untagged.mp4"]), load_spec("h264-review"),
                       ExportOptions(), dest=Path("/nonexistent/out.mp4"))  # fmt: skip
    v0 = Fraction(1001, 24000)
    plan = replace(plan, video=replace(plan.video, source_start=v0))
    argv = ffmpeg_engine.command(plan, Path("/nonexistent/out.part.mp4"))
    assert "-copyts" in argv and "-filter_complex" not in argv
    assert argv.count("-map") == 2 and argv.count("copy") == 2
    setts = "setts=pts=PTS-(1001/24000)/TB:dts=DTS-(1001/24000)/TB"
    assert argv[argv.index("-bsf:v") + 1] == (
        "h264_metadata=colour_primaries=1:transfer_characteristics=1:matrix_coefficients=1," + setts
    )
    assert argv[argv.index("-bsf:a") + 1] == setts
    assert argv[argv.index("-color_primaries:v") + 1] == "bt709"
    declared = probe(sources["untagged.mp4"]).audio
    assert declared is not None and declared.declared_max_bit_rate == 224000
    assert argv[argv.index("-b:a") + 1] == "224000"
    for encoder_option in (
        "-pix_fmt",
        "-g:v",
        "-crf:v",
        "-x264-params:v",
        "-ar:a",
        "-frames:v",
    ):
        assert encoder_option not in argv
    assert argv[argv.index("-movflags") + 1] == "+faststart+negative_cts_offsets"


@pytest.mark.parametrize("engine", ENGINES)
def test_ten_second_gop_is_encoded_and_says_why(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    source = sources["long-gop.mp4"]
    plan, out = export(source, "h264-review", engine, tmp_path)
    decision = plan.video.decision
    assert (decision.action, decision.rule) == ("encode", "keyframe-interval")
    assert "keyframe" in decision.why
    assert plan.to_json()["video"]["decision"]["rule"] == "keyframe-interval"
    src, got = stream_packets(source), stream_packets(out)
    assert len(got.data) == plan.video.frames and got.data != src.data
    # The sound passes as it is: copied beside the new picture.
    assert plan.audio is not None and plan.audio.decision.action == "copy"
    assert stream_packets(out, "audio").data == stream_packets(source, "audio").data
    sync_errors(out, FPS, EVENTS)
    check_deliverable(plan, out, "h264-review")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_coarse_clock_is_encoded_not_copied(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    """A CFR picture on a 1 ms clock passes every rule, but copied into MP4 its 41/42 ms
    steps keep and the clock becomes 1/16000 s: the copy read as VFR and failed the
    preset (measured on both engines before this rule)."""
    source = sources["review.mkv"]
    info = probe(source)
    assert info.video is not None and info.video.time_base == Fraction(1, 1000)
    assert info.video.frame_rate_mode == "CFR"
    assert info.video.min_frame_interval != info.video.max_frame_interval
    plan, out = export(source, "h264-review", engine, tmp_path)
    decision = plan.video.decision
    assert (decision.action, decision.rule) == ("encode", "timestamps")
    sync_errors(out, FPS, EVENTS)
    check_deliverable(plan, out, "h264-review")


def test_reencode_forces_the_encode(sources: dict[str, Path], tmp_path: Path) -> None:
    source = sources["review.mp4"]
    dest = tmp_path / "forced.mp4"
    plan = plan_export(probe(source), load_spec("h264-review"), ExportOptions(reencode=True),
                       dest=dest)  # fmt: skip
    assert plan.video.decision.rule == "--reencode"
    execute(plan, dest, "pyav")
    assert stream_packets(dest).data != stream_packets(source).data
    check_deliverable(plan, dest, "h264-review")


def test_retimed_sound_is_never_copied(tmp_path: Path) -> None:
    """25 -> 24 by retiming plays every frame slower, and the sound is stretched with
    it: the same length at 48 kHz as the picture, yet every sample new (the engines
    copied it unstretched, 42 ms late at 1 s, before the decision knew of the retime)."""
    source = write_clip(tmp_path / "s25.mp4", replace(REVIEW, fps=Fraction(25), seconds=1.0))
    options = ExportOptions(fps=FPS, rate_conversion="retime")
    plan = plan_export(probe(source), load_spec("h264-review"), options, dest=tmp_path / "o.mp4")
    assert plan.video.scale == Fraction(25, 24)
    assert plan.audio is not None
    assert (plan.audio.decision.action, plan.audio.decision.rule) == ("encode", "frame-rate")


@pytest.mark.parametrize("engine", ENGINES)
def test_progress_of_a_copy_reaches_the_end(
    sources: dict[str, Path], engine: Engine, tmp_path: Path
) -> None:
    source = sources["review.mp4"]
    dest = tmp_path / "p.mp4"
    plan = plan_export(probe(source), load_spec("h264-review"), ExportOptions(), dest=dest)
    assert plan.video.decision.action == "copy"
    calls: list[tuple[int, int]] = []
    execute(plan, dest, engine, lambda done, total: calls.append((done, total)))
    frames = plan.video.frames
    assert calls and calls[-1] == (frames, frames)
    done = [c[0] for c in calls]
    assert done == sorted(done) and all(d <= frames and t == frames for d, t in calls)
