"""Timing between signals: a take's sound against its narration, its picture against its sound.

Pure numpy on arrays that :mod:`handoff.sync.measure` has decoded; nothing here reads a file.
Signs, everywhere: a positive lag means the first-named thing is *late* (the take's
sound after the narration, the picture after the sound).

Sound against the narration (:class:`AudioAligner`)
    Short windows of the take's sound are located in the narration by GCC-PHAT (the
    generalised cross-correlation with phase transform, Knapp & Carter, IEEE Trans.
    ASSP 24(4), 1976): the cross-spectrum is whitened, so the peak is as sharp as the
    sampling allows whatever the voice's spectrum, and an AAC round trip or noise moves
    it by microseconds. One window at a time, as the take is decoded, against the whole
    narration within ``max_lag_s``: no coarse pass first, so each take is decoded once
    and nothing of its sound is kept beyond one window. A straight line through the
    windows that agree (offset at the start, and a slope: the stretch, in ppm) is the
    result; the share of windows on that line is the confidence. Where the phase of the
    sound was re-synthesised, GCC-PHAT finds nothing and :func:`envelope_lag` (the
    correlation of the two loudness envelopes) answers, less precisely; where neither
    agrees, the take's sound is not the narration.

Picture against its own sound (:func:`picture_lag`)
    No neural model: how much the picture changes from one frame to the next (the mean
    absolute difference of the luma) is compared with how much the take's loudness
    envelope changes between the same instants, shifted by a trial lag; the lag with the
    highest correlation wins, refined between 1 ms steps. A mouth opening and closing
    moves pixels as its sound rises and falls; measured on synthetic talking heads this
    is within a fifth of a frame, and about a frame on real footage. Windows along the
    take give the drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from handoff.analysis import dsp
from handoff.media.arrays import Float32Array, FloatArray

__all__ = [
    "ANALYSIS_RATE",
    "AudioAligner",
    "AudioFit",
    "Line",
    "PictureFit",
    "crossing",
    "envelope_lag",
    "fit_line",
    "picture_lag",
]


ANALYSIS_RATE = 16_000
"""Sound is compared at this rate: speech carries its timing below 8 kHz, and GCC-PHAT's
peak, interpolated, is good to a few microseconds here (far inside the 1 ms asked)."""

ENVELOPE_BIN = dsp.bin_samples(ANALYSIS_RATE)  # 1 ms envelope bins

_WINDOW_S = 1.0  # GCC window: short enough that a 0.1 % stretch smears it by only 1 ms
_HOP_S = 0.5
_PHAT_FLOOR = 1e-3  # spectral whitening floor, relative to the largest cross-spectrum bin
_QUIET_DB = -35.0  # windows this far under the take's loud windows carry no timing
_AGREE_S = 0.001  # a window agrees with the fitted line within 1 ms
_MATCH_SHARE = 0.5  # at least half the sounding windows on one line: the same sound
_MIN_AGREEING = 3
_ENVELOPE_SMOOTH_MS = 20  # centred loudness window for the envelopes (as the silence rules)
_ENVELOPE_HIGHPASS_MS = 250  # removed from the envelope: the syllable rhythm stays

_PICTURE_STEP_S = 0.001
_PICTURE_WINDOW_S = 8.0  # drift windows: two hops
_PICTURE_HOP_S = 4.0
DRIFT_MIN_TAKE_S = 1.5 * _PICTURE_WINDOW_S
"""A take shorter than this gets one picture offset and no drift: fewer than three
overlapping windows cannot tell a drift from one window's error."""
_PICTURE_MIN_CORR = 0.2  # a window whose best correlation is lower says nothing


# ---------------------------------------------------------------- lines


@dataclass(frozen=True, slots=True)
class Line:
    """``value(t) = at_zero + slope * t``, fitted to the points that agree with it."""

    at_zero: float
    slope: float
    agreeing: int
    points: int

    def value(self, t: float) -> float:
        return self.at_zero + self.slope * t


