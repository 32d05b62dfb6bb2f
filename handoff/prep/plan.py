"""The prep plan: everything ``prep-audio`` will write, decided from the analysis' facts.

:func:`plan_prep` is pure: from :class:`~handoff.prep.analyse.PrepFacts` and the options
it decides the output names, the cuts (:func:`handoff.prep.cuts.search_cuts`), each
segment's source range and file layout, and every warning that does not need the written
files. ``prep-audio --dry-run`` prints the plan; the executor
(:func:`handoff.prep.execute.execute_prep`) writes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from handoff.analysis import loudness
from handoff.errors import Option, Text, UsageError
from handoff.prep.analyse import PrepFacts
from handoff.prep.cuts import (
    BIN,
    LEAD_IN,
    REAL_PAUSE_BINS,
    SHORT_PAUSE_BINS,
    search_cuts,
    tail_samples,
)
from handoff.prep.level import LIMITED_DB, loudest_passage
from handoff.prep.options import (
    MANIFEST_NAME,
    RATE,
    PrepOptions,
    check_name,
    check_options,
    default_name,
    master_file_name,
    segment_file_name,
)
from handoff.prep.results import (
    HEAVY_REDUCTION_DB,
    HEAVY_SHARE,
    Cut,
    MasterInfo,
    Passage,
    SourceInfo,
)
from handoff.prep.shape import CROSSFADE_MS, Gap

__all__ = [
    "PLAN_SCHEMA",
    "PlannedSegment",
    "PrepPlan",
    "click_burst",
    "head_samples",
    "output_name",
    "plan_prep",
]

PLAN_SCHEMA: Final = "handoff.prep-plan/1"

# What the analysis depends on (the levelling's target and ceiling, the cut search's spans
# its true peaks are measured over); a plan needs facts measured for the same values.
_ANALYSED: Final = (
    "channels",
    "target_lufs",
    "true_peak",
    "preroll_ms",
    "click",
    "max_seconds",
    "segment_min",
    "segment_max",
    "compress",
    "fill_gaps",
    "max_gap_s",
    "fade_tails_ms",
    "cut_at_pace_change",
)

_LOUDNESS_WARN_LU = 0.5  # warn when a file ends further than this from the target
_CLICK = RATE * 4 // 1000
_CLICK_HZ = 2000.0
_CLICK_UNDER_TP_DB = 3.0


def click_burst(channels: int, tp_target: float) -> npt.NDArray[np.float32]:
    """The sync click: a 4 ms Hann-windowed 2 kHz burst peaking 3 dB under ``tp_target``."""
    t = np.arange(_CLICK) / RATE
    window = np.sin(np.pi * (np.arange(_CLICK) + 0.5) / _CLICK) ** 2
    amp = 10.0 ** ((tp_target - _CLICK_UNDER_TP_DB) / 20.0)
    burst = (amp * window * np.sin(2.0 * np.pi * _CLICK_HZ * t)).astype(np.float32)
    return np.tile(burst, (channels, 1))


def head_samples(options: PrepOptions) -> int:
    """What each segment file holds before its audio: the click, then the pre-roll."""
    return (_CLICK if options.click else 0) + round(options.preroll_ms * RATE / 1000)


def output_name(source: Path, options: PrepOptions, warnings: list[str]) -> str:
    """The outputs' base name: ``--name``, or the source's stem made fit for a file name."""
    name = options.name if options.name is not None else default_name(source.stem, warnings)
    check_name(name, "name" if options.name is not None else "the input's name")
    return name


@dataclass(frozen=True, slots=True)
class PlannedSegment:
    """One segment file to write: ``[click][pre-roll silence][master source_in..source_out]``."""

    index: int
    file: str
    samples: int
    source_in: int
    source_out: int
    click_start: int | None
    click_end: int | None
    preroll_start: int
    preroll_end: int
    true_peak_dbtp: float
    """The master's over the span, or the click's, whichever is higher."""
    cut_in: Cut
    cut_out: Cut
    warnings: tuple[str, ...] = ()
    """Said of this segment before it is written (its length outside the range)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.file,
            "samples": self.samples,
            "duration_s": round(self.samples / RATE, 6),
            "source_in": self.source_in,
            "source_out": self.source_out,
            "source_in_s": round(self.source_in / RATE, 6),
            "source_out_s": round(self.source_out / RATE, 6),
            "click_start": self.click_start,
            "click_end": self.click_end,
            "preroll_start": self.preroll_start,
            "preroll_end": self.preroll_end,
            "true_peak_dbtp": _num(self.true_peak_dbtp),
            "cut_in": self.cut_in.to_json(),
            "cut_out": self.cut_out.to_json(),
        }


