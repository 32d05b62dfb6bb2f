"""An oversampled look-ahead true-peak limiter, vectorised with numpy.

The limiter is the safety net behind one linear gain (see :mod:`handoff.prep`): it only
acts where the gained signal would go over the ceiling, and never raises anything. It
works in three steps, each a whole-array numpy operation:

1. **Peak envelope** -- :func:`handoff.analysis.dsp.oversampled_peak`: for every sample
   ``n``, the largest ``|x|`` over all channels at ``n`` and at the ``factor - 1``
   instants between ``n`` and ``n + 1``, interpolated with the same band-limited kernel as
   :func:`handoff.analysis.loudness.true_peak` (a 32-tap Kaiser-windowed sinc per phase, FFT
   overlap-save). It is computed once at unit gain: the envelope of ``g * x`` is
   ``g`` times it, so trying another gain costs nothing here.
2. **Gain curve** -- :func:`gain_curve`: the gain (dB) each sample needs to stay at the
   ceiling, then
   * *release*: recovery at a constant rate in dB/s, done exactly with a running minimum
     (``R[n] = min_k<=n (T[k] + rate * (n - k)) = rate * n + cummin(T - rate * k)``);
   * *hold*: a causal sliding minimum over ``attack + hold`` samples (van Herk / Gil-Werman
     with strided blocks);
   * *attack*: an anti-causal moving average over ``attack`` samples, which turns every
     step down into a ramp that has reached its floor when the peak arrives (the look-ahead).
   The average of values that are each at or below the needed gain is at or below it too,
   so the curve never lets a detected peak through.
3. The curve is computed only around the samples that need it: each over influences
   ``[P - attack + 1, P + hold + attack + release time]``; those intervals are merged and
   laid end to end (with unity-gain gaps) in one compact array, so the passes above run
   once, over the limited stretches only, and a signal with few overs costs little.

Defaults (:class:`LimiterSettings`): 4x detection, 1.5 ms look-ahead, no hold, 200 dB/s
release. :func:`oversampled_peak_in` gives the same envelope over chosen stretches only,
which :mod:`handoff.prep` uses to measure the true peak where the limiter acted.

Nothing is printed; bad arguments raise ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from handoff.analysis.dsp import oversampled_peak, oversampled_peak_in
from handoff.media.arrays import Float32Array, FloatArray

__all__ = [
    "GainCurve",
    "LimiterSettings",
    "gain_curve",
    "gain_curve_at",
    "oversampled_peak",
    "oversampled_peak_in",
    "sliding_min",
]


# The peak envelope (oversampled_peak, oversampled_peak_in) is handoff.analysis.dsp's, the one
# handoff.analysis.loudness.true_peak reads, so the limiter sees the peaks the meter will read; it
# is re-exported here for callers of the limiter.


@dataclass(frozen=True, slots=True)
class LimiterSettings:
    """Time constants of the limiter (the defaults suit speech and most music)."""

    attack_ms: float = 1.5
    """Look-ahead: the gain ramps down over this time before a peak."""
    hold_ms: float = 0.0
    """The gain stays down this long after a peak before it recovers."""
    release_db_per_s: float = 200.0
    """Recovery rate (10 dB of reduction recovers in 50 ms). Raw speech has peaks 17-21 dB
    over its loudness, so -16 LUFS at -3 dBTP takes up to ~10 dB of peak reduction: a
    slow release turns that into compression of whole vowels, which lowers the loudness
    and calls for still more gain (a 30 dB/s release needed +20 dB more gain on a 2.7 s
    clip and still missed the target; 200 dB/s needed +9 dB and hit it)."""
    oversample: int = 4
    """Peak detection between samples: ``oversample - 1`` interpolated instants."""

    def to_json(self) -> dict[str, float | int]:
        return {
            "attack_ms": self.attack_ms,
            "hold_ms": self.hold_ms,
            "release_db_per_s": self.release_db_per_s,
            "oversample": self.oversample,
        }


# --- gain curve --------------------------------------------------------------------------------


def sliding_min(values: npt.ArrayLike, width: int) -> FloatArray:
    """Causal sliding minimum: ``out[n] = min(values[max(0, n - width + 1) .. n])``.

    Van Herk / Gil-Werman: blocks of ``width``, a running minimum forwards and backwards
    inside each block, and the answer is the smaller of one block's suffix and the next
    block's prefix -- O(n) whatever the width, no Python loop.
    """
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError("sliding_min takes a 1-D array")
    w = int(width)
    if w < 1:
        raise ValueError(f"window width must be >= 1, got {width}")
    n = a.shape[0]
    if w == 1 or n == 0:
        return a.copy()
    # Pad w - 1 values of +inf in front (the window is shorter at the start) and up to a
    # whole number of blocks behind.
    total = n + w - 1
    blocks = -(-total // w)
    padded = np.full(blocks * w, np.inf)
    padded[w - 1 : w - 1 + n] = a
    grid = padded.reshape(blocks, w)
    prefix = np.minimum.accumulate(grid, axis=1).reshape(-1)
    suffix = np.minimum.accumulate(grid[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    # The window ending at padded index e = i + w - 1 covers i .. e: the suffix from its
    # start and the prefix up to its end (adjacent blocks, or the same block).
    return np.minimum(suffix[:n], prefix[w - 1 : w - 1 + n])


def _region_gain_db(
    need_db: FloatArray, attack: int, hold: int, release_per_sample: float
) -> FloatArray:
    """Gain (dB, <= 0) over one region from the gain each sample needs (``need_db``)."""
    n = need_db.shape[0]
    ramp = np.arange(n, dtype=np.float64) * release_per_sample
    released = np.minimum(np.minimum.accumulate(need_db - ramp) + ramp, 0.0)
    held = sliding_min(released, attack + hold)
    # Anti-causal mean over `attack` samples: out[n] = mean(held[n .. n + attack - 1]),
    # the region ends with unity gain (0 dB) by construction.
    padded = np.concatenate((held, np.zeros(attack)))
    csum = np.concatenate(([0.0], np.cumsum(padded)))
    return np.asarray((csum[attack : attack + n] - csum[:n]) / attack, dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class GainCurve:
    """The limiter's gain where it is below unity; 1 everywhere else.

    ``index`` lists the samples the limiter touches (ascending, grouped in contiguous
    regions), ``values`` their gains (0 < gain <= 1, float32). Empty when nothing needed
    limiting.
    """

    index: npt.NDArray[np.int64]
    values: Float32Array
    regions: int = 0

    @property
    def empty(self) -> bool:
        return int(self.index.shape[0]) == 0

    def max_reduction_db(self) -> float:
        """Deepest gain reduction in dB (a positive number; 0 when the curve is empty)."""
        if self.empty:
            return 0.0
        return float(-20.0 * np.log10(np.min(self.values)))

    def seconds_below(self, reduction_db: float, sample_rate: int) -> float:
        """Time during which the gain is reduced by more than ``reduction_db``."""
        limit = np.float32(10.0 ** (-reduction_db / 20.0))
        return int(np.count_nonzero(self.values < limit)) / sample_rate

    def passages(self, reduction_db: float, join: int) -> list[tuple[int, int]]:
        """``[start, stop)`` sample runs where the gain is reduced by more than
        ``reduction_db``; runs fewer than ``join`` samples apart count as one."""
        limit = np.float32(10.0 ** (-reduction_db / 20.0))
        reduced = self.index[self.values < limit]
        if reduced.shape[0] == 0:
            return []
        breaks = np.flatnonzero(np.diff(reduced) > max(1, join))
        starts = np.concatenate((reduced[:1], reduced[breaks + 1]))
        stops = np.concatenate((reduced[breaks], reduced[-1:])) + 1
        return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]

    def apply(self, samples: npt.NDArray[np.floating], gain: float) -> Float32Array:
        """``samples * gain * curve`` as a new float32 ``(channels, n)`` array."""
        out: Float32Array = np.multiply(samples, np.float32(gain), dtype=np.float32)
        if not self.empty:
            out[:, self.index] *= self.values
        return out


def gain_curve(
    peak: npt.ArrayLike,
    ceiling: float,
    sample_rate: int,
    settings: LimiterSettings | None = None,
) -> GainCurve:
    """The gain that keeps ``peak * gain <= ceiling`` wherever ``peak`` is over it.

    ``peak`` is the per-sample peak envelope of the signal *as it will be limited* (or of
    the signal at unit gain, with ``ceiling`` divided by the gain to come), ``ceiling`` a
    linear level. Around each over the gain ramps down over ``attack_ms`` before it, holds
    for ``hold_ms`` after, then recovers at ``release_db_per_s``.

    Only the stretches around overs are computed. They are laid end to end in one compact
    array with ``attack + hold`` samples of unity gain between them -- exactly the history
    and look-ahead each stretch sees in the real signal, since no other over reaches it --
    so the whole curve is a handful of numpy passes over the limited part only.
    """
    p = np.asarray(peak)
    if p.ndim != 1:
        raise ValueError("the peak envelope must be 1-D")
    if not (ceiling > 0.0 and math.isfinite(ceiling)):
        raise ValueError(f"the ceiling must be a positive linear level, got {ceiling}")
    over = np.flatnonzero(p > ceiling)
    return gain_curve_at(over, p[over], p.shape[0], ceiling, sample_rate, settings)


def gain_curve_at(
    over: npt.NDArray[np.int64],
    peaks: npt.ArrayLike,
    n: int,
    ceiling: float,
    sample_rate: int,
    settings: LimiterSettings | None = None,
) -> GainCurve:
    """:func:`gain_curve` from the overs alone: ``over`` the (ascending) samples of an
    ``n``-sample envelope that are over ``ceiling``, ``peaks`` the envelope there. The
    curve depends on nothing else, so an envelope kept on disk need only be read where
    it can be over the ceiling."""
    s = settings or LimiterSettings()
    if not (ceiling > 0.0 and math.isfinite(ceiling)):
        raise ValueError(f"the ceiling must be a positive linear level, got {ceiling}")
    attack = max(1, round(s.attack_ms * sample_rate / 1000.0))
    hold = max(0, round(s.hold_ms * sample_rate / 1000.0))
    release = s.release_db_per_s / sample_rate  # dB per sample
    if release <= 0.0:
        raise ValueError("release_db_per_s must be > 0")
    over = np.asarray(over, dtype=np.int64)
    if over.shape[0] == 0:
        return GainCurve(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    need = 20.0 * np.log10(ceiling / np.asarray(peaks).astype(np.float64))  # < 0 dB
    # Each over reaches from attack - 1 samples before it to the end of its release.
    starts = np.maximum(over - attack + 1, 0)
    ends = np.minimum(over + np.ceil(-need / release).astype(np.int64) + attack + hold + 1, n)
    running_end = np.maximum.accumulate(ends)
    new_region = np.concatenate(([True], starts[1:] > running_end[:-1]))
    first = np.flatnonzero(new_region)
    last = np.concatenate((first[1:], [over.shape[0]])) - 1
    r_start = starts[first]
    r_len = running_end[last] - r_start
    count = r_start.shape[0]
    gap = attack + hold
    # Region r sits at compact offset r_off[r], after a gap of unity gain.
    cum = np.concatenate(([0], np.cumsum(r_len)[:-1]))
    r_off = cum + gap * (np.arange(count) + 1)
    compact = np.zeros(int(r_off[-1] + r_len[-1] + gap))
    region_of_over = np.cumsum(new_region) - 1
    compact[over - r_start[region_of_over] + r_off[region_of_over]] = need
    gain_db = _region_gain_db(compact, attack, hold, release)
    total = int(r_len.sum())
    shift = np.repeat(r_start - cum, r_len)
    index = np.arange(total, dtype=np.int64) + shift
    values = np.power(10.0, gain_db[index - np.repeat(r_start - r_off, r_len)] / 20.0)
    return GainCurve(index, values.astype(np.float32), count)
