"""Levelling: one linear gain plus the true-peak limiter, solved on arrays.

Pure functions of the 48 kHz content and its unit-gain peak envelope: :class:`Meter`
measures and estimates loudness, :func:`level` finds the gain whose limited programme is
on target, :func:`true_peaks` measures the result over spans, :func:`loudest_passage`
says where the limiter worked hardest. Nothing is read or written.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from handoff.analysis import loudness
from handoff.analysis.limiter import GainCurve, LimiterSettings, gain_curve, oversampled_peak_in
from handoff.prep.cuts import BIN, REAL_PAUSE_BINS
from handoff.prep.options import RATE, Channels
from handoff.prep.results import Passage

__all__ = [
    "LIMITED_DB",
    "Levelled",
    "Meter",
    "level",
    "loudest_passage",
    "solve_gain",
    "true_peaks",
]

log = logging.getLogger("handoff.prep")

Float32Array = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]

_STEP = RATE // 10  # BS.1770 100 ms step
_LOUDNESS_TOLERANCE_LU = 0.05  # stop iterating the gain within this of the target
_ESTIMATE_TOLERANCE_LU = 0.01  # solve the estimated loudness to this
_TP_CANDIDATE_DB = 2.0  # true peak: interpolate blocks whose estimate is this close
_MAX_GAIN_ITERATIONS = 10
_MAX_EXTRA_GAIN_DB = 20.0  # never push the gain more than this past the unlimited one

# Limited, for the share and the passages: more than 1 dB off, about the smallest level
# change a listener notices (a reduction of 0.01 dB -- ``limited_s`` -- is inaudible, and
# counted 15 % of a babble narration that peaked at 4 dB of reduction). Limited stretches
# closer than a real pause belong to one passage.
LIMITED_DB = 1.0
_PASSAGE_JOIN = REAL_PAUSE_BINS * BIN


class Meter:
    """Loudness the ltx2-audio way: the mono content of dual-mono is measured as mono.

    Besides measuring files, it keeps the programme's K-weighted energy per 100 ms step
    (BS.1770-4's gating grid), from which the loudness after any gain and limiter curve is
    *estimated* without filtering the whole signal again (see :meth:`estimate`).
    """

    def __init__(self, content: Float32Array) -> None:
        self.as_mono = content.shape[0] == 1 or loudness.is_dual_mono(content)
        measured = content[:1] if self.as_mono else content
        self.weights = loudness.channel_weights(measured.shape[0])
        # The step energies handoff.analysis.loudness builds its integrated loudness from (so
        # estimates and measurements share one definition).
        self.energy, self.lengths = loudness.weighted_segment_energy(measured, RATE, self.weights)
        self._measured = measured
        self._plain: FloatArray | None = None
        self.lufs0 = self._gated(self.energy)

    def _gated(self, energy: FloatArray) -> float:
        blocks = loudness.window_loudness(energy, self.lengths, loudness.SEGMENTS_PER_BLOCK)
        return loudness.gated_integrated(blocks)

    def estimate(self, gain_db: float, curve: GainCurve) -> float:
        """Loudness after ``gain_db`` and ``curve``: each 100 ms step's K-weighted energy
        scaled by how much the curve lowers its plain energy (exact without limiting)."""
        energy = self.energy * 10.0 ** (gain_db / 10.0)
        if not curve.empty:
            steps = self.energy.shape[0]
            if self._plain is None:  # plain (unweighted) energy per step, once
                plain = np.zeros(steps)
                for ch, w in enumerate(self.weights):
                    xr = self._measured[ch, : steps * _STEP].reshape(steps, _STEP)
                    plain += w * np.einsum("sk,sk->s", xr, xr, dtype=np.float64)
                self._plain = plain
            inside = curve.index < steps * _STEP
            idx = curve.index[inside]
            v = curve.values[inside].astype(np.float64)
            sq = np.zeros(idx.shape[0])
            for ch, w in enumerate(self.weights):
                xs = self._measured[ch, idx].astype(np.float64)
                sq += w * xs * xs
            loss = np.bincount(idx // _STEP, weights=sq * (1.0 - v * v), minlength=steps)
            with np.errstate(divide="ignore", invalid="ignore"):
                kept = np.where(self._plain > 0.0, 1.0 - loss / self._plain, 1.0)
            energy = energy * np.clip(kept, 0.0, 1.0)
        return self._gated(energy)

    def lufs(self, x: Float32Array) -> float:
        return loudness.integrated_loudness(x[:1] if self.as_mono else x, RATE)

    def measured_as(self, channels_out: Channels) -> str:
        if channels_out == "mono":
            return loudness.MEASURED_AS_IS
        return loudness.MEASURED_AS_MONO if self.as_mono else loudness.MEASURED_AS_IS


def true_peaks(
    y: Float32Array,
    estimate: Float32Array,
    curve: GainCurve,
    spans: list[tuple[int, int]],
    oversample: int,
) -> list[float]:
    """True peak (dBTP) of ``y`` over each ``[a, b)`` span, with the meter's interpolation.

    ``estimate`` is the unit-gain envelope times the gain and the limiter curve. Where the
    curve is 1 that *is* the envelope of ``y`` (interpolation is linear); where the limiter
    acts it is close (the gain moves a little within the kernel's +/- 16 samples). So
    only 4096-sample blocks whose estimate comes within 2 dB of their span's largest and
    that the limiter touches are interpolated again from ``y`` itself, and written into
    ``estimate`` (which is consumed).
    """
    n = y.shape[1]
    block = 4096
    count = -(-n // block)
    whole = n // block
    per_block = np.zeros(count, dtype=np.float32)
    per_block[:whole] = estimate[: whole * block].reshape(whole, block).max(axis=1)
    if count > whole:
        per_block[whole] = estimate[whole * block :].max()
    candidate = np.zeros(count, dtype=bool)
    for a, b in spans:
        if b > a:
            top = float(estimate[a:b].max())
            ba, bb = a // block, -(-b // block)
            candidate[ba:bb] |= per_block[ba:bb] >= top * 10.0 ** (-_TP_CANDIDATE_DB / 20.0)
    touched = np.zeros(count, dtype=bool)
    if not curve.empty:
        reach = 2 * 16  # the interpolation kernel's reach, with room to spare
        touched[curve.index // block] = True
        touched[np.maximum(curve.index - reach, 0) // block] = True
        touched[np.minimum(curve.index + reach, n - 1) // block] = True
    marked = candidate & touched
    edges = np.diff(np.concatenate(([0], marked.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1) * block
    stops = np.minimum(np.flatnonzero(edges == -1) * block, n)
    env = estimate  # updated in place: the caller's estimate becomes the measurement
    if starts.shape[0]:
        real = oversampled_peak_in(y, starts, stops, oversample)
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            env[a:b] = real[a:b]
    if n:  # the meter reads nothing between the last sample and beyond
        env[n - 1] = float(np.abs(y[:, n - 1]).max())
    out = []
    for a, b in spans:
        peak = float(env[a:b].max()) if b > a else 0.0
        out.append(20.0 * math.log10(peak) if peak > 0.0 else float("-inf"))
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Levelled:
    samples: Float32Array
    estimate: Float32Array
    """Per-sample peak envelope estimate of ``samples`` (for :func:`true_peaks`)."""
    gain_db: float
    lufs: float
    ceiling_db: float
    curve: GainCurve


def solve_gain(
    meter: Meter,
    peak: Float32Array,
    ceiling_db: float,
    goal: float,
    start_db: float,
    cap_db: float,
    settings: LimiterSettings,
) -> tuple[float, GainCurve, float]:
    """The gain whose *estimated* loudness after the limiter is ``goal`` (secant steps)."""
    ceiling = 10.0 ** (ceiling_db / 20.0)
    history: list[tuple[float, float]] = []
    gain_db = start_db
    curve = GainCurve(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    est = float("nan")
    for _ in range(_MAX_GAIN_ITERATIONS):
        curve = gain_curve(peak, ceiling / 10.0 ** (gain_db / 20.0), RATE, settings)
        est = meter.estimate(gain_db, curve)
        history.append((gain_db, est))
        miss = goal - est
        if abs(miss) <= _ESTIMATE_TOLERANCE_LU:
            break
        slope = 1.0
        if len(history) >= 2:
            (g0, l0), (g1, l1) = history[-2], history[-1]
            if g1 != g0:
                slope = min(1.0, max(0.05, (l1 - l0) / (g1 - g0)))
        step = min(cap_db, gain_db + miss / slope)
        if step == gain_db:
            break  # at the cap: more gain is not allowed
        gain_db = step
    return gain_db, curve, est


def level(
    content: Float32Array,
    meter: Meter,
    peak: Float32Array,
    target: float,
    ceiling_db: float,
    settings: LimiterSettings,
) -> Levelled:
    """One linear gain plus the limiter; the gain iterated until the loudness is on target.

    ``peak`` is the content's unit-gain envelope (:func:`oversampled_peak`). The gain is
    solved on the loudness estimate (cheap), the result measured for real, and the
    estimate's bias corrected -- usually one real measurement, at most three.
    """
    base = target - meter.lufs0
    cap = base + _MAX_EXTRA_GAIN_DB
    gain_db = base
    bias = 0.0
    for _ in range(3):
        gain_db, curve, est = solve_gain(
            meter, peak, ceiling_db, target - bias, gain_db, cap, settings
        )
        y = curve.apply(content, 10.0 ** (gain_db / 20.0))
        # Without limiting the estimate is the measurement (a gain scales every step's
        # energy alike); with it, measure the limited programme for real.
        lufs = est if curve.empty else meter.lufs(y)
        log.debug(
            "gain %.3f dB, %d limiter regions: %.3f LUFS (estimated %.3f)",
            gain_db,
            curve.regions,
            lufs,
            est,
        )
        if abs(lufs - target) <= _LOUDNESS_TOLERANCE_LU or gain_db >= cap:
            break
        bias = lufs - est
    estimate = np.multiply(peak, np.float32(10.0 ** (gain_db / 20.0)))
    if not curve.empty:
        estimate[curve.index] *= curve.values
    return Levelled(y, estimate, gain_db, lufs, ceiling_db, curve)


def loudest_passage(curve: GainCurve) -> Passage | None:
    """The passage (:meth:`GainCurve.passages`) holding the limiter's deepest reduction."""
    if curve.empty:
        return None
    deepest = int(curve.index[int(np.argmin(curve.values))])
    limit = np.float32(10.0 ** (-LIMITED_DB / 20.0))
    for a, b in curve.passages(LIMITED_DB, _PASSAGE_JOIN):
        if a <= deepest < b:
            lo, hi = np.searchsorted(curve.index, [a, b])
            values = curve.values[lo:hi]
            return Passage(
                start=a,
                end=b,
                max_reduction_db=float(-20.0 * np.log10(np.min(values))),
                limited_s=int(np.count_nonzero(values < limit)) / RATE,
            )
    return None