def fit_line(
    t: FloatArray, y: FloatArray, weight: FloatArray, agree: float, *, sloped: bool = True
) -> Line | None:
    """The line through most of the points within ``agree`` (a consensus fit, as RANSAC:
    every pair of the strongest points proposes a line, the one most points agree with is
    refined by weighted least squares on those points). None without two points.

    ``sloped=False`` fits a constant (too little time for a slope to mean anything).
    """
    n = int(t.shape[0])
    if n == 0:
        return None
    if n == 1 or not sloped:
        centre = _weighted_median(y, weight)
        near = np.abs(y - centre) <= agree
        at_zero = float(np.average(y[near], weights=weight[near]))
        return Line(at_zero, 0.0, int(np.count_nonzero(near)), n)
    top = np.argsort(-weight, kind="stable")[: min(n, 40)]
    i, j = np.triu_indices(top.shape[0], k=1)
    a, b = top[i], top[j]
    dt = t[b] - t[a]
    ok = np.abs(dt) > 1e-9
    a, b, dt = a[ok], b[ok], dt[ok]
    if a.shape[0] == 0:
        return fit_line(t, y, weight, agree, sloped=False)
    slopes = (y[b] - y[a]) / dt
    zeros = y[a] - slopes * t[a]
    # Pairs x points: how many points each candidate line explains, weighted.
    residual = np.abs(zeros[:, None] + slopes[:, None] * t[None, :] - y[None, :])
    support = (residual <= agree) @ weight
    best = int(np.argmax(support))
    at_zero, slope = float(zeros[best]), float(slopes[best])
    near = np.zeros(n, dtype=bool)
    for _ in range(3):
        near = np.abs(at_zero + slope * t - y) <= agree
        if np.count_nonzero(near) < 2 or np.ptp(t[near]) <= 1e-9:
            break
        slope, at_zero = (
            float(c) for c in np.polyfit(t[near], y[near], 1, w=np.sqrt(weight[near]))
        )
    near = np.abs(at_zero + slope * t - y) <= agree
    return Line(at_zero, slope, int(np.count_nonzero(near)), n)


def _weighted_median(y: FloatArray, w: FloatArray) -> float:
    order = np.argsort(y, kind="stable")
    cum = np.cumsum(w[order])
    return float(y[order][int(np.searchsorted(cum, cum[-1] / 2.0))])


def crossing(line: Line, tolerance: float, duration: float) -> float | None:
    """The first time in ``[0, duration]`` where ``|line(t)| > tolerance``; None if never."""
    if abs(line.at_zero) > tolerance:
        return 0.0
    if line.slope == 0.0:
        return None
    bound = tolerance if line.slope > 0 else -tolerance
    t = (bound - line.at_zero) / line.slope
    return t if 0.0 <= t <= duration else None


# ---------------------------------------------------------------- sound against the narration


@dataclass(frozen=True, slots=True)
class AudioFit:
    """Where the take's sound lies against the narration."""

    matched: bool
    method: str
    """``waveform`` (GCC-PHAT windows), ``envelope`` (loudness envelopes) or ``none``."""
    offset_s: float | None
    """The take's sound is late by this at the take's start (negative: early)."""
    drift_ppm: float | None
    """How much later it falls per second, in millionths (a stretched sound)."""
    confidence: float
    """Share of the sounding windows on the fitted line (waveform), or the envelopes'
    correlation (envelope)."""
    windows: int
    """Windows of the take that held sound."""


