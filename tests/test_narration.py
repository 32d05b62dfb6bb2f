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


def burst(n: int = RATE // 100, level: float = 0.4, seed: int = 5) -> npt.NDArray[np.float64]:
    """A consonant's burst: noise at full level from its first sample, decaying over 10 ms."""
    noise = np.random.default_rng(seed).normal(0.0, level, n)
    return noise * np.exp(-np.arange(n) / (0.004 * RATE))


def breath(seconds: float, level_db: float = -28.0) -> npt.NDArray[np.float64]:
    """A breath: noise swelling in and out over ``seconds`` (no sharp onset anywhere)."""
    n = round(seconds * RATE)
    hiss = np.random.default_rng(9).normal(0.0, 10.0 ** (level_db / 20.0), n)
    shaped: npt.NDArray[np.float64] = hiss * np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2
    return shaped


@pytest.mark.parametrize("breath_s", [0.0, 1.2])
def test_breath_before_the_first_word_delays_the_clock(tmp_path: Path, breath_s: float) -> None:
    word = np.concatenate([burst(), voice(12.0)[round(0.3 * RATE) :]])
    lead = np.zeros(RATE // 10)
    x = np.concatenate([lead, breath(breath_s), word])
    n = facts(x)
    assert n.first_sound is not None and n.clock is not None
    # The breath is sound (over the threshold): the first sound is where it starts, the
    # clock the burst's first sample, to the 1 ms bin.
    assert abs(n.first_sound - lead.shape[0]) <= 0.3 * RATE
    burst_at = lead.shape[0] + round(breath_s * RATE)
    assert abs(n.clock - burst_at) <= RATE // 1000
    write_wav(tmp_path / "x.wav", np.stack([x, x]), RATE)
    found = {f.rule: f for f in validate_file(tmp_path / "x.wav", load_spec("ltx2-audio")).findings}
    if breath_s < 1.0:
        assert "clock" not in found
    else:
        clock = found["clock"]
        assert clock.severity == "warning" and "after the first sound heard at 0." in clock.actual
        assert float(clock.actual.split(" s after")[0]) > 0.9


def test_a_voice_without_a_sharp_onset_has_no_clock(tmp_path: Path) -> None:
    x = np.concatenate([np.zeros(RATE // 10), breath(3.0, -10.0)])
    assert facts(x).clock is None
    write_wav(tmp_path / "x.wav", np.stack([x, x]), RATE)
    found = {f.rule: f for f in validate_file(tmp_path / "x.wav", load_spec("ltx2-audio")).findings}
    assert found["clock"].actual.startswith("no sharp onset after the first sound heard at 0.")


def faster(x: npt.NDArray[np.float64], factor: float) -> npt.NDArray[np.float64]:
    """``x`` played ``factor`` times faster (linear interpolation; the pitch rises too)."""
    out: npt.NDArray[np.float64] = np.interp(
        np.arange(0.0, x.shape[0] - 1, factor), np.arange(x.shape[0]), x
    )
    return out


@pytest.mark.parametrize("seed", [4, 5, 7])
def test_a_second_half_read_a_third_faster_is_a_pace_change(tmp_path: Path, seed: int) -> None:
    x = voice(60.0, seed)
    even = facts(x)
    half = 30 * RATE
    y = np.concatenate([x[:half], faster(x[half:], 4.0 / 3.0)])
    sped = facts(y)
    assert even.pace is not None and sped.pace is not None
    assert abs(even.pace.change) < 0.25, even.pace
    # The change is found where it happens, within a window's resolution, and about the
    # third it is (the syllable count per second of sound rises by 4/3).
    assert sped.pace.change > 0.25, sped.pace
    assert abs(sped.pace.at - half) < 5 * RATE, sped.pace.at / RATE
    assert even.speech_rate is not None and sped.speech_rate is not None
    assert 1.05 < sped.speech_rate / even.speech_rate < 4.0 / 3.0
    for name, sig in (("even.wav", x), ("faster.wav", y)):
        write_wav(tmp_path / name, np.stack([sig, sig]), RATE)
    spec = load_spec("ltx2-audio")
    pacing = [
        [f for f in validate_file(tmp_path / name, spec).findings if f.rule == "pacing"]
        for name in ("even.wav", "faster.wav")
    ]
    assert pacing[0] == []
    found = pacing[1][0]
    assert found.severity == "warning" and found.actual.startswith("+"), found.actual
    assert " % at " in found.actual and "syllables/s" in found.actual


def test_pacing_needs_speech_on_both_sides() -> None:
    assert facts(voice(10.0)).pace is None


def test_a_sync_click_at_the_head_is_the_clock_and_not_a_floor_switch() -> None:
    """prep-audio --click's layout: a 4 ms burst at sample 0, digital silence for the
    pre-roll, then a recording with room tone between its words."""
    n = 192
    click = 0.5 * np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2 * np.sin(np.arange(n) * 0.26)
    body = voice() + room_tone(20 * RATE)
    x = np.concatenate([click, np.zeros(RATE * 15 // 100), body])
    n_facts = facts(x)
    assert n_facts.clock == 0 and n_facts.clock_after_s == 0.0
    assert n_facts.floor_switches == 0
    # Without the click the pre-roll is leading silence, as it was.
    assert facts(x[n:]).floor_switches == 0
