"""Where a programme is sound and where it is silent: 1 ms bin power, a threshold relative
to the programme's own level, onsets and pauses (numpy only).

The one definition of these, used by :mod:`handoff.analysis.loudness` (the leading and trailing
silence the validator reports), :mod:`handoff.prep` (where narration is trimmed and cut)
and :mod:`handoff.sync.measure`.

The rules
    *Bins.* The signal is cut into bins of ``round(rate * BIN_S)`` samples (1 ms: 48 at
    48 kHz, 44 at 44.1 kHz); a bin's power is the mean square of its samples in the loudest
    channel. Bin ``k`` holds samples ``k * size .. (k + 1) * size - 1``; the short last bin
    is the mean of what it holds.

    *Threshold.* Relative to the programme (:func:`silence_threshold_db`): 35 dB under its
    level gated as BS.1770-4 gates loudness, never under -70 dB. Fixed dBFS thresholds fail
    once a programme is normalised or recorded quietly (measured on narration: pydub's defaults
    called 71 % of a narration "silent", ffmpeg ``silencedetect``'s found no pause).

    *Level.* The mean of 20 bins (20 ms) -- so a click or a noise burst of a few ms is not
    sound, a sound is once its 20 ms level counts. Onsets use the causal 20 ms level (the
    window ending at a bin); pauses the centred one (:func:`centred_level`).

    *Onset.* Sound starts at the first bin above the threshold inside the first 20 ms window
    whose level is above it (a mean cannot exceed its largest part, so there is one).

    *Pause.* A run of bins whose centred 20 ms level is at or under the threshold, inside
    the programme (after its first sound, before its last); its edges are the end of the
    sound before it and the onset after it, found by the onset rule.

Positions are exact integers: bin indices, or samples of the input. Arrays are
``(channels, samples)`` (a 1-D array is one channel) of any float or integer dtype;
floating-point full scale is 1.0, integer full scale 2^(bits-1). Samples are converted to
float64 a block at a time (2^18 per channel): the only full-length array is the caller's;
the others hold one value per 1 ms bin.

Bad arguments raise ``ValueError``. Nothing is printed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from handoff.errors import UnmeasurableError
from handoff.jobs.parallel import run_threads
from handoff.media.arrays import Float32Array, FloatArray

__all__ = [
    "BIN_S",
    "LEVEL_MARGIN_DB",
    "MAX_CHANNELS",
    "TP_HALF_TAPS",
    "TP_KAISER_BETA",
    "WINDOW_BINS",
    "BinPowers",
    "InterpolatedPeak",
    "Pause",
    "SoundMap",
    "as_channels",
    "bin_power",
    "bin_samples",
    "centred_level",
    "edge_silence",
    "find_pauses",
    "full_scale",
    "interpolation_kernels",
    "leading_silence",
    "onsets",
    "oversampled_peak",
    "oversampled_peak_in",
    "oversampled_peak_parts",
    "oversampled_peak_runs",
    "silence_threshold_db",
    "to_float",
    "trailing_silence",
]


BIN_S = 0.001
"""Analysis bin, seconds (the bin is ``round(rate * BIN_S)`` samples: :func:`bin_samples`)."""
WINDOW_BINS = 20
"""Bins per level window: 20 ms."""
MAX_CHANNELS = 64
"""More "channels" than this is taken for a ``(samples, channels)`` array given by mistake."""

# The threshold (silence_threshold_db). -70 and -10 dB are the absolute and relative gates
# of BS.1770-4 Annex 1, eq. (4) and (5)-(6); the 35 dB margin is this project's choice
# (see silence_threshold_db).
_FLOOR_DB = -70.0
_GATE_DB = -10.0
_MARGIN_DB = 35.0
LEVEL_MARGIN_DB = _MARGIN_DB
"""The threshold sits this far under the programme's gated level."""

# Interpolation between samples, shared by the true-peak meter (handoff.analysis.loudness) and the
# limiter's peak envelope (handoff.analysis.limiter), so the limiter sees the peaks the meter reads:
# a sinc cut at the input's Nyquist frequency spanning +/- 16 input samples under a Kaiser
# window of beta 9 (BS.1770-4 Annex 2 asks for an interpolating low-pass; its own 48-tap
# 4x example under-reads at low rates, so the kernel here is the ideal one, truncated).
TP_HALF_TAPS = 16
"""Half the interpolation kernel's length, in input samples."""
TP_KAISER_BETA = 9.0
"""Shape of the Kaiser window over the kernel."""
_FFT_SIZE = 1 << 13  # the peak envelope's FFT frames
_SMALL_FFT = 1 << 10  # InterpolatedPeak's frames
_SMALL_BATCH = 64  # InterpolatedPeak: frames per batched FFT
_PART_SAMPLES = 1 << 20  # samples per peak-envelope job
_BLOCK_FRAMES = 8  # FFT frames per batch inside a job (its buffers are reused)
_MAX_WORKERS = 4

_MIN_RATE = 1000  # a 1 ms bin needs at least one sample
_BLOCK_SAMPLES = 1 << 18  # samples per channel converted to float64 at a time
_SEARCH_BINS = 2000  # levels computed at a time while looking for the next sound


# --- input -----------------------------------------------------------------------------------


def as_channels(samples: npt.ArrayLike) -> npt.NDArray[np.generic]:
    """``samples`` as a ``(channels, samples)`` array of a numeric dtype (no copy if it is).

    A 1-D array is one channel. Raises ``ValueError`` for other shapes, for more than
    :data:`MAX_CHANNELS` rows (a transposed array) and for non-numeric dtypes.
    """
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"expected a (channels, samples) array, got shape {arr.shape}")
    if arr.shape[0] > MAX_CHANNELS:
        raise ValueError(
            f"expected a (channels, samples) array, got shape {arr.shape}: "
            "is it (samples, channels)? transpose it"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"expected numeric samples, got dtype {arr.dtype}")
    return arr


