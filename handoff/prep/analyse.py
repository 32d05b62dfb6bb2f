"""The analysis pass: what the programme is, measured from its samples.

:func:`analyse` decodes the source, compares its channels, mixes it to 48 kHz content,
measures its loudness and peak, levels it (:func:`handoff.prep.level.level`) and maps its
sound and pauses (:class:`handoff.analysis.dsp.SoundMap`) -- the :class:`PrepFacts` the pure
planner (:func:`handoff.prep.plan.plan_prep`) decides from. Nothing is written but two
unnamed scratch files: the content and its peak envelope, which the later passes read a
stretch at a time, so memory does not grow with the programme (an hour of mono content
is 691 MB of float32, held by no array).

``--compress`` and ``--fill-gaps`` (:mod:`handoff.prep.shape`) run on the content before
it is measured and levelled: the master is the shaped programme.

The true peak closes the loop: the limiter's detector can miss an over the meter reads,
so the master is measured with the meter's interpolation (over the spans the cut search
proposes, as the segments will be measured) and, if it is not 0.1 dB under the target,
the limiter's ceiling goes down by the excess and the levelling runs again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from handoff.analysis.dsp import SoundMap
from handoff.analysis.limiter import LimiterSettings
from handoff.errors import InputError, Option, Text
from handoff.files.find import check_readable
from handoff.media.arrays import Float32Array
from handoff.media.audio import DecodedAudio, ShortReadError, audio_blocks, pcm_wav_blocks
from handoff.prep.content import DUAL_MONO_AS_MONO, ChannelComparison, Mixer, Resampler
from handoff.prep.cuts import search_cuts
from handoff.prep.level import Levelled, Meter, PeakEnvelope, level, true_peaks
from handoff.prep.options import RATE, PrepOptions, check_options
from handoff.prep.results import LeftRight
from handoff.prep.samples import ScratchSamples, store_bins
from handoff.prep.shape import (
    Compression,
    Gap,
    compress_into,
    compression,
    fill_gaps_into,
    find_gaps,
)

__all__ = ["LIMIT_MARGIN_DB", "MIN_SOUND_S", "PrepFacts", "analyse", "different_channels_warning"]

log = logging.getLogger("handoff.prep")

LIMIT_MARGIN_DB = 0.3  # the limiter aims this far under the true-peak target
_TP_SAFETY_DB = 0.1  # the measured true peak must end at least this far under it
_QUIET_INPUT_LUFS = -60.0  # quieter than this is "silent": refuse, do not amplify noise
MIN_SOUND_S = 0.5
_CEILING_ATTEMPTS = 4


@dataclass(frozen=True, slots=True, eq=False)
class PrepFacts:
    """What the analysis pass measured; the levelled programme is read from scratch files
    (the executor writes from it)."""

    source: Path
    """The source as given (its stem names the outputs)."""
    resolved: Path
    """The source's absolute path, links resolved (what the manifest records)."""
    sample_rate: int
    channels: int
    samples: int
    """The source's own rate, channel count and length in samples."""
    lufs: float
    """Loudness of the content (after the channel choice, at 48 kHz) before shaping and
    gain."""
    true_peak_dbtp: float
    """True peak of the content before shaping and gain."""
    measured_as: str
    """Which signal ``lufs`` is the loudness of."""
    left_right: LeftRight | None
    """How L and R compare (two-channel sources only)."""
    warnings: tuple[str, ...]
    """What decoding and mixing found (damaged packets, NaN samples, dropped channels,
    L and R carrying different sound)."""
    meter: Meter
    levelled: Levelled
    """The content at the solved gain through the limiter: the master's samples, read a
    stretch at a time."""
    sound: SoundMap
    """Sound and pauses of the levelled programme (1 ms bins)."""
    limiter: LimiterSettings
    options: PrepOptions
    """The options the programme was levelled and its spans measured for."""
    peaks: Mapping[tuple[int, int], float]
    """True peak (dBTP) of the levelled programme over ``(0, samples)`` and over each
    ``(start, stop)`` span the cut search proposed for it."""
    scratch: tuple[ScratchSamples, ...] = ()
    """The scratch files the levelled programme is read from (:meth:`close` frees them)."""
    compression: Compression | None = None
    """``--compress``: the compressor as run on the content (before the gain)."""
    gaps: tuple[Gap, ...] = ()
    """``--fill-gaps``: what was removed of each long silence (the time map)."""

    @property
    def total(self) -> int:
        """The master's length in 48 kHz samples."""
        return self.levelled.samples

    def close(self) -> None:
        """Free the scratch files (the levelled programme cannot be read afterwards)."""
        for store in self.scratch:
            store.close()

    def __enter__(self) -> PrepFacts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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


