"""Levelling: one linear gain plus the true-peak limiter.

Pure functions of the 48 kHz content and its unit-gain peak envelope: :class:`Meter`
measures and estimates loudness, :func:`level` finds the gain whose limited programme is
on target, :func:`true_peaks` measures the result over spans, :func:`loudest_passage`
says where the limiter worked hardest. Nothing is written.

The content is an array or a :class:`~handoff.prep.samples.SampleStore` read a stretch
at a time (a scratch file, for a programme of any length), with the same answers to the
bit: what is kept between stretches is per 100 ms step (energies), per 1 ms bin (sound
map), per 4,096-sample block (envelope maxima) or per limited sample (the gain curve);
the levelled programme is never held, :class:`Levelled` computes any stretch of it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from handoff.analysis import loudness
from handoff.analysis.dsp import SoundMap, oversampled_peak_parts, oversampled_peak_runs
from handoff.analysis.limiter import GainCurve, LimiterSettings, gain_curve_at, oversampled_peak
from handoff.media.arrays import Float32Array, FloatArray
from handoff.prep.cuts import BIN, REAL_PAUSE_BINS
from handoff.prep.options import RATE, Channels
from handoff.prep.results import Passage
from handoff.prep.samples import (
    ArraySamples,
    SampleStore,
    ScratchSamples,
    gather,
    store_bins,
    stretches,
)

__all__ = [
    "LIMITED_DB",
    "Levelled",
    "Meter",
    "PeakEnvelope",
    "as_store",
    "level",
    "loudest_passage",
    "solve_gain",
    "true_peaks",
]

log = logging.getLogger("handoff.prep")


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


_PASS = 614_400
"""Samples per stretch in the passes over the programme: a whole number of 100 ms steps
(4,800), 1 ms bins (48) and true-peak blocks (4,096), and of numpy's 8,192-element
casting buffers, so that every per-step and per-bin sum is taken over the same runs of
samples as on the whole array (and comes out the same to the bit). 12.8 s: 2.4 MB a
channel in float32."""


def as_store(content: Float32Array | SampleStore) -> SampleStore:
    """An array as a :class:`~handoff.prep.samples.SampleStore` (a store as it is)."""
    return ArraySamples(content) if isinstance(content, np.ndarray) else content


class Meter:
    """Loudness the ltx2-audio way: the mono content of dual-mono is measured as mono.

    Besides measuring files, it keeps the programme's K-weighted energy per 100 ms step
    (BS.1770-4's gating grid), from which the loudness after any gain and limiter curve is
    *estimated* without filtering the whole signal again (see :meth:`estimate`). The
    content is an array or a store read a stretch at a time (only what the limiter
    touches is read again, by :meth:`estimate`).
    """

    def __init__(self, content: Float32Array | SampleStore) -> None:
        store = as_store(content)
        self._store = store
        self.as_mono = store.channels == 1 or all(
            loudness.is_dual_mono(store.read(a, b)) for a, b in stretches(store, _PASS)
        )
        self._measured_channels = 1 if self.as_mono else store.channels
        self.weights = loudness.channel_weights(self._measured_channels)
        # The step energies handoff.analysis.loudness builds its integrated loudness from (so
        # estimates and measurements share one definition).
        self.energy, self.lengths = loudness.read_segment_energy(
            lambda ch, a, b: store.read(a, b)[ch], store.samples, RATE, self.weights
        )
        self._plain: FloatArray | None = None
        self.lufs0 = self._gated(self.energy)

    def _gated(self, energy: FloatArray) -> float:
        blocks = loudness.window_loudness(energy, self.lengths, loudness.SEGMENTS_PER_BLOCK)
        return loudness.gated_integrated(blocks)

    def _plain_energy(self) -> FloatArray:
        """Plain (unweighted) energy per step, summed over the measured channels."""
        steps = self.energy.shape[0]
        plain = np.zeros(steps)
        for a, b in stretches(self._store, _PASS):
            s0, s1 = a // _STEP, min(steps, b // _STEP)
            if s1 <= s0:
                continue
            block = self._store.read(a, a + (s1 - s0) * _STEP)
            for ch, w in enumerate(self.weights):
                xr = block[ch].reshape(s1 - s0, _STEP)
                plain[s0:s1] += w * np.einsum("sk,sk->s", xr, xr, dtype=np.float64)
        return plain

    def estimate(self, gain_db: float, curve: GainCurve) -> float:
        """Loudness after ``gain_db`` and ``curve``: each 100 ms step's K-weighted energy
        scaled by how much the curve lowers its plain energy (exact without limiting)."""
        energy = self.energy * 10.0 ** (gain_db / 10.0)
        if not curve.empty:
            steps = self.energy.shape[0]
            if self._plain is None:  # once
                self._plain = self._plain_energy()
            inside = curve.index < steps * _STEP
            idx = curve.index[inside]
            v = curve.values[inside].astype(np.float64)
            picked = gather(self._store, idx)
            sq = np.zeros(idx.shape[0])
            for ch, w in enumerate(self.weights):
                xs = picked[ch].astype(np.float64)
                sq += w * xs * xs
            loss = np.bincount(idx // _STEP, weights=sq * (1.0 - v * v), minlength=steps)
            with np.errstate(divide="ignore", invalid="ignore"):
                kept = np.where(self._plain > 0.0, 1.0 - loss / self._plain, 1.0)
            energy = energy * np.clip(kept, 0.0, 1.0)
        return self._gated(energy)

    def lufs(self, x: Float32Array) -> float:
        return loudness.integrated_loudness(x[:1] if self.as_mono else x, RATE)

    def lufs_of(self, programme: SampleStore) -> float:
        """:meth:`lufs` of a programme read a stretch at a time (the same value)."""
        weights = self.weights
        energy, lengths = loudness.read_segment_energy(
            lambda ch, a, b: programme.read(a, b)[ch], programme.samples, RATE, weights
        )
        return loudness.gated_integrated(
            loudness.window_loudness(energy, lengths, loudness.SEGMENTS_PER_BLOCK)
        )

    def measured_as(self, channels_out: Channels) -> str:
        if channels_out == "mono":
            return loudness.MEASURED_AS_IS
        return loudness.MEASURED_AS_MONO if self.as_mono else loudness.MEASURED_AS_IS


class PeakEnvelope:
    """The content's unit-gain peak envelope (:func:`oversampled_peak`), kept in a store,
    with its maximum per 4,096-sample block: the gain solve reads only the blocks that
    can be over a ceiling, the true-peak check only those near a span's peak."""

    __slots__ = ("maxima", "store")

    def __init__(self, store: SampleStore, maxima: Float32Array) -> None:
        self.store = store
        self.maxima = maxima

    @classmethod
    def of_array(cls, peak: Float32Array) -> PeakEnvelope:
        p = np.asarray(peak, dtype=np.float32)
        return cls(ArraySamples(p), _block_maxima(p))

    @classmethod
    def measure(
        cls, content: SampleStore, oversample: int, keep: ScratchSamples | None = None
    ) -> PeakEnvelope:
        """The envelope of ``content``, written into ``keep`` (else held in memory)."""
        if keep is None:
            return cls.of_array(oversampled_peak(content.read(0, content.samples), oversample))
        maxima: list[Float32Array] = []
        for _, part in oversampled_peak_parts(content.read, content.samples, oversample):
            keep.append(part[np.newaxis, :])
            maxima.append(_block_maxima(part))  # parts are whole blocks but the last
        return cls(keep, np.concatenate(maxima) if maxima else np.zeros(0, dtype=np.float32))

    @property
    def samples(self) -> int:
        return self.store.samples

    def top(self) -> float:
        return float(self.maxima.max()) if self.maxima.shape[0] else 0.0

    def top_db(self) -> float:
        """:meth:`top` in dB (dBTP: the envelope is oversampled); -inf for silence."""
        top = self.top()
        return 20.0 * math.log10(top) if top > 0.0 else float("-inf")

    def block(self, k: int) -> Float32Array:
        return np.asarray(self.store.read(k * _TP_BLOCK, (k + 1) * _TP_BLOCK)[0], dtype=np.float32)

    def over(self, ceiling: float) -> tuple[npt.NDArray[np.int64], Float32Array]:
        """The samples over ``ceiling`` and the envelope there (``p > ceiling`` as on the
        whole array: the comparison in float32), reading only blocks whose maximum is over."""
        blocks = np.flatnonzero(self.maxima > ceiling)
        index: list[npt.NDArray[np.int64]] = []
        values: list[Float32Array] = []
        if blocks.shape[0]:
            cuts = np.flatnonzero(np.diff(blocks) > 1) + 1
            for run in np.split(blocks, cuts):
                a = int(run[0]) * _TP_BLOCK
                p = self.store.read(a, (int(run[-1]) + 1) * _TP_BLOCK)[0]
                hit = np.flatnonzero(p > ceiling)
                index.append(hit.astype(np.int64) + a)
                values.append(p[hit])
        if not index:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(index), np.concatenate(values)

    def curve(self, ceiling: float, settings: LimiterSettings) -> GainCurve:
        """:func:`gain_curve` of the envelope at ``ceiling``."""
        over, values = self.over(ceiling)
        return gain_curve_at(over, values, self.samples, ceiling, RATE, settings)


_TP_BLOCK = 4096


def _block_maxima(p: Float32Array) -> Float32Array:
    n = p.shape[0]
    whole = n // _TP_BLOCK
    out = np.zeros(-(-n // _TP_BLOCK), dtype=np.float32)
    out[:whole] = p[: whole * _TP_BLOCK].reshape(whole, _TP_BLOCK).max(axis=1)
    if out.shape[0] > whole:
        out[whole] = p[whole * _TP_BLOCK :].max()
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Levelled:
    """The content times one gain and the limiter's curve -- the master's samples, read a
    stretch at a time (:meth:`read`), never held whole."""

    content: SampleStore
    gain_db: float
    lufs: float
    ceiling_db: float
    curve: GainCurve

    @property
    def channels(self) -> int:
        return self.content.channels

    @property
    def samples(self) -> int:
        return self.content.samples

    @property
    def gain(self) -> np.float32:
        return np.float32(10.0 ** (self.gain_db / 20.0))

    def read(self, start: int, stop: int) -> Float32Array:
        """Samples ``start .. stop - 1``: ``GainCurve.apply`` of that stretch (the same
        values as levelling the whole array)."""
        start, stop = max(0, start), min(self.samples, stop)
        out: Float32Array = np.multiply(self.content.read(start, stop), self.gain, dtype=np.float32)
        if not self.curve.empty:
            lo, hi = np.searchsorted(self.curve.index, [start, stop])
            out[:, self.curve.index[lo:hi] - start] *= self.curve.values[lo:hi]
        return out

    def bins(self) -> FloatArray:
        """:func:`handoff.analysis.dsp.bin_power` of the levelled programme."""
        return store_bins(self, RATE)

    def sound(self) -> SoundMap:
        """Sound and pauses of the levelled programme (1 ms bins)."""
        return SoundMap.from_bins(self.bins(), self.samples, RATE)


def true_peaks(
    levelled: Levelled, peak: PeakEnvelope, spans: list[tuple[int, int]], oversample: int
) -> list[float]:
    """True peak (dBTP) of the levelled programme over each ``[a, b)`` span, with the
    meter's interpolation.

    The estimate is the unit-gain envelope times the gain and the limiter curve. Where the
    curve is 1 that *is* the envelope of the programme (interpolation is linear); where
    the limiter acts it is close (the gain moves a little within the kernel's +/- 16
    samples). So only 4096-sample blocks whose estimate comes within 2 dB of their span's
    largest and that the limiter touches are interpolated again from the programme
    itself. Per block only maxima are kept, and whole blocks only at the spans' edges.
    """
    n = levelled.samples
    block = _TP_BLOCK
    count = -(-n // block)
    g = levelled.gain
    curve = levelled.curve
    touched = np.zeros(count, dtype=bool)
    if not curve.empty:
        touched[np.unique(curve.index // block)] = True

    def estimate(k: int) -> Float32Array:
        est: Float32Array = np.multiply(peak.block(k), g)
        if touched[k]:
            a = k * block
            lo, hi = np.searchsorted(curve.index, [a, a + block])
            est[curve.index[lo:hi] - a] *= curve.values[lo:hi]
        return est

    # A block the curve leaves alone: max(p * g) is max(p) * g (rounding is monotonic).
    per_block = np.multiply(peak.maxima, g)
    for k in np.flatnonzero(touched).tolist():
        per_block[k] = estimate(k).max()

    def span_max(
        a: int, b: int, maxima: Float32Array, values: Callable[[int], Float32Array]
    ) -> float:
        ka, kb = a // block, (b - 1) // block
        if ka == kb:
            return float(values(ka)[a - ka * block : b - ka * block].max())
        top = max(
            float(values(ka)[a - ka * block :].max()),
            float(values(kb)[: b - kb * block].max()),
        )
        if kb > ka + 1:
            top = max(top, float(maxima[ka + 1 : kb].max()))
        return top

    candidate = np.zeros(count, dtype=bool)
    for a, b in spans:
        if b > a:
            top = span_max(a, b, per_block, estimate)
            ba, bb = a // block, -(-b // block)
            candidate[ba:bb] |= per_block[ba:bb] >= top * 10.0 ** (-_TP_CANDIDATE_DB / 20.0)
    near = np.zeros(count, dtype=bool)
    if not curve.empty:
        reach = 2 * 16  # the interpolation kernel's reach, with room to spare
        near[curve.index // block] = True
        near[np.maximum(curve.index - reach, 0) // block] = True
        near[np.minimum(curve.index + reach, n - 1) // block] = True
    marked = candidate & near
    edges = np.diff(np.concatenate(([0], marked.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1) * block
    stops = np.minimum(np.flatnonzero(edges == -1) * block, n)
    # The envelope as measured: the estimate, with marked blocks interpolated for real.
    final = per_block.copy()
    kept: dict[int, Float32Array] = {}  # whole blocks at the spans' edges and the end
    wanted = {count - 1} | {k for a, b in spans if b > a for k in (a // block, (b - 1) // block)}
    for batch in _batches(starts, stops):
        runs = oversampled_peak_runs(levelled.read, n, starts[batch], stops[batch], oversample)
        for a, env in zip(starts[batch].tolist(), runs, strict=True):
            for k in range(a // block, a // block + -(-env.shape[0] // block)):
                piece = env[k * block - a : (k + 1) * block - a]
                final[k] = piece.max()
                if k in wanted:
                    kept[k] = piece.copy()

    def measured(k: int) -> Float32Array:
        return kept[k] if k in kept else estimate(k)

    if n:  # the meter reads nothing between the last sample and beyond
        last = measured(count - 1).copy()
        last[(n - 1) - (count - 1) * block] = float(np.abs(levelled.read(n - 1, n)[:, 0]).max())
        kept[count - 1] = last
        final[count - 1] = last.max()
    out = []
    for a, b in spans:
        top = span_max(a, b, final, measured) if b > a else 0.0
        out.append(20.0 * math.log10(top) if top > 0.0 else float("-inf"))
    return out


_TP_BATCH = 1 << 22  # samples interpolated again in one batch (87 s at 48 kHz)


def _batches(starts: npt.NDArray[np.int64], stops: npt.NDArray[np.int64]) -> list[slice]:
    """Runs grouped into batches of at most about ``_TP_BATCH`` samples (one run may be
    longer): a batch is one compact array, so memory stays bounded however much the
    limiter works."""
    out: list[slice] = []
    first, size = 0, 0
    for i, length in enumerate((stops - starts).tolist()):
        if size and size + length > _TP_BATCH:
            out.append(slice(first, i))
            first, size = i, 0
        size += length
    if starts.shape[0]:
        out.append(slice(first, starts.shape[0]))
    return out


def solve_gain(
    meter: Meter,
    peak: PeakEnvelope,
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
        curve = peak.curve(ceiling / 10.0 ** (gain_db / 20.0), settings)
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
    content: Float32Array | SampleStore,
    meter: Meter,
    peak: Float32Array | PeakEnvelope,
    target: float,
    ceiling_db: float,
    settings: LimiterSettings,
) -> Levelled:
    """One linear gain plus the limiter; the gain iterated until the loudness is on target.

    ``peak`` is the content's unit-gain envelope (:func:`oversampled_peak`, or a
    :class:`PeakEnvelope`). The gain is solved on the loudness estimate (cheap), the
    result measured for real, and the estimate's bias corrected -- usually one real
    measurement, at most three.
    """
    store = as_store(content)
    envelope = peak if isinstance(peak, PeakEnvelope) else PeakEnvelope.of_array(peak)
    base = target - meter.lufs0
    cap = base + _MAX_EXTRA_GAIN_DB
    gain_db = base
    bias = 0.0
    for _ in range(3):
        gain_db, curve, est = solve_gain(
            meter, envelope, ceiling_db, target - bias, gain_db, cap, settings
        )
        levelled = Levelled(store, gain_db, est, ceiling_db, curve)
        # Without limiting the estimate is the measurement (a gain scales every step's
        # energy alike); with it, measure the limited programme for real.
        lufs = est if curve.empty else meter.lufs_of(levelled)
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
    return Levelled(store, gain_db, lufs, ceiling_db, curve)


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
