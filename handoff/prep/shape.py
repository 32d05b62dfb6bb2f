"""Shaping the content before it is levelled: ``--compress`` and ``--fill-gaps``.

Both work on the 48 kHz content the analysis decoded, from its 1 ms bins
(:func:`handoff.analysis.dsp.bin_power`), and copy it a stretch at a time into a new
scratch store: no hour of audio is ever held. Neither moves a sample of a word in time.

Compression (``--compress N:1``)
    A feed-forward downward compressor after Giannoulis, Massberg and Reiss, "Digital
    Dynamic Range Compressor Design -- A Tutorial and Analysis" (JAES 60(6), 2012): the
    level is an RMS over :data:`RMS_MS` (the loudest channel; the gain is one for all
    channels -- linked), the static curve has a soft knee of :data:`KNEE_DB` (their
    eq. (4)), and the gain reduction is smoothed in dB with a one-pole attack of
    :data:`ATTACK_MS` and release of :data:`RELEASE_MS` (their "smooth decoupled"
    detector), slow enough not to pump on syllables. The threshold follows the programme:
    the median of the short-term (400 ms, as EBU R 128's momentary loudness) levels of
    its speaking bins (those over the silence threshold). The gain is computed per 1 ms
    bin and applied per sample, linearly interpolated between bin centres: a pure gain
    curve, no look-ahead, so nothing moves in time. Silence is never raised (downward
    only).

Gap filling (``--fill-gaps``)
    A silence inside the programme (:meth:`handoff.analysis.dsp.SoundMap.pause_list`, the
    validator's own rule) longer than the maximum gap is shortened to exactly it: half the
    gap is kept after the word before, half before the word after, and the middle is
    removed. The join is an equal-power crossfade of :data:`CROSSFADE_MS` ending at the
    join, inside the kept silence, so the floor neither clicks nor dips. The removed spans
    are the time map from the content's time to the master's (:class:`Gap`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from handoff.analysis import dsp
from handoff.analysis.dsp import SoundMap
from handoff.files import manifest
from handoff.media.arrays import Float32Array, FloatArray
from handoff.prep.options import RATE
from handoff.prep.samples import SampleStore, ScratchSamples

__all__ = [
    "ATTACK_MS",
    "CROSSFADE_MS",
    "KNEE_DB",
    "RELEASE_MS",
    "RMS_MS",
    "SHORT_TERM_MS",
    "Compression",
    "Gap",
    "compress_into",
    "compression",
    "fill_gaps_into",
    "find_gaps",
    "static_gain_db",
]

BIN: Final = dsp.bin_samples(RATE)
KNEE_DB: Final = 6.0
ATTACK_MS: Final = 10.0
RELEASE_MS: Final = 200.0
RMS_MS: Final = 10
SHORT_TERM_MS: Final = 400
CROSSFADE_MS: Final = 5
_SMOOTH_CHUNK: Final = 1 << 16  # bins smoothed at a time (a recursive filter: a loop)
_STRETCH: Final = 614_400  # samples copied at a time (12.8 s, whole 1 ms bins)


# --- compression ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Compression:
    """The compressor as run on one programme: its settings and its gain per 1 ms bin."""

    ratio: float
    threshold_db: float
    """dB re full-scale mean square (the scale of the bins; a full-scale sine is -3 dB)."""
    gain_db: FloatArray
    """Gain per 1 ms bin, dB (<= 0)."""

    @property
    def max_reduction_db(self) -> float:
        return float(-np.min(self.gain_db)) if self.gain_db.shape[0] else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "threshold_dbfs": round(self.threshold_db, 2),
            "knee_db": KNEE_DB,
            "rms_ms": RMS_MS,
            "attack_ms": ATTACK_MS,
            "release_ms": RELEASE_MS,
            "max_reduction_db": round(self.max_reduction_db, 2),
        }

    def gain_at(self, start: int, stop: int) -> Float32Array:
        """Linear gain for samples ``start .. stop - 1``, interpolated between bin centres."""
        k0 = max(0, start // BIN - 1)
        k1 = min(self.gain_db.shape[0], stop // BIN + 2)
        centres = np.arange(k0, k1) * BIN + (BIN - 1) / 2.0
        linear = 10.0 ** (self.gain_db[k0:k1] / 20.0)
        return np.interp(np.arange(start, stop), centres, linear).astype(np.float32)


def static_gain_db(level_db: FloatArray, threshold_db: float, ratio: float) -> FloatArray:
    """The soft-knee static curve (Giannoulis et al. 2012, eq. (4)): gain in dB for each
    level, 0 under the knee, ``(1/ratio - 1)`` of the excess over it."""
    over = level_db - threshold_db
    slope = 1.0 / ratio - 1.0
    half = KNEE_DB / 2.0
    gain = np.where(over > half, slope * over, 0.0)
    knee = np.abs(over) <= half
    gain = np.where(knee, slope * (over + half) ** 2 / (2.0 * KNEE_DB), gain)
    return np.asarray(gain, dtype=np.float64)


def _smooth(static: FloatArray) -> FloatArray:
    """One-pole attack/release on the gain in dB, per 1 ms bin (more reduction: attack)."""
    attack = 1.0 - math.exp(-1.0 / ATTACK_MS)
    release = 1.0 - math.exp(-1.0 / RELEASE_MS)
    out = np.empty_like(static)
    state = 0.0
    for a in range(0, static.shape[0], _SMOOTH_CHUNK):  # Python floats, a chunk at a time
        smoothed = []
        for target in static[a : a + _SMOOTH_CHUNK].tolist():
            state += (attack if target < state else release) * (target - state)
            smoothed.append(state)
        out[a : a + len(smoothed)] = smoothed
    return out


def compression(bins: FloatArray, samples: int, ratio: float) -> Compression:
    """The compressor's gain per bin for a programme whose 1 ms bins are ``bins``."""
    sound = SoundMap.from_bins(bins, samples, RATE)
    short = dsp.centred_level(bins, SHORT_TERM_MS)
    speaking = short[(~sound.silent) & (short > 0.0)]
    if speaking.shape[0] == 0:
        return Compression(ratio, 0.0, np.zeros(bins.shape[0]))
    threshold = 10.0 * math.log10(float(np.median(speaking)))
    csum = np.concatenate(([0.0], np.cumsum(bins)))
    ends = np.arange(1, bins.shape[0] + 1)
    rms = (csum[ends] - csum[np.maximum(ends - RMS_MS, 0)]) / RMS_MS  # causal window
    level = 10.0 * np.log10(np.maximum(rms, 1e-30))
    return Compression(ratio, threshold, _smooth(static_gain_db(level, threshold, ratio)))