@dataclass(frozen=True, slots=True)
class PrepPlan:
    """What ``prep-audio`` will write (a frozen value: print it, compare it, execute it)."""

    options: PrepOptions
    """Checked, channels resolved."""
    name: str
    source: SourceInfo
    """The source's facts; its ``sha256`` is empty (the executor hashes while it writes)."""
    master: MasterInfo
    """The master as it will be written: ``path`` is its bare file name."""
    settings: dict[str, Any] = field(hash=False, compare=True)
    """``settings`` of the manifest."""
    segments: tuple[PlannedSegment, ...] = ()
    warnings: tuple[str, ...] = ()
    """Said before the segments are written (options, input, cuts, level)."""
    closing_warnings: tuple[str, ...] = ()
    """Said after them (heavy limiting)."""
    gaps: tuple[Gap, ...] = ()
    """``--fill-gaps``: the spans removed from long silences (the manifest's time map)."""

    @property
    def preroll(self) -> int:
        return round(self.options.preroll_ms * RATE / 1000)

    @property
    def manifest_file(self) -> str:
        return MANIFEST_NAME

    def all_warnings(self) -> tuple[str, ...]:
        """Every warning the plan knows, in the order the manifest will list them."""
        per_segment = tuple(w for s in self.segments for w in s.warnings)
        return self.warnings + per_segment + self.closing_warnings

    def to_json(self) -> dict[str, Any]:
        source = self.source.to_json()
        del source["sha256"]
        return {
            "schema": PLAN_SCHEMA,
            "source": source,
            "settings": self.settings,
            "master": self.master.to_json(),
            "segments": [s.to_json() for s in self.segments],
            "gaps": [g.to_json() for g in self.gaps],
            "manifest": self.manifest_file,
            "warnings": list(self.all_warnings()),
        }


def _num(value: float, digits: int = 3) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _heavy_limiting_warning(master: MasterInfo, passage: Passage) -> str:
    return Text(
        f"heavy limiting: up to {master.limiter_max_reduction_db:.1f} dB taken off the peaks, "
        f"{master.limited_share:.1%} of the programme limited by over {LIMITED_DB:g} dB "
        f"(warned over {HEAVY_REDUCTION_DB:g} dB or {HEAVY_SHARE:.0%}); loudest passage "
        f"{passage.describe()}, limited by up to {passage.max_reduction_db:.1f} dB: listen "
        "there (a lower ",
        Option("target_lufs"),
        " needs less limiting)",
    )


