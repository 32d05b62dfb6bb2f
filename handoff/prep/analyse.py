"""The analysis pass: what the programme is, measured from its samples.

:func:`analyse` decodes the source, compares its channels, mixes it to 48 kHz content,
measures its loudness and peak, levels it (:func:`handoff.prep.level.level`) and maps its
sound and pauses (:class:`handoff.analysis.dsp.SoundMap`) -- the :class:`PrepFacts` the pure
planner (:func:`handoff.prep.plan.plan_prep`) decides from. Nothing is written.

The true peak closes the loop: the limiter's detector can miss an over the meter reads,
so the master is measured with the meter's interpolation (over the spans the cut search
proposes, as the segments will be measured) and, if it is not 0.1 dB under the target,
the limiter's ceiling goes down by the excess and the levelling runs again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handoff.analysis.dsp import SoundMap
from handoff.analysis.limiter import LimiterSettings, oversampled_peak
from handoff.errors import InputError, Option, Text
from handoff.files.find import check_readable
from handoff.media.audio import decode_audio, read_pcm_wav
from handoff.prep.content import DUAL_MONO_AS_MONO, compare_channels, content
from handoff.prep.cuts import search_cuts
from handoff.prep.level import Levelled, Meter, level, true_peaks
from handoff.prep.options import RATE, PrepOptions, check_options
from handoff.prep.results import LeftRight

__all__ = ["LIMIT_MARGIN_DB", "MIN_SOUND_S", "PrepFacts", "analyse", "different_channels_warning"]

log = logging.getLogger("handoff.prep")

LIMIT_MARGIN_DB = 0.3  # the limiter aims this far under the true-peak target
_TP_SAFETY_DB = 0.1  # the measured true peak must end at least this far under it
_QUIET_INPUT_LUFS = -60.0  # quieter than this is "silent": refuse, do not amplify noise
MIN_SOUND_S = 0.5
_CEILING_ATTEMPTS = 4


@dataclass(frozen=True, slots=True, eq=False)
class PrepFacts:
    """What the analysis pass measured (arrays included: the executor writes from them)."""

    source: Path
    """The source as given (its stem names the outputs)."""
    resolved: Path
    """The source's absolute path, links resolved (what the manifest records)."""
    sample_rate: int
    channels: int
    samples: int
    """The source's own rate, channel count and length in samples."""
    lufs: float
    """Loudness of the content (after the channel choice, at 48 kHz) before gain."""
    true_peak_dbtp: float
    """True peak of the content before gain."""
    measured_as: str
    """Which signal ``lufs`` is the loudness of."""
    left_right: LeftRight | None
    """How L and R compare (two-channel sources only)."""
    warnings: tuple[str, ...]
    """What decoding and mixing found (damaged packets, NaN samples, dropped channels,
    L and R carrying different sound)."""
    meter: Meter
    levelled: Levelled
    """The content at the solved gain through the limiter: the master's samples."""
    sound: SoundMap
    """Sound and pauses of the levelled programme (1 ms bins)."""
    limiter: LimiterSettings
    options: PrepOptions
    """The options the programme was levelled and its spans measured for."""
    peaks: Mapping[tuple[int, int], float]
    """True peak (dBTP) of the levelled programme over ``(0, samples)`` and over each
    ``(start, stop)`` span the cut search proposed for it."""

    @property
    def total(self) -> int:
        """The master's length in 48 kHz samples."""
        return int(self.levelled.samples.shape[1])

    @property
    def master_tp(self) -> float:
        return self.peaks[(0, self.total)]


def different_channels_warning(lr: LeftRight) -> str:
    correlation = "-" if lr.correlation is None else f"{lr.correlation:.2f}"
    return Text(
        f"L and R carry different sound (correlation {correlation}, the louder side swings "
        f"{lr.level_swing_db:.0f} dB over the speech: two voices or two "
        "microphones?): mixed into one mono channel as (L+R)/2; listen to the master, "
        "or keep them apart with ",
        Option("channels", "stereo"),
    )