@dataclass(slots=True)
class _Source:
    """What the content pass learned of the source itself."""

    rate: int = 0
    channels: int = 0
    samples: int = 0
    skipped_packets: int = 0
    left_right: LeftRight | None = None
    measured_as: str = ""


def _blocks(source: Path) -> Iterator[DecodedAudio]:
    reader = pcm_wav_blocks(source)
    return iter(reader) if reader is not None else audio_blocks(source)


def _content_pass(
    blocks: Iterator[DecodedAudio], stereo: bool, store: ScratchSamples, warnings: list[str]
) -> tuple[_Source, int | None]:
    """Decode, compare L and R, mix and resample the source into ``store``, a block at a
    time; and the first 48 kHz sample that was NaN or infinite (set to silence), if any."""
    facts = _Source()
    mixer: Mixer | None = None
    swr: Resampler | None = None
    comparison: ChannelComparison | None = None
    bad: int | None = None

    def keep(parts: list[Float32Array]) -> None:
        nonlocal bad
        assert mixer is not None
        for part in parts:
            if not np.all(np.isfinite(part)):
                where = int(np.flatnonzero(~np.isfinite(part).all(axis=0))[0])
                bad = store.samples + where if bad is None else bad
                part = np.nan_to_num(part, nan=0.0, posinf=0.0, neginf=0.0)
            store.append(np.vstack([part, part]) if mixer.duplicate else part)

    for block in blocks:
        facts.skipped_packets = block.skipped_packets
        x = block.samples
        if x.shape[1] == 0:
            continue
        if mixer is None:
            facts.rate, facts.channels = block.sample_rate, block.channels
            mixer = Mixer(x.shape[0], block.channel_names, stereo, warnings)
            facts.measured_as = mixer.measured_as
            swr = Resampler(facts.rate, mixer.channels)
            comparison = ChannelComparison(facts.rate) if facts.channels == 2 else None
        assert swr is not None
        facts.samples += int(x.shape[1])
        if comparison is not None:
            comparison.add(x)
        keep(swr.add(mixer.mix(x)))
    if mixer is None or swr is None:
        return facts, None
    keep(swr.finish())
    expected = swr.expected(facts.samples)
    store.truncate(expected)  # swr's flush runs a few samples over; zeros if short
    facts.left_right = comparison.finish() if comparison is not None else None
    return facts, bad if bad is not None and bad < expected else None


def _read_content(
    source: Path, stereo: bool, folder: Path | None, warnings: list[str]
) -> tuple[_Source, int | None, ScratchSamples]:
    """:func:`_content_pass` of ``source``: a plain WAV read directly, anything else (or a
    WAV that turns out shorter than its header says) decoded by FFmpeg."""
    check_readable(source)  # before anything opens it: a FIFO would block the read
    said = len(warnings)
    store = ScratchSamples(2 if stereo else 1, folder)
    try:
        try:
            facts, bad = _content_pass(_blocks(source), stereo, store, warnings)
        except (OSError, ShortReadError):
            if pcm_wav_blocks(source) is None:
                raise
            # The direct read failed part-way (read_pcm_wav's fallback): FFmpeg reads it.
            store.close()
            del warnings[said:]
            store = ScratchSamples(2 if stereo else 1, folder)
            facts, bad = _content_pass(audio_blocks(source), stereo, store, warnings)
    except BaseException:
        store.close()
        raise
    return facts, bad, store


def analyse(
    source: Path, options: PrepOptions, head: int, *, scratch: Path | None = None
) -> PrepFacts:
    """Measure and level ``source`` for ``options``.

    ``head`` is what each segment file holds before its audio (click and pre-roll, in
    samples): the cut search needs it to propose the spans the true peak is measured over.
    The 48 kHz content and its peak envelope go to unnamed scratch files in the folder
    ``scratch`` (the system's temporary folder when None or missing): the facts hold
    them open until :meth:`PrepFacts.close`. Raises UsageError for bad options, the
    InputError family for unreadable, empty, silent or too short inputs.
    """
    source = Path(source)
    opts, _ = check_options(options)
    warnings: list[str] = []
    stereo = opts.resolved_channels == "stereo"
    src, bad, content = _read_content(source, stereo, scratch, warnings)
    unshaped: tuple[float, float] | None = None
    try:
        if opts.compress is not None or opts.fill_gaps:
            unshaped = _source_level(content, scratch)
        content, comp, gaps = _shape(content, opts, scratch)
    except BaseException:
        content.close()
        raise
    envelope_store = ScratchSamples(1, scratch)
    try:
        facts = _measure(source, opts, head, src, bad, content, envelope_store, warnings)
    except BaseException:
        content.close()
        envelope_store.close()
        raise
    if unshaped is not None:
        # What the source measured, not what the shaping made of it (the summary and the
        # manifest's source.integrated_lufs / true_peak_dbtp say what came in).
        facts = replace(facts, lufs=unshaped[0], true_peak_dbtp=unshaped[1])
    return replace(facts, compression=comp, gaps=gaps)


