"""The frame rates editors use: --fps takes them all, a preset's rules bound them, and a
custom spec's ``[export] fps`` sets the rate its exports are written at."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from handoff.errors import SpecError, UsageError
from handoff.export.plan import EDITOR_RATES, ExportOptions, export_settings, parse_fps, plan_export
from handoff.probe.reader import probe
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec, parse_spec
from tests.conftest import MakeClip, run_handoff

PAL_REVIEW = """\
extends = "h264-review"
name = "pal-review"
description = "H.264 review copy at 25 fps with a keyframe every second"

[[rules]]
id = "frame-rate"
fact = "video.fps"
op = "in"
value = ["25"]
message = "25 fps"

[[rules]]
id = "keyframe-interval"
fact = "video.max_keyframe_interval_s"
op = "le"
value = 1.0
tolerance = 0.001

[export]
fps = "25"
gop_seconds = 1
"""


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("23.976", Fraction(24000, 1001)),
        ("23.98", Fraction(24000, 1001)),
        ("24", Fraction(24)),
        ("25", Fraction(25)),
        ("29.97", Fraction(30000, 1001)),
        ("30", Fraction(30)),
        ("50", Fraction(50)),
        ("59.94", Fraction(60000, 1001)),
        ("60000/1001", Fraction(60000, 1001)),
        ("60", Fraction(60)),
    ],
)
def test_fps_takes_every_editor_rate(text: str, rate: Fraction) -> None:
    assert parse_fps(text) == rate
    assert rate in EDITOR_RATES


@pytest.mark.parametrize("text", ["48", "12", "29.976", "fast", "0", "1/0"])
def test_other_rates_are_refused_listing_the_ones_taken(text: str) -> None:
    with pytest.raises(
        UsageError, match=r"23\.976, 24, 25, 29\.97, 30, 50, 59\.94 or 60 or source"
    ):
        parse_fps(text)


def test_the_built_in_presets_take_ntsc_rates_without_an_option(
    make_clip: MakeClip, tmp_path: Path
) -> None:
    """Editors set sequences to 23.976 and 29.97 more than to 24 and 30: a master made
    at 23.976 passes the check a user runs afterwards, with no option given."""
    src = make_clip("ntsc.mp4", width=160, height=96, fps=Fraction(24000, 1001), seconds=1.0)
    result = run_handoff("export", str(src), "--preset", "prores-master", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout
    out = tmp_path / "ntsc.mov"
    info = probe(out)
    assert info.video is not None and info.video.fps == Fraction(24000, 1001)
    check = run_handoff("validate", str(out), "--spec", "prores-master")
    assert check.returncode == 0, check.stdout
    strict = run_handoff(
        "validate", str(out), "--spec", "prores-master", "--option", "allow_ntsc=false"
    )
    assert strict.returncode == 1 and "frame-rate-24-30" in strict.stdout


def test_a_rate_the_preset_does_not_accept_is_refused_before_any_input_is_read(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "not-there.mp4"
    result = run_handoff("export", str(missing), "--preset", "h264-review", "--fps", "50")
    assert result.returncode == 2
    assert "--fps 50: 'h264-review' accepts 23.976, 24, 29.97 or 30 fps (rule frame-rate)" in (
        result.stderr
    )


def test_a_custom_spec_sets_the_rate_and_its_exports_pass_it(
    make_clip: MakeClip, tmp_path: Path
) -> None:
    spec_path = tmp_path / "pal-review.toml"
    spec_path.write_text(PAL_REVIEW, encoding="utf-8")
    settings = export_settings(load_spec(spec_path))
    assert settings.fps == Fraction(25) and settings.gop_seconds == 1
    film = make_clip("film.mp4", width=160, height=96, fps=Fraction(24), seconds=2.0)
    pal = make_clip("pal.mp4", width=160, height=96, fps=Fraction(25), seconds=2.0)
    result = run_handoff(
        "export", str(film), str(pal), "--preset", str(spec_path), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 0, result.stdout
    assert "24 fps -> CFR 25 fps" in result.stdout
    for name, frames in (("film.mp4", 50), ("pal.mp4", 50)):
        out = tmp_path / "o" / name
        info = probe(out)
        assert info.video is not None
        assert (info.video.fps, info.video.frames, info.video.frame_rate_mode) == (
            Fraction(25),
            frames,
            "CFR",
        )
        assert info.video.max_keyframe_interval_s == pytest.approx(1.0, abs=0.001)
        assert validate_file(out, load_spec(spec_path)).status == "pass"
    # --fps still wins over the spec's rate, within what the spec accepts.
    refused = run_handoff("export", str(film), "--preset", str(spec_path), "--fps", "24")
    assert refused.returncode == 2 and "accepts 25 fps" in refused.stderr


def test_source_keeps_any_rate_the_preset_accepts(make_clip: MakeClip) -> None:
    fast = parse_spec(PAL_REVIEW.replace('value = ["25"]', 'value = ["50", "60000/1001"]')
                      .replace('fps = "25"\n', ""), "fast")  # fmt: skip
    for rate in (Fraction(50), Fraction(60000, 1001)):
        src = make_clip(f"{float(rate):.0f}.mp4", width=160, height=96, fps=rate, seconds=1.0)
        plan = plan_export(probe(src), fast, ExportOptions(fps="source"))
        assert (plan.video.fps, plan.video.conversion) == (rate, "keep")
        # The spec's one second of frames at the nominal rate: 50 at 50, 60 at 59.94.
        assert plan.video.options["x264-params"].startswith(f"keyint={round(rate)}:")


def test_50_to_25_halves_without_asking_but_25_to_24_asks(make_clip: MakeClip) -> None:
    spec = parse_spec(PAL_REVIEW, "pal")
    fifty = make_clip("fifty.mp4", width=160, height=96, fps=Fraction(50), seconds=1.0)
    plan = plan_export(probe(fifty), spec, ExportOptions())
    assert plan.video.fps == 25 and plan.video.frames == 25
    assert plan.video.conversion == "nearest"
    pal = make_clip("pal.mp4", width=160, height=96, fps=Fraction(25), seconds=1.0)
    with pytest.raises(UsageError, match="add rate_conversion=drop "):
        plan_export(probe(pal), load_spec("h264-review"), ExportOptions(fps=Fraction(24)))


@pytest.mark.parametrize("value", ['"48"', "true", '"fast"', "0"])
def test_a_bad_export_fps_is_a_spec_error(value: str) -> None:
    spec = parse_spec(PAL_REVIEW.replace('fps = "25"', f"fps = {value}"), "bad")
    with pytest.raises(SpecError, match=r"\[export\] fps"):
        export_settings(spec)