class AudioAligner:
    """Streams a take's sound (mono, :data:`ANALYSIS_RATE`) against a narration.

    ``feed`` the take's samples in order from the take's start; ``finish`` fits the line.
    Memory: one window of the take, and the narration.
    """

    def __init__(self, reference: Float32Array, *, max_lag_s: float = 2.0) -> None:
        self._ref = np.asarray(reference, dtype=np.float32)
        self._w = round(_WINDOW_S * ANALYSIS_RATE)
        self._hop = round(_HOP_S * ANALYSIS_RATE)
        self._lag = round(max_lag_s * ANALYSIS_RATE)
        self._nfft = 1 << math.ceil(math.log2(2 * self._w + 2 * self._lag))
        self._taper = np.hanning(self._w).astype(np.float32)
        self._buf = np.zeros(0, dtype=np.float32)
        self._start = 0  # take sample index of the next window
        self._held = 0  # take sample index of _buf[0]
        self._centres: list[float] = []
        self._lags: list[float] = []
        self._strengths: list[float] = []
        self._energies: list[float] = []

    def feed(self, x: Float32Array) -> None:
        self._buf = np.concatenate((self._buf, np.asarray(x, dtype=np.float32)))
        while self._start + self._w <= self._held + self._buf.shape[0]:
            a = self._start - self._held
            self._window(self._start, self._buf[a : a + self._w])
            self._start += self._hop
        drop = self._start - self._held
        if drop > 0:
            self._buf = self._buf[drop:]
            self._held = self._start

    def _span(self, start: int, length: int) -> Float32Array:
        """``reference[start : start + length]``, zeros outside it."""
        out = np.zeros(length, dtype=np.float32)
        lo, hi = max(start, 0), min(start + length, self._ref.shape[0])
        if hi > lo:
            out[lo - start : hi - start] = self._ref[lo:hi]
        return out

    def _window(self, start: int, x: Float32Array) -> None:
        energy = float(np.mean(np.square(x, dtype=np.float64)))
        span = self._span(start - self._lag, self._w + 2 * self._lag)
        if energy <= 0.0 or not np.any(span):
            self._record(start, 0.0, 0.0, energy)
            return
        spec = np.conj(np.fft.rfft(x * self._taper, self._nfft)) * np.fft.rfft(span, self._nfft)
        mag = np.abs(spec)
        spec /= mag + _PHAT_FLOOR * float(np.max(mag))
        g = np.fft.irfft(spec, self._nfft)[: 2 * self._lag + 1]
        m = int(np.argmax(g))
        peak = float(g[m])
        frac = _parabola(g, m)
        # g[m] pairs x[i] with span[i + m] = reference[start - lag + i + m]: the take's
        # sample start + i is the reference's start + i - (lag - m), so it is late by lag - m.
        self._record(start, (self._lag - (m + frac)) / ANALYSIS_RATE, peak, energy)

    def _record(self, start: int, lag: float, strength: float, energy: float) -> None:
        self._centres.append((start + self._w / 2) / ANALYSIS_RATE)
        self._lags.append(lag)
        self._strengths.append(strength)
        self._energies.append(energy)

    def finish(self) -> AudioFit:
        """The fitted line (waveform method), or a failed fit; see :func:`envelope_lag`."""
        if self._buf.shape[0] and not self._centres:
            # A take shorter than one window: zero-pad it into one.
            pad = np.zeros(self._w, dtype=np.float32)
            pad[: self._buf.shape[0]] = self._buf[: self._w]
            self._window(self._start, pad)
        energy = np.asarray(self._energies)
        if energy.shape[0] == 0 or float(np.max(energy)) <= 0.0:
            return AudioFit(False, "none", None, None, 0.0, 0)
        loud = float(np.percentile(energy, 90))
        sounding = energy > loud * 10.0 ** (_QUIET_DB / 10.0)
        t = np.asarray(self._centres)[sounding]
        y = np.asarray(self._lags)[sounding]
        w = np.maximum(np.asarray(self._strengths)[sounding], 1e-6)
        count = int(t.shape[0])
        line = fit_line(t, y, w, _AGREE_S, sloped=count >= 4 and float(np.ptp(t)) >= 2.0)
        if line is None:
            return AudioFit(False, "none", None, None, 0.0, count)
        share = line.agreeing / count
        if line.agreeing < min(_MIN_AGREEING, count) or share < _MATCH_SHARE:
            return AudioFit(False, "none", None, None, share, count)
        return AudioFit(True, "waveform", line.at_zero, line.slope * 1e6, share, count)


def _smooth_envelope(power: FloatArray) -> FloatArray:
    """Loudness envelope for timing: centred 20 ms RMS, less its centred 250 ms mean
    (the slow trend), so the syllables' rises and falls are what correlates."""
    amp = np.sqrt(dsp.centred_level(power, _ENVELOPE_SMOOTH_MS))
    return np.asarray(amp - dsp.centred_level(amp, _ENVELOPE_HIGHPASS_MS), dtype=np.float64)


