"""The executor: write what a :class:`~handoff.prep.plan.PrepPlan` says, and check it.

:func:`execute_prep` cuts the levelled master into the planned segments, measures each as
written, writes the WAV files (on a background thread while the next segment is cut) and
then the manifest -- last, so its presence means the set is complete -- and validates
every segment against :func:`self_check_spec`. :func:`prep_audio` is the whole job:
checks, analysis, plan, execution.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from handoff.errors import Option, OutputExistsError, Text, UsageError
from handoff.files.find import check_readable
from handoff.files.fsutil import InputGuard, atomic_output
from handoff.files.manifest import Manifest, load_manifest, write_manifest
from handoff.media.arrays import Float32Array
from handoff.media.riff import WRITE_BLOCK, write_pcm_wav_blocks
from handoff.prep.analyse import PrepFacts, analyse
from handoff.prep.cuts import LEAD_IN
from handoff.prep.level import Levelled
from handoff.prep.options import (
    MANIFEST_NAME,
    RATE,
    Channels,
    PrepOptions,
    check_options,
    default_name,
    master_file_name,
)
from handoff.prep.plan import PrepPlan, click_burst, head_samples, output_name, plan_prep
from handoff.prep.results import PrepResult, SegmentInfo
from handoff.prep.samples import ArraySamples
from handoff.validate.check import validate_file
from handoff.validate.spec import Spec, load_spec

__all__ = [
    "execute_prep",
    "fade_out_samples",
    "made_before",
    "prep_audio",
    "prepare",
    "segment_audio",
    "self_check_spec",
]

log = logging.getLogger("handoff.prep")


_FADE_OUT = RATE * 10 // 1000
_LOUDNESS_WARN_LU = 0.5  # warn when a segment ends further than this from the target


def self_check_spec(options: PrepOptions) -> Spec:
    """The spec every segment must pass: ``ltx2-audio`` with the targets these options ask.

    With the default options it is ``ltx2-audio`` itself. A user's own loudness, true-peak,
    length or pre-roll target replaces the spec's; stereo output (music's default, or
    voice with two different sounds kept apart) is not mono content, so the mono-content
    rule is dropped. An input that cannot reach the target (a DC offset, a
    click train) then fails here, and the command says so, instead of reporting success.
    """
    base = load_spec("ltx2-audio")
    lead_in_s = (options.preroll_ms + LEAD_IN * 1000 // RATE) / 1000.0 + 0.005
    targets: dict[str, float] = {
        "loudness": options.target_lufs,
        "true-peak": options.true_peak,
        "duration": options.max_seconds,
    }
    rules = []
    for rule in base.rules:
        if rule.id == "mono-content" and options.resolved_channels == "stereo":
            continue
        if rule.id in targets:
            rule = replace(rule, value=targets[rule.id], message="")
        elif rule.id == "leading-silence" and isinstance(rule.value, float):
            rule = replace(rule, value=max(rule.value, lead_in_s))
        rules.append(rule)
    return replace(base, rules=tuple(rules))


def _write_wav(
    dest: Path,
    content: Float32Array | Levelled,
    channels_out: Channels,
    bits: int,
    *,
    replace: bool,
    guard: InputGuard,
) -> None:
    """Write content (1 or 2 channels: an array, or the levelled programme read a block at
    a time) as PCM, duplicating mono for dual-mono."""
    store = ArraySamples(content) if isinstance(content, np.ndarray) else content
    channels, n = store.channels, store.samples
    duplicate = channels_out == "dual-mono" and channels == 1
    keep = 1 if channels_out == "mono" else channels
    blocks = (store.read(a, a + WRITE_BLOCK)[:keep] for a in range(0, n, WRITE_BLOCK))
    with atomic_output(dest, replace=replace, guard=guard) as tmp, tmp.open("wb") as f:
        write_pcm_wav_blocks(f, blocks, n, keep, bits, RATE, duplicate=duplicate)


class _Writer:
    """Writes WAV files on one background thread while the caller measures the next one
    (numpy and file writes release the GIL). At most two segments wait in memory; the
    master is read from the scratch files as it is written."""

    def __init__(self, channels_out: Channels, bits: int, replace: bool, guard: InputGuard) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: list[Future[None]] = []
        self._channels = channels_out
        self._bits = bits
        self._replace = replace
        self._guard = guard

    def submit(self, dest: Path, content: Float32Array | Levelled) -> None:
        while len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(
            self._pool.submit(
                _write_wav,
                dest,
                content,
                self._channels,
                self._bits,
                replace=self._replace,
                guard=self._guard,
            )
        )

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                for job in self._pending:
                    job.result()
        finally:
            self._pool.shutdown(wait=True)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fade_out_samples(options: PrepOptions) -> int:
    """Each segment's fade-out: 10 ms, or ``--fade-tails`` when given."""
    return RATE * options.fade_tails_ms // 1000 if options.fade_tails_ms else _FADE_OUT