def compress_into(store: SampleStore, comp: Compression, out: ScratchSamples) -> None:
    """Copy ``store`` into ``out`` with the compressor's gain applied."""
    n = store.samples
    for a in range(0, n, _STRETCH):
        b = min(n, a + _STRETCH)
        out.append(store.read(a, b) * comp.gain_at(a, b))


# --- gap filling ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch removed from the middle of a long silence (48 kHz content samples)."""

    pause_start: int
    pause_end: int
    """The silence as found (first silent sample, the onset after)."""
    source_start: int
    source_end: int
    """The removed span: ``source_start .. source_end - 1`` are not in the master."""
    master_at: int
    """Where ``source_end`` is in the master (where the join is)."""

    @property
    def removed(self) -> int:
        return self.source_end - self.source_start

    def to_manifest(self) -> manifest.Gap:
        return manifest.Gap(
            source_start=self.source_start,
            source_end=self.source_end,
            removed=self.removed,
            master_at=self.master_at,
            source_start_s=manifest.seconds(self.source_start, RATE),
            source_end_s=manifest.seconds(self.source_end, RATE),
            removed_s=manifest.seconds(self.removed, RATE),
            master_at_s=manifest.seconds(self.master_at, RATE),
            pause_s=manifest.seconds(self.pause_end - self.pause_start, RATE),
        )

    def to_json(self) -> dict[str, Any]:
        return manifest.section_json(self.to_manifest())

    def describe(self) -> str:
        was = (self.pause_end - self.pause_start) / RATE
        now = was - self.removed / RATE
        return f"at {self.pause_start / RATE:.2f} s: {was:.2f} s -> {now:.2f} s"


def find_gaps(bins: FloatArray, samples: int, max_gap: int) -> tuple[Gap, ...]:
    """The silences longer than ``max_gap`` samples and what is removed of each."""
    sound = SoundMap.from_bins(bins, samples, RATE)
    gaps: list[Gap] = []
    removed = 0
    keep_before = max_gap // 2
    for pause in sound.pause_list(max_gap / RATE):
        if pause.length <= max_gap:
            continue
        start = pause.start + keep_before
        end = pause.end - (max_gap - keep_before)
        gaps.append(Gap(pause.start, pause.end, start, end, end - removed - (end - start)))
        removed += end - start
    return tuple(gaps)


def _crossfade(max_gap: int) -> int:
    return min(RATE * CROSSFADE_MS // 1000, max_gap // 2)


def fill_gaps_into(
    store: SampleStore, gaps: tuple[Gap, ...], max_gap: int, out: ScratchSamples
) -> None:
    """Copy ``store`` into ``out`` without the gaps' removed spans, each join crossfaded
    (equal power: the floors on either side are uncorrelated noise) over the
    :data:`CROSSFADE_MS` before it."""
    xf = _crossfade(max_gap)
    t = (np.arange(xf) + 0.5) / max(1, xf)
    fade_out = np.cos(0.5 * np.pi * t).astype(np.float32)
    fade_in = np.sin(0.5 * np.pi * t).astype(np.float32)
    kept: list[tuple[int, int]] = []
    at = 0
    for gap in gaps:
        kept.append((at, gap.source_start - xf))
        at = gap.source_end
    kept.append((at, store.samples))
    for index, (a, b) in enumerate(kept):
        for s in range(a, b, _STRETCH):
            out.append(store.read(s, min(b, s + _STRETCH)))
        if index < len(gaps):
            gap = gaps[index]
            before = store.read(gap.source_start - xf, gap.source_start)
            after = store.read(gap.source_end - xf, gap.source_end)
            out.append(before * fade_out + after * fade_in)