def envelope_lag(
    take_power: FloatArray, ref_power: FloatArray, max_lag_s: float
) -> tuple[float, float, float]:
    """(lag in seconds, correlation, prominence) of the take's 1 ms power envelope
    against the narration's: the normalised cross-correlation's peak within
    ``max_lag_s``, refined between bins, and how far it stands above the best
    correlation more than 40 ms away from it (two unrelated sounds correlate as well at
    many lags; the same words at one). Works where the waveforms differ but the words
    keep their timing."""
    a = _smooth_envelope(np.asarray(take_power, dtype=np.float64))
    b = _smooth_envelope(np.asarray(ref_power, dtype=np.float64))
    lag = round(max_lag_s * 1000)
    n = a.shape[0] + b.shape[0] + 2 * lag
    nfft = 1 << math.ceil(math.log2(max(n, 2)))
    # c[k] = sum_i a[i] b[i - k]: the take late by k bins.
    c = np.fft.irfft(np.fft.rfft(a, nfft) * np.conj(np.fft.rfft(b, nfft)), nfft)
    ks = np.arange(-lag, lag + 1)
    vals = c[ks % nfft]
    # Normalise by the energies of the overlapping parts, so a lag that slides most of
    # one envelope off the other does not win by default.
    ca = np.concatenate(([0.0], np.cumsum(a * a)))
    cb = np.concatenate(([0.0], np.cumsum(b * b)))
    lo_a = np.clip(ks, 0, a.shape[0])
    hi_a = np.clip(b.shape[0] + ks, 0, a.shape[0])
    lo_b = np.clip(-ks, 0, b.shape[0])
    hi_b = np.clip(a.shape[0] - ks, 0, b.shape[0])
    norm = np.sqrt(np.maximum(ca[hi_a] - ca[lo_a], 0) * np.maximum(cb[hi_b] - cb[lo_b], 0))
    corr = np.where(norm > 0, vals / np.maximum(norm, 1e-30), 0.0)
    m = int(np.argmax(corr))
    frac = _parabola(corr, m)
    away = np.abs(ks - ks[m]) > 40
    rival = float(np.max(corr[away])) if np.any(away) else 0.0
    return (ks[m] + frac) / 1000.0, float(corr[m]), float(corr[m]) - rival


def _parabola(y: FloatArray, m: int) -> float:
    """Offset of the true peak from sample ``m`` by a parabola through three points."""
    if 0 < m < y.shape[0] - 1:
        den = y[m - 1] - 2.0 * y[m] + y[m + 1]
        if den < 0:
            return float(0.5 * (y[m - 1] - y[m + 1]) / den)
    return 0.0


# ---------------------------------------------------------------- picture against its sound


@dataclass(frozen=True, slots=True)
class PictureFit:
    """Where the picture lies against the take's own sound."""

    offset_s: float
    """The picture is late by this at the take's start (negative: early)."""
    drift: float | None
    """Seconds later per second (None: too short to say)."""
    confidence: float
    """The correlation at the best lag over the whole take (0..1)."""
    series: tuple[tuple[float, float], ...]
    """(window centre, picture late by) of each window that said something."""
    line: Line


@dataclass(frozen=True, slots=True)
class _Sums:
    """Running sums for the correlation, at every trial lag, of the picture's change
    (m) with the sound's change (p) over a set of frame pairs."""

    p: FloatArray
    pp: FloatArray
    mp: FloatArray
    m: float
    mm: float
    n: int

    def __add__(self, other: _Sums) -> _Sums:
        return _Sums(self.p + other.p, self.pp + other.pp, self.mp + other.mp,
                     self.m + other.m, self.mm + other.mm, self.n + other.n)  # fmt: skip

    def pearson(self) -> FloatArray:
        n = max(self.n, 1)
        cov = self.mp - self.m * self.p / n
        var_p = self.pp - self.p * self.p / n
        var_m = self.mm - self.m * self.m / n
        den = np.sqrt(np.maximum(var_p, 0.0) * max(var_m, 0.0))
        return np.asarray(np.where(den > 0, cov / np.maximum(den, 1e-30), 0.0), dtype=np.float64)


def _picture_sums(
    times: FloatArray, motion: FloatArray, level: FloatArray, lags: FloatArray, shift: FloatArray
) -> _Sums:
    """:class:`_Sums` over the frame pairs (k-1, k) of ``times``: the sound's change is
    that of its level between the two instants, each moved back by ``shift`` (the lag
    already known at that frame) and by the trial lag."""
    # level[j] is centred on j ms exactly (bins j-10 .. j+9 of 1 ms: dsp.centred_level)
    positions = ((times - shift)[None, :] - lags[:, None]) * 1000.0
    grid = np.arange(level.shape[0], dtype=np.float64)
    at = np.interp(positions.ravel(), grid, level, left=0.0, right=0.0).reshape(positions.shape)
    change = np.abs(np.diff(at, axis=1))
    m = np.asarray(motion[1:], dtype=np.float64)
    return _Sums(change.sum(axis=1), np.square(change).sum(axis=1), change @ m,
                 float(m.sum()), float(np.square(m).sum()), int(m.shape[0]))  # fmt: skip


def _best(corr: FloatArray, lags: FloatArray) -> tuple[float, float]:
    m = int(np.argmax(corr))
    return float(lags[m] + _parabola(corr, m) * _PICTURE_STEP_S), float(corr[m])


