"""Tests for handoff.analysis.dsp: 1 ms bin power, the relative silence threshold, onsets and
pauses.

Every signal is made here with a known answer: pauses of digital silence cut into a
steady voiced signal at chosen samples (not on bin boundaries), tone bursts starting at
chosen samples, sines of known level. Positions must come back to within one 1 ms bin.
"""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import numpy.typing as npt
import pytest

from handoff.analysis import dsp, loudness
from handoff.analysis.dsp import Pause, SoundMap
from handoff.media.synth import speech_like

FloatArray = npt.NDArray[np.float64]
RATE = 48000
BIN = 48  # samples per 1 ms bin at 48 kHz


# --- signals ---------------------------------------------------------------------------------


def voiced(seconds: float, rate: int = RATE, peak: float = 0.9) -> FloatArray:
    """A steady voiced sound: three harmonics of 180 Hz under a slow tremolo that never
    falls below 40 % (so its edges are sharp and its 20 ms level never dips to silence)."""
    t = np.arange(round(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t)
    tone += 0.25 * np.sin(2 * np.pi * 540 * t + 1.0)
    x = tone * (0.7 + 0.3 * np.sin(2 * np.pi * 3.1 * t))
    return np.asarray(peak * x / np.max(np.abs(x)), dtype=np.float64)


def with_gaps(x: FloatArray, gaps: list[tuple[int, int]]) -> FloatArray:
    y = x.copy()
    for a, b in gaps:
        y[a:b] = 0.0
    return y


def bursts(
    seconds: float, starts: list[int], *, length: int = 2400, amp: list[float] | None = None
) -> FloatArray:
    """1 kHz tone bursts (starting at phase 0) at ``starts`` in digital silence."""
    x = np.zeros(round(seconds * RATE))
    t = np.arange(length) / RATE
    for i, s in enumerate(starts):
        a = 0.5 if amp is None else amp[i]
        x[s : s + length] = a * np.sin(2 * np.pi * 1000.0 * t)
    return x


# Gaps at samples that are not multiples of the bin: 1.2345 s for 0.5 s, 4.0001 s for
# 0.31 s, 7.777 s for 1 s.
GAPS = [(59256, 83256), (192005, 206885), (373296, 421296)]


def assert_pauses_match(found: list[Pause], truth: list[tuple[int, int]], size: int) -> None:
    assert len(found) == len(truth), found
    for p, (a, b) in zip(found, truth, strict=True):
        assert abs(p.start - a) < size, (p, a)
        assert abs(p.end - b) < size, (p, b)


# --- bin power -------------------------------------------------------------------------------


def test_bin_power_is_the_mean_square_per_millisecond() -> None:
    rate = 44100
    x = np.full(1000, 0.5)
    x[44:88] = -1.0
    bins, size = dsp.bin_power(x, rate)
    assert size == dsp.bin_samples(rate) == 44  # round(44.1)
    assert bins.shape == (math.ceil(1000 / 44),)  # 23 bins, the last one holds 32 samples
    assert bins[0] == 0.25 and bins[1] == 1.0
    assert bins[-1] == 0.25  # the mean of what it holds, not padded with silence


def test_bin_power_takes_the_loudest_channel() -> None:
    left = np.concatenate([np.full(480, 0.1), np.full(480, 0.4)])
    right = np.concatenate([np.full(480, 0.3), np.full(480, 0.2)])
    bins, _ = dsp.bin_power(np.vstack([left, right]), RATE)
    np.testing.assert_allclose(bins[:10], 0.09)
    np.testing.assert_allclose(bins[10:], 0.16)


def test_integer_full_scale_is_one() -> None:
    bins, _ = dsp.bin_power(np.full(96, -32768, dtype=np.int16), RATE)
    assert list(bins) == [1.0, 1.0]
    bins, _ = dsp.bin_power(np.full(96, -(2**31), dtype=np.int32), RATE)
    assert list(bins) == [1.0, 1.0]


def test_bin_power_of_nothing() -> None:
    bins, size = dsp.bin_power(np.zeros((2, 0), dtype=np.float32), RATE)
    assert bins.shape == (0,) and size == BIN


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="transpose"):
        dsp.bin_power(np.zeros((RATE, 2)), RATE)
    with pytest.raises(ValueError, match="shape"):
        dsp.bin_power(np.zeros((1, 2, 3)), RATE)
    with pytest.raises(ValueError, match="integer"):
        dsp.bin_power(np.zeros(100), 44100.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1000 Hz"):
        dsp.onsets(np.zeros(100), 800)
    with pytest.raises(ValueError, match="positive"):
        dsp.find_pauses(np.zeros(100), RATE, min_pause_s=0.0)


def test_bin_power_works_in_blocks() -> None:
    """60 s of int16 stereo: no float64 copy of the programme (46 MB) is ever made."""
    x = np.zeros((2, 60 * RATE), dtype=np.int16)
    x[1, ::7] = 1000
    tracemalloc.start()
    try:
        bins, _ = dsp.bin_power(x, RATE)
        pauses = dsp.find_pauses(x, RATE)
        found = dsp.onsets(x, RATE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bins.shape == (60_000,) and pauses == [] and found == [0]
    assert peak < x.size * 8 / 3, peak


# --- threshold and level ---------------------------------------------------------------------


@pytest.mark.parametrize("amp", [0.9, 0.1, 0.01])
def test_threshold_is_35_db_under_a_steady_programme(amp: float) -> None:
    t = np.arange(2 * RATE) / RATE
    bins, _ = dsp.bin_power(amp * np.sin(2 * np.pi * 997.0 * t), RATE)
    level = 10 * math.log10(amp * amp / 2)  # mean square of a sine
    assert dsp.silence_threshold_db(bins) == pytest.approx(max(-70.0, level - 35.0), abs=0.05)


def test_threshold_gates_out_quiet_passages() -> None:
    """A passage 20 dB under the rest is under BS.1770's 10 dB relative gate: the level is
    the loud part's (-23 dB), not the mean over both (-26 dB)."""
    t = np.arange(2 * RATE) / RATE
    loud = 0.1 * np.sin(2 * np.pi * 440.0 * t)
    bins, _ = dsp.bin_power(np.concatenate([loud, 0.1 * loud]), RATE)
    assert dsp.silence_threshold_db(bins) == pytest.approx(-23.01 - 35.0, abs=0.05)


def test_threshold_never_goes_under_the_floor() -> None:
    assert dsp.silence_threshold_db(np.zeros(500)) == -70.0
    assert dsp.silence_threshold_db(np.zeros(0)) == -70.0
    bins, _ = dsp.bin_power(np.full(RATE, 1e-4), RATE)  # -80 dB: nothing passes
    assert dsp.silence_threshold_db(bins) == -70.0
    # Shorter than one 20 ms window: the whole programme is one window.
    assert dsp.silence_threshold_db(np.full(5, 0.01)) == pytest.approx(-20.0 - 35.0)


def test_centred_level_is_a_centred_moving_mean() -> None:
    bins = np.random.default_rng(1).random(300) ** 4
    level = dsp.centred_level(bins)
    # Element k: bins k-10 .. k+9 over 20, zeros beyond the ends.
    expected = np.convolve(bins, np.ones(20))[9 : 9 + 300] / 20
    np.testing.assert_allclose(level, expected, rtol=1e-12, atol=1e-15)
    odd = dsp.centred_level(bins, 5)
    np.testing.assert_allclose(odd, np.convolve(bins, np.ones(5))[2 : 2 + 300] / 5, rtol=1e-12)
    with pytest.raises(ValueError):
        dsp.centred_level(bins, 0)


def test_threshold_follows_the_programme_level() -> None:
    x = with_gaps(voiced(10.0), GAPS)
    thresholds = []
    for gain_db in (0.0, -10.0, -20.0):
        bins, _ = dsp.bin_power(x * 10 ** (gain_db / 20), RATE)
        thresholds.append(dsp.silence_threshold_db(bins))
    assert thresholds[0] > -50.0
    assert np.diff(thresholds) == pytest.approx([-10.0, -10.0], abs=1e-9)


# --- pauses ----------------------------------------------------------------------------------


def test_pauses_are_found_to_the_millisecond() -> None:
    x = with_gaps(voiced(10.0), GAPS)
    found = dsp.find_pauses(x, RATE)
    assert_pauses_match(found, GAPS, BIN)
    assert [p.middle for p in found] == [(p.start + p.end) // 2 for p in found]
    assert all(p.length == p.end - p.start for p in found)


@pytest.mark.parametrize("gain_db", [-10.0, -40.0])
def test_pauses_at_any_programme_level(gain_db: float) -> None:
    """The same pauses at -10 dB (programme about -19 dB, threshold 35 dB under it) and at
    -40 dB (programme about -49 dB: the threshold is at its -70 dB floor)."""
    x = with_gaps(voiced(10.0), GAPS) * 10 ** (gain_db / 20)
    found = dsp.find_pauses(x, RATE)
    assert_pauses_match(found, GAPS, BIN)
    assert found == dsp.find_pauses(with_gaps(voiced(10.0), GAPS) * 10 ** (-10 / 20), RATE)


def test_leading_and_trailing_silence_are_not_pauses() -> None:
    body = with_gaps(voiced(4.0), [(96_011, 120_011)])  # 2.0002 s, 0.5 s
    x = np.concatenate([np.zeros(RATE // 2 + 7), body, np.zeros(RATE // 3)])
    found = dsp.find_pauses(x, RATE)
    assert_pauses_match(found, [(RATE // 2 + 7 + 96_011, RATE // 2 + 7 + 120_011)], BIN)
    assert dsp.leading_silence(x, RATE) == pytest.approx(RATE // 2 + 7, abs=BIN)
    assert dsp.trailing_silence(x, RATE) == pytest.approx(RATE // 3, abs=BIN)


def test_min_pause_length() -> None:
    gap = (2 * RATE + 5, 2 * RATE + 5 + round(0.25 * RATE))
    x = with_gaps(voiced(4.0), [gap])
    assert dsp.find_pauses(x, RATE, min_pause_s=0.3) == []
    assert_pauses_match(dsp.find_pauses(x, RATE, min_pause_s=0.2), [gap], BIN)
    # 25 ms of silence is a pause too, once asked for (the centred 20 ms level shows only
    # its middle bins; the onset rule gives its edges).
    short = (RATE + 3, RATE + 3 + 1200)
    assert_pauses_match(
        dsp.find_pauses(with_gaps(voiced(2.0), [short]), RATE, min_pause_s=0.015), [short], BIN
    )


def test_pauses_in_speech_like_narration() -> None:
    """Each pause inserted in syllabic speech is found, and nothing else: a syllable fading
    out next to a pause may lengthen it by a trough (<= 60 ms), never shorten it."""
    lead = 0.4
    inserted = [(3.0, 0.5), (9.1, 0.8), (15.0, 0.35)]
    x = speech_like(20.0, RATE, level=0.5, pauses=inserted, lead=lead, tail=0.3)
    for gain_db in (0.0, -30.0):
        found = dsp.find_pauses(x * 10 ** (gain_db / 20), RATE)
        assert len(found) == len(inserted), found
        for p, (start, length) in zip(found, inserted, strict=True):
            a, b = round((lead + start) * RATE), round((lead + start + length) * RATE)
            assert p.start <= a + BIN and p.end >= b - BIN, (p, a, b)
            assert p.start >= a - round(0.06 * RATE) and p.end <= b + round(0.06 * RATE)


def test_pauses_stay_apart_where_the_level_hovers_at_the_threshold() -> None:
    """Quiet syllabic speech in noise, at the -70 dB floor: the centred level crosses the
    threshold back and forth in the troughs, splitting one silence into several runs;
    they come back as one pause each, in order, disjoint, inside the programme."""
    x = speech_like(12.0, RATE, level=0.017, pauses=[(4.0, 0.6)], lead=0.2, tail=0.2, seed=7)
    noisy = x + np.random.default_rng(7).normal(0.0, 2.5e-4, x.shape)  # -72 dB
    sound = SoundMap(noisy, RATE)
    span = sound.programme()
    assert sound.threshold_db == -70.0 and span is not None
    runs = sound.pauses(span[0], span[1], 1)
    found = sound.pause_list(0.001)
    assert len(found) < len(runs)  # some runs were one silence (in this realisation)
    for p, q in itertools.pairwise(found):
        assert p.end <= q.start
    assert all(span[0] * BIN <= p.start < p.end <= span[1] * BIN for p in found)
    inserted = (round(4.2 * RATE), round(4.8 * RATE))
    assert any(p.start <= inserted[0] + BIN and p.end >= inserted[1] - BIN for p in found)


# --- onsets ----------------------------------------------------------------------------------


def test_onsets_of_tone_bursts_after_silence() -> None:
    starts = [12_345, 60_001, 100_047, 150_024]
    x = bursts(4.0, starts, amp=[0.5, 0.05, 0.5, 0.2])  # one burst 20 dB under the rest
    found = dsp.onsets(x, RATE)
    assert len(found) == len(starts), found
    for onset, s in zip(found, starts, strict=True):
        assert onset % BIN == 0
        assert -BIN < onset - s <= BIN, (onset, s)
    assert found[0] == dsp.leading_silence(x, RATE)


def test_onsets_after_each_pause() -> None:
    x = with_gaps(voiced(10.0), GAPS)
    found = dsp.onsets(x, RATE)
    assert found[0] == 0
    assert len(found) == 1 + len(GAPS)
    for onset, (_, b) in zip(found[1:], GAPS, strict=True):
        assert abs(onset - b) < BIN


@pytest.mark.parametrize("gap_ms", [2, 30])
def test_a_soft_lead_in_starts_the_sound_when_it_is_close(gap_ms: int) -> None:
    """3 ms at 6 dB over the threshold is too short to be sound on its own (its 20 ms level
    is under it); followed within the window by the burst, it is where the sound starts."""
    main = 2 * RATE + 17
    lead = main - (gap_ms + 3) * BIN
    x = bursts(3.0, [main])
    limit = 10 ** (dsp.silence_threshold_db(dsp.bin_power(x, RATE)[0]) / 10)
    t = np.arange(3 * BIN) / RATE
    x[lead : lead + 3 * BIN] = math.sqrt(8 * limit) * np.sin(2 * np.pi * 1000.0 * t)
    expected = lead if gap_ms < 17 else main
    found = dsp.onsets(x, RATE)
    assert len(found) == 1 and abs(found[0] - expected) < BIN, (found, expected)
    # At the very start the windows are as long as the audio so far (as a meter's are): the
    # same lead-in there is sound -- the rule that makes a segment's sync click count.
    x[:lead] = 0.0
    x[: 3 * BIN] = x[lead : lead + 3 * BIN]
    x[lead : lead + 3 * BIN] = 0.0
    assert dsp.leading_silence(x, RATE) == 0
    again = dsp.onsets(x, RATE)
    assert len(again) == 2 and again[0] == 0 and abs(again[1] - main) < BIN, again


def test_an_onset_is_not_put_in_the_tail_of_the_sound_before() -> None:
    """A sound that fades out over 3 ms (bins 1000-1002) and one that starts 17 ms later
    (bin 1020): the window that finds the second holds the first one's tail."""
    first, second = 500 * BIN, 1020 * BIN
    x = bursts(2.0, [first, second], length=24_000)
    limit = 10 ** (dsp.silence_threshold_db(dsp.bin_power(x, RATE)[0]) / 10)
    t = np.arange(3 * BIN) / RATE
    x[1000 * BIN : 1003 * BIN] = math.sqrt(8 * limit) * np.sin(2 * np.pi * 1000.0 * t)
    assert dsp.onsets(x, RATE) == [first, second]


def test_a_stray_sample_is_not_an_onset() -> None:
    x = bursts(2.0, [RATE])
    x[RATE // 2] = 0.01  # one sample 34 dB under the bursts: under the threshold in 20 ms
    assert dsp.onsets(x, RATE) == [RATE]


def test_nothing_in_silence() -> None:
    x = np.zeros(RATE // 2)
    assert dsp.onsets(x, RATE) == []
    assert dsp.find_pauses(x, RATE) == []
    assert dsp.leading_silence(x, RATE) == dsp.trailing_silence(x, RATE) == RATE // 2


def test_a_fixed_threshold_can_be_given() -> None:
    x = bursts(3.0, [RATE // 2, 2 * RATE], amp=[0.5, 0.02])  # -9 dB, then -37 dB
    assert len(dsp.onsets(x, RATE)) == 2  # relative threshold: -44 dB
    assert len(dsp.onsets(x, RATE, threshold_db=-30.0)) == 1


# --- input forms -----------------------------------------------------------------------------


def test_int16_and_float_input_agree() -> None:
    x = with_gaps(voiced(6.0, peak=0.7), GAPS[:2])
    q = np.round(x * 32767).astype(np.int16)
    f = q / 32768.0  # the same values as floats
    assert np.array_equal(dsp.bin_power(q, RATE)[0], dsp.bin_power(f, RATE)[0])
    assert dsp.find_pauses(q, RATE) == dsp.find_pauses(f, RATE)
    assert dsp.onsets(q, RATE) == dsp.onsets(f, RATE)
    assert_pauses_match(dsp.find_pauses(q, RATE), GAPS[:2], BIN)
    as_int32 = q.astype(np.int32) << 16
    assert dsp.find_pauses(as_int32, RATE) == dsp.find_pauses(f, RATE)


@pytest.mark.parametrize("channel", [0, 1])
def test_sound_on_one_channel_of_two(channel: int) -> None:
    mono = with_gaps(voiced(10.0), GAPS)
    stereo = np.zeros((2, mono.shape[0]), dtype=np.float32)
    stereo[channel] = mono
    assert_pauses_match(dsp.find_pauses(stereo, RATE), GAPS, BIN)
    assert dsp.onsets(stereo, RATE) == dsp.onsets(mono.astype(np.float32), RATE)
    silent_map = SoundMap(stereo[1 - channel], RATE)
    assert silent_map.threshold_db == -70.0 and not silent_map.sound_seconds()


def test_other_rates() -> None:
    rate = 44100
    size = dsp.bin_samples(rate)
    gaps = [(round(a * rate / RATE), round(b * rate / RATE)) for a, b in GAPS]
    x = with_gaps(voiced(10.0, rate), gaps)
    assert_pauses_match(dsp.find_pauses(x, rate), gaps, size)
    found = dsp.onsets(x, rate)
    assert [abs(o - b) < size for o, (_, b) in zip(found[1:], gaps, strict=True)] == [True] * 3


# --- SoundMap and the loudness wrappers ------------------------------------------------------


def test_sound_map_in_bins() -> None:
    x = with_gaps(voiced(10.0), GAPS)
    sound = SoundMap(x, RATE)
    assert sound.size == BIN and sound.samples == x.shape[0]
    assert sound.bins.shape == sound.centred.shape == sound.silent.shape == (10_000,)
    assert sound.threshold_db == dsp.silence_threshold_db(sound.bins)
    assert sound.limit == pytest.approx(10 ** (sound.threshold_db / 10))
    assert sound.programme() == (0, 10_000)
    # Inside the second gap (samples 192005 .. 206885, so bins 4000 and 4310 hold sound).
    assert sound.end_before(4100) == 4001
    assert sound.onset_after(4100) == 4310
    runs = sound.pauses(0, 10_000, 150)
    assert len(runs) == 3
    for (a, b), (ga, gb) in zip(runs, GAPS, strict=True):
        # The centred 20 ms level is silent only half a window inside the gap.
        assert ga // BIN + 9 <= a <= ga // BIN + 11 and gb // BIN - 11 <= b <= gb // BIN - 8
        assert a <= sound.quietest(a, b) < b
    # Whole 20 ms windows above the threshold: 1.81 s of gaps are not, except the two
    # windows at each gap's edges that hold some sound.
    assert 10.0 - 1.81 <= sound.sound_seconds() <= 10.0 - 1.81 + 3 * 0.04
    fixed = SoundMap(x, RATE, threshold_db=-20.0)
    assert fixed.threshold_db == -20.0


def test_loudness_wrappers_are_the_analysis_in_seconds() -> None:
    x = np.concatenate([np.zeros(12_345), voiced(2.0), np.zeros(6_789)])
    bins, _ = dsp.bin_power(x, RATE)
    assert loudness.silence_threshold_dbfs(x, RATE) == dsp.silence_threshold_db(bins)
    assert loudness.leading_silence_s(x, RATE) == dsp.leading_silence(x, RATE) / RATE
    assert loudness.trailing_silence_s(x, RATE) == dsp.trailing_silence(x, RATE) / RATE
    assert abs(dsp.leading_silence(x, RATE) - 12_345) < BIN
    assert abs(dsp.trailing_silence(x, RATE) - 6_789) < BIN


# --- the meter's interpolated peak ------------------------------------------------------------


def _between_peak(x: FloatArray, factor: int) -> float:
    """The whole-signal envelope's largest value (samples and in-between instants, the
    last sample's in-between ones left out, as the true-peak meter reads it)."""
    return float(np.max(dsp.oversampled_peak(x, factor)[:-1]))


@pytest.mark.parametrize("factor", [4, 5, 12])
def test_interpolated_peak_is_bounded_by_its_gain(factor: int) -> None:
    """The bound that lets frames be skipped: no in-between value exceeds ``gain`` times
    the largest sample near it -- tried on noise, on the worst case for the bound (samples
    of +-1 with the signs of the kernel's weights) and on a sine at fs/4 whose peaks fall
    between samples."""
    finder = dsp.InterpolatedPeak(factor)
    kernels = dsp.interpolation_kernels(factor)
    assert finder.gain == pytest.approx(float(np.max(np.abs(kernels).sum(axis=1))))
    rng = np.random.default_rng(factor)
    worst = np.sign(kernels[int(np.argmax(np.abs(kernels).sum(axis=1)))])[::-1]
    signals = [
        rng.uniform(-1.0, 1.0, 20_000),
        np.concatenate((np.zeros(100), worst, np.zeros(100))),
        np.sin(np.pi / 2.0 * np.arange(20_000) + np.pi / 4.0),
    ]
    for x in signals:
        top = float(np.max(np.abs(x)))
        between = _between_peak(x, factor)
        assert between <= finder.gain * top * (1.0 + 1e-6)
    # The worst case reaches the bound: it cannot be made smaller.
    assert _between_peak(signals[1], factor) == pytest.approx(finder.gain, rel=1e-6)


def test_interpolated_peak_skips_nothing_that_matters() -> None:
    """With a floor the answer is the same as interpolating everything: one loud
    inter-sample peak late in a long quiet signal, found whatever the floor under it."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(300_000) * 0.01
    burst = 0.5 * np.sin(np.pi / 2.0 * np.arange(400) + np.pi / 4.0)  # peaks between samples
    x[250_000:250_400] += burst
    finder = dsp.InterpolatedPeak(4)
    n = x.shape[0]
    everything = finder.peak(x, 0, n - 1, floor=0.0)
    assert everything == pytest.approx(_between_peak(x, 4), rel=1e-6)
    assert everything > float(np.max(np.abs(x))) * 1.2  # the peak is between samples
    sample_peak = float(np.max(np.abs(x)))
    assert finder.peak(x, 0, n - 1, floor=sample_peak) == everything
    assert finder.peak(x, 0, n - 1, floor=everything * 0.999) == everything
    assert finder.peak(x, 0, n - 1, floor=2.0) == 2.0  # nothing can reach it
    # Instants after `stop` are not read, nor samples past the end (zeros there).
    assert finder.peak(x, 0, 250_000 - 40, floor=0.0) < 0.1
    tail = finder.peak(x[:250_200], 250_100, 250_200, floor=0.0)
    envelope = dsp.oversampled_peak(x[:250_200], 4)  # zeros past the end too
    assert tail == pytest.approx(float(np.max(envelope[250_100:])), rel=1e-6)