def analyse(source: Path, options: PrepOptions, head: int) -> PrepFacts:
    """Measure and level ``source`` for ``options``.

    ``head`` is what each segment file holds before its audio (click and pre-roll, in
    samples): the cut search needs it to propose the spans the true peak is measured over.
    Raises UsageError for bad options, the InputError family for unreadable, empty, silent
    or too short inputs.
    """
    source = Path(source)
    opts, _ = check_options(options)
    warnings: list[str] = []
    check_readable(source)  # before anything opens it: a FIFO would block the read
    decoded = read_pcm_wav(source) or decode_audio(source)
    if decoded.samples.shape[1] == 0:
        raise InputError("the audio stream holds no samples", source)
    stereo = opts.resolved_channels == "stereo"
    left_right = (
        compare_channels(decoded.samples, decoded.sample_rate) if decoded.channels == 2 else None
    )
    samples, measured_how = content(decoded, stereo, warnings)
    if left_right is not None and left_right.verdict == "different" and not stereo:
        warnings.append(different_channels_warning(left_right))
    source_rate, source_channels = decoded.sample_rate, decoded.channels
    source_samples = int(decoded.samples.shape[1])
    if decoded.skipped_packets:
        warnings.append(
            f"{decoded.skipped_packets} damaged packet(s) skipped while decoding: "
            "their audio is missing"
        )
    del decoded  # only the 48 kHz content is needed from here on
    if not np.all(np.isfinite(samples)):
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
        warnings.append("the decoded audio held NaN/infinite samples: set to silence")
    if samples.shape[1] < MIN_SOUND_S * RATE:
        raise InputError(
            f"too short: {samples.shape[1] / RATE:.2f} s of audio, at least "
            f"{MIN_SOUND_S:g} s of sound needed",
            source,
        )
    meter = Meter(samples)
    if stereo and meter.as_mono and measured_how != "mono":
        measured_how = DUAL_MONO_AS_MONO
    start_lufs = meter.lufs0
    if not math.isfinite(start_lufs) or start_lufs < _QUIET_INPUT_LUFS:
        level_text = (
            "no measurable sound" if not math.isfinite(start_lufs) else f"{start_lufs:.1f} LUFS"
        )
        raise InputError(f"silent or nearly silent ({level_text}): nothing to condition", source)
    log.info("decoded %s: %.1f s, %.2f LUFS", source, samples.shape[1] / RATE, start_lufs)

    limiter = LimiterSettings()
    peak = oversampled_peak(samples, limiter.oversample)
    top = float(peak.max())
    source_peak_db = 20.0 * math.log10(top) if top > 0.0 else float("-inf")
    total = samples.shape[1]
    ceiling_db = opts.true_peak - LIMIT_MARGIN_DB
    for _attempt in range(_CEILING_ATTEMPTS):
        levelled = level(samples, meter, peak, opts.target_lufs, ceiling_db, limiter)
        y = levelled.samples
        sound = SoundMap(y, RATE)
        heard = sound.sound_seconds()
        if heard < MIN_SOUND_S:
            raise InputError(
                f"too short: {heard:.2f} s of sound, at least {MIN_SOUND_S:g} s needed", source
            )
        pairs, _ = search_cuts(sound, total, head, opts)
        spans = [(0, total)] + [(a.start, b.end) for a, b in pairs]
        peaks = true_peaks(y, levelled.estimate, levelled.curve, spans, limiter.oversample)
        master_tp = peaks[0]
        if master_tp <= opts.true_peak - _TP_SAFETY_DB:
            break
        # The meter read an over the limiter's detector missed: aim lower and redo.
        ceiling_db -= master_tp - (opts.true_peak - LIMIT_MARGIN_DB)
        log.info("true peak %.3f dBTP: limiter ceiling lowered to %.3f", master_tp, ceiling_db)
    return PrepFacts(
        source=source,
        resolved=source.resolve(),
        sample_rate=source_rate,
        channels=source_channels,
        samples=source_samples,
        lufs=start_lufs,
        true_peak_dbtp=source_peak_db,
        measured_as=measured_how,
        left_right=left_right,
        warnings=tuple(warnings),
        meter=meter,
        levelled=levelled,
        sound=sound,
        limiter=limiter,
        options=opts,
        peaks=dict(zip(spans, peaks, strict=True)),
    )