def picture_lag(
    times: FloatArray,
    motion: FloatArray,
    power: FloatArray,
    frame_s: float,
    *,
    max_lag_s: float = 0.5,
) -> PictureFit | None:
    """How late the picture is against its sound, and how that changes.

    ``times``: each frame's time (seconds from the take's start); ``motion[k]``: the
    picture change from frame k-1 to k (``motion[0]`` unused); ``power``: the take's
    sound, mean square per 1 ms bin from the take's start. None when the picture or the
    sound does not change at all.
    """
    if times.shape[0] < 3:
        return None
    level = np.sqrt(dsp.centred_level(np.asarray(power, dtype=np.float64), _ENVELOPE_SMOOTH_MS))
    wide = _lag_grid(max_lag_s)
    hop = max(1, round(_PICTURE_HOP_S / frame_s))
    blocks = _blocks(times, motion, level, wide, hop, np.zeros_like(times))
    if not blocks or _total(blocks).n < 2:
        return None
    offset, confidence = _best(_total(blocks).pearson(), wide)
    line: Line | None = None
    if float(times[-1]) >= DRIFT_MIN_TAKE_S:
        # Each window on its own, over the whole lag range: a take that drifts far cannot
        # be found by the whole take's correlation, but its windows each can.
        line = _drift_line(_windows(blocks, times, hop, wide), max(frame_s / 2, 0.010))
    if line is None:
        if confidence <= 0.0:
            return None
        return PictureFit(offset, None, confidence, (), Line(offset, 0.0, 1, 1))
    # Again with the picture moved back by the line found: what is left is small and the
    # same across each window, so each window's correlation peaks sharply (a window of a
    # drifting take otherwise smears over the lags it drifts through).
    narrow = _lag_grid(max(2 * frame_s, 0.1))
    shift = line.at_zero + line.slope * times
    residual = _blocks(times, motion, level, narrow, hop, shift)
    left, confidence = _best(_total(residual).pearson(), narrow)
    rest = _windows(residual, times, hop, narrow)
    fix = _drift_line(rest, max(frame_s / 4, 0.005))
    if fix is None:
        fix = Line(left, 0.0, line.agreeing, line.points)
    final = Line(line.at_zero + fix.at_zero, line.slope + fix.slope, fix.agreeing, fix.points)
    series = tuple((c, line.value(c) + v) for c, v, _ in rest)
    if confidence <= 0.0:
        return None
    return PictureFit(final.at_zero, final.slope, confidence, series, final)


def _lag_grid(reach_s: float) -> FloatArray:
    steps = round(reach_s / _PICTURE_STEP_S)
    return np.arange(-steps, steps + 1, dtype=np.float64) * _PICTURE_STEP_S


def _blocks(
    times: FloatArray,
    motion: FloatArray,
    level: FloatArray,
    lags: FloatArray,
    hop: int,
    shift: FloatArray,
) -> list[_Sums]:
    """Sums over blocks of ``hop`` frame pairs, no pair in two blocks: they add up to the
    whole take's, and a window is neighbouring blocks."""
    out = []
    for start in range(0, times.shape[0] - 1, hop):
        stop = min(times.shape[0], start + hop + 1)
        if stop - start >= 2:
            part = slice(start, stop)
            out.append(_picture_sums(times[part], motion[part], level, lags, shift[part]))
    return out


def _total(blocks: list[_Sums]) -> _Sums:
    whole = blocks[0]
    for block in blocks[1:]:
        whole = whole + block
    return whole


def _windows(
    blocks: list[_Sums], times: FloatArray, hop: int, lags: FloatArray
) -> list[tuple[float, float, float]]:
    """(centre time, best lag, its correlation) of each window that says something."""
    per_window = max(1, round(_PICTURE_WINDOW_S / _PICTURE_HOP_S))
    series = []
    for i in range(max(1, len(blocks) - per_window + 1)):
        sums = _total(blocks[i : i + per_window])
        if sums.n < 8:
            continue
        lag, peak = _best(sums.pearson(), lags)
        if peak >= _PICTURE_MIN_CORR:
            first = i * hop
            last = min(times.shape[0] - 1, (i + per_window) * hop)
            series.append((float((times[first] + times[last]) / 2), lag, peak))
    return series


def _drift_line(series: list[tuple[float, float, float]], agree: float) -> Line | None:
    """The line through most windows, if at least three (and half of them) agree."""
    if len(series) < 3:
        return None
    t = np.array([c for c, _, _ in series])
    y = np.array([v for _, v, _ in series])
    w = np.array([p for _, _, p in series])
    line = fit_line(t, y, w, agree)
    if line is None or line.agreeing < max(3, len(series) // 2):
        return None
    return line
