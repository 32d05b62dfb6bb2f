"""Programme loudness, true peak and edge silence of decoded audio (numpy only).

What is measured, and where each rule comes from:

* Integrated loudness -- ITU-R BS.1770-4, Annex 1: K-weighting (a high-shelf "pre-filter"
  then the "RLB" high-pass), mean square per channel over 400 ms gating blocks that overlap
  by 75 %, channel weights, an absolute gate at -70 LKFS and a relative gate 10 LU below
  the loudness of the blocks that passed the absolute gate. LUFS and LKFS are the same unit.
* True peak -- BS.1770-4, Annex 2: the peak of the signal oversampled so that peaks
  between samples show. The Annex's 4x filter under-reads at low sample rates, so the
  factor here is ``max(4, ceil(192000 / rate))``: every rate is looked at on a grid of at
  least 192 kHz, which is what FFmpeg's ``ebur128`` does (it resamples to 192 kHz).
* Loudness range -- EBU Tech 3342: 3 s short-term loudness (EBU Tech 3341 section 2.2)
  every 100 ms, gated at -70 LUFS absolute and 20 LU below the mean, LRA = 95th minus 10th
  percentile of what is left.
* Leading/trailing silence -- not a broadcast standard; the rule (1 ms bins, a threshold
  relative to the programme's level, 20 ms windows) is :mod:`handoff.analysis.dsp`'s, here
  in seconds.

Arrays are ``(channels, samples)`` (a 1-D array is one channel), any float or integer
dtype; floating point full scale is 1.0, integer full scale 2^(bits-1). Work is done a
block at a time in float64, so the only full-length arrays are the caller's; long signals
and several channels are split into independent jobs run on up to four threads (numpy's
FFTs release the GIL).

The module never prints; bad arguments raise ``ValueError`` -- for a sample rate too low
to measure, its subclass :class:`~handoff.errors.UnmeasurableError`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from handoff.analysis import dsp
from handoff.analysis.dsp import TP_HALF_TAPS, as_channels, full_scale, to_float
from handoff.analysis.narration import NarrationFacts, narration_facts
from handoff.errors import UnmeasurableError
from handoff.files.find import check_readable
from handoff.jobs.parallel import run_threads, usable_cores
from handoff.media.arrays import FloatArray
from handoff.media.audio import DecodedAudio, ShortReadError, audio_blocks, pcm_wav_blocks

__all__ = [
    "SEGMENTS_PER_BLOCK",
    "Biquad",
    "LoudnessMeter",
    "LoudnessReport",
    "ProgrammeLoudness",
    "channel_weights",
    "gated_integrated",
    "integrated_loudness",
    "is_dual_mono",
    "k_weighting",
    "leading_silence_s",
    "loudness_range",
    "measure",
    "measure_file",
    "read_segment_energy",
    "sample_peak",
    "silence_threshold_dbfs",
    "trailing_silence_s",
    "true_peak",
    "true_peak_oversampling",
    "weighted_segment_energy",
    "window_loudness",
]


MEASURED_AS_MONO = "mono content of dual-mono"
MEASURED_AS_IS = "as is"

# --- BS.1770-4 constants ------------------------------------------------------------------
# The K-weighting filters are specified in BS.1770-4 Tables 1 and 2 as biquad coefficients
# for 48 kHz only. These analogue prototype parameters reproduce both tables to their
# printed precision through a bilinear transform pre-warped at f0 (checked in tests), and
# so give the same curve at any other rate.
_SHELF_F0_HZ = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
# Gain of the shelf numerator's s/Q term, as a power of its high-frequency gain Vh (close
# to 1/2: a shelf's gain at its corner is about the geometric mean of its two plateaus).
# The five values are the published fit to Tables 1 and 2 that libebur128 and FFmpeg
# also start from.
_SHELF_MID_EXPONENT = 0.4996667741545416
_HIGHPASS_F0_HZ = 38.13547087602444
_HIGHPASS_Q = 0.5003270373238773

# BS.1770-4 eq. (2): L = -0.691 + 10 log10(sum G_i z_i). The -0.691 cancels the K-filter's
# gain at 997 Hz so that a 0 dBFS sine at 997 Hz in one front channel reads -3.01 LKFS.
_LOUDNESS_OFFSET = -0.691
_ABSOLUTE_GATE_LKFS = -70.0  # BS.1770-4 Annex 1, eq. (4)
_RELATIVE_GATE_LU = -10.0  # BS.1770-4 Annex 1, eq. (5)-(6)
SEGMENTS_PER_BLOCK = 4
"""100 ms steps per 400 ms gating block (BS.1770-4 Annex 1: blocks overlap by 75 %)."""

# EBU Tech 3342 section 3 (LRA): 3 s short-term windows, -20 LU relative gate, and the
# 10th / 95th percentiles of the gated distribution.
_LRA_SEGMENTS = 30
_LRA_RELATIVE_GATE_LU = -20.0
_LRA_LOW_PERCENTILE = 10.0
_LRA_HIGH_PERCENTILE = 95.0

# BS.1770-4 Table 3: weights for L, R, C = 1.0; Ls, Rs = 1.41 (+1.5 dB); LFE not measured.
_SURROUND_WEIGHT = 1.41

# How far the K-weighting impulse response is kept: until the slowest pole has decayed by
# e^-45 (about 1e-20). Beyond that the tail is below float64 resolution, so the FIR below
# is the IIR of Annex 1 to rounding error (checked against a direct-form loop in tests).
_IR_DECAY_NEPERS = 45.0

# True peak: the oversampled grid is at least this fine (FFmpeg ebur128 uses 192 kHz).
_TRUE_PEAK_GRID_HZ = 192_000

# Dual-mono: the two channels differ by at most this much (full scale = 1.0): -80 dBFS,
# about 3 LSB at 16 bits, so independent dither or rounding still counts as identical.
_DUAL_MONO_TOLERANCE = 1e-4

_BLOCK_SAMPLES = 1 << 18  # working block size (samples per channel) for streaming passes
_PART_SAMPLES = 1 << 21  # samples per K-weighting job when spreading work over cores
_MAX_WORKERS = 4


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoudnessReport:
    """BS.1770-4 / EBU R128 measurements of one programme."""

    integrated_lufs: float
    """Gated integrated loudness; ``-inf`` when every block is gated out (or < 400 ms)."""
    true_peak_dbtp: float
    """Peak of the oversampled signal over all channels, dBTP; ``-inf`` for digital silence."""
    sample_peak_dbfs: float
    """Largest absolute sample over all channels, dBFS; ``-inf`` for digital silence."""
    loudness_range_lu: float | None
    """EBU Tech 3342 LRA; None when no 3 s short-term window passes the gates."""
    channels_measured: int
    """Channels that entered the loudness sum (1 for dual-mono measured as mono)."""
    measured_as: str
    """``"mono content of dual-mono"`` or ``"as is"``."""
    dual_mono: bool
    """The input had two channels carrying the same signal."""


@dataclass(frozen=True, slots=True)
class Biquad:
    """One second-order section: ``y = b0 x + b1 x[-1] + b2 x[-2] - a1 y[-1] - a2 y[-2]``."""

    b: tuple[float, float, float]
    a: tuple[float, float, float]
    """``a[0]`` is always 1.0."""


# --- input handling ------------------------------------------------------------------------


MIN_SAMPLE_RATE = 4000
"""Below about 3.4 kHz the 1.68 kHz shelf of the K-weighting lies above Nyquist."""


def _check_rate(sample_rate: int) -> int:
    rate = int(sample_rate)
    if rate != sample_rate:
        raise ValueError(f"sample rate must be an integer, got {sample_rate}")
    if rate < MIN_SAMPLE_RATE:
        raise UnmeasurableError(
            f"sample rate {rate} Hz is too low to measure loudness (BS.1770's K-weighting "
            f"needs at least {MIN_SAMPLE_RATE} Hz)"
        )
    return rate


def _db(power_or_amplitude: float, *, power: bool) -> float:
    if power_or_amplitude <= 0.0 or not math.isfinite(power_or_amplitude):
        return float("-inf") if power_or_amplitude <= 0.0 else float("inf")
    return (10.0 if power else 20.0) * math.log10(power_or_amplitude)


# --- K-weighting -----------------------------------------------------------------------------


def k_weighting(sample_rate: int) -> tuple[Biquad, Biquad]:
    """The two K-weighting stages (pre-filter shelf, RLB high-pass) for ``sample_rate``.

    BS.1770-4 Annex 1 gives them only at 48 kHz (Tables 1, 2). Each is the bilinear
    transform of a second-order analogue section with the frequency axis pre-warped at its
    f0 (``K = tan(pi f0 / fs)``), which puts the corner of the curve at the same place for
    every rate; at 48 kHz the result equals the tables. The high-pass keeps the tables'
    unnormalised numerator (1, -2, 1), as BS.1770 meters do.
    """
    fs = _check_rate(sample_rate)

    # Pre-filter: H(s) = (Vh s^2 + Vb s / Q + 1) / (s^2 + s / Q + 1) with s normalised to
    # the corner; s -> (1/K)(1 - z^-1)/(1 + z^-1), multiplied through by K^2 (1 + z^-1)^2.
    k = math.tan(math.pi * _SHELF_F0_HZ / fs)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**_SHELF_MID_EXPONENT
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = Biquad(
        b=(
            (vh + vb * k / _SHELF_Q + k * k) / a0,
            2.0 * (k * k - vh) / a0,
            (vh - vb * k / _SHELF_Q + k * k) / a0,
        ),
        a=(1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _SHELF_Q + k * k) / a0),
    )

    # RLB high-pass: H(s) = s^2 / (s^2 + s / Q + 1), same substitution.
    k = math.tan(math.pi * _HIGHPASS_F0_HZ / fs)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    highpass = Biquad(
        b=(1.0, -2.0, 1.0),
        a=(1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HIGHPASS_Q + k * k) / a0),
    )
    return shelf, highpass


def _k_weighting_ir(sample_rate: int) -> FloatArray:
    """Impulse response of both K-weighting stages in cascade, kept until it has decayed.

    Running an IIR sample by sample is too slow in numpy, so the cascade is applied as an
    FIR by FFT convolution. Both sections are stable; the RLB high-pass has the slowest
    poles (radius about 1 - 2 pi 38 Hz / fs). The response is cut after it has decayed by
    ``_IR_DECAY_NEPERS``, which leaves an error far below float64 rounding.
    """
    sections = k_weighting(sample_rate)
    radius = max(float(np.max(np.abs(np.roots(s.a)))) for s in sections)
    # The high-pass has two nearly equal poles, whose response decays like n r^n: allow
    # a further log(n) worth of samples for that factor.
    length = math.ceil(_IR_DECAY_NEPERS / -math.log(radius))
    length = int(length + math.ceil(math.log(length) / -math.log(radius)))
    # Frequency sampling on a grid 4x longer than the kept length: time aliasing adds
    # h[n + nfft], which has decayed by a further e^-(3 * 45).
    nfft = 1 << (4 * length - 1).bit_length()
    z1 = np.exp(-2j * np.pi * np.arange(nfft // 2 + 1) / nfft)  # z^-1 on the unit circle
    response = np.ones_like(z1)
    for s in sections:
        num = s.b[0] + s.b[1] * z1 + s.b[2] * z1 * z1
        den = s.a[0] + s.a[1] * z1 + s.a[2] * z1 * z1
        response *= num / den
    return np.fft.irfft(response, nfft)[:length]


def _fir_blocks(x: npt.NDArray[np.generic], scale: float, h: FloatArray) -> Iterator[FloatArray]:
    """Yield consecutive pieces of ``(x / scale) * h``, truncated to ``len(x)``, in order.

    Overlap-add FFT convolution (causal, zero initial state). Many FFT blocks are
    transformed in one batched call; only the tail of the last block is carried over.
    """
    n = x.shape[0]
    taps = h.shape[0]
    nfft = 1 << max(15, (4 * taps - 1).bit_length())
    step = nfft - taps + 1  # input samples per FFT block
    spectrum = np.fft.rfft(h, nfft)
    blocks_per_batch = max(1, _BLOCK_SAMPLES // step)
    carry = np.zeros(taps - 1)
    for start in range(0, n, step * blocks_per_batch):
        chunk = to_float(x[start : start + step * blocks_per_batch], scale)
        count = -(-chunk.shape[0] // step)
        padded = np.zeros(count * step)
        padded[: chunk.shape[0]] = chunk
        conv = np.fft.irfft(np.fft.rfft(padded.reshape(count, step), nfft) * spectrum, nfft)
        out = conv[:, :step].copy()
        # Each block's tail (taps - 1 samples) overlaps the start of the next one.
        out[1:, : taps - 1] += conv[:-1, step : step + taps - 1]
        out[0, : taps - 1] += carry
        carry = conv[-1, step : step + taps - 1].copy()
        yield out.reshape(-1)[: chunk.shape[0]]


def _segment_bounds(n_samples: int, sample_rate: int) -> npt.NDArray[np.int64]:
    """Sample indices of 100 ms step boundaries ``0, fs/10, 2 fs/10, ...`` up to ``n``.

    Only whole steps are kept: like the standard's block index (BS.1770-4 eq. (3)), the
    partial step at the end never completes a block.
    """
    count = n_samples * 10 // sample_rate
    return (np.arange(count + 1, dtype=np.int64) * sample_rate) // 10


def _segment_energy_part(
    read: Callable[[int, int], npt.NDArray[np.generic]],
    scale: float,
    h: FloatArray,
    bounds: npt.NDArray[np.int64],
) -> FloatArray:
    """sum(z^2) per step between consecutive ``bounds``, z = K-weighted samples of one
    channel, ``read(start, stop)`` giving them.

    The FIR needs ``len(h) - 1`` samples of history, which are filtered and dropped, so
    a part of a long signal gives exactly what filtering the whole signal would.
    """
    first, last = int(bounds[0]), int(bounds[-1])
    pre = min(first, h.shape[0] - 1)
    rel = bounds - (first - pre)  # boundaries relative to the filtered stretch
    # Running energy at each boundary from per-piece cumulative sums: the FIR output is
    # consumed piece by piece and never held at full length.
    at_bounds = np.zeros(bounds.shape[0])
    total = 0.0
    pos = 0
    for piece in _fir_blocks(read(first - pre, last), scale, h):
        cumulative = np.cumsum(piece * piece)
        lo = int(np.searchsorted(rel, pos, side="right"))
        hi = int(np.searchsorted(rel, pos + piece.shape[0], side="right"))
        at_bounds[lo:hi] = total + cumulative[rel[lo:hi] - pos - 1]
        total += float(cumulative[-1])
        pos += piece.shape[0]
    return np.diff(at_bounds)


def weighted_segment_energy(
    arr: npt.NDArray[np.generic], sample_rate: int, weights: Sequence[float]
) -> tuple[FloatArray, FloatArray]:
    """Sum over channels of G_i * sum(z_i^2) per 100 ms step, and each step's length.

    z_i is channel i after K-weighting (BS.1770-4 Annex 1, Fig. 1 / eq. (1)). Block and
    window mean squares are then sums of consecutive steps divided by their length.
    """
    return read_segment_energy(
        lambda ch, a, b: arr[ch, a:b], arr.shape[1], sample_rate, weights, full_scale(arr.dtype)
    )


def read_segment_energy(
    read: Callable[[int, int, int], npt.NDArray[np.generic]],
    n_samples: int,
    sample_rate: int,
    weights: Sequence[float],
    scale: float = 1.0,
) -> tuple[FloatArray, FloatArray]:
    """:func:`weighted_segment_energy` of a signal of ``n_samples`` samples that
    ``read(channel, start, stop)`` gives a stretch at a time (from a file, say): the same
    values to the bit, holding a few stretches of 2^21 samples at a time, not the signal.
    """
    bounds = _segment_bounds(n_samples, sample_rate)
    steps = bounds.shape[0] - 1
    energy = np.zeros(max(steps, 0))
    lengths = np.diff(bounds).astype(np.float64)
    if steps <= 0:
        return energy, lengths
    h = _k_weighting_ir(sample_rate)
    # Independent parts of about _PART_SAMPLES, so that channels and long signals are
    # filtered on several cores.
    per_part = max(1, _PART_SAMPLES * 10 // sample_rate)
    edges = [*range(0, steps, per_part), steps]
    channels = [ch for ch, w in enumerate(weights) if w != 0.0]
    jobs = [
        functools.partial(
            _segment_energy_part, functools.partial(read, ch), scale, h, bounds[lo : hi + 1]
        )
        for ch in channels
        for lo, hi in itertools.pairwise(edges)
    ]
    results = iter(run_threads(jobs, _MAX_WORKERS))
    for ch in channels:
        parts = [next(results) for _ in range(len(edges) - 1)]
        energy += weights[ch] * np.concatenate(parts)
    return energy, lengths


def window_loudness(energy: FloatArray, lengths: FloatArray, segments: int) -> FloatArray:
    """Loudness of every window of ``segments`` consecutive 100 ms steps (BS.1770-4 eq. 2)."""
    if energy.shape[0] < segments:
        return np.empty(0)
    csum = np.concatenate(([0.0], np.cumsum(energy)))
    clen = np.concatenate(([0.0], np.cumsum(lengths)))
    power = (csum[segments:] - csum[:-segments]) / (clen[segments:] - clen[:-segments])
    # Rounding in the running sums can leave a silent window at -1e-20 rather than 0.
    power = np.maximum(power, 0.0)
    with np.errstate(divide="ignore"):
        return np.asarray(_LOUDNESS_OFFSET + 10.0 * np.log10(power), dtype=np.float64)


def _mean_loudness(levels: FloatArray) -> float:
    """Loudness of the energy mean of blocks given as loudness values."""
    return _LOUDNESS_OFFSET + 10.0 * math.log10(
        float(np.mean(10.0 ** ((levels - _LOUDNESS_OFFSET) / 10.0)))
    )


def gated_integrated(block_loudness: FloatArray) -> float:
    """BS.1770-4 Annex 1 eqs. (4)-(7): two-stage gating of the 400 ms block loudness."""
    above_abs = block_loudness[block_loudness > _ABSOLUTE_GATE_LKFS]
    if above_abs.shape[0] == 0:
        return float("-inf")
    relative_gate = _mean_loudness(above_abs) + _RELATIVE_GATE_LU
    kept = above_abs[above_abs > relative_gate]
    return _mean_loudness(kept)


def _gated_range(short_term: FloatArray) -> float | None:
    """EBU Tech 3342 section 3: LRA from the short-term loudness distribution."""
    above_abs = short_term[short_term > _ABSOLUTE_GATE_LKFS]
    if above_abs.shape[0] == 0:
        return None
    relative_gate = _mean_loudness(above_abs) + _LRA_RELATIVE_GATE_LU
    kept = np.sort(above_abs[above_abs > relative_gate])
    # Tech 3342's percentile: the sorted value at index round((n - 1) * p / 100).
    last = kept.shape[0] - 1
    low = kept[math.floor(last * _LRA_LOW_PERCENTILE / 100.0 + 0.5)]
    high = kept[math.floor(last * _LRA_HIGH_PERCENTILE / 100.0 + 0.5)]
    return float(high - low)


def channel_weights(channels: int, layout: Sequence[str] | None = None) -> tuple[float, ...]:
    """BS.1770-4 Table 3 channel weights G_i.

    With FFmpeg channel names (``("FL", "FR", "FC", "LFE", "BL", "BR")``) the weights come
    from the names: LFE channels 0, back/side/surround channels 1.41, the rest 1.0 (as
    FFmpeg's ebur128 does). Without names the channel count decides, assuming the
    SMPTE/WAV order that FFmpeg also uses: up to 4 channels all 1.0 (mono, stereo, L R C,
    and L R plus two more front-like channels); 5 channels L R C Ls Rs; 6 and more
    L R C LFE followed by surround channels (5.1, 6.1, 7.1).
    """
    if layout:  # None or () -- e.g. DecodedAudio.channel_names of an unlabelled WAV
        if len(layout) != channels:
            raise ValueError(f"layout names {len(layout)} channels, the audio has {channels}")
        weights = []
        for name in layout:
            upper = name.upper()
            if upper.startswith("LFE"):
                weights.append(0.0)
            elif upper in {"BL", "BR", "BC", "SL", "SR", "TBL", "TBR", "TBC", "SDL", "SDR"}:
                weights.append(_SURROUND_WEIGHT)
            else:
                weights.append(1.0)
        return tuple(weights)
    if channels <= 4:
        return (1.0,) * channels
    if channels == 5:
        return (1.0, 1.0, 1.0, _SURROUND_WEIGHT, _SURROUND_WEIGHT)
    return (1.0, 1.0, 1.0, 0.0) + (_SURROUND_WEIGHT,) * (channels - 4)


def _resolve_weights(channels: int, weights: Sequence[float] | None) -> tuple[float, ...]:
    if weights is None:
        return channel_weights(channels)
    if len(weights) != channels:
        raise ValueError(f"{len(weights)} channel weights for {channels} channels")
    return tuple(float(w) for w in weights)


def _loudness_measures(
    arr: npt.NDArray[np.generic], sample_rate: int, weights: Sequence[float]
) -> tuple[float, float | None]:
    energy, lengths = weighted_segment_energy(arr, sample_rate, weights)
    integrated = gated_integrated(window_loudness(energy, lengths, SEGMENTS_PER_BLOCK))
    lra = _gated_range(window_loudness(energy, lengths, _LRA_SEGMENTS))
    return integrated, lra


def integrated_loudness(
    samples: npt.ArrayLike, sample_rate: int, *, weights: Sequence[float] | None = None
) -> float:
    """Gated integrated loudness in LUFS (BS.1770-4 Annex 1), all channels as given.

    ``-inf`` when no 400 ms block passes the gates (digital silence, very quiet or shorter
    than 400 ms). ``weights`` overrides :func:`channel_weights`.
    """
    arr = as_channels(samples)
    rate = _check_rate(sample_rate)
    energy, lengths = weighted_segment_energy(arr, rate, _resolve_weights(arr.shape[0], weights))
    return gated_integrated(window_loudness(energy, lengths, SEGMENTS_PER_BLOCK))


def loudness_range(
    samples: npt.ArrayLike, sample_rate: int, *, weights: Sequence[float] | None = None
) -> float | None:
    """Loudness range in LU (EBU Tech 3342); None when nothing passes its gates (< 3 s)."""
    arr = as_channels(samples)
    rate = _check_rate(sample_rate)
    energy, lengths = weighted_segment_energy(arr, rate, _resolve_weights(arr.shape[0], weights))
    return _gated_range(window_loudness(energy, lengths, _LRA_SEGMENTS))


# --- peaks -----------------------------------------------------------------------------------


def sample_peak(samples: npt.ArrayLike) -> float:
    """Largest absolute sample value over all channels, in dBFS (``-inf`` if all zero)."""
    arr = as_channels(samples)
    if arr.size == 0:
        return float("-inf")
    scale = full_scale(arr.dtype)
    peak = max(abs(float(np.max(arr))), abs(float(np.min(arr)))) / scale
    return _db(peak, power=False)


def true_peak_oversampling(sample_rate: int) -> int:
    """Oversampling factor used by :func:`true_peak`: ``max(4, ceil(192000 / rate))``."""
    return max(4, math.ceil(_TRUE_PEAK_GRID_HZ / _check_rate(sample_rate)))


def true_peak(samples: npt.ArrayLike, sample_rate: int, oversample: int | None = None) -> float:
    """True peak in dBTP over all channels (BS.1770-4 Annex 2), ``-inf`` for silence.

    The maximum absolute value of the samples and of the signal interpolated at
    ``oversample - 1`` instants between every pair of samples (default
    :func:`true_peak_oversampling`): :func:`handoff.analysis.dsp.oversampled_peak`, a 32-tap
    Kaiser-windowed sinc per phase applied in float64, so no headroom attenuation
    (Annex 2 step 1) is needed. Past the last sample there is nothing to interpolate
    toward, so its in-between values are not read.
    """
    arr = as_channels(samples)
    rate = _check_rate(sample_rate)
    factor = true_peak_oversampling(rate) if oversample is None else int(oversample)
    if factor < 1:
        raise ValueError(f"oversampling factor must be >= 1, got {oversample}")
    if arr.size == 0:
        return float("-inf")
    x = arr if np.issubdtype(arr.dtype, np.floating) else to_float(arr, full_scale(arr.dtype))
    envelope = dsp.oversampled_peak(x, factor)
    # The envelope is float32: the samples themselves are read at full precision, so the
    # true peak is never under the sample peak by a rounding.
    samples_peak = max(abs(float(np.max(x))), abs(float(np.min(x))))
    return _db(max(float(np.max(envelope[:-1], initial=0.0)), samples_peak), power=False)


# --- dual mono -------------------------------------------------------------------------------


def is_dual_mono(samples: npt.ArrayLike) -> bool:
    """True for two channels that carry the same signal (max |L - R| <= 1e-4 of full scale).

    Such a file is mono content: measured as stereo it reads about 3 LU louder than the
    same content as a mono file, because BS.1770 adds the channel energies. Two silent
    channels are identical too, and count as dual-mono.
    """
    arr = as_channels(samples)
    if arr.shape[0] != 2:
        return False
    scale = full_scale(arr.dtype)
    n = arr.shape[1]
    for start in range(0, n, _BLOCK_SAMPLES):
        left = to_float(arr[0, start : start + _BLOCK_SAMPLES], scale)
        right = to_float(arr[1, start : start + _BLOCK_SAMPLES], scale)
        if float(np.max(np.abs(left - right))) > _DUAL_MONO_TOLERANCE:
            return False
    return True


# --- streaming -------------------------------------------------------------------------------


class _SteppedEnergy:
    """One channel's K-weighted energy per 100 ms step, from blocks given in order.

    The K-weighting is the FIR of :func:`_k_weighting_ir` (the cascade of Annex 1's two
    IIR sections to rounding error), applied by overlap-add FFT convolution whose state --
    the tail of the last FFT frame and the input not yet filling a batch of frames -- is
    carried from block to block, so the result is that of filtering the whole signal at
    once. Only one float per completed step is kept (36,000 an hour). The FFT buffers are
    allocated once and reused: fresh multi-megabyte arrays for every batch cost more in
    page faults than the FFTs themselves (measured: irfft into a reused array 2.4x faster).
    """

    __slots__ = (
        "_carry",
        "_conv",
        "_fill",
        "_k",
        "_partial",
        "_pos",
        "_rate",
        "_response",
        "_spec",
        "_stage",
        "_step",
        "_taps",
        "energies",
    )

    def __init__(self, h: FloatArray, sample_rate: int) -> None:
        self._taps = h.shape[0]
        nfft = 1 << max(15, (4 * self._taps - 1).bit_length())
        self._step = nfft - self._taps + 1  # input samples per FFT frame
        self._response = np.fft.rfft(h, nfft)
        frames = max(1, _BLOCK_SAMPLES // self._step)
        # Frame r holds input samples in [:step] and zeros after (the convolution's room).
        self._stage = np.zeros((frames, nfft))
        self._spec = np.empty((frames, nfft // 2 + 1), dtype=np.complex128)
        self._conv = np.empty((frames, nfft))
        self._fill = 0  # input samples in _stage
        self._carry = np.zeros(self._taps - 1)
        self._rate = sample_rate
        self._pos = 0  # filtered samples so far
        self._k = 1  # the next step boundary, (k * rate) // 10
        self._partial = 0.0  # energy since the last boundary
        self.energies: list[FloatArray] = []

    def add(self, x: npt.NDArray[np.floating]) -> None:
        step = self._step
        capacity = self._stage.shape[0] * step
        pos = 0
        while pos < x.shape[0]:
            row, col = divmod(self._fill, step)
            take = min(step - col, x.shape[0] - pos)
            self._stage[row, col : col + take] = x[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == capacity:
                self._filter()

    def finish(self) -> FloatArray:
        if self._fill:
            row, col = divmod(self._fill, self._step)
            if col:
                self._stage[row, col : self._step] = 0.0
            self._filter()  # the end: the last frame's tail is not needed
        return np.concatenate(self.energies) if self.energies else np.zeros(0)

    def _filter(self) -> None:
        step, taps, valid = self._step, self._taps, self._fill
        rows = -(-valid // step)
        spec, conv = self._spec[:rows], self._conv[:rows]
        np.fft.rfft(self._stage[:rows], axis=1, out=spec)
        np.multiply(spec, self._response, out=spec)
        np.fft.irfft(spec, self._stage.shape[1], axis=1, out=conv)
        # Each frame's tail (taps - 1 samples) overlaps the start of the next one.
        head = conv[:, : taps - 1]
        head[0] += self._carry
        self._carry = conv[rows - 1, step : step + taps - 1].copy()
        if rows > 1:
            head[1:] += conv[:-1, step : step + taps - 1]
        z = conv[:, :step]
        np.multiply(z, z, out=z)
        self._steps(np.ascontiguousarray(z).reshape(-1)[:valid])
        self._fill = 0

    def _steps(self, squares: FloatArray) -> None:
        n = squares.shape[0]
        end = self._pos + n
        # The boundaries of whole steps up to here (as _segment_bounds counts them).
        last_k = end * 10 // self._rate
        if last_k < self._k:
            self._partial += float(np.sum(squares))
            self._pos = end
            return
        ks = np.arange(self._k, last_k + 1, dtype=np.int64)
        rel = ks * self._rate // 10 - self._pos  # 0 .. n
        # The sums between consecutive boundaries (and from the last one to the end),
        # by np.add.reduceat: a running cumsum took a quarter of this class's time.
        starts = np.concatenate(([0], rel))
        stops = np.concatenate((rel, [n]))
        nonempty = stops > starts  # reduceat would give an empty stretch one sample
        sums = np.zeros(starts.shape[0])
        if np.any(nonempty):
            sums[nonempty] = np.add.reduceat(squares, starts[nonempty])
        energies = sums[:-1]
        energies[0] += self._partial
        self.energies.append(energies)
        self._partial = float(sums[-1])
        self._k = last_k + 1
        self._pos = end


class _StreamingPeak:
    """The true peak (:func:`true_peak`) of one channel given a block at a time, in order.

    The interpolator needs ``TP_HALF_TAPS`` samples either side of a position, so the
    last ``2 * TP_HALF_TAPS - 1`` samples seen are carried to the next block; positions
    are measured once their right-hand neighbours have arrived, the last ones at
    :meth:`finish` (as :func:`true_peak`: zeros before the start, nothing read past the
    last sample). Only the maximum is kept, and the in-between values are computed only
    where they could exceed the ``floor`` the caller passes
    (:class:`~handoff.analysis.dsp.InterpolatedPeak`): :attr:`peak` is then the channel's
    in-between peak or, where that is under the floor, at most the floor.
    """

    __slots__ = ("_buf", "_finder", "peak")

    def __init__(self, factor: int) -> None:
        self._finder = dsp.InterpolatedPeak(factor)
        # _buf[i] is x[centre - half + 1 + i] for the next centre to measure.
        self._buf = np.zeros(TP_HALF_TAPS - 1)
        self.peak = 0.0

    def add(self, x: npt.NDArray[np.floating], floor: float) -> None:
        half = TP_HALF_TAPS
        buf = np.concatenate((self._buf, x))
        stop = buf.shape[0] - half  # one past the last centre with all its right-hand side
        if stop > half - 1:
            self.peak = self._finder.peak(buf, half - 1, stop, max(floor, self.peak))
            buf = buf[stop - (half - 1) :]
        self._buf = buf.copy()

    def finish(self, floor: float) -> float:
        half = TP_HALF_TAPS
        buf = self._buf
        if buf.shape[0] > half - 1:
            # Every centre left but the last, whose in-between values are not read.
            self.peak = self._finder.peak(buf, half - 1, buf.shape[0] - 1, max(floor, self.peak))
            self._buf = buf[:0]
        return self.peak


@dataclass(frozen=True, slots=True)
class ProgrammeLoudness:
    """Everything :class:`LoudnessMeter` measured of one programme."""

    as_is: LoudnessReport
    """Every channel measured with its weight, as a standard meter (FFmpeg's ebur128)."""
    as_mono: LoudnessReport | None
    """For dual-mono: the mono content (channel 0 alone) measured as mono; else None."""
    leading_silence_s: float
    """:func:`leading_silence_s` of the programme."""
    trailing_silence_s: float
    """:func:`trailing_silence_s` of the programme."""
    narration: NarrationFacts | None = None
    """What it does between and at its words -- silences, floor, clock, pace, end
    (:mod:`handoff.analysis.narration`)."""

    def report(self, *, dual_mono_as_mono: bool = True) -> LoudnessReport:
        """:func:`measure`'s report: the mono content of dual-mono, or as is."""
        if dual_mono_as_mono and self.as_mono is not None:
            return self.as_mono
        return self.as_is

    def to_json(self) -> dict[str, float | bool | None]:
        """The figures of ``probe --loudness`` (docs/reference/json.md): dB to 0.01,
        seconds to 1 ms, None for -inf (silence) or a range that cannot be measured."""
        r = self.as_is
        return {
            "integrated_lufs": _rounded(r.integrated_lufs),
            "true_peak_dbtp": _rounded(r.true_peak_dbtp),
            "sample_peak_dbfs": _rounded(r.sample_peak_dbfs),
            "loudness_range_lu": _rounded(r.loudness_range_lu),
            "dual_mono": r.dual_mono,
            "mono_content_lufs": (
                None if self.as_mono is None else _rounded(self.as_mono.integrated_lufs)
            ),
            "leading_silence_s": round(self.leading_silence_s, 3),
            "trailing_silence_s": round(self.trailing_silence_s, 3),
        }


def _rounded(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 2)


class LoudnessMeter:
    """Loudness, true peak, sample peak, LRA, dual-mono and edge silence of a programme
    given a block at a time, in order, in memory that does not grow with its length.

    :meth:`add` takes ``(channels, n)`` blocks of any length and dtype (the full scale of
    :func:`~handoff.analysis.dsp.full_scale`); :meth:`finish` returns the
    :class:`ProgrammeLoudness`. What is kept between blocks: each channel's K-weighted
    energy per 100 ms step (BS.1770-4's gating grid, from which the 400 ms blocks and the
    3 s LRA windows are sums), the true-peak interpolator's last 31 samples, the largest
    |L - R|, and one power per 1 ms bin for the edge silence
    (:class:`~handoff.analysis.dsp.BinPowers`) -- about 15 MB an hour, against 1.4 GB for an
    hour of float32 stereo. The answers are those of the whole-array
    functions of this module, to rounding.
    """

    def __init__(
        self, sample_rate: int, channels: int, *, weights: Sequence[float] | None = None
    ) -> None:
        self.sample_rate = _check_rate(sample_rate)
        if channels < 1:
            raise UnmeasurableError(f"audio with {channels} channels has no loudness")
        self.channels = channels
        self.weights = _resolve_weights(channels, weights)
        h = _k_weighting_ir(self.sample_rate)
        # Channel 0 is also measured alone when the programme may turn out dual-mono.
        needed = [ch for ch, w in enumerate(self.weights) if w != 0.0 or ch == 0]
        self._energy = {ch: _SteppedEnergy(h, self.sample_rate) for ch in needed}
        factor = true_peak_oversampling(self.sample_rate)
        # One per channel, so that channels are measured on separate threads.
        self._peaks = [_StreamingPeak(factor) for _ in range(channels)]
        self._bins = dsp.BinPowers(self.sample_rate, channels)
        self._sample_peak = 0.0
        self._samples = 0
        self._dual = channels == 2
        self._done = False
        # Each block's channels (K-weighting, true peak) and its 1 ms bins are measured
        # side by side on worker threads (numpy's FFTs and reductions release the GIL),
        # while the caller prepares the next block.
        workers = min(usable_cores(), _MAX_WORKERS)
        self._pool = ThreadPoolExecutor(workers, "loudness") if workers > 1 else None
        self._pending: list[Future[None]] = []

    @property
    def samples(self) -> int:
        """Samples per channel added so far."""
        return self._samples

    def add(self, samples: npt.ArrayLike) -> None:
        """Measure the next block, ``(channels, n)``.

        The block is copied and measured on worker threads while the caller goes on
        (decoding the next block, say); the next :meth:`add` or :meth:`finish` waits for
        it. An error from that work is raised there.
        """
        if self._done:
            raise ValueError("the meter has finished")
        arr = as_channels(samples)
        if arr.shape[0] != self.channels:
            raise ValueError(
                f"a block of {arr.shape[0]} channels for a {self.channels}-channel meter"
            )
        if arr.shape[1] == 0:
            return
        # Float samples are kept as they come (float32 from the decoder): every consumer
        # widens them to float64 as it copies them into its own buffers, exactly.
        scale = full_scale(arr.dtype)
        if scale == 1.0:
            x: npt.NDArray[np.floating] = np.array(arr, copy=True)
        else:
            x = to_float(arr, scale)
        if self._dual:
            difference = np.subtract(x[0], x[1], dtype=np.float64)
            if float(np.max(np.abs(difference))) > _DUAL_MONO_TOLERANCE:
                self._dual = False
        self._sample_peak = max(self._sample_peak, float(np.max(x)), -float(np.min(x)))
        self._samples += int(x.shape[1])
        self._wait()
        # The programme's true peak is at least its sample peak and every channel's
        # peak so far: in-between values under that cannot change the answer.
        floor = max(self._sample_peak, *(p.peak for p in self._peaks))
        jobs = [functools.partial(m.add, x[ch]) for ch, m in self._energy.items()]
        jobs += [functools.partial(p.add, x[ch], floor) for ch, p in enumerate(self._peaks)]
        jobs.append(functools.partial(self._bins.add, x))
        if self._pool is None:
            for job in jobs:
                job()
        else:
            self._pending = [self._pool.submit(job) for job in jobs]

    def _wait(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Stop the worker threads (:meth:`finish` does it; call it when giving up early)."""
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def finish(self) -> ProgrammeLoudness:
        """The measurements of everything added (the meter takes no more blocks)."""
        self._done = True
        self.close()
        rate = self.sample_rate
        n = self.samples
        energies = {ch: m.finish() for ch, m in self._energy.items()}
        lengths = np.diff(_segment_bounds(n, rate)).astype(np.float64)
        # The true peak is the larger of the samples and the values between them.
        floor = max(self._sample_peak, *(p.peak for p in self._peaks))
        true_peak_db = _db(max(floor, *(p.finish(floor) for p in self._peaks)), power=False)
        sample_peak_db = _db(self._sample_peak, power=False)

        def report(weights: Sequence[float], how: str) -> LoudnessReport:
            energy = np.zeros(lengths.shape[0])
            for ch, w in enumerate(weights):
                if w != 0.0:
                    energy += w * energies[ch]
            return LoudnessReport(
                integrated_lufs=gated_integrated(
                    window_loudness(energy, lengths, SEGMENTS_PER_BLOCK)
                ),
                true_peak_dbtp=true_peak_db,
                sample_peak_dbfs=sample_peak_db,
                loudness_range_lu=_gated_range(window_loudness(energy, lengths, _LRA_SEGMENTS)),
                channels_measured=sum(1 for w in weights if w != 0.0)
                if how == MEASURED_AS_IS
                else 1,
                measured_as=how,
                dual_mono=self._dual,
            )

        leading, trailing = self._bins.edges()
        return ProgrammeLoudness(
            as_is=report(self.weights, MEASURED_AS_IS),
            as_mono=report((1.0,), MEASURED_AS_MONO) if self._dual else None,
            leading_silence_s=leading / rate,
            trailing_silence_s=trailing / rate,
            narration=narration_facts(
                self._bins.finish(), n, rate, threshold_db=self._bins.threshold_db()
            ),
        )


def measure_file(path: Path | str, stream_index: int | None = None) -> ProgrammeLoudness:
    """:class:`LoudnessMeter` over the first audio stream of ``path`` (or the one with
    container index ``stream_index``), decoded a block at a time
    (:func:`handoff.media.audio.audio_blocks`; a plain PCM WAV is read straight from the
    file, :func:`handoff.media.audio.pcm_wav_blocks`): a programme of any length in
    bounded memory.

    Raises what :func:`handoff.media.audio.decode_audio` raises, and UnmeasurableError for a
    sample rate too low to measure or a stream without channels.
    """
    path = Path(path)
    check_readable(path)  # before anything opens it: a FIFO would block the read
    wav = pcm_wav_blocks(path) if stream_index in (None, 0) else None
    if wav is not None:
        try:
            return _measure_blocks(wav)
        except (OSError, ShortReadError):
            pass  # the file changed or failed while read: let FFmpeg read it as it is now
    return _measure_blocks(audio_blocks(path, stream_index))


def _measure_blocks(blocks: Iterable[DecodedAudio]) -> ProgrammeLoudness:
    meter: LoudnessMeter | None = None
    try:
        for block in blocks:
            if meter is None:
                meter = LoudnessMeter(block.sample_rate, block.channels)
            meter.add(block.samples)  # measured while the next block is read
    except BaseException:
        if meter is not None:
            meter.close()
        raise
    assert meter is not None  # both readers yield at least one block
    return meter.finish()


# --- all at once -----------------------------------------------------------------------------


def measure(
    samples: npt.ArrayLike,
    sample_rate: int,
    *,
    dual_mono_as_mono: bool = True,
    weights: Sequence[float] | None = None,
) -> LoudnessReport:
    """Integrated loudness, true peak, sample peak and LRA of a programme.

    With ``dual_mono_as_mono`` (the default) a two-channel signal whose channels are
    identical is measured as the mono signal it carries (channel 0 alone), which is how
    its loudness is meant: a mono voice at -16 LUFS written as identical L/R reads
    -13 LUFS on a standard stereo meter. The report says which way it was measured.
    Peaks are always taken over every channel as delivered. (The array is measured by
    :class:`LoudnessMeter` a block at a time.)
    """
    arr = as_channels(samples)
    meter = LoudnessMeter(sample_rate, arr.shape[0], weights=weights)
    for start in range(0, arr.shape[1], _BLOCK_SAMPLES):
        meter.add(arr[:, start : start + _BLOCK_SAMPLES])
    return meter.finish().report(dual_mono_as_mono=dual_mono_as_mono)


# --- edge silence ----------------------------------------------------------------------------


def silence_threshold_dbfs(samples: npt.ArrayLike, sample_rate: int) -> float:
    """Level (dB re full-scale mean square) at or under which audio counts as silence.

    :func:`handoff.analysis.dsp.silence_threshold_db` of the programme's 1 ms bins (the loudest
    channel): 35 dB under its level gated as BS.1770-4 gates loudness, never under
    -70 dBFS. On this scale a full-scale sine is -3 dB.
    """
    arr = as_channels(samples)
    bins, _ = dsp.bin_power(arr, _check_rate(sample_rate))
    return dsp.silence_threshold_db(bins)


def leading_silence_s(samples: npt.ArrayLike, sample_rate: int) -> float:
    """Seconds from the start to the first sound (threshold: :func:`silence_threshold_dbfs`).

    :func:`handoff.analysis.dsp.leading_silence`: the onset is found to the 1 ms bin, the first
    bin above the threshold inside the first 20 ms window whose level is above it. An
    all-silent signal returns its full duration.
    """
    arr = as_channels(samples)
    rate = _check_rate(sample_rate)
    return dsp.leading_silence(arr, rate) / rate


def trailing_silence_s(samples: npt.ArrayLike, sample_rate: int) -> float:
    """Seconds from the last sound to the end: :func:`leading_silence_s` read backwards."""
    arr = as_channels(samples)
    rate = _check_rate(sample_rate)
    return dsp.trailing_silence(arr, rate) / rate