def _source_level(content: ScratchSamples, scratch: Path | None) -> tuple[float, float]:
    """Loudness and true peak of the content as it came in (before any shaping)."""
    lufs = Meter(content).lufs0
    with ScratchSamples(1, scratch) as store:
        return lufs, PeakEnvelope.measure(content, LimiterSettings().oversample, store).top_db()


def _copied(
    content: ScratchSamples,
    scratch: Path | None,
    copy: Callable[[ScratchSamples, ScratchSamples], None],
) -> ScratchSamples:
    """A new scratch store that ``copy(content, new)`` fills, ``content`` then closed (the
    new store is, instead, if the copy fails)."""
    out = ScratchSamples(content.channels, scratch)
    try:
        copy(content, out)
    except BaseException:
        out.close()
        raise
    content.close()
    return out


def _shape(
    content: ScratchSamples, opts: PrepOptions, scratch: Path | None
) -> tuple[ScratchSamples, Compression | None, tuple[Gap, ...]]:
    """``--compress`` and ``--fill-gaps`` (:mod:`handoff.prep.shape`): the content copied
    through them into new scratch files (the old one closed), both decided from the
    content's own 1 ms bins."""
    if opts.compress is None and not opts.fill_gaps:
        return content, None, ()
    bins = store_bins(content, RATE)
    n = content.samples
    comp = compression(bins, n, opts.compress) if opts.compress is not None else None
    max_gap = round(opts.max_gap_s * RATE)
    gaps = find_gaps(bins, n, max_gap) if opts.fill_gaps else ()
    if comp is not None:
        content = _copied(content, scratch, lambda src, out: compress_into(src, comp, out))
    if gaps:
        content = _copied(
            content, scratch, lambda src, out: fill_gaps_into(src, gaps, max_gap, out)
        )
    for gap in gaps:
        log.info("gap %s", gap.describe())
    return content, comp, gaps


def _measure(
    source: Path,
    opts: PrepOptions,
    head: int,
    src: _Source,
    bad: int | None,
    samples: ScratchSamples,
    envelope_store: ScratchSamples,
    warnings: list[str],
) -> PrepFacts:
    if src.samples == 0:
        raise InputError("the audio stream holds no samples", source)
    stereo = opts.resolved_channels == "stereo"
    left_right = src.left_right
    measured_how = src.measured_as
    if left_right is not None and left_right.verdict == "different" and not stereo:
        warnings.append(different_channels_warning(left_right))
    if src.skipped_packets:
        warnings.append(
            f"{src.skipped_packets} damaged packet(s) skipped while decoding: "
            "their audio is missing"
        )
    if bad is not None:
        warnings.append("the decoded audio held NaN/infinite samples: set to silence")
    if samples.samples < MIN_SOUND_S * RATE:
        raise InputError(
            f"too short: {samples.samples / RATE:.2f} s of audio, at least "
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
    log.info("decoded %s: %.1f s, %.2f LUFS", source, samples.samples / RATE, start_lufs)

    limiter = LimiterSettings()
    peak = PeakEnvelope.measure(samples, limiter.oversample, envelope_store)
    source_peak_db = peak.top_db()
    total = samples.samples
    ceiling_db = opts.true_peak - LIMIT_MARGIN_DB
    for _attempt in range(_CEILING_ATTEMPTS):
        levelled = level(samples, meter, peak, opts.target_lufs, ceiling_db, limiter)
        sound = levelled.sound()
        heard = sound.sound_seconds()
        if heard < MIN_SOUND_S:
            raise InputError(
                f"too short: {heard:.2f} s of sound, at least {MIN_SOUND_S:g} s needed", source
            )
        pairs, _ = search_cuts(sound, total, head, opts)
        spans = [(0, total)] + [(a.start, b.end) for a, b in pairs]
        peaks = true_peaks(levelled, peak, spans, limiter.oversample)
        master_tp = peaks[0]
        if master_tp <= opts.true_peak - _TP_SAFETY_DB:
            break
        # The meter read an over the limiter's detector missed: aim lower and redo.
        ceiling_db -= master_tp - (opts.true_peak - LIMIT_MARGIN_DB)
        log.info("true peak %.3f dBTP: limiter ceiling lowered to %.3f", master_tp, ceiling_db)
    return PrepFacts(
        source=source,
        resolved=source.resolve(),
        sample_rate=src.rate,
        channels=src.channels,
        samples=src.samples,
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
        scratch=(samples, envelope_store),
    )
