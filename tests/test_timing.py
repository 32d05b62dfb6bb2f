"""Frame-timing arithmetic: CFR/VFR verdicts and exact rates from integer timestamps."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.probe.timing import STANDARD_RATES, analyse_frame_times, keyframe_spacing, snap_rate

TIME_BASES = [Fraction(1, 1000), Fraction(1, 90000), Fraction(1, 100), Fraction(1, 12800)]


def quantised(rate: Fraction, tb: Fraction, n: int, offset: int = 0) -> list[int]:
    """Timestamps of a perfectly regular stream, rounded to the time base as muxers do."""
    return [offset + round(Fraction(i) / rate / tb) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([r for r in STANDARD_RATES if r >= 20]),
    tb=st.sampled_from(TIME_BASES),
    n=st.integers(min_value=48, max_value=3000),
    offset=st.integers(min_value=0, max_value=5000),
)
def test_quantised_cfr_is_cfr_with_the_exact_rate(
    rate: Fraction, tb: Fraction, n: int, offset: int
) -> None:
    # Centisecond timestamps cannot carry 48+ fps at all (intervals of 2 ticks).
    if tb == Fraction(1, 100) and rate > 30:
        return
    timing = analyse_frame_times(quantised(rate, tb, n, offset), tb, rate_hint=rate)
    assert timing.mode == "CFR"
    assert timing.fps == rate
    assert timing.frames == n


@pytest.mark.parametrize(
    ("rate", "tb"),
    [
        (Fraction(24), Fraction(1, 1000)),  # 41/42 ms: MediaInfo calls this VFR
        (Fraction(24000, 1001), Fraction(1, 90000)),  # 3753/3754 ticks
        (Fraction(24000, 1001), Fraction(1, 100)),  # Matroska centiseconds: 40/50 ms
    ],
)
def test_false_vfr_traps_are_cfr_without_a_hint(rate: Fraction, tb: Fraction) -> None:
    timing = analyse_frame_times(quantised(rate, tb, 500), tb)
    assert timing.mode == "CFR"
    assert timing.fps == rate


def test_24_and_23976_are_told_apart() -> None:
    tb = Fraction(1, 90000)
    assert analyse_frame_times(quantised(Fraction(24), tb, 240), tb).fps == 24
    ntsc = analyse_frame_times(quantised(Fraction(24000, 1001), tb, 240), tb)
    assert ntsc.fps == Fraction(24000, 1001)


@settings(max_examples=100, deadline=None)
@given(
    jitter=st.floats(min_value=0.05, max_value=0.5),
    n=st.integers(min_value=20, max_value=500),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_jittered_times_are_vfr(jitter: float, n: int, seed: int) -> None:
    import random

    rnd = random.Random(seed)
    tb = Fraction(1, 90000)
    t, pts = 0.0, []
    for _ in range(n):
        pts.append(round(t * 90000))
        # At least one interval is pushed to the edge of the jitter, so the stream is VFR.
        t += (1 / 30) * (1 + rnd.uniform(-jitter, jitter))
    pts.append(pts[-1] + round(90000 / 30 * (1 + jitter)))
    timing = analyse_frame_times(pts, tb)
    assert timing.mode == "VFR"
    assert timing.irregular_intervals >= 1
    assert timing.min_interval < timing.median_interval < timing.max_interval


def test_b_frame_order_and_duplicates_do_not_matter() -> None:
    tb = Fraction(1, 12800)
    pts = quantised(Fraction(25), tb, 100)
    reordered = [pts[0]] + [p for i in range(1, 99, 3) for p in (pts[i + 2], pts[i], pts[i + 1])]
    reordered += pts[len(reordered) :]
    timing = analyse_frame_times(reordered + pts[:5], tb)
    assert timing.mode == "CFR"
    assert timing.fps == 25
    assert timing.frames == 100


def test_one_dropped_frame_makes_it_vfr() -> None:
    tb = Fraction(1, 90000)
    pts = quantised(Fraction(30), tb, 100)
    del pts[50]
    timing = analyse_frame_times(pts, tb)
    assert timing.mode == "VFR"
    assert timing.irregular_intervals == 1
    assert timing.max_interval == Fraction(2, 30)


def test_last_frame_duration_sets_the_end_not_the_verdict() -> None:
    tb = Fraction(1, 1000)
    pts = quantised(Fraction(24), tb, 48)
    timing = analyse_frame_times(pts, tb, last_duration=500)
    assert timing.mode == "CFR"
    assert timing.end == Fraction(pts[-1] + 500, 1000)


def test_snap_rate_prefers_the_container_hint_when_both_fit() -> None:
    tol = Fraction(2, 1000)
    assert snap_rate(Fraction(23988, 1000), tol, Fraction(24000, 1001)) == Fraction(24000, 1001)
    assert snap_rate(Fraction(23988, 1000), tol, Fraction(24)) == 24
    assert snap_rate(Fraction(17), tol) is None


def test_keyframe_spacing_counts_the_last_gop() -> None:
    keys = [Fraction(0), Fraction(2), Fraction(4)]
    spacing = keyframe_spacing(keys, Fraction(5))
    assert spacing.count == 3
    assert spacing.max_interval == 2
    assert spacing.mean_interval == Fraction(5, 3)
    single = keyframe_spacing([Fraction(0)], Fraction(121, 24))
    assert single.max_interval == Fraction(121, 24)
