"""Frame timing from packet timestamps: CFR or VFR, the exact rate, keyframe spacing.

Everything here is pure arithmetic on integer timestamps and a ``Fraction`` time
base, so it is exact and testable without media.

Why not trust the container or the usual tools: MediaInfo calls a file VFR as soon as
its ``stts`` durations differ, and ffprobe's ``vfrdet`` counts any change. Both flag
CFR files whose timestamps are merely quantised -- 24 fps at a 1 kHz timescale
(41/42 ms), 23.976 at 90 kHz (3753/3754 ticks), Matroska with centisecond timestamps
(40/50 ms). Here an interval counts as regular when it is within one time-base tick
plus 0.2 % of the median interval (MediaInfo calls a file VFR when its ``stts``
durations differ at all, and ffprobe's ``vfrdet`` counts any change: both call these
CFR files VFR).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from typing import Literal

__all__ = [
    "STANDARD_RATES",
    "FrameTiming",
    "KeyframeSpacing",
    "analyse_frame_times",
    "keyframe_spacing",
    "snap_rate",
]

FrameRateMode = Literal["CFR", "VFR"]

# Rates people deliver at, NTSC ones as their exact fractions (SMPTE ST 12-1; Apple's
# "frame rates" chart for FCPXML uses the same 1001 denominators).
STANDARD_RATES: tuple[Fraction, ...] = tuple(
    Fraction(n, d)
    for n, d in (
        (24000, 1001),
        (24, 1),
        (25, 1),
        (30000, 1001),
        (30, 1),
        (48000, 1001),
        (48, 1),
        (50, 1),
        (60000, 1001),
        (60, 1),
        (100, 1),
        (120000, 1001),
        (120, 1),
        (8, 1),
        (10, 1),
        (12, 1),
        (15, 1),
        (16, 1),
        (20, 1),
    )
)

# Relative tolerance on a single interval, on top of one tick of quantisation.
INTERVAL_TOLERANCE = Fraction(2, 1000)


@dataclass(frozen=True, slots=True)
class FrameTiming:
    """What a stream's presentation timestamps say about its frame rate."""

    frames: int
    fps: Fraction
    """Exact rate: a standard rate for CFR, the average (frames - 1) / span for VFR."""
    mode: FrameRateMode
    min_interval: Fraction
    median_interval: Fraction
    max_interval: Fraction
    """Interval extremes in seconds; zero when there are fewer than two frames."""
    irregular_intervals: int
    """How many intervals fall outside the tolerance around the median."""
    first: Fraction
    end: Fraction
    """First presentation time and the end of the last frame, in seconds."""

    @property
    def duration(self) -> Fraction:
        return self.end - self.first


@dataclass(frozen=True, slots=True)
class KeyframeSpacing:
    count: int
    max_interval: Fraction
    mean_interval: Fraction
    """Seconds. The last GOP (last keyframe to end of stream) counts as an interval."""


def snap_rate(
    measured: Fraction, tolerance: Fraction, hint: Fraction | None = None
) -> Fraction | None:
    """The standard rate within ``tolerance`` (relative) of ``measured``, if any.

    24 and 23.976 differ by only 0.1 %: on a short clip with coarse timestamps both can
    fit, and then the container's own rate (``hint``) decides.
    """
    fits = [r for r in STANDARD_RATES if abs(measured - r) <= tolerance * r]
    if not fits:
        return None
    if hint is not None and hint in fits:
        return hint
    return min(fits, key=lambda r: abs(measured - r))


def _median(sorted_values: Sequence[int]) -> Fraction:
    n = len(sorted_values)
    mid = n // 2
    if n % 2:
        return Fraction(sorted_values[mid])
    return Fraction(sorted_values[mid - 1] + sorted_values[mid], 2)


def analyse_frame_times(
    pts: Sequence[int],
    time_base: Fraction,
    *,
    last_duration: int | None = None,
    rate_hint: Fraction | None = None,
) -> FrameTiming:
    """Classify a stream from its packet presentation timestamps (in ``time_base`` ticks).

    ``pts`` need not be sorted (B-frames reorder them) and may repeat. The duration of
    the last frame is not used for the verdict -- muxers often write it arbitrarily --
    only to place the end of the stream.
    """
    times = sorted(set(pts))
    if not times:
        raise ValueError("no timestamps")
    n = len(times)
    first = times[0] * time_base
    if n == 1:
        fps = rate_hint if rate_hint else Fraction(0)
        one = (Fraction(1) / fps) if fps else Fraction(0)
        dur = last_duration * time_base if last_duration else one
        zero = Fraction(0)
        return FrameTiming(1, fps, "CFR", zero, zero, zero, 0, first, first + dur)

    deltas = sorted(b - a for a, b in pairwise(times))
    median = _median(deltas)
    # |d - median| > 1 + tolerance * median, in integers (this runs once per frame):
    # scale both sides by the denominators of median (p/q) and tolerance (a/b).
    p, q = median.numerator, median.denominator
    a, b = INTERVAL_TOLERANCE.numerator, INTERVAL_TOLERANCE.denominator
    limit = b * q + a * p
    irregular = sum(1 for d in deltas if b * abs(q * d - p) > limit)
    mode: FrameRateMode = "CFR" if irregular == 0 else "VFR"

    span = times[-1] - times[0]
    average = Fraction(n - 1) / (span * time_base)
    fps = average
    if mode == "CFR":
        # Quantisation can move the average by at most one tick over the span.
        tolerance = Fraction(1, span) + Fraction(1, 10**6)
        snapped = snap_rate(average, tolerance, rate_hint)
        if snapped is not None:
            fps = snapped
        elif rate_hint and abs(rate_hint - average) <= tolerance * average:
            fps = rate_hint
        else:
            # Naming, not planning: a CFR stream at a rate outside the table (12.5, 15, 18
            # fps) was written at some simple nominal rate, which quantised timestamps
            # turn into an average like 7499/600. The simplest fraction (denominator up to
            # 1001, as NTSC rates have) within the same one-tick tolerance names it; no
            # frame time is taken from it (they are the timestamps), only the last
            # frame's length when the container gives none. Outside the tolerance the
            # exact average stands.
            named = average.limit_denominator(1001)
            fps = named if abs(named - average) <= tolerance * average else average
    if last_duration and last_duration > 0:
        tail = last_duration * time_base
    else:
        tail = 1 / fps if mode == "CFR" else median * time_base
    return FrameTiming(
        frames=n,
        fps=fps,
        mode=mode,
        min_interval=deltas[0] * time_base,
        median_interval=median * time_base,
        max_interval=deltas[-1] * time_base,
        irregular_intervals=irregular,
        first=first,
        end=times[-1] * time_base + tail,
    )


def keyframe_spacing(keyframe_times: Sequence[Fraction], end: Fraction) -> KeyframeSpacing:
    """Spacing of keyframes (seconds), counting the last GOP up to ``end``."""
    times = sorted(set(keyframe_times))
    if not times:
        return KeyframeSpacing(0, Fraction(0), Fraction(0))
    bounds = [*times, max(end, times[-1])]
    gaps = [b - a for a, b in pairwise(bounds)]
    gaps = [g for g in gaps if g > 0] or [Fraction(0)]
    return KeyframeSpacing(len(times), max(gaps), sum(gaps, Fraction(0)) / len(gaps))
