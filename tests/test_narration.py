"""The silences, floor and clock of a narration (handoff.analysis.narration), on
narrations whose answers are known by construction, and through ``validate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from handoff.analysis.dsp import SoundMap, bin_power
from handoff.analysis.narration import NarrationFacts, narration_facts
from handoff.media.synth import babble, write_wav
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec

RATE = 48000


def facts(x: npt.NDArray[np.float64]) -> NarrationFacts:
    bins, _ = bin_power(x, RATE)
    return narration_facts(bins, int(x.shape[-1]), RATE)


def voice(seconds: float = 20.0, seed: int = 4) -> npt.NDArray[np.float64]:
    x = babble(seconds, RATE, seed=seed).astype(np.float64)
    return 0.5 * x / float(np.max(np.abs(x)))


def room_tone(n: int, db: float = -60.0, seed: int = 1) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).normal(0.0, 10.0 ** (db / 20.0), n)


def gated(x: npt.NDArray[np.float64], hold_s: float) -> npt.NDArray[np.float64]:
    """A noise gate: open while the 10 ms level is above -45 dBFS, held ``hold_s``."""
    level = np.convolve(x * x, np.ones(480) / 480, mode="same")
    where = np.arange(x.shape[0])
    last_open = np.maximum.accumulate(np.where(level > 10**-4.5, where, -(10**9)))
    return x * ((where - last_open) <= round(hold_s * RATE))


def test_a_dead_gap_is_the_longest_silence_where_it_was_put() -> None:
    x = voice() + room_tone(20 * RATE)
    at = 10 * RATE
    y = np.concatenate([x[:at], room_tone(4 * RATE, seed=2), x[at:]])
    before, after = facts(x), facts(y)
    assert before.longest is not None and before.longest.length < 1.5 * RATE
    longest = after.longest
    assert longest is not None
    # The gap joins the pause around 10 s of the voice: it starts where that sound ends
    # and is 4 s longer than the pause it sits in (the onset rule, to the 1 ms bin).
    around = [s for s in before.silences if s.start <= at <= s.end]
    if around:
        assert (longest.start, longest.length) == (around[0].start, around[0].length + 4 * RATE)
    else:
        assert longest.start <= at and longest.length >= 4 * RATE


@pytest.mark.parametrize("hold_s", [0.1, 0.25, 0.5])
def test_a_gate_makes_the_floor_switch(hold_s: float) -> None:
    x = voice() + room_tone(20 * RATE)
    steady, gate = facts(x), facts(gated(x, hold_s))
    assert steady.floor_switches == 0 and steady.first_switch is None
    assert gate.floor_switches >= 2
    # The first switch is inside a silence of the steady take, not in a word.
    assert gate.first_switch is not None
    assert any(s.start <= gate.first_switch <= s.end for s in facts(x).silences) or (
        gate.first_switch >= steady.first_sound if steady.first_sound else False
    )


def test_digital_silence_throughout_is_a_steady_floor() -> None:
    n = facts(voice())
    assert n.floor_switches == 0
    assert {s.floor_db for s in n.floors} == {-120.0}


def test_pauses_floor_is_the_room_tone() -> None:
    n = facts(voice() + room_tone(20 * RATE, db=-60.0))
    floors = [s.floor_db for s in n.floors]
    assert floors and all(f is not None and -62.0 < f < -58.0 for f in floors)
    assert n.floor_range_db is not None and n.floor_range_db < 1.0


def test_a_click_before_the_voice_is_the_clock() -> None:
    x = np.concatenate([np.zeros(RATE), voice()])
    first = facts(x).first_sound
    assert first is not None
    # Without the click, the voice's smooth syllables (80-300 ms, sin^2) have no sharp
    # onset at its first sound.
    assert facts(x).clock != first
    click_at = first - RATE // 2
    y = x.copy()
    y[click_at : click_at + 192] = 0.5 * np.hanning(192) * np.sin(np.arange(192) * 0.26)
    n = facts(y)
    assert n.first_sound is not None and abs(n.first_sound - click_at) <= RATE // 1000
    assert n.clock is not None and abs(n.clock - click_at) <= 2 * RATE // 1000


def test_validate_names_each_problem_with_its_time(tmp_path: Path) -> None:
    x = voice() + room_tone(20 * RATE)
    at = 10 * RATE
    gap = np.concatenate([x[:at], room_tone(4 * RATE, seed=2), x[at:]])
    for name, sig in (("steady.wav", x), ("gap.wav", gap), ("gated.wav", gated(x, 0.25))):
        write_wav(tmp_path / name, np.stack([sig, sig]), RATE)
    spec = load_spec("ltx2-audio")
    rules = {
        name: {f.rule: f for f in validate_file(tmp_path / name, spec).findings}
        for name in ("steady.wav", "gap.wav", "gated.wav")
    }
    assert "internal-silence" not in rules["steady.wav"]
    assert "steady-floor" not in rules["steady.wav"]
    found = rules["gap.wav"]["internal-silence"]
    assert found.severity == "warning" and " from 9." in found.actual, found.actual
    assert float(found.actual.split(" s from")[0]) > 4.0
    switch = rules["gated.wav"]["steady-floor"]
    assert switch.severity == "warning" and ", the first at " in switch.actual


def reverb(x: npt.NDArray[np.float64], rt60_s: float = 0.6) -> npt.NDArray[np.float64]:
    """``x`` in a room: convolved with decaying noise (60 dB down after ``rt60_s``)."""
    n = round(0.8 * RATE)
    ir = np.random.default_rng(3).normal(0.0, 1.0, n) * np.exp(
        -6.9 * np.arange(n) / (rt60_s * RATE)
    )
    ir[0] = 20.0
    ir /= float(np.sqrt(np.sum(ir * ir)))
    return np.convolve(x, ir)


def test_a_tail_cut_off_is_found_and_a_faded_end_is_not(tmp_path: Path) -> None:
    dry = voice(12.0)
    wet = reverb(dry)
    last_sound = last_sound_end(dry)
    cut = wet[: last_sound + RATE // 20]  # 50 ms after the dry voice's last sound
    whole = np.concatenate([wet, np.zeros(RATE)])
    cut_level, whole_level = facts(cut).end_level_db, facts(whole).end_level_db
    assert cut_level is not None and cut_level > 10.0
    assert whole_level is not None and whole_level < 0.0
    for name, sig in (("cut.wav", cut), ("whole.wav", whole)):
        write_wav(tmp_path / name, np.stack([sig, sig]), RATE)
    spec = load_spec("ltx2-audio")
    found = {f.rule: f for f in validate_file(tmp_path / "cut.wav", spec).findings}
    assert found["tail"].severity == "warning"
    assert "tail" not in {f.rule for f in validate_file(tmp_path / "whole.wav", spec).findings}


def last_sound_end(x: npt.NDArray[np.float64]) -> int:
    """One past the last sound sample of ``x`` (the onset rule read backwards)."""
    span = SoundMap(x, RATE).programme()
    assert span is not None
    return span[1] * (RATE // 1000)