def full_scale(dtype: np.dtype[np.generic]) -> float:
    """The value that represents 0 dBFS: 1.0 for floats, 2^(bits-1) for integers."""
    if np.issubdtype(dtype, np.integer):
        return float(-np.iinfo(dtype.type).min)  # type: ignore[type-var]
    return 1.0


def to_float(block: npt.NDArray[np.generic], scale: float) -> FloatArray:
    """``block / scale`` in float64 (``scale`` from :func:`full_scale`)."""
    out = np.asarray(block, dtype=np.float64)
    if scale != 1.0:
        out = out / scale
    return out


def _check_rate(sample_rate: int) -> int:
    rate = int(sample_rate)
    if rate != sample_rate:
        raise ValueError(f"sample rate must be an integer, got {sample_rate}")
    if rate < _MIN_RATE:
        # A fact of the media (a WAV may declare any rate), not a caller's mistake.
        raise UnmeasurableError(
            f"sample rate {rate} Hz is too low to analyse (1 ms bins need at least {_MIN_RATE} Hz)"
        )
    return rate


def _limit(threshold_db: float) -> float:
    """A threshold in dB as a mean-square power."""
    return float(10.0 ** (threshold_db / 10.0))


# --- interpolation ---------------------------------------------------------------------------


def interpolation_kernels(factor: int) -> FloatArray:
    """Kernels for the ``factor - 1`` in-between phases, shape (factor - 1, 2 * half).

    Row p - 1 holds ``g(j + p / factor)`` for ``j = -half .. half - 1``: the weight of
    ``x[n - j]`` in the estimate of the signal at ``n + p / factor``. ``g`` is a sinc cut at
    the input's Nyquist frequency under a Kaiser window (:data:`TP_HALF_TAPS`,
    :data:`TP_KAISER_BETA`). Each phase is scaled to unity gain at DC so that a constant
    signal does not read as an over.
    """
    half = TP_HALF_TAPS
    j = np.arange(-half, half, dtype=np.float64)
    phases = np.arange(1, factor, dtype=np.float64) / factor
    t = j[np.newaxis, :] + phases[:, np.newaxis]  # distance from the output instant
    window = np.i0(TP_KAISER_BETA * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None)))
    kernels = np.sinc(t) * window / np.i0(TP_KAISER_BETA)
    return np.asarray(kernels / kernels.sum(axis=1, keepdims=True), dtype=np.float64)


# --- peak envelope (the true-peak meter's and the limiter's detector) -------------------------


