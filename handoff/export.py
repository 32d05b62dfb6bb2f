"""Batch export: probe, plan, encode to a temporary file, check, rename -- per input.

Each input gets a result (done / skipped / failed / planned); one failing input never
stops the others. An output appears under its final name only when it is complete
and passes its own preset's spec, so a killed or failed run leaves nothing half-made
where an editor would look (a hidden ``.part`` file at most, cleared by the next run).
Inputs are never written over.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from handoff.engines import Engine, execute
from handoff.errors import HandoffError
from handoff.fsutil import atomic_output, remove_stale_parts
from handoff.parallel import usable_cores
from handoff.plan import ExportOptions, ExportPlan, destination, export_settings, plan_export
from handoff.probe import probe
from handoff.spec import Spec, load_spec
from handoff.validate import validate_file

__all__ = [
    "ExportJob",
    "ExportResult",
    "default_jobs",
    "export_batch",
    "export_one",
    "plan_jobs",
]

Status = Literal["done", "skipped", "failed", "planned"]
ProgressEvent = tuple[int, int, int]
"""(job index, frames written, frames in all)."""


@dataclass(frozen=True, slots=True)
class ExportJob:
    index: int
    source: Path
    dest: Path
    spec_source: str
    """Name or path the preset was loaded from (workers load it again)."""
    options: ExportOptions
    engine: Engine
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class ExportResult:
    source: Path
    dest: Path | None
    status: Status
    error: str | None = None
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    plan: dict[str, Any] | None = None
    command: tuple[str, ...] = ()
    findings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "dest": None if self.dest is None else str(self.dest),
            "status": self.status,
            "error": self.error,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
            "plan": self.plan,
            "ffmpeg_command": list(self.command) or None,
            "findings": list(self.findings),
        }


def plan_jobs(
    sources: Sequence[Path],
    spec_source: str,
    options: ExportOptions,
    engine: Engine,
    *,
    dry_run: bool = False,
) -> tuple[list[ExportJob], list[ExportResult]]:
    """Jobs for the inputs, and results for the ones refused before any work.

    Refused: an output that would write over an input, and a second input that would
    write to the same output name as an earlier one.
    """
    settings = export_settings(load_spec(spec_source))
    inputs = {p.resolve() for p in sources if p.exists()}
    jobs: list[ExportJob] = []
    refused: list[ExportResult] = []
    taken: dict[Path, Path] = {}
    for source in sources:
        dest = destination(source, settings, options.out_dir)
        key = dest.resolve()
        if key in inputs:
            refused.append(
                ExportResult(
                    source,
                    None,
                    "failed",
                    f"the output {dest} would write over an input: choose another --out",
                )
            )
            continue
        if key in taken:
            refused.append(
                ExportResult(
                    source,
                    None,
                    "failed",
                    f"same output name as {taken[key]} ({dest.name}): rename one of them",
                )
            )
            continue
        taken[key] = source
        jobs.append(ExportJob(len(jobs), source, dest, spec_source, options, engine, dry_run))
    return jobs, refused


def _ffmpeg_preview(plan: ExportPlan) -> tuple[str, ...]:
    from handoff.engines.ffmpeg_engine import command

    return tuple(command(plan, plan.dest, ffmpeg="ffmpeg"))


def export_one(job: ExportJob, progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Run one job; every outcome is a result, never an exception (bar interrupts)."""
    started = time.monotonic()
    source, dest = job.source, job.dest
    try:
        spec = load_spec(job.spec_source)
        info = probe(source)
        plan = plan_export(info, spec, job.options, dest=dest)
        if job.dry_run:
            return ExportResult(
                source,
                dest,
                "planned",
                notes=plan.notes,
                plan=plan.to_json(),
                command=_ffmpeg_preview(plan),
            )
        if dest.exists() and not job.options.overwrite:
            return ExportResult(
                source,
                dest,
                "skipped",
                "exists (use --overwrite to replace it)",
                notes=plan.notes,
            )
        remove_stale_parts(dest)
        _write(plan, spec, job.engine, progress)
    except _RejectedError as exc:
        return ExportResult(
            source,
            None,
            "failed",
            f"the output did not pass '{job.spec_source}' and was not kept: {exc.message}",
            seconds=time.monotonic() - started,
            findings=tuple(exc.failures),
        )
    except HandoffError as exc:
        return ExportResult(source, None, "failed", exc.message, seconds=time.monotonic() - started)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return ExportResult(
            source,
            None,
            "failed",
            f"{where}{exc.strerror or exc}",
            seconds=time.monotonic() - started,
        )
    return ExportResult(source, dest, "done", notes=plan.notes, seconds=time.monotonic() - started)


def _write(
    plan: ExportPlan, spec: Spec, engine: Engine, progress: Callable[[int, int], None] | None
) -> None:
    """Encode to a temporary file, check it against the preset, then rename it into place.

    An output that fails its own preset is a bug in handoff, not a deliverable: it is
    removed, never renamed to its final name. The one failure allowed is a missing
    audio track when the source has none and --add-silence was not given: handoff does
    not invent sound unasked (the plan's notes say so).
    """
    with atomic_output(plan.dest) as tmp:
        execute(plan, tmp, engine, progress)
        report = validate_file(tmp, spec, plan.spec_options)
        failures = [
            f"{f.rule}: expected {f.expected}, got {f.actual}"
            for f in report.findings
            if f.severity == "error" and not (plan.audio is None and f.fact == "audio.present")
        ]
        if report.error:
            failures.append(report.error)
        if failures:
            raise _RejectedError(failures)


class _RejectedError(HandoffError):
    def __init__(self, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.failures = failures


def _export_in_worker(job: ExportJob, events: Any) -> ExportResult:
    """Worker entry: progress goes back through a queue."""

    def progress(done: int, total: int) -> None:
        events.put((job.index, done, total))

    return export_one(job, progress)


def export_batch(
    jobs: Sequence[ExportJob],
    jobs_in_parallel: int,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    on_result: Callable[[ExportJob, ExportResult], None] | None = None,
) -> list[ExportResult]:
    """Run jobs, ``jobs_in_parallel`` processes at a time; results in job order."""
    results: dict[int, ExportResult] = {}
    if jobs_in_parallel <= 1 or len(jobs) <= 1:
        for job in jobs:

            def progress(done: int, total: int, index: int = job.index) -> None:
                if on_progress is not None:
                    on_progress((index, done, total))

            result = export_one(job, progress)
            results[job.index] = result
            if on_result is not None:
                on_result(job, result)
        return [results[j.index] for j in jobs]

    # Spawned, not forked: the parent holds FFmpeg threads and open codecs.
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        events = manager.Queue()
        with ProcessPoolExecutor(max_workers=jobs_in_parallel, mp_context=context) as pool:
            pending: dict[Future[ExportResult], ExportJob] = {
                pool.submit(_export_in_worker, job, events): job for job in jobs
            }
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(events, on_progress)
                for future in done:
                    job = pending.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # a worker that died (killed, out of memory)
                        result = ExportResult(job.source, None, "failed", f"worker failed: {exc}")
                    results[job.index] = result
                    if on_result is not None:
                        on_result(job, result)
            _drain(events, on_progress)
    return [results[j.index] for j in jobs]


def _drain(events: Any, on_progress: Callable[[ProgressEvent], None] | None) -> None:
    while True:
        try:
            event = events.get_nowait()
        except (queue.Empty, EOFError, OSError):
            return
        if on_progress is not None:
            on_progress(event)


def default_jobs() -> int:
    """The cores this process may use."""
    return usable_cores()