def segment_audio(
    y: Float32Array,
    start: int,
    stop: int,
    click: Float32Array | None,
    preroll: int,
    fade: int = _FADE_OUT,
) -> Float32Array:
    """``[click][pre-roll][y[start:stop]]``, the sound faded in over the lead-in and out
    over ``fade`` samples, both raised-cosine (Hann) halves: ``cos^2`` is
    ``(1 + cos)/2``, which starts and ends with zero slope, so neither end clicks."""
    body = np.array(y[:, start:stop], dtype=np.float32)
    n = body.shape[1]
    fade_in = min(LEAD_IN, n // 2)
    if fade_in:
        body[:, :fade_in] *= (
            np.sin(0.5 * np.pi * (np.arange(fade_in) + 0.5) / fade_in) ** 2
        ).astype(np.float32)
    fade_out = min(fade, n // 2)
    if fade_out:
        body[:, n - fade_out :] *= (
            np.cos(0.5 * np.pi * (np.arange(fade_out) + 0.5) / fade_out) ** 2
        ).astype(np.float32)
    head = (0 if click is None else click.shape[1]) + preroll
    out = np.zeros((y.shape[0], head + n), dtype=np.float32)
    if click is not None:
        out[:, : click.shape[1]] = click
    out[:, head:] = body
    return out


def _check_free(paths: list[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for p in paths:
        if p.exists() or p.is_symlink():
            raise OutputExistsError(
                Text(f"output exists: {p} (use ", Option("overwrite", True), " to replace it)"), p
            )


def made_before(source: Path, out_dir: Path, options: PrepOptions) -> Manifest | None:
    """The manifest of an earlier run in ``out_dir`` that made exactly what these options
    would make again -- the same source (path and SHA-256), base name and settings, every
    file it lists still there -- so the run can be skipped; None when ``out_dir`` holds
    no manifest.

    Raises :class:`OutputExistsError` when a manifest is there but was made otherwise:
    skipping would leave the user with outputs they did not ask for, and replacing them
    needs ``--overwrite``.
    """
    manifest_path = Path(out_dir) / MANIFEST_NAME
    if not (manifest_path.exists() or manifest_path.is_symlink()):
        return None
    opts, warnings = check_options(options)
    name = opts.name if opts.name is not None else default_name(Path(source).stem, warnings)

    def other(why: str) -> OutputExistsError:
        return OutputExistsError(
            Text(
                f"{manifest_path} exists, made {why}: use ",
                Option("overwrite", True),
                " to replace it, or another ",
                Option("out_dir"),
            ),
            manifest_path,
        )

    try:
        old = load_manifest(manifest_path)
    except UsageError:
        raise other("by something else (it is not a valid manifest)") from None
    real = Path(source).resolve()
    if old.source.file != str(real):
        raise other(f"from {old.source.file}")
    s = old.settings
    asked: dict[str, object] = {
        "name": name, "kind": opts.kind, "channels": opts.resolved_channels,
        "target_lufs": opts.target_lufs, "true_peak_dbtp": opts.true_peak,
        "preroll_ms": opts.preroll_ms, "click": opts.click, "max_seconds": opts.max_seconds,
        "segment_min_s": opts.segment_min, "segment_max_s": opts.segment_max,
        "bit_depth": opts.bit_depth,
    }  # fmt: skip
    had: dict[str, object] = {k: getattr(s, k) for k in asked}
    asked["compress"] = opts.compress
    had["compress"] = s.compress.ratio if s.compress is not None else None
    asked["max_gap_s"] = opts.max_gap_s if opts.fill_gaps else None
    had["max_gap_s"] = s.fill_gaps.max_gap_s if s.fill_gaps is not None else None
    asked["fade_tails_ms"] = opts.fade_tails_ms or None
    had["fade_tails_ms"] = s.fade_tails_ms
    asked["cut_at_pace_change"] = opts.cut_at_pace_change
    had["cut_at_pace_change"] = s.cut_at_pace_change
    changed = [f"{k} {had[k]} -> {v}" for k, v in asked.items() if had[k] != v]
    if changed:
        raise other("with other settings (" + ", ".join(changed) + ")")
    missing = [p.name for _, p in old.missing_files()]
    if missing:
        raise other(f"but {', '.join(missing)} is gone")
    check_readable(real)
    if _sha256(real) != old.source.sha256:
        raise other(f"from an earlier version of {real.name} (its SHA-256 differs)")
    return old


def _stale_segments(out_dir: Path, name: str, keep: set[str], guard: InputGuard) -> list[Path]:
    """Segment files of a previous run (listed in its manifest) that this run does not
    write -- never one of this run's inputs, and nothing when that manifest is not a
    valid one (its list cannot be trusted)."""
    try:
        old = load_manifest(out_dir / MANIFEST_NAME)
    except UsageError:
        return []
    pattern = re.compile(r"^\d{3}_" + re.escape(name) + r"\.wav$")
    stale = (old.segment_path(s) for s in old.segments if pattern.match(s.file))
    return [p for p in stale if p.name not in keep and p.is_file() and guard.input_at(p) is None]


# --- the whole job ---------------------------------------------------------------------------


def prepare(source: Path, options: PrepOptions) -> tuple[PrepFacts, PrepPlan]:
    """Analyse ``source`` and plan its conditioning; nothing is written (``--dry-run``).

    The facts come back with their scratch files closed: they describe the programme and
    plan it, but cannot be executed (:func:`prep_audio` analyses, plans and writes).

    Raises UsageError for bad options, the InputError family for unreadable, silent or
    too short inputs, UnsupportedError for a codec FFmpeg cannot decode.
    """
    source = Path(source)
    opts, _ = check_options(options)
    output_name(source, opts, [])  # a name that cannot be used fails before the decode
    with analyse(source, opts, head_samples(opts)) as facts:
        return facts, plan_prep(facts, opts)


def execute_prep(
    plan: PrepPlan,
    facts: PrepFacts,
    out_dir: Path,
    *,
    guard: InputGuard,
    started: float | None = None,
) -> PrepResult:
    """Write ``plan``'s segments, master and manifest into ``out_dir`` from ``facts``.

    ``guard`` protects the inputs; ``started`` (a :func:`time.perf_counter` reading) is
    when the job began, for ``elapsed_s``. Raises OutputExistsError when a segment file
    exists and the plan's options do not allow overwriting it.
    """
    t0 = time.perf_counter() if started is None else started
    out_dir = Path(out_dir)
    opts = plan.options
    overwrite = opts.overwrite
    channels_out: Channels = opts.resolved_channels
    manifest_path = out_dir / plan.manifest_file
    master_path = out_dir / plan.master.path.name
    seg_paths = [out_dir / s.file for s in plan.segments]
    for output in seg_paths:
        guard.check(output)
    _check_free(seg_paths, overwrite)
    stale = (
        _stale_segments(out_dir, plan.name, {p.name for p in seg_paths}, guard) if overwrite else []
    )
    y = facts.levelled
    click = click_burst(y.channels, opts.true_peak) if opts.click else None
    warnings = list(plan.warnings)
    fade = fade_out_samples(opts)
    segments: list[SegmentInfo] = []
    with _Writer(channels_out, opts.bit_depth, overwrite, guard) as writer:
        for planned, path in zip(plan.segments, seg_paths, strict=True):
            index = planned.index
            start, stop = planned.source_in, planned.source_out
            seg = segment_audio(y.read(start, stop), 0, stop - start, click, plan.preroll, fade)
            lufs = facts.meter.lufs(seg)
            if abs(lufs - opts.target_lufs) > _LOUDNESS_WARN_LU:
                warnings.append(
                    f"segment {index}: {lufs:.2f} LUFS, more than {_LOUDNESS_WARN_LU:g} LU from "
                    f"the target (the same gain as the whole programme)"
                )
            warnings.extend(planned.warnings)
            segments.append(
                SegmentInfo(
                    index=index,
                    path=path,
                    samples=seg.shape[1],
                    channels=plan.master.channels,
                    source_in=planned.source_in,
                    source_out=planned.source_out,
                    click_start=planned.click_start,
                    click_end=planned.click_end,
                    preroll_start=planned.preroll_start,
                    preroll_end=planned.preroll_end,
                    integrated_lufs=lufs,
                    true_peak_dbtp=planned.true_peak_dbtp,
                    measured_as=plan.master.measured_as,
                    cut_in=planned.cut_in,
                    cut_out=planned.cut_out,
                )
            )
            writer.submit(path, seg)
            del seg
        writer.submit(master_path, y)
        source_sha256 = _sha256(facts.source)  # while the files are written
    warnings.extend(plan.closing_warnings)
    for old in stale:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
        warnings.append(f"removed {old.name}, a segment of the previous run in this folder")
    result = PrepResult(
        out_dir=out_dir,
        manifest_path=manifest_path,
        source=replace(plan.source, sha256=source_sha256),
        master=replace(plan.master, path=master_path),
        segments=tuple(segments),
        options=opts,
        settings=plan.settings,
        warnings=tuple(warnings),
        elapsed_s=time.perf_counter() - t0,
        gaps=plan.gaps,
    )
    write_manifest(result.to_manifest(), replace=overwrite, guard=guard)
    # Checked as written, by the reader every user has: done only when it passes.
    spec = self_check_spec(opts)
    result = replace(result, checks=tuple(validate_file(s.path, spec) for s in segments))
    log.info("wrote %d segments and the master in %.2f s", len(segments), result.elapsed_s)
    for w in warnings:
        log.warning("%s", w)
    return result


def prep_audio(source: Path, out_dir: Path, options: PrepOptions) -> PrepResult:
    """Condition ``source`` for LTX-2 and write the segments, master and manifest.

    Raises UsageError for bad options, OutputExistsError (a UsageError) when an output
    exists and ``options.overwrite`` is false, the InputError family for unreadable,
    silent or too short inputs, UnsupportedError for a codec FFmpeg cannot decode.
    """
    t0 = time.perf_counter()
    source = Path(source)
    out_dir = Path(out_dir)
    opts, _ = check_options(options)
    name = output_name(source, opts, [])
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output folder is a file: {out_dir}", out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    master_path = out_dir / master_file_name(name)
    # The source is never written over nor removed, with or without --overwrite.
    guard = InputGuard([source])
    for output in (manifest_path, master_path):
        guard.check(output)
    _check_free([manifest_path, master_path], opts.overwrite)
    log.info("analysing %s", source)
    # The content's scratch files go where the outputs go when that folder exists (the
    # same disk); they are unnamed, so nothing is left of them however the run ends.
    with analyse(source, opts, head_samples(opts), scratch=out_dir) as facts:
        plan = plan_prep(facts, opts)
        return execute_prep(plan, facts, out_dir, guard=guard, started=t0)