class _PeakWorkspace:
    """Buffers for :func:`_peak_part`, allocated once per job and reused for every block.

    Allocating the FFT arrays afresh for each block costs more in page faults than the
    FFTs themselves on some machines (fresh memory is mapped and zeroed every time).
    """

    def __init__(self, phases: int) -> None:
        half = TP_HALF_TAPS
        nfft = _FFT_SIZE
        self.hop = nfft - 2 * half + 1
        frames = _BLOCK_FRAMES
        self.seg = np.zeros(frames * self.hop + 2 * half - 1)
        self.spectrum = np.empty((frames, nfft // 2 + 1), dtype=np.complex128)
        self.product = np.empty((frames, phases, nfft // 2 + 1), dtype=np.complex128)
        self.values = np.empty((frames, phases, nfft))
        self.between = np.empty((frames, self.hop))
        self.peak = np.empty(frames * self.hop)


def _peak_part(
    x: npt.NDArray[np.floating],
    spectra: npt.NDArray[np.complex128],
    out: Float32Array,
    start: int,
    stop: int,
) -> None:
    """``out[start:stop]`` = max |x| at each sample and at the phases after it, all channels.

    The estimate at ``n + p / factor`` is ``sum_j k_p[j] x[n - j]``, ``j = -half .. half - 1``.
    For a block starting at ``b``, frame data ``seg[i] = x[b - half + 1 + i]`` (zeros beyond
    the ends); the circular correlation of a frame with the reversed kernel is exact from
    index ``2 half - 1`` on, which gives ``nfft - 2 half + 1`` outputs per frame; a block's
    frames go through one batched FFT, all phases through one batched inverse FFT.
    """
    half = TP_HALF_TAPS
    n = x.shape[1]
    nfft = _FFT_SIZE
    phases = spectra.shape[0]
    ws = _PeakWorkspace(max(phases, 1))
    hop = ws.hop
    for b0 in range(start, stop, _BLOCK_FRAMES * hop):
        b1 = min(stop, b0 + _BLOCK_FRAMES * hop)
        length = b1 - b0
        count = -(-length // hop)
        lo, hi = max(0, b0 - half + 1), min(n, b1 + half)
        offset = lo - (b0 - half + 1)
        used = count * hop + 2 * half - 1
        for ch in range(x.shape[0]):
            seg = ws.seg[:used]
            seg[:offset] = 0.0
            seg[offset : offset + hi - lo] = x[ch, lo:hi]
            seg[offset + hi - lo :] = 0.0
            peak = ws.peak[:length]
            np.abs(seg[half - 1 : half - 1 + length], out=peak)
            if phases:
                frames = np.lib.stride_tricks.sliding_window_view(seg, nfft)[::hop]
                spectrum = ws.spectrum[:count]
                np.fft.rfft(frames, axis=1, out=spectrum)
                product = ws.product[:count]
                np.multiply(spectrum[:, np.newaxis, :], spectra, out=product)
                values = ws.values[:count]
                np.fft.irfft(product, nfft, axis=2, out=values)
                kept = values[:, :, :hop]
                np.abs(kept, out=kept)
                between = ws.between[:count]
                np.max(kept, axis=1, out=between)
                np.maximum(peak, between.reshape(-1)[:length], out=peak)
            if ch == 0:
                out[b0:b1] = peak
            else:
                np.maximum(out[b0:b1], peak, out=out[b0:b1], casting="unsafe")


def oversampled_peak(samples: npt.ArrayLike, oversample: int = 4) -> Float32Array:
    """Per-sample peak envelope, shape ``(n,)``: the largest ``|x|`` over all channels at
    sample ``n`` and at ``oversample - 1`` interpolated instants between ``n`` and ``n + 1``.

    ``max(oversampled_peak(x))`` is :func:`handoff.analysis.loudness.true_peak` as a linear value
    (same kernel) -- except that the last sample's in-between values, which the meter does
    not read, are included here (they interpolate toward zero past the end).
    """
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"expected a (channels, samples) array, got shape {arr.shape}")
    factor = int(oversample)
    if factor < 1:
        raise ValueError(f"oversampling factor must be >= 1, got {oversample}")
    n = arr.shape[1]
    out = np.zeros(n, dtype=np.float32)
    if n == 0:
        return out
    spectra = _peak_spectra(factor)
    jobs = [
        functools.partial(_peak_part, arr, spectra, out, lo, min(n, lo + _PART_SAMPLES))
        for lo in range(0, n, _PART_SAMPLES)
    ]
    run_threads(jobs, _MAX_WORKERS)
    return out


class InterpolatedPeak:
    """The largest ``|x|`` at the in-between instants of :func:`oversampled_peak` (the same
    kernel), for a meter that needs only the maximum -- computed only where it can matter.

    For phase ``p`` the interpolated value is ``sum_j k_p[j] x[n - j]``, so
    ``|value| <= sum_j |k_p[j]| * max |x[n - j]|`` (the triangle inequality): no instant
    can exceed :attr:`gain` (the largest ``sum_j |k_p[j]|``, 2.35 at 4x) times the largest
    sample within the kernel's reach. A frame of about 1,000 samples whose samples, with
    the kernel's reach either side, stay at or under ``floor / gain`` cannot raise a peak
    that is already ``floor``, and is not interpolated at all. The bound is exact, so the
    answer is the same as interpolating everything; on speech about 70 % of such frames
    are skipped (measured on an hour of the loudness benchmark's programme: 31 % of
    1,024-sample frames reach within 7.4 dB of the programme's sample peak). The frames
    that remain go through small FFTs (1,024 points, which stay in cache), many at a time.

    An instance keeps no state between calls (threads may share one).
    """

    __slots__ = ("_spectra", "_stride", "factor", "gain")

    def __init__(self, factor: int) -> None:
        if factor < 1:
            raise ValueError(f"oversampling factor must be >= 1, got {factor}")
        self.factor = int(factor)
        kernels = interpolation_kernels(self.factor)
        self.gain = float(np.max(np.sum(np.abs(kernels), axis=1), initial=0.0))
        """The largest sum of absolute kernel weights over the phases (the bound's factor)."""
        # Correlation with each kernel, as _peak_part does it, on frames of _SMALL_FFT.
        self._spectra = np.conj(np.fft.rfft(kernels[:, ::-1], _SMALL_FFT, axis=1))
        self._stride = _SMALL_FFT - 2 * TP_HALF_TAPS + 1  # instants per frame

    def peak(self, x: npt.NDArray[np.floating], start: int, stop: int, floor: float = 0.0) -> float:
        """``max(floor, |x|)`` over the in-between instants after samples ``start ..
        stop - 1`` of the 1-D ``x`` (zeros beyond its ends), skipping what cannot exceed
        ``floor`` (pass a value the caller's answer cannot be under, such as its sample
        peak: the larger it is, the less is interpolated)."""
        half = TP_HALF_TAPS
        phases = self._spectra.shape[0]
        if phases == 0 or stop <= start:
            return floor
        n = x.shape[0]
        hop = self._stride
        count = -(-(stop - start) // hop)
        # seg[i] = x[start - half + 1 + i]; frame f is seg[f hop : f hop + _SMALL_FFT].
        length = count * hop + 2 * half - 1
        lo, hi = start - half + 1, start - half + 1 + length
        seg = np.zeros(length)
        seg[max(0, -lo) : length - max(0, hi - n)] = x[max(0, lo) : min(n, hi)]
        # Frame f reads seg[f hop .. f hop + hop + 2 half - 2]: within the maxima of
        # its own hop and the next one (2 half - 1 < hop).
        grid = seg[: count * hop].reshape(count, hop)
        top = np.maximum(grid.max(axis=1), -grid.min(axis=1))
        tail = float(np.max(np.abs(seg[count * hop :]), initial=0.0))
        reach = np.maximum(top, np.append(top[1:], tail))
        valid_last = stop - start - (count - 1) * hop
        frames = np.lib.stride_tricks.sliding_window_view(seg, _SMALL_FFT)[::hop]
        best = floor
        needed = np.flatnonzero(reach * self.gain > best)
        if not needed.shape[0]:
            return best
        # The loudest frame first: its peak usually lifts the floor over more frames.
        loudest = needed[np.argmax(reach[needed])]
        best = max(best, self._frames_peak(frames, loudest[np.newaxis], count - 1, valid_last))
        rest = needed[needed != loudest]
        while rest.shape[0]:
            rest = rest[reach[rest] * self.gain > best]
            best = max(best, self._frames_peak(frames, rest[:_SMALL_BATCH], count - 1, valid_last))
            rest = rest[_SMALL_BATCH:]
        return best

    def _frames_peak(
        self, frames: FloatArray, which: npt.NDArray[np.intp], last: int, valid_last: int
    ) -> float:
        if not which.shape[0]:
            return 0.0
        spectrum = np.fft.rfft(frames[which], axis=1)
        values = np.fft.irfft(spectrum[:, np.newaxis, :] * self._spectra, _SMALL_FFT, axis=2)
        kept = values[:, :, : self._stride]
        if which[-1] == last:  # the last frame's instants stop at `stop`
            kept[-1, :, valid_last:] = 0.0
        # Rounded to float32 as oversampled_peak's envelope is, so that the answer does
        # not depend (in its last bits) on where a block boundary put the FFT frames.
        return float(np.float32(max(float(np.max(kept)), -float(np.min(kept)))))


Reader = Callable[[int, int], npt.NDArray[np.floating]]
"""``read(start, stop)``: samples ``start .. stop - 1`` of a signal, ``(channels, m)``."""


def _peak_spectra(factor: int) -> npt.NDArray[np.complex128]:
    kernels = interpolation_kernels(factor) if factor > 1 else np.zeros((0, 2 * TP_HALF_TAPS))
    return np.asarray(np.conj(np.fft.rfft(kernels[:, ::-1], _FFT_SIZE, axis=1)))


def _peak_window(
    read: Reader, n: int, spectra: npt.NDArray[np.complex128], start: int, stop: int
) -> Float32Array:
    """:func:`_peak_part` over ``[start, stop)`` of a signal of ``n`` samples given by
    ``read``: only the stretch the kernel reaches is read, and the FFT frames fall where
    they fall in the whole-signal pass, so the values are the same to the bit."""
    half = TP_HALF_TAPS
    w0, w1 = max(0, start - half + 1), min(n, stop + half)
    window = np.asarray(read(w0, w1))
    out = np.zeros(w1 - w0, dtype=np.float32)
    _peak_part(window, spectra, out, start - w0, stop - w0)
    return out[start - w0 : stop - w0]


def oversampled_peak_parts(
    read: Reader, n: int, oversample: int = 4
) -> Iterator[tuple[int, Float32Array]]:
    """:func:`oversampled_peak` of a signal of ``n`` samples read a stretch at a time:
    ``(start, envelope[start : start + m])`` in order, the same values as the whole-array
    function. At most a few parts of about 2^20 samples are held at a time."""
    factor = int(oversample)
    if factor < 1:
        raise ValueError(f"oversampling factor must be >= 1, got {oversample}")
    spectra = _peak_spectra(factor)
    group = _PART_SAMPLES * _MAX_WORKERS
    for g in range(0, n, group):
        starts = list(range(g, min(n, g + group), _PART_SAMPLES))
        jobs = [
            functools.partial(_peak_window, read, n, spectra, lo, min(n, lo + _PART_SAMPLES))
            for lo in starts
        ]
        yield from zip(starts, run_threads(jobs, _MAX_WORKERS), strict=True)


def oversampled_peak_runs(
    read: Reader,
    n: int,
    starts: npt.ArrayLike,
    stops: npt.ArrayLike,
    oversample: int = 4,
) -> list[Float32Array]:
    """:func:`oversampled_peak` over the stretches ``[starts[i], stops[i])`` of a signal of
    ``n`` samples given by ``read``: one array per stretch, the values of
    :func:`oversampled_peak_in`.

    The stretches (sorted, not overlapping) are copied end to end into one array, each with
    its real neighbours for the interpolation kernel (+/- 16 samples) and zeros between, so
    one batched pass does them all.
    """
    a = np.asarray(starts, dtype=np.int64)
    b = np.asarray(stops, dtype=np.int64)
    if a.shape[0] == 0:
        return []
    half = TP_HALF_TAPS
    lo = np.maximum(a - half, 0)
    hi = np.minimum(b + half, n)
    length = hi - lo
    # Each context stretch followed by 2 * half zeros, so stretches do not see each other.
    offsets = np.concatenate(([0], np.cumsum(length + 2 * half)[:-1]))
    compact: npt.NDArray[np.floating] | None = None
    for o, s0, s1 in zip(offsets.tolist(), lo.tolist(), hi.tolist(), strict=True):
        part = np.asarray(read(s0, s1))
        if compact is None:
            size = int(offsets[-1] + length[-1] + 2 * half)
            compact = np.zeros((part.shape[0], size), dtype=part.dtype)
        compact[:, o : o + s1 - s0] = part
    assert compact is not None
    env = oversampled_peak(compact, oversample)
    return [
        env[o + x0 - s0 : o + x1 - s0]
        for o, s0, x0, x1 in zip(offsets.tolist(), lo.tolist(), a.tolist(), b.tolist(), strict=True)
    ]


def oversampled_peak_in(
    samples: npt.ArrayLike, starts: npt.ArrayLike, stops: npt.ArrayLike, oversample: int = 4
) -> Float32Array:
    """:func:`oversampled_peak` over the stretches ``[starts[i], stops[i])`` only (zeros
    elsewhere): the same values as the whole-signal envelope there
    (:func:`oversampled_peak_runs` on an array)."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    n = arr.shape[1]
    out = np.zeros(n, dtype=np.float32)
    a = np.asarray(starts, dtype=np.int64)
    b = np.asarray(stops, dtype=np.int64)
    runs = oversampled_peak_runs(lambda s0, s1: arr[:, s0:s1], n, a, b, oversample)
    for x0, x1, env in zip(a.tolist(), b.tolist(), runs, strict=True):
        out[x0:x1] = env
    return out


# --- bins, threshold, level ------------------------------------------------------------------


def bin_samples(sample_rate: int) -> int:
    """Samples per analysis bin at ``sample_rate``: ``round(sample_rate * BIN_S)``."""
    return max(1, round(_check_rate(sample_rate) * BIN_S))


def bin_power(samples: npt.ArrayLike, sample_rate: int) -> tuple[FloatArray, int]:
    """Mean square per 1 ms bin, the loudest channel per bin; and the bin size in samples.

    ``samples`` is ``(channels, n)`` or ``(n,)``, any int or float dtype (integers scaled
    to full scale 1.0, :func:`full_scale`). There are ``ceil(n / size)`` bins; the short
    last bin is the mean of what it holds. On this scale a full-scale sine is 0.5 (-3 dB).
    """
    arr = as_channels(samples)
    size = bin_samples(sample_rate)
    n = arr.shape[1]
    count = -(-n // size)
    power = np.zeros(count)
    if count == 0:
        return power, size
    scale = full_scale(arr.dtype)
    step = max(1, _BLOCK_SAMPLES // size) * size
    for start in range(0, n, step):
        chunk = to_float(arr[:, start : start + step], scale)
        whole = chunk.shape[1] // size
        first = start // size
        squares = chunk[:, : whole * size].reshape(chunk.shape[0], whole, size)
        power[first : first + whole] = np.max(np.mean(squares * squares, axis=2), axis=0)
        if chunk.shape[1] > whole * size:  # the short last bin
            rest = chunk[:, whole * size :]
            power[first + whole] = float(np.max(np.mean(rest * rest, axis=1)))
    return power, size


class _ChunkedBins:
    """Bins kept as a list of float32 chunks, read (forwards or backwards) by slices of
    consecutive bins, which come back as float64: the search of :func:`_first_sound`
    without one full-length array."""

    __slots__ = ("_chunks", "_reverse", "_starts", "shape")

    def __init__(self, chunks: list[Float32Array], *, reverse: bool = False) -> None:
        self._chunks = chunks
        self._starts = np.concatenate(([0], np.cumsum([c.shape[0] for c in chunks]))).astype(
            np.int64
        )
        self._reverse = reverse
        self.shape = (int(self._starts[-1]),)

    def reversed(self) -> _ChunkedBins:
        return _ChunkedBins(self._chunks, reverse=not self._reverse)

    def __getitem__(self, where: slice) -> FloatArray:
        n = self.shape[0]
        lo, hi, step = where.indices(n)
        if step != 1:
            raise ValueError("only slices of consecutive bins")
        if hi <= lo:
            return np.zeros(0)
        if self._reverse:
            return self._forward(n - hi, n - lo)[::-1]
        return self._forward(lo, hi)

    def _forward(self, lo: int, hi: int) -> FloatArray:
        first = int(np.searchsorted(self._starts, lo, side="right")) - 1
        last = int(np.searchsorted(self._starts, hi, side="left"))
        parts = [
            c[max(0, lo - int(s)) : hi - int(s)]
            for c, s in zip(self._chunks[first:last], self._starts[first:last], strict=True)
        ]
        return np.concatenate(parts).astype(np.float64)


class BinPowers:
    """:func:`bin_power` of a signal given a block at a time, in order, and the edge
    silence (:func:`edge_silence`) it implies.

    :meth:`add` takes ``(channels, m)`` blocks of float samples at full scale 1.0 (blocks
    may have any length; a bin split between two blocks is completed by the next one).
    Kept: the 20 ms window means of the threshold in float64 (exact), and every bin in
    float32 for the onset search (4 bytes per ms, 14 MB an hour) -- never the samples.
    So :meth:`edges` gives :func:`edge_silence` of the whole signal, unless a bin or a
    20 ms level lies within float32 rounding (6e-8 relative) of the threshold.
    """

    __slots__ = ("_chunks", "_group", "_rest", "_windows", "samples", "size")

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.size = bin_samples(sample_rate)
        self.samples = 0
        """Samples per channel added so far."""
        self._chunks: list[Float32Array] = []
        self._windows: list[FloatArray] = []
        self._group = np.zeros(0)  # float64 bins not yet making a whole 20 ms window
        self._rest = np.zeros((channels, 0))  # samples not yet making a whole bin

    def add(self, block: npt.NDArray[np.floating]) -> None:
        size = self.size
        self.samples += int(block.shape[1])
        if self._rest.shape[1]:
            block = np.concatenate((self._rest, block), axis=1)
        whole = block.shape[1] // size
        if whole:
            grid = block[:, : whole * size].reshape(block.shape[0], whole, size)
            squares = np.square(grid, dtype=np.float64)  # float32 blocks widened exactly
            self._keep(np.max(np.mean(squares, axis=2), axis=0))
        self._rest = block[:, whole * size :].astype(np.float64)

    def _keep(self, bins: FloatArray) -> None:
        self._chunks.append(bins.astype(np.float32))
        group = np.concatenate((self._group, bins))
        count = group.shape[0] // WINDOW_BINS
        if count:
            # As silence_threshold_db computes them: the means of whole 20-bin windows.
            self._windows.append(group[: count * WINDOW_BINS].reshape(count, -1).mean(axis=1))
        self._group = group[count * WINDOW_BINS :]

    def _flush(self) -> None:
        if self._rest.shape[1]:  # the short last bin is the mean of what it holds
            rest = self._rest
            self._keep(np.array([float(np.max(np.mean(rest * rest, axis=1)))]))
            self._rest = rest[:, :0]

    def threshold_db(self) -> float:
        """:func:`silence_threshold_db` of all the bins."""
        self._flush()
        windows: FloatArray | None
        if self._windows:
            windows = np.concatenate(self._windows)
        else:  # shorter than one window: the programme is one window
            windows = np.array([float(np.mean(self._group))]) if self._group.shape[0] else None
        return _threshold_from_windows(windows)

    def edges(self, threshold_db: float | None = None) -> tuple[int, int]:
        """:func:`edge_silence` of the signal: samples of silence at its start and end."""
        self._flush()
        threshold = self.threshold_db() if threshold_db is None else threshold_db
        return _edges(_ChunkedBins(self._chunks), self.size, self.samples, _limit(threshold))

    def finish(self) -> FloatArray:
        """All the bins, as :func:`bin_power` gives them (one full-length array)."""
        self._flush()
        return _ChunkedBins(self._chunks)[:]


def silence_threshold_db(bins: FloatArray) -> float:
    """Level (dB re full-scale mean square) at or under which a stretch counts as silence.

    ``bins`` are :func:`bin_power` bins. The threshold follows the programme: its level is
    taken from consecutive 20 ms windows (the mean of 20 bins; a programme shorter than
    one window is one window), gated as BS.1770-4 Annex 1 gates blocks -- the windows above
    -70 dB (eq. (4)), then those within 10 dB of their mean (eq. (5)-(6)); the level is the
    mean of what is left. The threshold sits 35 dB under that level, never under -70 dB,
    and is -70 dB when no window is above -70 dB. 35 dB puts room tone and breaths under
    a voice (typically 40-60 dB down) on the silent side, while a voice at any normalised
    level stays well above it (measured: a relative threshold found 118 of 121 true
    pauses where fixed dBFS ones failed). On this scale a full-scale sine is -3 dB.
    """
    count = bins.shape[0] // WINDOW_BINS
    windows: FloatArray | None
    if count == 0:
        windows = np.array([float(np.mean(bins))]) if bins.shape[0] else None
    else:
        windows = bins[: count * WINDOW_BINS].reshape(count, -1).mean(axis=1)
    return _threshold_from_windows(windows)


def _threshold_from_windows(windows: FloatArray | None) -> float:
    """:func:`silence_threshold_db` from its 20 ms window means (None: no audio)."""
    if windows is None:
        return _FLOOR_DB
    active = windows[windows > _limit(_FLOOR_DB)]
    if active.shape[0] == 0:
        return _FLOOR_DB
    gate = float(np.mean(active)) * _limit(_GATE_DB)
    level = float(np.mean(active[active > gate]))
    return max(_FLOOR_DB, 10.0 * math.log10(level) - _MARGIN_DB)


def centred_level(bins: FloatArray, window_bins: int = WINDOW_BINS) -> FloatArray:
    """The mean of the ``window_bins`` bins centred on each bin (zeros beyond the ends).

    Element ``k`` is the mean of bins ``k - w // 2 .. k - w // 2 + w - 1``, always divided
    by ``w``: near the ends the missing bins count as silence.
    """
    w = int(window_bins)
    if w < 1 or w != window_bins:
        raise ValueError(f"window must be a positive whole number of bins, got {window_bins}")
    n = bins.shape[0]
    csum = np.concatenate(([0.0], np.cumsum(bins)))
    lo = np.clip(np.arange(n) - w // 2, 0, n)
    hi = np.clip(np.arange(n) - w // 2 + w, 0, n)
    return np.asarray((csum[hi] - csum[lo]) / w, dtype=np.float64)


def _causal_level(
    bins: FloatArray | _ChunkedBins, start: int, lo_end: int, hi_end: int, *, partial: bool
) -> FloatArray:
    """The 20 ms level of the windows ending at bins ``lo_end .. hi_end - 1``.

    Bins before ``start`` are not looked at. A window reaching before ``start`` is the
    mean of the bins it holds when ``partial``, else their sum over 20 (silence before).
    """
    w = WINDOW_BINS
    lo = max(start, lo_end - (w - 1))
    csum = np.concatenate(([0.0], np.cumsum(bins[lo:hi_end])))
    ends = np.arange(lo_end - lo, hi_end - lo)  # window ends, relative to lo
    starts = np.maximum(ends - w + 1, 0)
    total = csum[ends + 1] - csum[starts]
    if partial:
        return np.asarray(total / (ends - starts + 1), dtype=np.float64)
    return np.asarray(total / w, dtype=np.float64)


def _first_above(bins: FloatArray | _ChunkedBins, limit: float, floor: int, end: int) -> int | None:
    """The first bin above ``limit`` in the 20 ms window ending at ``end``, not before
    ``floor``."""
    first = max(floor, end - WINDOW_BINS + 1)
    above = np.flatnonzero(bins[first : end + 1] > limit)
    return first + int(above[0]) if above.shape[0] else None


def _first_sound(
    bins: FloatArray | _ChunkedBins, limit: float, start: int, *, partial: bool
) -> int | None:
    """The onset rule from bin ``start`` on: the first bin above ``limit`` inside the first
    20 ms window whose level is above it; None when there is no sound.

    What came before ``start`` is not looked at: with ``partial`` the first windows are
    shorter (the mean of what they hold), else what is missing counts as silence.
    The levels are computed :data:`_SEARCH_BINS` at a time, so a search that ends soon
    costs little however long the programme is.
    """
    n = bins.shape[0]
    pos = start
    while pos < n:
        hi = min(n, pos + _SEARCH_BINS)
        loud = np.flatnonzero(_causal_level(bins, start, pos, hi, partial=partial) > limit)
        if loud.shape[0]:
            end = pos + int(loud[0])
            # A window's mean is never above its largest bin, so this finds one (the
            # fallback covers a sum rounded over the limit).
            found = _first_above(bins, limit, start, end)
            return end if found is None else found
        pos = hi
    return None


# --- the programme's edges and onsets --------------------------------------------------------


def edge_silence(
    bins: FloatArray, size: int, samples: int, threshold_db: float | None = None
) -> tuple[int, int]:
    """Samples of silence before the first sound and after the last, from :func:`bin_power`
    bins of a signal ``samples`` long with bins of ``size`` samples.

    The threshold defaults to :func:`silence_threshold_db` of the bins: one threshold for
    the programme. The first sound is found by the onset rule, the windows at the very
    start as long as the audio so far (a sound in the first bin counts); the last sound by
    the same rule on the bins read backwards, so it ends at the end of a bin counted from
    the start. An all-silent signal has ``samples`` of silence at either end.
    """
    threshold = silence_threshold_db(bins) if threshold_db is None else threshold_db
    return _edges(bins, size, samples, _limit(threshold))


def _edges(
    bins: FloatArray | _ChunkedBins, size: int, samples: int, limit: float
) -> tuple[int, int]:
    backwards = bins.reversed() if isinstance(bins, _ChunkedBins) else bins[::-1]
    first = _first_sound(bins, limit, 0, partial=True)
    last = _first_sound(backwards, limit, 0, partial=True)
    leading = samples if first is None else min(first * size, samples)
    count = bins.shape[0]
    trailing = samples if last is None else samples - min((count - last) * size, samples)
    return leading, trailing


def leading_silence(
    samples: npt.ArrayLike, sample_rate: int, *, threshold_db: float | None = None
) -> int:
    """Samples from the start to the first sound, to the 1 ms bin (the onset rule).

    The threshold defaults to :func:`silence_threshold_db` of the programme. The windows
    at the very start are as long as the audio so far (a sound in the first bin counts).
    An all-silent signal returns its length. (:func:`edge_silence` gives both ends.)
    """
    arr = as_channels(samples)
    bins, size = bin_power(arr, sample_rate)
    return edge_silence(bins, size, int(arr.shape[1]), threshold_db)[0]


def trailing_silence(
    samples: npt.ArrayLike, sample_rate: int, *, threshold_db: float | None = None
) -> int:
    """Samples from the last sound to the end: the onset rule on the bins read backwards,
    against the programme's one threshold (:func:`edge_silence`)."""
    arr = as_channels(samples)
    bins, size = bin_power(arr, sample_rate)
    return edge_silence(bins, size, int(arr.shape[1]), threshold_db)[1]


def onsets(
    samples: npt.ArrayLike, sample_rate: int, *, threshold_db: float | None = None
) -> list[int]:
    """Sample positions (1 ms resolution, bin starts) where sound starts after silence.

    Silence is where the causal 20 ms level is at or under the threshold (default
    :func:`silence_threshold_db`); each time the level rises above it, the onset is the
    first bin above the threshold inside that window, not before the silence began (the
    rule of :func:`leading_silence`, whose answer is the first onset when there is sound).
    Every onset in the programme, in order; any dip of the 20 ms level to the threshold is
    a silence (there is no minimum length).
    """
    arr = as_channels(samples)
    bins, size = bin_power(arr, sample_rate)
    limit = _limit(silence_threshold_db(bins) if threshold_db is None else threshold_db)
    n = bins.shape[0]
    found: list[int] = []
    loud_before = False
    quiet_from = 0  # first window end of the current silence
    # The same blocks and levels as leading_silence, so the first onsets agree exactly.
    for pos in range(0, n, _SEARCH_BINS):
        hi = min(n, pos + _SEARCH_BINS)
        loud = _causal_level(bins, 0, pos, hi, partial=True) > limit
        changes = np.flatnonzero(np.diff(loud, prepend=loud_before))
        for i in changes.tolist():
            end = pos + i
            if not loud[i]:
                quiet_from = end
                continue
            # None: the window is loud only by bins of the sound before the silence.
            onset = _first_above(bins, limit, quiet_from, end)
            if onset is not None:
                found.append(onset * size)
        loud_before = bool(loud[-1])
    return found


# --- pauses ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pause:
    """A silence inside the programme, in samples of the analysed signal."""

    start: int
    """First silent sample (one past the sound before)."""
    end: int
    """One past the last silent sample (the onset of the sound after)."""

    @property
    def middle(self) -> int:
        return (self.start + self.end) // 2

    @property
    def length(self) -> int:
        return self.end - self.start


class SoundMap:
    """Where a programme is sound, on 1 ms bins, against one threshold.

    Positions are bin indices (bin ``k`` is samples ``k * size .. (k + 1) * size - 1``).
    ``threshold_db`` defaults to :func:`silence_threshold_db` of the programme.
    """

    __slots__ = ("bins", "centred", "limit", "rate", "samples", "silent", "size", "threshold_db")

    def __init__(
        self, samples: npt.ArrayLike, sample_rate: int, *, threshold_db: float | None = None
    ) -> None:
        arr = as_channels(samples)
        rate = _check_rate(sample_rate)
        bins, size = bin_power(arr, rate)
        self._set(bins, size, int(arr.shape[1]), rate, threshold_db)

    @classmethod
    def from_bins(
        cls,
        bins: FloatArray,
        samples: int,
        sample_rate: int,
        *,
        threshold_db: float | None = None,
    ) -> SoundMap:
        """The map of a signal of ``samples`` samples whose :func:`bin_power` bins are
        ``bins`` (measured a block at a time, say): the same map as from the samples."""
        made = cls.__new__(cls)
        rate = _check_rate(sample_rate)
        made._set(
            np.asarray(bins, dtype=np.float64), bin_samples(rate), int(samples), rate, threshold_db
        )
        return made

    def _set(
        self, bins: FloatArray, size: int, samples: int, rate: int, threshold_db: float | None
    ) -> None:
        self.rate = rate
        self.samples = samples
        """Length of the analysed signal, samples."""
        self.bins, self.size = bins, size
        self.threshold_db = (
            silence_threshold_db(self.bins) if threshold_db is None else float(threshold_db)
        )
        self.limit = _limit(self.threshold_db)
        """The threshold as a bin power."""
        self.centred = centred_level(self.bins)
        """Centred 20 ms level per bin (:func:`centred_level`)."""
        self.silent = self.centred <= self.limit
        """Per bin: the centred level is at or under the threshold."""

    def sound_seconds(self) -> float:
        """Seconds of sound: consecutive 20 ms windows whose level is above the threshold."""
        w = WINDOW_BINS
        count = self.bins.shape[0] // w
        windows = self.bins[: count * w].reshape(count, w).mean(axis=1)
        loud = int(np.count_nonzero(windows > self.limit))
        return float(loud * w * self.size) / self.rate

    def onset_after(self, start_bin: int) -> int | None:
        """The first sound bin at or after ``start_bin`` (the onset rule, what comes before
        ``start_bin`` counting as silence); None if there is no sound after it."""
        return _first_sound(self.bins, self.limit, start_bin, partial=False)

    def end_before(self, stop_bin: int) -> int | None:
        """One past the last sound bin before ``stop_bin`` (the onset rule read backwards,
        what comes from ``stop_bin`` on counting as silence); None if there is none."""
        n = self.bins.shape[0]
        found = _first_sound(self.bins[::-1], self.limit, n - stop_bin, partial=False)
        return None if found is None else n - found

    def pauses(self, lo: int, hi: int, min_bins: int) -> list[tuple[int, int]]:
        """Runs ``(first, one past last)`` of silent bins within ``[lo, hi)`` at least
        ``min_bins`` long (silent: :attr:`silent`)."""
        silent = self.silent[lo:hi].astype(np.int8)
        edges = np.diff(np.concatenate(([0], silent, [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        keep = (ends - starts) >= min_bins
        return [(lo + int(a), lo + int(b)) for a, b in zip(starts[keep], ends[keep], strict=True)]

    def quietest(self, a: int, b: int) -> int:
        """The bin of lowest centred level in ``[a, b)`` (ties: nearest the middle)."""
        levels = self.centred[a:b]
        low = float(np.min(levels))
        ties = np.flatnonzero(levels <= low * (1.0 + 1e-9))
        mid = (b - a - 1) / 2.0
        return a + int(ties[np.argmin(np.abs(ties - mid))])

    def programme(self) -> tuple[int, int] | None:
        """``(first sound bin, one past the last)``: :meth:`onset_after` the start and
        :meth:`end_before` the end; None when there is no sound."""
        first = self.onset_after(0)
        last = self.end_before(self.bins.shape[0])
        if first is None or last is None:
            return None
        return first, last

    def pause_list(self, min_pause_s: float = 0.3) -> list[Pause]:
        """The pauses of :func:`find_pauses`, in samples."""
        if not (math.isfinite(min_pause_s) and min_pause_s > 0.0):
            raise ValueError(f"minimum pause must be a positive number of seconds: {min_pause_s}")
        span = self.programme()
        if span is None:
            return []
        min_samples = max(1, round(min_pause_s * self.rate))
        found: list[Pause] = []
        # Every silent run inside the programme is a candidate: its length on the centred
        # level is about 19 ms short of the silence's, which only its edges tell.
        for a, _ in self.pauses(span[0], span[1], 1):
            before = self.end_before(a)
            after = self.onset_after(a)
            if before is None or after is None:
                continue
            start, end = before * self.size, min(after * self.size, self.samples)
            if found and start < found[-1].end:  # no sound between two runs: one pause
                start = found.pop().start
            found.append(Pause(start, max(start, end)))
        return [p for p in found if p.length >= min_samples]


def find_pauses(
    samples: npt.ArrayLike,
    sample_rate: int,
    *,
    min_pause_s: float = 0.3,
    threshold_db: float | None = None,
) -> list[Pause]:
    """The silences inside the programme at least ``min_pause_s`` long, in order.

    Found as prep finds them: runs of bins whose centred 20 ms level is at or under the
    threshold (default :func:`silence_threshold_db`), between the programme's first and
    last sound -- the leading and trailing silence are not pauses. Each run's edges are then
    set by the onset rule: a pause starts one past the last sound bin before the run
    (:meth:`SoundMap.end_before`) and ends at the first sound bin after it
    (:meth:`SoundMap.onset_after`), so it is where the silence is, to the 1 ms bin. Its
    length, in samples, must be at least ``round(min_pause_s * sample_rate)``.
    """
    return SoundMap(samples, sample_rate, threshold_db=threshold_db).pause_list(min_pause_s)
