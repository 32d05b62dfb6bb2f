"""The programme as prep measures it: decoded, its channels compared, mixed to 48 kHz content."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

from handoff.analysis import dsp
from handoff.media.audio import DecodedAudio, frame_samples
from handoff.prep.options import RATE
from handoff.prep.results import LeftRight, LeftRightVerdict

__all__ = ["DUAL_MONO_AS_MONO", "compare_channels", "content", "resample"]

Float32Array = npt.NDArray[np.float32]

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


def resample(x: Float32Array, rate: int) -> Float32Array:
    """Resample (channels <= 2) to 48 kHz with FFmpeg's swr; the first sample stays at 0."""
    if rate == RATE:
        return np.ascontiguousarray(x, dtype=np.float32)
    layout = "mono" if x.shape[0] == 1 else "stereo"
    resampler = av.AudioResampler(format="flt", layout=layout, rate=RATE)
    chunks: list[Float32Array] = []
    step = 1 << 16
    for start in range(0, x.shape[1], step):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(x[:, start : start + step]), format="fltp", layout=layout
        )
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        chunks.extend(frame_samples(f) for f in resampler.resample(frame))
    chunks.extend(frame_samples(f) for f in resampler.resample(None) if f is not None)
    out = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    expected = round(x.shape[1] * RATE / rate)
    if out.shape[1] > expected:
        out = out[:, :expected]
    elif out.shape[1] < expected:
        out = np.pad(out, ((0, 0), (0, expected - out.shape[1])))
    return out


# BS.1770-4 Annex 1, eq. (2): the channels' weighted mean squares are summed, so two
# identical channels read 10*log10(2) = 3.01 dB over one of them.
_STEREO_SUM = "stereo: BS.1770 sum of L and R"
DUAL_MONO_AS_MONO = "mono content of dual-mono: one channel (a stereo meter reads 3.01 dB more)"


def compare_channels(x: Float32Array, rate: int) -> LeftRight | None:
    """How the two channels of ``x`` compare over its sound; None when it has none.

    On 100 ms steps (BS.1770's) whose louder channel is above the programme's silence
    threshold (:func:`handoff.analysis.dsp.silence_threshold_db`): the correlation and level
    difference of their sums, and the spread of the steps' own level differences. The
    thresholds and why are by ``_SAME_MIN_CORRELATION`` above.
    """
    if not np.all(np.isfinite(x)):
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # as the content will be
    step = max(1, rate // 10)
    steps = x.shape[1] // step
    if steps == 0:
        return None
    ll, rr, lr = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    chunk = max(1, (1 << 18) // step)  # steps per block: float64 copies of one block only
    for a in range(0, steps, chunk):
        b = min(steps, a + chunk)
        left = x[0, a * step : b * step].astype(np.float64).reshape(b - a, step)
        right = x[1, a * step : b * step].astype(np.float64).reshape(b - a, step)
        ll[a:b] = np.einsum("sk,sk->s", left, left)
        rr[a:b] = np.einsum("sk,sk->s", right, right)
        lr[a:b] = np.einsum("sk,sk->s", left, right)
    bins, _ = dsp.bin_power(x, rate)
    limit = 10.0 ** (dsp.silence_threshold_db(bins) / 10.0)
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


def content(decoded: DecodedAudio, stereo: bool, warnings: list[str]) -> tuple[Float32Array, str]:
    """The programme as 1 (mono content) or 2 channels at 48 kHz, float32; and which
    signal that is, as its loudness is measured (``SourceInfo.measured_as``)."""
    x = decoded.samples
    names = decoded.channel_names
    keep = [i for i, n in enumerate(names) if not n.upper().startswith("LFE")] if names else []
    if not keep:
        keep = list(range(x.shape[0]))
    if not stereo:
        if x.shape[0] == 1:
            mixed, how = x, "mono"
        elif len(keep) == 2:
            mixed = ((x[keep[0]] + x[keep[1]]) * np.float32(0.5))[np.newaxis, :]
            how = "mono content: L+R averaged"
        else:
            mixed = np.mean(x[keep], axis=0, keepdims=True)
            how = f"mono content: {len(keep)} channels averaged"
            if len(keep) < x.shape[0]:
                how += ", LFE left out"
    elif x.shape[0] <= 2:
        mixed = x
        how = "mono" if x.shape[0] == 1 else _STEREO_SUM
    else:
        # Front left/right when the layout names them, else the first two channels.
        order = {n.upper(): i for i, n in enumerate(names)}
        pair = [order.get("FL", 0), order.get("FR", 1)]
        mixed = x[pair]
        how = f"{_STEREO_SUM} (front left/right of {x.shape[0]} channels)"
        warnings.append(f"{x.shape[0]}-channel input: kept front left/right only for stereo")
    out = resample(np.asarray(mixed, dtype=np.float32), decoded.sample_rate)
    if stereo and out.shape[0] == 1:
        out = np.vstack([out, out])
    return out, how