def plan_prep(facts: PrepFacts, options: PrepOptions) -> PrepPlan:
    """Decide everything ``prep-audio`` writes from what the analysis measured.

    Pure: reads no file, writes none. Raises UsageError for bad options (and a base name
    that cannot be a file name, or options that shape the analysis -- target, ceiling,
    channels, click, pre-roll, segment limits, compression, gap filling, tail fades --
    other than those ``facts`` were measured for), UnsupportedError when no cuts keep
    every segment under ``max_seconds``.
    """
    opts, warnings = check_options(options)
    changed = [k for k in _ANALYSED if getattr(opts, k) != getattr(facts.options, k)]
    if changed:
        raise UsageError(
            f"these facts were measured for other {', '.join(changed)}: analyse the source "
            "again with the options to plan for"
        )
    name = output_name(facts.source, opts, warnings)
    warnings.extend(facts.warnings)
    channels_out = opts.resolved_channels
    out_channels = 2 if channels_out != "mono" else 1
    levelled, sound, total = facts.levelled, facts.sound, facts.total
    click_n = _CLICK if opts.click else 0
    content_channels = levelled.channels
    click_tp = (
        loudness.true_peak(click_burst(content_channels, opts.true_peak)[:1], RATE)
        if opts.click
        else float("-inf")
    )
    head = head_samples(opts)
    pairs, cut_warnings = search_cuts(sound, total, head, opts)
    warnings.extend(cut_warnings)
    master_tp = facts.master_tp
    if master_tp > opts.true_peak:
        warnings.append(f"true peak {master_tp:.2f} dBTP is over the {opts.true_peak:g} target")
    if abs(levelled.lufs - opts.target_lufs) > _LOUDNESS_WARN_LU:
        warnings.append(
            f"master loudness {levelled.lufs:.2f} LUFS misses the {opts.target_lufs:g} LUFS "
            "target: the limiter cannot reach it without reshaping the programme"
        )
    span = sound.programme()
    programme = (span[1] - span[0]) * BIN if span is not None else total
    limited_share = levelled.curve.seconds_below(LIMITED_DB, RATE) * RATE / max(1, programme)
    passage = loudest_passage(levelled.curve)
    measured_as = facts.meter.measured_as(channels_out)

    segments: list[PlannedSegment] = []
    for index, (before, after) in enumerate(pairs, start=1):
        start, stop = before.start, after.end
        samples = head + (stop - start)
        length_s = samples / RATE
        seg_warnings: tuple[str, ...] = ()
        if len(pairs) > 1 and not opts.segment_min <= length_s <= opts.segment_max:
            paced = "pace-change" in (before.cut.kind, after.cut.kind)
            why = "it is cut where the pace changes" if paced else "no pause allowed better"
            seg_warnings = (
                f"segment {index} is {length_s:.1f} s, outside {opts.segment_min:g}-"
                f"{opts.segment_max:g} s: {why}",
            )
        segments.append(
            PlannedSegment(
                index=index,
                file=segment_file_name(index, name),
                samples=samples,
                source_in=start,
                source_out=stop,
                click_start=0 if opts.click else None,
                click_end=click_n if opts.click else None,
                preroll_start=click_n,
                preroll_end=head,
                true_peak_dbtp=max(facts.peaks[(start, stop)], click_tp),
                cut_in=before.cut,
                cut_out=after.cut,
                warnings=seg_warnings,
            )
        )

    master = MasterInfo(
        path=Path(master_file_name(name)),
        samples=total,
        channels=out_channels,
        gain_db=levelled.gain_db,
        integrated_lufs=levelled.lufs,
        true_peak_dbtp=master_tp,
        measured_as=measured_as,
        limiter_max_reduction_db=levelled.curve.max_reduction_db(),
        limited_s=levelled.curve.seconds_below(0.01, RATE),
        limited_share=limited_share,
        loudest_passage=passage,
    )
    closing = (
        (_heavy_limiting_warning(master, passage),)
        if master.heavy_limiting and passage is not None
        else ()
    )
    settings: dict[str, Any] = {
        "name": name,
        "kind": opts.kind,
        "channels": channels_out,
        "target_lufs": opts.target_lufs,
        "true_peak_dbtp": opts.true_peak,
        "preroll_ms": opts.preroll_ms,
        "click": opts.click,
        "max_seconds": opts.max_seconds,
        "segment_min_s": opts.segment_min,
        "segment_max_s": opts.segment_max,
        "bit_depth": opts.bit_depth,
        "sample_rate": RATE,
        "limiter": {"ceiling_dbtp": round(levelled.ceiling_db, 3), **facts.limiter.to_json()},
        "silence": {
            "threshold_dbfs": round(sound.threshold_db, 2),
            "real_pause_s": REAL_PAUSE_BINS / 1000.0,
            "short_pause_s": SHORT_PAUSE_BINS / 1000.0,
            "lead_in_s": LEAD_IN / RATE,
            "tail_s": tail_samples(opts) / RATE,
        },
        "compress": facts.compression.to_json() if facts.compression is not None else None,
        "fill_gaps": {"max_gap_s": opts.max_gap_s, "crossfade_ms": CROSSFADE_MS}
        if opts.fill_gaps
        else None,
        "fade_tails_ms": opts.fade_tails_ms or None,
        "cut_at_pace_change": opts.cut_at_pace_change,
    }
    source = SourceInfo(
        path=facts.resolved,
        sha256="",
        sample_rate=facts.sample_rate,
        channels=facts.channels,
        samples=facts.samples,
        integrated_lufs=facts.lufs,
        true_peak_dbtp=facts.true_peak_dbtp,
        measured_as=facts.measured_as,
        left_right=facts.left_right,
    )
    return PrepPlan(
        options=opts,
        name=name,
        source=source,
        master=master,
        settings=settings,
        segments=tuple(segments),
        warnings=tuple(warnings),
        closing_warnings=closing,
        gaps=facts.gaps,
    )
