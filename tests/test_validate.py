"""validate: verdicts of the built-in specs on media made here and on real files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from pymediainfo import MediaInfo as PyMediaInfo

from handoff.analysis import loudness
from handoff.media.synth import speech_like, vfr_times, write_wav
from handoff.validate.check import FileReport, exit_code, validate_file
from handoff.validate.spec import load_spec, parse_spec
from tests.conftest import FIXTURES, MakeClip, corpus_file, review_clip_kwargs

H264 = load_spec("h264-review")
PRORES = load_spec("prores-master")
LTX2 = load_spec("ltx2-audio")


def failed_rules(report: FileReport) -> set[str]:
    return {f.rule for f in report.findings if f.severity == "error"}


# ------------------------------------------------------------------ h264-review


def test_review_copy_passes(make_clip: MakeClip) -> None:
    path = make_clip("ok.mp4", **review_clip_kwargs())
    report = validate_file(path, H264)
    assert report.status == "pass", report.findings
    assert report.findings == ()
    # An independent reader agrees on the facts the verdict rests on.
    track = PyMediaInfo.parse(path).video_tracks[0]
    assert track.format_profile.startswith("High")
    assert float(track.frame_rate) == 24.0
    assert track.frame_rate_mode == "CFR"


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"fps": Fraction(25)}, "frame-rate"),
        ({"fps": Fraction(50)}, "frame-rate"),
        ({"faststart": False}, "faststart"),
        ({"audio_rate": 24000, "audio_bit_rate": 96000}, "audio-sample-rate"),
        ({"audio_bit_rate": 96000}, "audio-bit-rate"),
        ({"audio_seconds": 3.0 + 3 / 24}, "av-duration"),
        (
            {
                "gop": 120,
                "video_options": {"preset": "ultrafast", "x264-params": "keyint=120:scenecut=0"},
            },
            "keyframe-interval",
        ),
        (
            {
                "video_options": {
                    "x264-params": "keyint=48:min-keyint=48:scenecut=0:open-gop=1:bframes=3"
                }
            },
            "keyframes-idr",
        ),
        (
            {
                "profile": "main",
                "video_options": {"x264-params": "keyint=48:min-keyint=48:scenecut=0"},
            },
            "h264-profile",
        ),
    ],
)
def test_review_failures_name_the_rule(
    make_clip: MakeClip, change: dict[str, object], rule: str
) -> None:
    kwargs = review_clip_kwargs()
    if "fps" in change:
        kwargs.update(review_clip_kwargs(fps=change["fps"]))  # type: ignore[arg-type]
    kwargs.update(change)
    report = validate_file(make_clip("bad.mp4", **kwargs), H264)
    assert report.status == "fail"
    assert rule in failed_rules(report)


def test_vfr_fails_frame_rate_mode(make_clip: MakeClip) -> None:
    kwargs = review_clip_kwargs()
    kwargs["frame_times"] = vfr_times(3.0, 24.0, 0.3)
    report = validate_file(make_clip("vfr.mp4", **kwargs), H264)
    assert "frame-rate-mode" in failed_rules(report)


def test_ntsc_passes_unless_held_to_24_or_30(make_clip: MakeClip) -> None:
    path = make_clip("ntsc.mp4", **review_clip_kwargs(fps=Fraction(30000, 1001)))
    assert validate_file(path, H264).status == "pass"
    strict = validate_file(path, H264, {"allow_ntsc": False})
    assert failed_rules(strict) == {"frame-rate-24-30"}


def test_untagged_colour_is_a_warning_not_a_failure(make_clip: MakeClip) -> None:
    path = make_clip("untagged.mp4", **{**review_clip_kwargs(), "colour_tags": False})
    report = validate_file(path, H264)
    assert report.status == "pass"
    assert [f.rule for f in report.warnings] == ["colour-tags"]


def test_missing_audio_is_reported_once(make_clip: MakeClip) -> None:
    path = make_clip("silent.mp4", **{**review_clip_kwargs(), "audio_rate": None})
    report = validate_file(path, H264)
    assert failed_rules(report) == {"audio-present"}


def test_corpus_2s_gop_boundary_passes_the_gop_rule_and_fails_others() -> None:
    report = validate_file(corpus_file("av/auto-editor_example_720p30_aac48k.mp4"), H264)
    rules = failed_rules(report)
    assert "keyframe-interval" not in rules
    assert {"h264-profile", "audio-bit-rate"} <= rules


def test_corpus_23976_sample_passes_unless_held_to_24_or_30() -> None:
    path = corpus_file("av/pymediainfo_sample_1080p23976_aac48k.mp4")
    assert validate_file(path, H264).status == "pass"
    strict = validate_file(path, H264, {"allow_ntsc": False})
    assert failed_rules(strict) == {"frame-rate-24-30"}


def test_corpus_av_delta_over_one_frame_fails() -> None:
    report = validate_file(corpus_file("av/mediabunny_video_1080p25_silent_aac.mp4"), H264)
    assert "av-duration" in failed_rules(report)


@pytest.mark.parametrize(
    "name",
    [
        "broken/mediabunny_annex-b_TRUNCATED_100000B.mp4",
        "broken/ffmpeg-normalize_out_48B_no_moov.mp4",
    ],
)
def test_broken_files_never_pass(name: str) -> None:
    report = validate_file(corpus_file(name), H264)
    assert report.status in ("fail", "error")
    if report.status == "fail":
        assert "complete-file" in failed_rules(report)


def test_unreadable_files_are_errors_not_exceptions(tmp_path: Path) -> None:
    reports = [
        validate_file(tmp_path / "missing.mp4", H264),
        validate_file(FIXTURES / "not_media.mp4", H264),
        validate_file(FIXTURES / "interrupted_write_no_moov.mp4", H264),
    ]
    assert [r.status for r in reports] == ["error"] * 3
    assert all(r.error for r in reports)
    assert exit_code(reports) == 2


# ------------------------------------------------------------------ prores-master


def prores_kwargs(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "video_codec": "prores_ks",
        "pix_fmt": "yuv422p10le",
        "video_options": {"profile": "3"},
        "audio_codec": "pcm_s24le",
        "audio_bit_rate": None,
        "width": 128,
        "height": 72,
    }
    base.update(over)
    return base


def test_prores_master_passes(make_clip: MakeClip) -> None:
    report = validate_file(make_clip("m.mov", **prores_kwargs()), PRORES)
    assert report.status == "pass", report.findings
    assert (
        PyMediaInfo.parse(make_clip("m2.mov", **prores_kwargs())).video_tracks[0].format == "ProRes"
    )


@pytest.mark.parametrize(
    ("over", "rule"),
    [
        ({"video_options": {"profile": "2"}}, "prores-profile"),
        ({"audio_codec": "pcm_s16le"}, "audio-codec"),
        ({"audio_rate": 44100}, "audio-sample-rate"),
        ({"fps": Fraction(25)}, "frame-rate"),
    ],
)
def test_prores_failures(make_clip: MakeClip, over: dict[str, object], rule: str) -> None:
    report = validate_file(make_clip("m.mov", **prores_kwargs(**over)), PRORES)
    assert rule in failed_rules(report)


def test_h264_is_not_a_prores_master(make_clip: MakeClip) -> None:
    report = validate_file(make_clip("x.mp4", **review_clip_kwargs()), PRORES)
    assert {"container", "video-codec", "audio-codec"} <= failed_rules(report)


# ------------------------------------------------------------------ ltx2-audio


def narration(
    tmp_path: Path,
    name: str,
    *,
    lufs: float = -16.0,
    lead: float = 0.15,
    rate: int = 48000,
    seconds: float = 6.0,
    channels: str = "dual",
) -> Path:
    mono = speech_like(seconds, rate, pauses=[(2.0, 0.5)], lead=lead, tail=0.2)
    mono = mono * 10 ** ((lufs - loudness.integrated_loudness(mono[None, :], rate)) / 20)
    peak = 10 ** (loudness.true_peak(mono[None, :], rate) / 20)
    if peak > 10 ** (-3.5 / 20):  # keep the peak rule out of tests about other rules
        mono = mono * 10 ** (-3.5 / 20) / peak
        mono = mono * 10 ** ((lufs - loudness.integrated_loudness(mono[None, :], rate)) / 20)
    if channels == "dual":
        data = np.stack([mono, mono])
    elif channels == "stereo":
        data = np.stack([mono, np.roll(mono, 4800)])
    else:
        data = mono[None, :]
    return write_wav(tmp_path / name, data, rate)


def test_conditioned_narration_passes_and_says_it_measured_mono_content(tmp_path: Path) -> None:
    path = narration(tmp_path, "ok.wav", lufs=-16.5)
    report = validate_file(path, LTX2)
    assert report.status == "pass", report.findings
    assert any("mono content" in n for n in report.notes)
    assert report.measurements["audio.integrated_lufs"] == pytest.approx(-16.5, abs=0.2)


def test_the_dual_mono_note_comes_only_where_it_changes_a_figure(tmp_path: Path) -> None:
    """Dual-mono changes the integrated loudness (measured as its mono content): a spec
    that reads it gets the note; one whose rules read only the peak, or a silent file's
    identical channels, does not."""
    path = narration(tmp_path, "dual.wav")
    peak_only = parse_spec(
        'name = "peak-only"\ndescription = ""\n[[rules]]\nid = "true-peak"\n'
        'fact = "audio.true_peak_dbtp"\nop = "le"\nvalue = -3.0\n',
        "peak-only",
    )
    checked = validate_file(path, peak_only)
    assert checked.status == "pass" and checked.measurements["audio.dual_mono"] is True
    assert not [n for n in checked.notes if "dual-mono" in n]
    assert [n for n in validate_file(path, LTX2).notes if "dual-mono" in n]
    silent = write_wav(tmp_path / "silent.wav", np.zeros((2, 48000)), 48000)
    assert not [n for n in validate_file(silent, LTX2).notes if "dual-mono" in n]


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"lufs": -22.0}, "loudness"),
        ({"lead": 0.5}, "leading-silence"),
        ({"rate": 44100}, "sample-rate"),
        ({"channels": "stereo"}, "mono-content"),
        ({"seconds": 121.0}, "duration"),
    ],
)
def test_ltx2_audio_failures(tmp_path: Path, kwargs: dict[str, object], rule: str) -> None:
    report = validate_file(narration(tmp_path, "x.wav", **kwargs), LTX2)  # type: ignore[arg-type]
    assert report.status == "fail"
    assert rule in failed_rules(report)


def test_hot_peaks_fail_true_peak(tmp_path: Path) -> None:
    rate = 48000
    t = np.arange(rate * 3) / rate
    # A tone at -16 LUFS-ish with a spike to full scale: loud enough, but peaks too hot.
    x = 0.2 * np.sin(2 * np.pi * 440 * t)
    x[rate : rate + 10] = 0.99
    report = validate_file(write_wav(tmp_path / "hot.wav", np.stack([x, x]), rate), LTX2)
    assert "true-peak" in failed_rules(report)


def test_mono_passes_with_a_warning(tmp_path: Path) -> None:
    report = validate_file(narration(tmp_path, "mono.wav", channels="mono"), LTX2)
    assert report.status == "pass"
    assert [f.rule for f in report.warnings] == ["two-channels"]


def test_real_speech_is_not_conditioned() -> None:
    report = validate_file(corpus_file("speech/silero-vad_test_16k_mono_60s.wav"), LTX2)
    assert {"sample-rate", "loudness"} <= failed_rules(report)
    assert report.measurements["audio.integrated_lufs"] == pytest.approx(-22.8, abs=0.2)


def test_silent_aac_bit_rate_is_not_held_against_the_file(tmp_path: Path) -> None:
    import av

    path = tmp_path / "silent_track.mp4"
    # Picture made the review way, sound digital silence: FFmpeg's AAC then writes
    # ~2 kb/s whatever bit rate it was asked for.
    from handoff.media.synth import ClipSpec, write_clip

    settings = {**review_clip_kwargs(), "audio_rate": None}
    clip = write_clip(tmp_path / "pic.mp4", ClipSpec(**settings))  # type: ignore[arg-type]
    with (
        av.open(str(clip)) as src,
        av.open(str(path), "w", options={"movflags": "+faststart"}) as out,
    ):
        vin = src.streams.video[0]
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("aac", rate=48000, layout="stereo")
        aout.bit_rate = 96000  # declared below the spec's range: only the silence excuses it
        for packet in src.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)
        for i in range(round(3.0 * 48000 / 1024)):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts, frame.time_base = 48000, i * 1024, Fraction(1, 48000)
            for p in aout.encode(frame):
                out.mux(p)
        for p in aout.encode(None):
            out.mux(p)
    report = validate_file(path, H264)
    assert "audio-bit-rate" not in failed_rules(report)
    assert any("audio-bit-rate not checked" in n for n in report.notes)
