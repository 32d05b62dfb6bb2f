"""prep-audio's plan: the cut search and the levelling as pure functions on arrays, the
plan as a value (``plan_prep``), and ``--dry-run`` printing it without writing anything.

Media is made here (handoff.media.synth) and what is written is read back by the manifest
reader, PyAV and the project's BS.1770 meter.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from handoff.analysis import loudness
from handoff.analysis.dsp import SoundMap
from handoff.analysis.limiter import LimiterSettings, oversampled_peak
from handoff.errors import UsageError
from handoff.files.manifest import load_manifest
from handoff.media.synth import speech_like, write_wav
from handoff.prep import PrepOptions, analyse, plan_prep, prepare, search_cuts
from handoff.prep.level import Meter, level
from handoff.prep.plan import head_samples
from tests.conftest import MakeDir, run_handoff

RATE = 48000
# Speech with three real pauses; with these limits the programme must be cut in them.
PAUSES = [(9.0, 0.8), (18.0, 0.7), (27.0, 0.9)]
OPTIONS = PrepOptions(max_seconds=14.0, segment_min=6.0, segment_max=12.0)


@pytest.fixture(scope="module")
def narration(module_tmp: MakeDir) -> Path:
    folder = module_tmp("plan")
    return write_wav(folder / "vo.wav", speech_like(36.0, pauses=PAUSES, seed=5), RATE)


# ---------------------------------------------------------------- pure functions on arrays


def test_cut_search_cuts_in_the_pauses_it_is_given() -> None:
    """On a bare array (no file), every cut falls inside one of the pauses the signal
    holds, and no segment file reaches max_seconds."""
    x = speech_like(36.0, pauses=PAUSES, seed=5)[None, :].astype(np.float32)
    sound = SoundMap(x, RATE)
    head = head_samples(OPTIONS)
    pairs, warnings = search_cuts(sound, x.shape[1], head, OPTIONS)
    assert len(pairs) >= 3
    inner = [after.cut for _, after in pairs[:-1]]
    for cut in inner:
        assert cut.kind == "pause", warnings
        at = cut.position / RATE
        assert any(t <= at <= t + d for t, d in PAUSES), (at, PAUSES)
        assert cut.pause_s is not None and 0.3 <= cut.pause_s <= 1.0
    for before, after in pairs:
        assert head + after.end - before.start < OPTIONS.max_seconds * RATE
        assert before.start < after.end
    assert pairs[0][0].cut.kind == "start" and pairs[-1][1].cut.kind == "end"


def test_cut_search_with_no_pause_falls_back_to_the_quietest_point() -> None:
    """A programme with no pause at all still fits: quietest-point cuts, each warned."""
    x = speech_like(30.0, seed=9)[None, :].astype(np.float32)
    options = PrepOptions(max_seconds=12.0, segment_min=6.0, segment_max=10.0)
    pairs, warnings = search_cuts(SoundMap(x, RATE), x.shape[1], head_samples(options), options)
    kinds = {after.cut.kind for _, after in pairs[:-1]}
    assert kinds <= {"quietest", "short-pause"} and kinds
    assert len(warnings) == len(pairs) - 1
    assert all("segment" in w for w in warnings)


def test_levelling_without_limiting_is_one_exact_gain() -> None:
    """A quiet programme whose peaks stay under the ceiling: the output is the input
    times one gain, and that gain is the distance from its loudness to the target."""
    x = (0.3 * speech_like(8.0, seed=2))[None, :].astype(np.float32)
    meter = Meter(x)
    settings = LimiterSettings()
    out = level(x, meter, oversampled_peak(x, settings.oversample), -30.0, -3.3, settings)
    assert out.curve.empty
    assert out.gain_db == pytest.approx(-30.0 - meter.lufs0, abs=1e-9)
    y = out.read(0, out.samples)
    np.testing.assert_allclose(y, x * 10.0 ** (out.gain_db / 20.0), rtol=1e-6)
    assert loudness.integrated_loudness(y, RATE) == pytest.approx(-30.0, abs=0.01)


def test_levelling_with_limiting_reaches_the_target_under_the_ceiling() -> None:
    """Speech pushed to -12 LUFS needs the limiter: the loudness is on target and the
    oversampled peak of the result stays at the ceiling."""
    x = speech_like(8.0, seed=2)[None, :].astype(np.float32)
    meter = Meter(x)
    settings = LimiterSettings()
    out = level(x, meter, oversampled_peak(x, settings.oversample), -12.0, -3.3, settings)
    assert not out.curve.empty
    y = out.read(0, out.samples)
    assert loudness.integrated_loudness(y, RATE) == pytest.approx(-12.0, abs=0.05)
    assert loudness.true_peak(y, RATE) < -3.0


# ---------------------------------------------------------------- the plan


def test_plan_is_what_the_run_writes(narration: Path, tmp_path: Path) -> None:
    """The plan and the manifest of the run agree on every decision: gain, ceiling, the
    segments' files, source ranges, cuts and file layout."""
    facts, plan = prepare(narration, OPTIONS)
    assert plan_prep(facts, OPTIONS) == plan  # pure: the same facts give the same plan
    r = run_handoff(
        "prep-audio", str(narration), "--out", str(tmp_path / "cond"),
        "--max-seconds", "14", "--segment-seconds", "6-12",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = load_manifest(tmp_path / "cond" / "manifest.json")
    assert m.master.file == plan.master.path.name
    assert m.master.gain_db == round(plan.master.gain_db, 3)
    assert m.settings.limiter.ceiling_dbtp == plan.settings["limiter"]["ceiling_dbtp"]
    assert len(m.segments) == len(plan.segments) >= 3
    for written, planned in zip(m.segments, plan.segments, strict=True):
        assert written.file == planned.file
        assert (written.source_in, written.source_out) == (planned.source_in, planned.source_out)
        assert written.cut_out.position == planned.cut_out.position
        assert written.cut_out.kind == planned.cut_out.kind
        assert (written.samples, written.preroll_end) == (planned.samples, planned.preroll_end)
        with av.open(str(m.segment_path(written))) as c:
            s = c.streams.audio[0]
            assert s.duration is not None and s.time_base is not None
            assert s.duration * s.time_base * RATE == planned.samples
    assert list(m.warnings) == list(plan.all_warnings())


def test_plan_needs_facts_measured_for_its_options(narration: Path) -> None:
    """Facts are measured for the options that shape the levelling and the spans; a plan
    for others is refused, while those that only name or format the files may change."""
    with analyse(narration, OPTIONS, head_samples(OPTIONS)) as facts:
        with pytest.raises(UsageError, match="max_seconds"):
            plan_prep(facts, replace(OPTIONS, max_seconds=20.0))
        renamed = plan_prep(facts, replace(OPTIONS, name="intro", bit_depth=16))
    assert renamed.segments[0].file == "001_intro.wav"
    assert [s.source_in for s in renamed.segments] == [
        s.source_in for s in plan_prep(facts, OPTIONS).segments
    ]


def test_dry_run_prints_the_plan_and_writes_nothing(narration: Path, tmp_path: Path) -> None:
    out = tmp_path / "cond"
    args = ["prep-audio", str(narration), "--out", str(out), "--max-seconds", "14",
            "--segment-seconds", "6-12", "--click", "--dry-run"]  # fmt: skip
    text = run_handoff(*args)
    assert text.returncode == 0, text.stderr
    assert "dry run: would write" in text.stdout
    assert "001_vo.wav" in text.stdout and "vo_master.wav" in text.stdout
    assert "pause" in text.stdout
    r = run_handoff(*args, "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert not out.exists()
    assert plan["schema"] == "handoff.prep-plan/1"
    assert plan["settings"]["click"] is True
    segments = plan["segments"]
    assert len(segments) >= 3
    for seg in segments:
        # [click][pre-roll][audio]: 4 ms of click, then 150 ms of silence.
        assert (seg["click_start"], seg["click_end"]) == (0, 192)
        assert seg["preroll_end"] == 192 + 7200
        assert seg["samples"] == seg["preroll_end"] + seg["source_out"] - seg["source_in"]
        assert seg["samples"] < 14 * RATE
    for a, b in itertools.pairwise(segments):
        assert a["cut_out"] == b["cut_in"]
        assert a["cut_out"]["kind"] == "pause"
        at = a["cut_out"]["position_s"]
        assert any(t <= at <= t + d for t, d in PAUSES)
        # the trims: the segment ends after its last sound, before the cut
        assert a["source_out"] <= a["cut_out"]["position"] <= b["source_in"]
    assert math.isfinite(plan["master"]["gain_db"])
    assert plan["master"]["samples"] == plan["source"]["samples"] == 36 * RATE


def test_dry_run_refuses_bad_options_in_one_line(narration: Path, tmp_path: Path) -> None:
    r = run_handoff(
        "prep-audio", str(narration), "--out", str(tmp_path / "c"), "--target-lufs", "-99",
        "--dry-run",
    )  # fmt: skip
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()
