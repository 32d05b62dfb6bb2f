"""The programme as prep measures it: decoded, its channels compared, mixed to 48 kHz content."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np

from handoff.analysis import dsp
from handoff.media.arrays import Float32Array, FloatArray
from handoff.media.audio import DecodedAudio, frame_samples
from handoff.prep.options import RATE
from handoff.prep.results import LeftRight, LeftRightVerdict

__all__ = [
    "DUAL_MONO_AS_MONO",
    "ChannelComparison",
    "Mixer",
    "Resampler",
    "compare_channels",
    "content",
    "resample",
]


# Two channels mixed to mono content must carry one sound (see compare_channels). Under
# the model L = C + U, R = C + V (C common, U and V independent, equal levels) the
# correlation is the common share of each channel's energy: under 0.5 most of what each
# channel holds is its own. Which side is louder follows the speaker when each channel
# has its own voice (two lavaliers: the other voice only as bleed) and stays put for one
# source on two microphones (measured here: 0.2-2 dB between the 10th and 90th
# percentile of 100 ms steps for a copy delayed by up to 3 ms, 21 dB for two voices
# with 10 dB of bleed, whose correlation is 0.56).
_SAME_MIN_CORRELATION = 0.5
_SAME_MAX_SWING_DB = 10.0
_SWING_CLIP_DB = 40.0  # a step with one channel silent counts as this far to one side
_ONE_SIDED_DB = 20.0  # a channel this far under the other adds little to the mix


class Resampler:
    """FFmpeg's swr to 48 kHz fed a block at a time: pieces of 2^16 source samples, each
    stamped with its position, as :func:`resample` feeds them (so the output is the same
    to the bit); the first sample stays at 0. ``None`` from :meth:`add` at 48 kHz already."""

    _PIECE = 1 << 16

    def __init__(self, rate: int, channels: int) -> None:
        self.rate = rate
        self.channels = channels
        self._layout = "mono" if channels == 1 else "stereo"
        self._swr = (
            None
            if rate == RATE
            else av.AudioResampler(format="flt", layout=self._layout, rate=RATE)
        )
        self._held = np.zeros((channels, 0), dtype=np.float32)
        self._fed = 0  # source samples given to swr so far

    def _feed(self, piece: Float32Array) -> list[Float32Array]:
        assert self._swr is not None
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(piece), format="fltp", layout=self._layout
        )
        frame.sample_rate = self.rate
        frame.pts = self._fed
        frame.time_base = Fraction(1, self.rate)
        self._fed += int(piece.shape[1])
        return [frame_samples(f) for f in self._swr.resample(frame)]

    def add(self, x: Float32Array) -> list[Float32Array]:
        """The 48 kHz samples ready after ``x`` (source rate, ``(channels, m)``)."""
        if self._swr is None:
            return [np.ascontiguousarray(x, dtype=np.float32)]
        held = np.concatenate((self._held, x), axis=1) if self._held.shape[1] else x
        out: list[Float32Array] = []
        whole = held.shape[1] // self._PIECE * self._PIECE
        for start in range(0, whole, self._PIECE):
            out.extend(self._feed(held[:, start : start + self._PIECE]))
        self._held = np.array(held[:, whole:], dtype=np.float32)
        return out

    def finish(self) -> list[Float32Array]:
        """What is left: the last, short piece and what swr held back."""
        if self._swr is None:
            return []
        out = self._feed(self._held) if self._held.shape[1] else []
        out.extend(frame_samples(f) for f in self._swr.resample(None) if f is not None)
        return out

    def expected(self, source_samples: int) -> int:
        """The 48 kHz length of ``source_samples`` samples: what the output is cut or
        padded to."""
        return round(source_samples * RATE / self.rate)


def resample(x: Float32Array, rate: int) -> Float32Array:
    """Resample (channels <= 2) to 48 kHz with FFmpeg's swr; the first sample stays at 0."""
    if rate == RATE:
        return np.ascontiguousarray(x, dtype=np.float32)
    swr = Resampler(rate, x.shape[0])
    chunks = swr.add(np.asarray(x, dtype=np.float32)) + swr.finish()
    out = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    expected = swr.expected(x.shape[1])
    if out.shape[1] > expected:
        out = out[:, :expected]
    elif out.shape[1] < expected:
        out = np.pad(out, ((0, 0), (0, expected - out.shape[1])))
    return out


# BS.1770-4 Annex 1, eq. (2): the channels' weighted mean squares are summed, so two
# identical channels read 10*log10(2) = 3.01 dB over one of them.
_STEREO_SUM = "stereo: BS.1770 sum of L and R"
DUAL_MONO_AS_MONO = "mono content of dual-mono: one channel (a stereo meter reads 3.01 dB more)"


