"""probe: facts read from packets, checked against real files and media made here."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from pymediainfo import MediaInfo as PyMediaInfo

from handoff.errors import (
    EmptyMediaError,
    MediaNotFoundError,
    MediaPermissionError,
    NoMediaFoundError,
    NoStreamsError,
    NotMediaError,
    TruncatedMediaError,
)
from handoff.files.find import expand_media
from handoff.media.synth import vfr_times
from handoff.probe.reader import probe, to_json
from tests.conftest import FIXTURES, MakeClip, corpus_file, run_handoff

# ------------------------------------------------------------------ the real corpus


@pytest.mark.parametrize(
    ("name", "mode", "fps"),
    [
        ("vfr/moviepy_fire2_android_phone_vfr.mp4", "VFR", None),
        ("vfr/mediabunny_cursed-vfr.mp4", "VFR", None),
        ("vfr/moviepy_no_duration_chrome_mediarecorder.webm", "VFR", None),
        # The two traps: CFR content that MediaInfo reports as VFR.
        ("vfr/videotimestamps_mkv_timescale_cs_FALSE_VFR.mkv", "CFR", Fraction(24000, 1001)),
        ("vfr/videotimestamps_test_video_cfr_ms.mkv", "CFR", Fraction(24000, 1001)),
        ("av/pymediainfo_sample_1080p23976_aac48k.mp4", "CFR", Fraction(24000, 1001)),
        ("av/auto-editor_example_720p30_aac48k.mp4", "CFR", Fraction(30)),
        ("av/moviepy_smpte-2997_actually25fps.mp4", "CFR", Fraction(25)),
        ("av/ffmpeg-normalize_test_bbb_mp3_ac3_2audio.mp4", "CFR", Fraction(60)),
    ],
)
def test_corpus_frame_rate_verdicts(name: str, mode: str, fps: Fraction | None) -> None:
    info = probe(corpus_file(name))
    assert info.video is not None
    assert info.video.frame_rate_mode == mode
    if fps is not None:
        assert info.video.fps == fps


def test_mediainfo_calls_the_centisecond_trap_vfr_and_we_do_not() -> None:
    path = corpus_file("vfr/videotimestamps_mkv_timescale_cs_FALSE_VFR.mkv")
    mi = PyMediaInfo.parse(path)
    assert mi.video_tracks[0].frame_rate_mode == "VFR"
    info = probe(path)
    assert info.video is not None and info.video.frame_rate_mode == "CFR"
    # Independent check of what we count: MediaInfo's frame count and size.
    assert info.video.frames == int(mi.video_tracks[0].frame_count)
    assert (info.video.width, info.video.height) == (
        mi.video_tracks[0].width,
        mi.video_tracks[0].height,
    )


def test_phone_recording_facts() -> None:
    info = probe(corpus_file("vfr/moviepy_fire2_android_phone_vfr.mp4"))
    v, a = info.video, info.audio
    assert v is not None and a is not None
    assert v.rotation == 180
    assert (v.codec, v.profile, v.width, v.height) == ("h264", "Baseline", 1280, 720)
    assert 0.079 < v.min_frame_interval_s < 0.081
    assert 0.099 < v.max_frame_interval_s < 0.101
    assert (a.codec, a.sample_rate, a.channels) == ("aac", 48000, 1)
    # README: audio 2.261 s against video 2.380 s.
    assert info.av_duration_delta_s == pytest.approx(-0.119, abs=0.002)


def test_keyframe_interval_of_a_2_second_gop_file() -> None:
    info = probe(corpus_file("av/auto-editor_example_720p30_aac48k.mp4"))
    assert info.video is not None
    assert info.video.max_keyframe_interval_s == pytest.approx(2.0, abs=1e-6)
    assert info.video.all_keyframes_idr is True
    assert info.audio is not None and info.audio.bit_rate is not None
    assert 310_000 < info.audio.bit_rate < 325_000


def test_mp3_is_named_as_the_codec_not_the_decoder() -> None:
    info = probe(corpus_file("av/ffmpeg-normalize_test_bbb_mp3_ac3_2audio.mp4"))
    assert [a.codec for a in info.audios] == ["mp3", "ac3"]
    assert info.audios[1].channels == 6


def test_declared_aac_rate_is_read_from_esds() -> None:
    path = corpus_file("av/moviepy_smpte-2997_actually25fps.mp4")
    info = probe(path)
    assert info.audio is not None
    mi = PyMediaInfo.parse(path).audio_tracks[0]
    assert info.audio.declared_max_bit_rate == int(mi.maximum_bit_rate) == 160000
    assert info.audio.bit_rate is not None and info.audio.bit_rate < 40000


def test_edit_list_priming_is_not_counted_as_audio() -> None:
    info = probe(corpus_file("av/mediabunny_edts_editlist.mp4"))
    assert info.audio is not None
    assert info.audio.start_s == pytest.approx(0.0, abs=1e-6)
    assert info.audio.priming_samples == 2112
    assert info.av_duration_delta_s == pytest.approx(0.0, abs=1e-3)


def test_truncated_file_is_measured_by_its_data_not_its_header() -> None:
    info = probe(corpus_file("broken/mediabunny_annex-b_TRUNCATED_100000B.mp4"))
    assert info.header_duration_s == pytest.approx(35.229, abs=0.01)
    assert info.duration_s < 1.0
    assert any(w.startswith("truncated") for w in info.warnings)
    assert info.video is not None and info.video.frames == 6


# ------------------------------------------------------------------ media made here


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30), Fraction(24000, 1001), Fraction(25)])
def test_synthetic_cfr_rates_are_exact(make_clip: MakeClip, fps: Fraction) -> None:
    path = make_clip("cfr.mp4", fps=fps, seconds=2.0, width=64, height=64)
    info = probe(path)
    assert info.video is not None
    assert info.video.frame_rate_mode == "CFR"
    assert info.video.fps == fps
    assert info.video.frames == round(2 * fps)
    assert to_json(info)["video"]["fps"] == f"{fps.numerator}/{fps.denominator}"


def test_synthetic_vfr(make_clip: MakeClip) -> None:
    times = vfr_times(3.0, 30.0, 0.3)
    info = probe(make_clip("vfr.mp4", frame_times=times, width=64, height=64))
    assert info.video is not None
    assert info.video.frame_rate_mode == "VFR"
    assert info.video.frames == len(times)
    # With B-frames the header duration comes from decode timestamps and can end
    # before the last frame is shown; the picture lasts at least until it starts.
    assert info.video.start_s + info.video.duration_s > float(times[-1])


def test_gop_and_idr(make_clip: MakeClip) -> None:
    closed = make_clip(
        "closed.mp4",
        seconds=5.0,
        gop=48,
        width=64,
        height=64,
        video_options={"x264-params": "keyint=48:min-keyint=48:scenecut=0:open-gop=0"},
    )
    info = probe(closed)
    assert info.video is not None
    assert info.video.max_keyframe_interval_s == pytest.approx(2.0)
    assert info.video.keyframes == 3
    assert info.video.all_keyframes_idr is True


def test_open_gop_keyframes_are_not_idr(make_clip: MakeClip) -> None:
    # x264 open-gop: recovery-point I frames are marked sync samples but are not IDR.
    path = make_clip(
        "open.mp4",
        seconds=6.0,
        gop=24,
        width=64,
        height=64,
        video_options={"x264-params": "keyint=24:min-keyint=24:scenecut=0:open-gop=1:bframes=3"},
    )
    info = probe(path)
    assert info.video is not None
    assert info.video.keyframes > 1
    assert info.video.all_keyframes_idr is False


def test_single_keyframe_gop_is_the_whole_clip(make_clip: MakeClip) -> None:
    path = make_clip(
        "ltx.mp4",
        seconds=121 / 24,
        gop=250,
        width=64,
        height=64,
        colour_tags=False,
        video_options={"x264-params": "keyint=250:scenecut=0"},
    )
    info = probe(path)
    assert info.video is not None
    assert info.video.keyframes == 1
    assert info.video.max_keyframe_interval_s == pytest.approx(121 / 24, abs=1e-3)
    assert info.video.color_primaries is None


def test_colour_tags_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.color_primaries = 9  # bt2020
        s.codec_context.color_trc = 16  # smpte2084
        s.codec_context.colorspace = 9  # bt2020nc
        s.set_display_rotation(90)
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 24)
            for p in s.encode(frame.reformat(format="yuv420p")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    info = probe(path)
    v = info.video
    assert v is not None
    assert (v.color_primaries, v.color_transfer, v.color_matrix) == (
        "bt2020",
        "smpte2084",
        "bt2020nc",
    )
    # PyAV's 90 is counter-clockwise (FFmpeg's display matrix); handoff reports the
    # clockwise turn a player applies, as MediaInfo does.
    assert v.rotation == 270
    mi = PyMediaInfo.parse(path).video_tracks[0]
    assert float(mi.rotation) == v.rotation


def test_prores_mov_with_pcm(make_clip: MakeClip) -> None:
    path = make_clip(
        "m.mov",
        video_codec="prores_ks",
        pix_fmt="yuv422p10le",
        video_options={"profile": "3"},
        audio_codec="pcm_s24le",
        audio_bit_rate=None,
        width=64,
        height=64,
    )
    info = probe(path)
    v, a = info.video, info.audio
    assert info.container == "mov"
    assert v is not None and a is not None
    assert (v.codec, v.profile, v.bit_depth, v.chroma_subsampling) == ("prores", "HQ", 10, "4:2:2")
    assert v.intra_only and v.all_keyframes_idr is None
    assert (a.codec, a.bit_depth, a.sample_rate) == ("pcm_s24le", 24, 48000)
    assert a.start_s == 0.0 and a.priming_samples == 0
    assert info.av_duration_delta_s == pytest.approx(0.0, abs=1e-6)


def test_aac_priming_is_hidden_by_the_edit_list(make_clip: MakeClip) -> None:
    info = probe(make_clip("aac.mp4", width=64, height=64, seconds=2.0))
    assert info.audio is not None
    assert info.audio.start_s == pytest.approx(0.0, abs=1e-6)
    assert info.audio.duration_s == pytest.approx(2.0, abs=0.03)
    assert info.faststart is True


def test_faststart_false_when_moov_is_at_the_end(make_clip: MakeClip) -> None:
    info = probe(make_clip("slow.mp4", width=64, height=64, faststart=False))
    assert info.faststart is False


def test_one_hour_1080p_probes_from_timestamps_alone(tmp_path: Path) -> None:
    """An hour of 1080p24 at 2-second GOPs: every frame counted from packet timestamps.

    One GOP of a still picture is encoded and its packets muxed 1,800 times with
    shifted timestamps, which makes the hour in about a second and some 15 MB.
    """
    path = tmp_path / "hour.mp4"
    fps, gop, frames = 24, 48, 24 * 3600
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
        s.options = {"preset": "ultrafast", "x264-params": f"keyint={gop}:scenecut=0:bframes=0"}
        still = av.VideoFrame.from_ndarray(np.zeros((1080, 1920, 3), np.uint8), format="rgb24")
        still = still.reformat(format="yuv420p")
        packets = []
        for i in range(gop):
            still.pts, still.time_base = i, Fraction(1, fps)
            packets += [(bytes(p), p.is_keyframe) for p in s.encode(still)]
        packets += [(bytes(p), p.is_keyframe) for p in s.encode(None)]
        assert len(packets) == gop
        for i in range(frames):
            data, is_key = packets[i % gop]
            pkt = av.Packet(data)
            pkt.stream = s
            pkt.time_base = Fraction(1, fps)
            pkt.pts = pkt.dts = i
            pkt.duration = 1
            pkt.is_keyframe = is_key
            out.mux(pkt)
    info = probe(path)
    v = info.video
    assert v is not None
    assert (v.width, v.height, v.frames) == (1920, 1080, frames)
    assert v.frame_rate_mode == "CFR" and v.fps == 24
    assert v.max_keyframe_interval_s == pytest.approx(2.0)
    assert v.keyframes == frames // gop
    assert v.all_keyframes_idr is True
    assert info.duration_s == pytest.approx(3600.0)


# ------------------------------------------------------------------ errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match="no such file"):
        probe(tmp_path / "nope.mp4")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(EmptyMediaError, match="empty"):
        probe(p)


def test_not_media() -> None:
    with pytest.raises(NotMediaError, match="not a media file"):
        probe(FIXTURES / "not_media.mp4")


def test_interrupted_mp4_has_no_index() -> None:
    with pytest.raises(TruncatedMediaError, match="no index"):
        probe(FIXTURES / "interrupted_write_no_moov.mp4")


def test_wav_with_no_samples_has_no_media(tmp_path: Path) -> None:
    import struct

    p = tmp_path / "hollow.wav"
    # A valid RIFF/WAVE header (PCM 16-bit mono 48 kHz) whose data chunk is empty.
    fmt = struct.pack("<HHIIHH", 1, 1, 48000, 96000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 0)
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(NoStreamsError):
        probe(p)


def test_permission_denied(make_clip: MakeClip) -> None:
    p = make_clip("locked.mp4", width=64, height=64)
    p.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(MediaPermissionError, match="permission denied"):
            probe(p)
    # Through the command, without root's power to read any file (setpriv drops it).
    done = run_handoff("probe", str(p), unprivileged=True)
    assert done.returncode == 2, done.stderr
    assert f"{p}\n  ERROR  permission denied" in done.stdout


def test_folder_with_no_media(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    (problem,) = expand_media([tmp_path])
    assert isinstance(problem, NoMediaFoundError) and problem.path == tmp_path


def test_folders_expand_recursively_in_numeric_order(tmp_path: Path) -> None:
    sub = tmp_path / "a"
    sub.mkdir()
    for name in ("10_x.mp4", "2_y.mov", "1_z.wav", ".hidden.mp4", "readme.md"):
        (sub / name).write_bytes(b"x")
    items = expand_media([tmp_path])
    assert [p.name for p in items if isinstance(p, Path)] == ["1_z.wav", "2_y.mov", "10_x.mp4"]
    assert all(isinstance(p, Path) for p in items)  # no problem entries
