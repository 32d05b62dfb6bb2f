"""Batch export: probe, plan, encode to a temporary file, check, rename -- per input.

Each input gets a result (done / skipped / failed / planned); one failing input never
stops the others. An output appears under its final name only when it is complete
and passes its own preset's spec, so a killed or failed run leaves nothing half-made
where an editor would look (a hidden ``.part`` file at most, cleared by the next run).
Inputs are never written over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from handoff.errors import (
    HandoffError,
    InputError,
    Option,
    OutputExistsError,
    Text,
    ToolError,
    describe,
)
from handoff.export.engines import Engine, execute
from handoff.export.plan import ExportOptions, ExportPlan, destination, export_settings, plan_export
from handoff.files.find import MediaItem
from handoff.files.fsutil import (
    InputGuard,
    atomic_output,
    holds_any,
    mark_output_folder,
    remove_stale_parts,
)
from handoff.jobs.parallel import usable_cores
from handoff.jobs.processes import run_jobs
from handoff.probe.reader import MediaInfo, probe
from handoff.validate.check import validate_info
from handoff.validate.spec import Spec, load_spec

__all__ = [
    "ExportJob",
    "ExportResult",
    "default_jobs",
    "exit_code",
    "export_batch",
    "export_one",
    "plan_jobs",
]

Status = Literal["done", "skipped", "failed", "error", "planned"]
"""``error``: the input cannot be used as it is (unreadable, not media, incomplete);
``failed``: anything else that kept the output from being made."""
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
    mark_output: bool = False
    """Mark the destination's folder as one of outputs once the file is made
    (:func:`handoff.files.fsutil.mark_output_folder`): true unless an input of the batch lies
    in it."""


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
    ffmpeg: dict[str, str] | None = None
    """The ffmpeg binary that ran (engine ffmpeg), or that the preview names (dry run)."""
    not_carried: tuple[str, ...] = ()
    """The source's streams the output leaves out (a second sound, timecode, subtitles)."""

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
            "ffmpeg": self.ffmpeg,
            "findings": list(self.findings),
            "not_carried": list(self.not_carried),
        }


def plan_jobs(
    sources: Sequence[MediaItem],
    spec_source: str,
    options: ExportOptions,
    engine: Engine,
    *,
    dry_run: bool = False,
) -> tuple[list[ExportJob], list[ExportResult]]:
    """Jobs for the inputs, and results for the ones refused before any work.

    Refused: a path that gave no file (an unlistable folder, a folder without media),
    an output that would write over any input of the batch (by path or by inode, with
    or without --overwrite), and a second input that would write to the same output
    name as an earlier one.

    A destination folder that holds none of the batch's inputs is marked as a folder of
    outputs when its first file is made, so that a later run given a folder above it
    does not read these outputs as inputs (:func:`handoff.files.find.find_media`).
    """
    settings = export_settings(load_spec(spec_source))
    inputs = [p for p in sources if isinstance(p, Path)]
    guard = InputGuard(inputs)
    of_inputs: dict[Path, bool] = {}
    jobs: list[ExportJob] = []
    refused: list[ExportResult] = []
    taken: dict[Path, Path] = {}
    for source in sources:
        if not isinstance(source, Path):
            where = source.path if source.path is not None else Path()
            refused.append(ExportResult(where, None, "error", source.message))
            continue
        dest = destination(source, settings, options.out_dir)
        hit = guard.input_at(dest)
        if hit is not None:
            refused.append(
                ExportResult(
                    source,
                    None,
                    "failed",
                    Text(
                        f"the output {dest} would write over the input {hit}: choose another ",
                        Option("out_dir"),
                    ),
                )
            )
            continue
        key = dest.absolute()
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
        if dest.parent not in of_inputs:
            of_inputs[dest.parent] = holds_any(dest.parent, inputs)
        mark = not of_inputs[dest.parent]
        jobs.append(ExportJob(len(jobs), source, dest, spec_source, options, engine, dry_run, mark))
    return jobs, refused


def _ffmpeg_preview(plan: ExportPlan) -> tuple[tuple[str, ...], dict[str, str] | None, str]:
    """The ffmpeg command of the plan, the binary it names, and a note saying which."""
    from handoff.export.engines.ffmpeg_engine import command, ffmpeg_binary

    try:
        binary = ffmpeg_binary()
    except ToolError as exc:
        return tuple(command(plan, plan.dest, ffmpeg="ffmpeg")), None, f"ffmpeg: {exc.message}"
    preview = tuple(command(plan, plan.dest, ffmpeg=binary.path))
    return preview, binary.to_json(), f"ffmpeg engine would run {binary.describe()}"


# An output that exists is kept unless replacing it was asked for.
_EXISTS = Text("exists (use ", Option("overwrite", True), " to replace it)")