class ChannelComparison:
    """:func:`compare_channels` of a two-channel programme given a block at a time.

    Kept: three sums per 100 ms step and the 1 ms bins' 20 ms windows
    (:class:`~handoff.analysis.dsp.BinPowers`) -- 29 floats a second, never the samples.
    The steps are summed in the same runs of steps as the whole-array function, so the
    verdict is the same to the bit.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.step = max(1, rate // 10)
        self._chunk = max(1, (1 << 18) // self.step)  # steps summed at a time
        self._held = np.zeros((2, 0), dtype=np.float32)
        self._sums: list[tuple[FloatArray, FloatArray, FloatArray]] = []
        self._bins = dsp.BinPowers(rate, 2)

    def _sum(self, x: Float32Array, steps: int) -> None:
        step = self.step
        left = x[0, : steps * step].astype(np.float64).reshape(steps, step)
        right = x[1, : steps * step].astype(np.float64).reshape(steps, step)
        self._sums.append(
            (
                np.einsum("sk,sk->s", left, left),
                np.einsum("sk,sk->s", right, right),
                np.einsum("sk,sk->s", left, right),
            )
        )

    def add(self, x: Float32Array) -> None:
        if not np.all(np.isfinite(x)):
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # as the content will be
        self._bins.add(x)
        held = np.concatenate((self._held, x), axis=1) if self._held.shape[1] else x
        run = self._chunk * self.step
        whole = held.shape[1] // run * run
        for start in range(0, whole, run):
            self._sum(held[:, start : start + run], self._chunk)
        self._held = np.array(held[:, whole:], dtype=np.float32)

    def finish(self) -> LeftRight | None:
        steps = self._held.shape[1] // self.step
        if steps:
            self._sum(self._held, steps)
        if not self._sums:
            return None
        ll, rr, lr = (np.concatenate(parts) for parts in zip(*self._sums, strict=True))
        return _verdict(ll, rr, lr, self.step, self._bins.threshold_db())


def compare_channels(x: Float32Array, rate: int) -> LeftRight | None:
    """How the two channels of ``x`` compare over its sound; None when it has none.

    On 100 ms steps (BS.1770's) whose louder channel is above the programme's silence
    threshold (:func:`handoff.analysis.dsp.silence_threshold_db`): the correlation and level
    difference of their sums, and the spread of the steps' own level differences. The
    thresholds and why are by ``_SAME_MIN_CORRELATION`` above.
    """
    comparison = ChannelComparison(rate)
    comparison.add(x)
    return comparison.finish()


def _verdict(
    ll: FloatArray, rr: FloatArray, lr: FloatArray, step: int, threshold_db: float
) -> LeftRight | None:
    limit = 10.0 ** (threshold_db / 10.0)
    sound = np.maximum(ll, rr) / step > limit
    if not sound.any():
        return None
    el, er, elr = float(ll[sound].sum()), float(rr[sound].sum()), float(lr[sound].sum())
    floor = 10.0 ** (-_SWING_CLIP_DB / 10.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(rr[sound] > 0.0, ll[sound] / rr[sound], np.inf)
        per_step = 10.0 * np.log10(np.clip(ratio, floor, 1.0 / floor))
    swing = float(np.percentile(per_step, 90) - np.percentile(per_step, 10))
    if el == 0.0 or er == 0.0:
        return LeftRight("one-sided", None, None, swing)
    correlation = elr / math.sqrt(el * er)
    difference = 10.0 * math.log10(el / er)
    verdict: LeftRightVerdict
    if abs(difference) > _ONE_SIDED_DB:
        verdict = "one-sided"
    elif correlation < _SAME_MIN_CORRELATION or swing > _SAME_MAX_SWING_DB:
        verdict = "different"
    else:
        verdict = "same"
    return LeftRight(verdict, correlation, difference, swing)


class Mixer:
    """The programme as 1 (mono content) or 2 channels, from the source's channels: what
    :func:`content` does, a block at a time. ``measured_as`` says which signal that is, as
    its loudness is measured (``SourceInfo.measured_as``)."""

    def __init__(
        self, channels: int, names: tuple[str, ...], stereo: bool, warnings: list[str]
    ) -> None:
        keep = [i for i, n in enumerate(names) if not n.upper().startswith("LFE")] if names else []
        if not keep:
            keep = list(range(channels))
        self._keep = keep
        self._pair: list[int] | None = None
        self._how = "pass"
        if not stereo:
            if channels == 1:
                how = "mono"
            elif len(keep) == 2:
                self._how = "average2"
                how = "mono content: L+R averaged"
            else:
                self._how = "mean"
                how = f"mono content: {len(keep)} channels averaged"
                if len(keep) < channels:
                    how += ", LFE left out"
        elif channels <= 2:
            how = "mono" if channels == 1 else _STEREO_SUM
        else:
            # Front left/right when the layout names them, else the first two channels.
            order = {n.upper(): i for i, n in enumerate(names)}
            self._pair = [order.get("FL", 0), order.get("FR", 1)]
            self._how = "pair"
            how = f"{_STEREO_SUM} (front left/right of {channels} channels)"
            warnings.append(f"{channels}-channel input: kept front left/right only for stereo")
        self.measured_as = how
        self.channels = 1 if not stereo else min(2, channels)
        self.duplicate = stereo and channels == 1
        """Mono content written as two identical channels (stereo asked of a mono source)."""

    def mix(self, x: Float32Array) -> Float32Array:
        keep = self._keep
        if self._how == "average2":
            both = (x[keep[0]] + x[keep[1]]) * np.float32(0.5)
            return np.asarray(both[np.newaxis, :], dtype=np.float32)
        if self._how == "mean":
            return np.asarray(np.mean(x[keep], axis=0, keepdims=True), dtype=np.float32)
        if self._pair is not None:
            return np.asarray(x[self._pair], dtype=np.float32)
        return np.asarray(x, dtype=np.float32)


def content(decoded: DecodedAudio, stereo: bool, warnings: list[str]) -> tuple[Float32Array, str]:
    """The programme as 1 (mono content) or 2 channels at 48 kHz, float32; and which
    signal that is, as its loudness is measured (``SourceInfo.measured_as``)."""
    x = decoded.samples
    mixer = Mixer(x.shape[0], decoded.channel_names, stereo, warnings)
    out = resample(mixer.mix(x), decoded.sample_rate)
    if mixer.duplicate:
        out = np.vstack([out, out])
    return out, mixer.measured_as
