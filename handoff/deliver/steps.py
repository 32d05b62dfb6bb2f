"""Running one step of a delivery, in whatever process is given it.

:func:`run_step` is what a worker runs -- a process of the local pool or a Dask worker:
a module-level function of a picklable :class:`~handoff.deliver.plan.Step`, returning a
picklable :class:`StepOutcome`. Every outcome is a result, never an exception (bar an
interrupt), so a bad render costs its own steps and nothing else. Outputs are written
by the export's own atomic rename: a worker killed mid-file leaves a hidden ``.part``
at most, never a partial file under its final name.

A worker never touches the journal: the client records each outcome as it arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from handoff.deliver.plan import Step
from handoff.errors import InputError, describe

__all__ = ["StepOutcome", "run_step", "worker_died"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class StepOutcome:
    key: str
    status: Literal["done", "failed", "error"]
    """``error``: the render itself cannot be used; ``failed``: anything else."""
    reason: str | None = None
    outputs: tuple[Path, ...] = ()
    result: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def run_step(step: Step, progress: Progress | None = None) -> StepOutcome:
    """Run one step; whatever goes wrong becomes this step's outcome."""
    started = time.monotonic()
    try:
        if step.kind == "receive":
            outcome = _receive(step)
        elif step.kind in ("master", "review"):
            outcome = _export(step, progress)
        else:
            outcome = _sync(step, progress)
    except InputError as exc:
        outcome = StepOutcome(step.key, "error", exc.message)
    except Exception as exc:
        outcome = StepOutcome(step.key, "failed", describe(exc))
    took = time.monotonic() - started
    return StepOutcome(outcome.key, outcome.status, outcome.reason, outcome.outputs,
                       outcome.result, took)  # fmt: skip


def worker_died(step: Step, reason: str) -> StepOutcome:
    """The outcome of a step whose worker process died under it."""
    if step.dest is not None:
        from handoff.files.fsutil import remove_stale_parts

        remove_stale_parts(step.dest)  # the dead worker's .part, if it had begun one
    return StepOutcome(step.key, "failed", reason)


def _receive(step: Step) -> StepOutcome:
    """Probe the render and check it, as received, against the master preset: what it
    lacks is a finding of the report, not a failure (the export is there to fix it)."""
    from handoff.probe.reader import probe, to_json
    from handoff.validate.check import validate_info
    from handoff.validate.spec import load_spec

    assert step.spec is not None
    info = probe(step.render)
    report = validate_info(info, load_spec(step.spec))
    return StepOutcome(
        step.key, "done", result={"probe": to_json(info), "validation": report.to_json()}
    )


def _export(step: Step, progress: Progress | None) -> StepOutcome:
    """Export with the preset, then validate the published file as an editor's
    ``handoff validate`` would (independently of the check the export made before it
    named the file)."""
    from handoff.export.run import ExportJob, export_one
    from handoff.validate.check import validate_file
    from handoff.validate.spec import load_spec

    assert step.spec is not None and step.dest is not None and step.export is not None
    job = ExportJob(0, step.render, step.dest, step.spec, step.export, step.engine,
                    mark_output=True)  # fmt: skip
    exported = export_one(job, progress)
    result: dict[str, Any] = {"export": exported.to_json()}
    if exported.status == "error":
        return StepOutcome(step.key, "error", exported.error, result=result)
    if exported.status != "done":
        return StepOutcome(step.key, "failed", exported.error or exported.status, result=result)
    report = validate_file(step.dest, load_spec(step.spec))
    result["validation"] = report.to_json()
    if report.status != "pass":
        why = report.error or "; ".join(
            f"{f.rule}: expected {f.expected}, got {f.actual}"
            for f in report.findings
            if f.severity == "error"
        )
        return StepOutcome(step.key, "failed", f"the published file fails '{step.spec}': {why}",
                           (step.dest,), result)  # fmt: skip
    return StepOutcome(step.key, "done", None, (step.dest,), result)


def _sync(step: Step, progress: Progress | None) -> StepOutcome:
    """Measure the master against its segment of the narration."""
    from handoff.sync.measure import measure_take

    assert step.sync is not None
    measured = measure_take(step.sync, progress)
    result = {"sync": measured.to_json()}
    if measured.status != "ok":
        return StepOutcome(step.key, "failed", measured.error, result=result)
    return StepOutcome(step.key, "done", None, result=result)