def export_one(job: ExportJob, progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Run one job; every outcome is a result, never an exception (bar interrupts).

    Whatever goes wrong with this file -- an error handoff foresaw, or one it did not --
    becomes this file's failure, so a batch always ends with every file's result.
    """
    started = time.monotonic()
    source, dest = job.source, job.dest

    left_out: tuple[str, ...] = ()

    def result(status: Status, error: str | None = None, **more: Any) -> ExportResult:
        kept = dest if status in ("done", "skipped", "planned") else None
        took = time.monotonic() - started
        return ExportResult(source, kept, status, error, seconds=took, not_carried=left_out, **more)

    notes: tuple[str, ...] = ()
    try:
        spec = load_spec(job.spec_source)
        info = probe(source)
        plan = plan_export(info, spec, job.options, dest=dest)
        notes, left_out = plan.notes, plan.not_carried
        if job.dry_run:
            preview, binary, said = _ffmpeg_preview(plan)
            return result("planned", notes=(*notes, said), plan=plan.to_json(), command=preview,
                          ffmpeg=binary)  # fmt: skip
        if dest.exists() and not job.options.overwrite:
            return result("skipped", _EXISTS, notes=notes)
        remove_stale_parts(dest)
        binary = None
        if job.engine == "ffmpeg":
            from handoff.export.engines.ffmpeg_engine import ffmpeg_binary

            chosen = ffmpeg_binary()
            binary = chosen.to_json()
            notes = (*notes, f"ran {chosen.describe()}")
        _write(plan, spec, job.engine, progress, replace=job.options.overwrite)
        if job.mark_output:
            mark_output_folder(dest.parent)
    except _RejectedError as exc:
        message = f"the output did not pass '{job.spec_source}' and was not kept: {exc.message}"
        return result("failed", message, findings=tuple(exc.failures))
    except OutputExistsError:
        # Another run published this name while this one encoded: its file stays.
        return result("skipped", _EXISTS, notes=notes)
    except InputError as exc:
        return result("error", exc.message)
    except Exception as exc:
        return result("failed", describe(exc))
    # The plan that ran travels with the result: it says, per stream, whether the picture
    # and the sound were copied, re-tagged or encoded, and why.
    return result("done", notes=notes, ffmpeg=binary, plan=plan.to_json())


def _write(
    plan: ExportPlan,
    spec: Spec,
    engine: Engine,
    progress: Callable[[int, int], None] | None,
    *,
    replace: bool,
) -> None:
    """Encode to a temporary file, check it, then rename it into place.

    The check is the one ``handoff validate OUTPUT --spec PRESET`` runs afterwards (the
    same probe and rules, the spec's options at their defaults), plus the sound's exact
    length against the plan. An output that fails is a bug in handoff, not a
    deliverable: it is removed, never renamed to its final name. Without ``replace`` the
    final rename never replaces a file, not even one that another run published meanwhile.
    """
    with atomic_output(plan.dest, replace=replace) as tmp:
        execute(plan, tmp, engine, progress)
        try:
            info = probe(tmp)
        except InputError as exc:
            raise _RejectedError([f"the output cannot be read back: {exc.message}"]) from None
        report = validate_info(info, spec)
        failures = [
            f"{f.rule}: expected {f.expected}, got {f.actual}"
            for f in report.findings
            if f.severity == "error"
        ]
        failures += _length_check(info, plan, engine)
        if failures:
            raise _RejectedError(failures)


def _length_check(info: MediaInfo, plan: ExportPlan, engine: Engine) -> list[str]:
    """The sound's length as the container presents it -- its edit list, read from the
    boxes by the probe (``AudioInfo.presented_samples``) -- against the plan's exact
    sample count, for both engines. A muxer whose edit list cuts the sound short
    (Debian's FFmpeg 5.1 with AAC in MP4: 11-114 ms, measured) is caught here, whatever
    the engine believed it wrote."""
    if plan.audio is None:
        return []
    if info.audio is None:
        return ["audio: the plan wrote sound but the output has no audio stream"]
    presented = info.audio.presented_samples
    if presented is None or presented == plan.audio.samples:
        return []
    who: str = engine
    if engine == "ffmpeg":
        from handoff.export.engines.ffmpeg_engine import ffmpeg_binary

        who = f"ffmpeg engine, {ffmpeg_binary().describe()}"
    off_ms = float(presented - plan.audio.samples) / plan.audio.sample_rate * 1000
    return [
        f"audio-length: the container presents {float(presented):g} samples of sound, the "
        f"plan made {plan.audio.samples} ({off_ms:+.1f} ms; {who})"
    ]


class _RejectedError(HandoffError):
    def __init__(self, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.failures = failures


def export_batch(
    jobs: Sequence[ExportJob],
    jobs_in_parallel: int,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    on_result: Callable[[ExportJob, ExportResult], None] | None = None,
) -> list[ExportResult]:
    """Run jobs, ``jobs_in_parallel`` processes at a time; results in job order.

    In parallel, each file is exported in a worker process: a worker that dies (a crash
    in a decoder, the out-of-memory killer) fails only the file it was working on, and
    its temporary file is removed (:func:`handoff.jobs.processes.run_jobs`).
    """
    if jobs_in_parallel <= 1 or len(jobs) <= 1:
        results: list[ExportResult] = []
        for job in jobs:

            def progress(done: int, total: int, index: int = job.index) -> None:
                if on_progress is not None:
                    on_progress((index, done, total))

            result = export_one(job, progress)
            results.append(result)
            if on_result is not None:
                on_result(job, result)
        return results

    def progress_event(index: int, done: int, total: int) -> None:
        if on_progress is not None:
            on_progress((jobs[index].index, done, total))

    return run_jobs(
        jobs,
        export_one,
        jobs_in_parallel,
        failed=_worker_failed,
        on_progress=progress_event,
        on_result=on_result,
    )


def _worker_failed(job: ExportJob, reason: str) -> ExportResult:
    if not job.dry_run:
        remove_stale_parts(job.dest)  # the dead worker's .part, if it had begun one
    return ExportResult(job.source, None, "failed", reason)


def default_jobs() -> int:
    """The cores this process may use."""
    return usable_cores()


def exit_code(results: Sequence[ExportResult]) -> int:
    """2 when any input could not be used (unreadable, not media, incomplete), else 1
    when any export failed, else 0 (done, skipped as existing, or planned)."""
    statuses = {r.status for r in results}
    if "error" in statuses:
        return 2
    return 1 if "failed" in statuses else 0
