"""The export plan's per-stream decision (copy, retag, encode), made from probe facts
alone: on tiny files made with PyAV, probed, then planned -- the media is deleted before
planning, so a decision that reads media fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from handoff.export.plan import ExportOptions, ExportPlan, plan_export
from handoff.media.synth import ClipSpec, write_clip
from handoff.probe.reader import MediaInfo, probe
from handoff.validate.spec import load_spec

# A review copy as h264-review asks for it: High, CFR 24, keyframes every 2 s (IDR, no
# scene cuts), AAC-LC 48 kHz at 224 kb/s, sound as long as the picture.
REVIEW = ClipSpec(
    width=160,
    height=120,
    seconds=3.0,
    gop=48,
    profile="high",
    video_options={"x264-params": "keyint=48:min-keyint=48:scenecut=0:open-gop=0"},
    audio_bit_rate=224000,
)


def _probed(tmp_path: Path, name: str, spec: ClipSpec) -> MediaInfo:
    path = write_clip(tmp_path / name, spec)
    info = probe(path)
    path.unlink()  # the plan must not read the file
    return info


def _plan(info: MediaInfo, preset: str, **options: object) -> ExportPlan:
    return plan_export(info, load_spec(preset), ExportOptions(**options))  # type: ignore[arg-type]


def test_a_conformant_review_copy_is_copied_and_reencode_forces_an_encode(tmp_path: Path) -> None:
    info = _probed(tmp_path, "ok.mp4", REVIEW)
    plan = _plan(info, "h264-review")
    assert plan.video.decision.action == "copy", plan.video.decision
    assert plan.video.retag is None
    assert plan.audio is not None
    # The AAC's length is the picture's only if the encoder's padding is accounted for;
    # either way the decision says which, with the rule.
    a = plan.audio.decision
    assert a.action == "copy" or a.rule == "length", a

    forced = _plan(info, "h264-review", reencode=True)
    assert forced.video.decision.action == "encode"
    assert forced.video.decision.rule == "--reencode"
    assert forced.audio is not None and forced.audio.decision.rule == "--reencode"
    assert forced.to_json()["video"]["decision"]["rule"] == "--reencode"


def test_a_long_gop_is_encoded_and_the_rule_is_named(tmp_path: Path) -> None:
    long_gop = ClipSpec(
        width=160, height=120, seconds=11.0, gop=240, profile="high", audio_bit_rate=224000,
        video_options={"x264-params": "keyint=240:min-keyint=240:scenecut=0:open-gop=0"},
    )  # fmt: skip
    plan = _plan(_probed(tmp_path, "gop.mp4", long_gop), "h264-review")
    d = plan.video.decision
    assert (d.action, d.rule) == ("encode", "keyframe-interval"), d
    assert "video.max_keyframe_interval_s is 10" in d.why, d.why


def test_untagged_colour_is_retagged_with_h264_metadata(tmp_path: Path) -> None:
    info = _probed(tmp_path, "untagged.mp4", replace(REVIEW, colour_tags=False))
    assert info.video is not None and info.video.color_primaries is None
    plan = _plan(info, "h264-review")
    assert plan.video.decision.action == "retag", plan.video.decision
    assert plan.video.retag is not None
    # H.273 code point 1 is BT.709 for primaries, transfer and matrix alike.
    assert plan.video.retag.filter_string() == (
        "h264_metadata=colour_primaries=1:transfer_characteristics=1:matrix_coefficients=1"
    )
    assert plan.to_json()["video"]["retag"]["filter"] == "h264_metadata"


def test_interlaced_pictures_are_encoded(tmp_path: Path) -> None:
    interlaced = replace(
        REVIEW, video_options={"x264-params": "keyint=48:min-keyint=48:scenecut=0:tff=1"}
    )
    info = _probed(tmp_path, "tff.mp4", interlaced)
    assert info.video is not None and info.video.field_order == "tt"
    d = _plan(info, "h264-review").video.decision
    assert (d.action, d.rule) == ("encode", "scan-order"), d
    assert "interlaced (tt)" in d.why


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"audio_rate": 44100}, "sample-rate"),
        ({"audio_bit_rate": 96000}, "audio-bit-rate"),
    ],
)
def test_sound_that_fails_a_rule_is_encoded_and_says_which(
    tmp_path: Path, change: dict[str, object], rule: str
) -> None:
    info = _probed(tmp_path, "s.mp4", replace(REVIEW, **change))  # type: ignore[arg-type]
    plan = _plan(info, "h264-review")
    assert plan.audio is not None
    d = plan.audio.decision
    assert (d.action, d.rule) == ("encode", rule), d


def test_a_picture_to_another_codec_is_encoded(tmp_path: Path) -> None:
    plan = _plan(_probed(tmp_path, "x.mp4", REVIEW), "prores-master")
    assert (plan.video.decision.action, plan.video.decision.rule) == ("encode", "codec")
    assert plan.audio is not None and plan.audio.decision.rule == "codec"
