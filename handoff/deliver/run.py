"""Running a delivery plan: the per-file steps on workers, the journal, the batch steps.

The client (this process) is the journal's only writer. It hands each step that must
run to a backend -- this process (``jobs=1``), the local process pool
(:func:`handoff.jobs.processes.run_jobs`) or a Dask cluster
(:mod:`handoff.deliver.cluster`) -- and records each outcome the moment it arrives, with
the stamps of what the step read and made. A step that needs another is handed out
when that one is done; when it failed, its dependents are *blocked* and say why.

Then, in the client, from the journal alone (no media is read when nothing changed):

* ``selects``: the sync results of every take into ``selects.json`` (with a manifest);
* ``timeline``: the picks (with a manifest) or every master in name order, in every
  format asked for, into ``timeline/``;
* ``report``: ``report.json`` and ``report.html``, what the batch came to.

Each batch step is journaled like the others, keyed by a digest of what it was made
from, so a re-run that changed nothing rewrites nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from handoff.deliver.journal import Journal, Record, Stamp, outputs_intact, settings_digest
from handoff.deliver.plan import BATCH_KEY, DeliveryPlan, Step
from handoff.deliver.steps import StepOutcome, run_step, worker_died
from handoff.errors import HandoffError, Namer, describe, rendered
from handoff.files.fsutil import remove_stale_parts

__all__ = [
    "Backend",
    "DeliveryEvent",
    "DeliveryResult",
    "InProcess",
    "OnOutcome",
    "OnProgress",
    "OnStart",
    "ProcessPool",
    "RenderSummary",
    "run_delivery",
]

EventKind = Literal["started", "progress", "done", "failed", "kept", "blocked"]


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """What a display or a farm dashboard hears: a step started, moved, ended."""

    kind: EventKind
    key: str
    step: str
    render: str
    done: int | None = None
    """Progress: units done (frames for exports) of ``total``."""
    total: int | None = None
    reason: str | None = None
    seconds: float | None = None
    outputs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.kind, "key": self.key, "step": self.step,
                                "render": self.render}  # fmt: skip
        if self.done is not None:
            data["done"], data["total"] = self.done, self.total
        if self.reason is not None:
            data["reason"] = self.reason
        if self.seconds is not None:
            data["seconds"] = round(self.seconds, 3)
        if self.outputs:
            data["outputs"] = list(self.outputs)
        return data


Listener = Callable[[DeliveryEvent], None]
OnStart = Callable[[Step], None]
OnProgress = Callable[[Step, int, int], None]
OnOutcome = Callable[[Step, StepOutcome], Sequence[Step]]
"""A backend's hooks: a step began; a step moved (units done, of total); a step ended
(the hook returns the steps its outcome lets run, which the backend runs too)."""


class Backend(Protocol):
    """Runs steps and reports each outcome as it arrives (in the calling thread)."""

    name: str

    @property
    def local_workers(self) -> int:
        """Processes this machine may use for the batch steps after the renders' (the
        report reads every take's media)."""

    def run(
        self,
        steps: Sequence[Step],
        *,
        on_start: OnStart,
        on_progress: OnProgress,
        on_outcome: OnOutcome,
    ) -> None:
        """``on_outcome`` returns the steps the outcome lets run; run them too."""


@dataclass(slots=True)
class InProcess:
    """One step at a time in this process (``--jobs 1``)."""

    name: str = "in-process"

    @property
    def local_workers(self) -> int:
        return 1

    def run(
        self,
        steps: Sequence[Step],
        *,
        on_start: OnStart,
        on_progress: OnProgress,
        on_outcome: OnOutcome,
    ) -> None:
        queue = list(steps)
        while queue:
            step = queue.pop(0)
            on_start(step)

            def progress(done: int, total: int, step: Step = step) -> None:
                on_progress(step, done, total)

            outcome = run_step(step, progress)
            queue += on_outcome(step, outcome)


@dataclass(slots=True)
class ProcessPool:
    """Worker processes on this machine: a crash costs the step it was running."""

    workers: int
    name: str = "process pool"

    @property
    def local_workers(self) -> int:
        return self.workers

    def run(
        self,
        steps: Sequence[Step],
        *,
        on_start: OnStart,
        on_progress: OnProgress,
        on_outcome: OnOutcome,
    ) -> None:
        from handoff.jobs.processes import run_jobs

        running: dict[int, Step] = {}

        def started(index: int, step: Step) -> None:
            running[index] = step
            on_start(step)

        def progress(index: int, done: int, total: int) -> None:
            if index in running:
                on_progress(running[index], done, total)

        run_jobs(
            list(steps),
            run_step,
            self.workers,
            failed=worker_died,
            on_start=started,
            on_progress=progress,
            follow_up=on_outcome,
        )


@dataclass(slots=True)
class RenderSummary:
    """One render's line in the summary: each step's state and the figures people ask for."""

    render: Path
    steps: dict[str, str] = field(default_factory=dict)
    """step -> ``done`` / ``kept`` / ``failed`` / ``error`` / ``blocked``."""
    reason: str | None = None
    """The first failure's one-line reason."""
    received: str | None = None
    """The render's verdict against the master preset as received (pass / fail)."""
    verdict: str | None = None
    """Sync verdict of its master (in / out)."""
    score: float | None = None
    picked: bool = False

    @property
    def state(self) -> str:
        states = set(self.steps.values())
        if states & {"failed", "error", "blocked"}:
            return "failed"
        if states and states <= {"kept"}:
            return "kept"
        return "done"

    def to_json(self) -> dict[str, Any]:
        return {
            "render": str(self.render),
            "state": self.state,
            "steps": dict(self.steps),
            "reason": self.reason,
            "received": self.received,
            "sync_verdict": self.verdict,
            "score": self.score,
            "picked": self.picked,
        }


@dataclass(slots=True)
class DeliveryResult:
    renders: list[RenderSummary]
    ran: int = 0
    kept: int = 0
    failed: int = 0
    blocked: int = 0
    batch: dict[str, str] = field(default_factory=dict)
    """Batch step -> what happened (``written``, ``kept``, or the reason it failed)."""
    outputs: dict[str, list[str]] = field(default_factory=dict)
    regenerate: list[int] = field(default_factory=list)
    """Segments where no take is within tolerance."""

    @property
    def exit_code(self) -> int:
        """0 every render delivered and every segment has a take in sync; 1 otherwise."""
        bad = any(r.state == "failed" for r in self.renders)
        batch_failed = any(v not in ("written", "kept", "not needed") for v in self.batch.values())
        return 1 if bad or batch_failed or self.regenerate else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": {
                "renders": len(self.renders),
                "delivered": sum(r.state != "failed" for r in self.renders),
                "failed": sum(r.state == "failed" for r in self.renders),
                "steps_run": self.ran,
                "steps_kept": self.kept,
                "steps_failed": self.failed,
                "steps_blocked": self.blocked,
                "regenerate": self.regenerate,
            },
            "batch": dict(self.batch),
            "outputs": self.outputs,
            "renders": [r.to_json() for r in self.renders],
            "exit_code": self.exit_code,
        }


def _name(step: Step) -> str:
    return step.render.name


def run_delivery(
    plan: DeliveryPlan,
    journal: Journal,
    backend: Backend,
    *,
    listener: Listener | None = None,
    references: Mapping[Path, Stamp | str] | None = None,
    name: Namer = str,
) -> DeliveryResult:
    """Run what the plan says must run, journal every outcome, then the batch steps.

    ``name`` says how the reasons journaled and told name an option (the library's
    keyword by default; the command line passes its flags): a reason is journaled as
    the user of this interface reads it, since a later run shows it again.

    A ``KeyboardInterrupt`` (Ctrl-C, SIGTERM) stops the backend; every outcome that
    arrived before it is in the journal, so the same command resumes.
    """
    tell = listener or (lambda event: None)
    stamps = {r.render: r.stamp for r in plan.renders}
    waiting: dict[str, list[Step]] = {}
    runs = {sp.step.key for sp in plan.to_run}
    roots: list[Step] = []
    for sp in plan.to_run:
        if sp.step.needs is not None and sp.step.needs in runs:
            waiting.setdefault(sp.step.needs, []).append(sp.step)
        else:
            roots.append(sp.step)
    counts = {"ran": 0, "failed": 0, "blocked": 0}
    blocked: set[str] = set()

    def on_start(step: Step) -> None:
        tell(DeliveryEvent("started", step.key, step.kind, _name(step)))

    def on_progress(step: Step, done: int, total: int) -> None:
        tell(DeliveryEvent("progress", step.key, step.kind, _name(step), done, total))

    def block(step: Step, why: str) -> None:
        counts["blocked"] += 1
        blocked.add(step.key)
        tell(DeliveryEvent("blocked", step.key, step.kind, _name(step), reason=why))
        for after in waiting.pop(step.key, []):
            block(after, why)

    def on_outcome(step: Step, outcome: StepOutcome) -> Sequence[Step]:
        reason = None if outcome.reason is None else rendered(outcome.reason, name)
        record = Record(
            key=step.key,
            step=step.kind,
            status=outcome.status,
            settings=settings_digest(step.settings),
            inputs=tuple(_inputs_of(step, stamps, journal, references)),
            outputs=tuple(_stamp_outputs(outcome.outputs)),
            reason=reason,
            result=outcome.result,
            seconds=outcome.seconds,
        )
        journal.append(record)
        if step.dest is not None:
            # A worker killed under an earlier try of this step (its task rescheduled
            # elsewhere) left its hidden .part beside the output: gone now.
            remove_stale_parts(step.dest)
        counts["ran"] += 1
        kind: EventKind = "done" if outcome.status == "done" else "failed"
        counts["failed"] += kind == "failed"
        tell(DeliveryEvent(kind, step.key, step.kind, _name(step), reason=reason,
                           seconds=outcome.seconds,
                           outputs=tuple(str(p) for p in outcome.outputs)))  # fmt: skip
        after = waiting.pop(step.key, [])
        if outcome.status == "done":
            return after
        for dependent in after:
            block(dependent, f"{step.kind} did not finish: {reason}")
        return []

    for sp in plan.steps:
        if sp.action == "keep":
            tell(DeliveryEvent("kept", sp.step.key, sp.step.kind, _name(sp.step), reason=sp.reason))
        elif sp.action == "blocked":
            counts["blocked"] += 1
            tell(DeliveryEvent("blocked", sp.step.key, sp.step.kind, _name(sp.step),
                               reason=sp.reason))  # fmt: skip
    journal.event("run-started", backend=backend.name, to_run=len(plan.to_run),
                  kept=len(plan.kept), options=plan.options.to_json())  # fmt: skip
    try:
        if roots:
            backend.run(roots, on_start=on_start, on_progress=on_progress, on_outcome=on_outcome)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            journal.event("run-interrupted", steps_done=counts["ran"])
        raise
    result = DeliveryResult(
        summarise(plan, journal.latest, blocked),
        ran=counts["ran"],
        kept=len(plan.kept),
        failed=counts["failed"],
        blocked=counts["blocked"],
    )
    _batch(plan, journal, result, blocked, name, backend.local_workers)
    journal.event("run-finished", **result.to_json()["summary"], exit_code=result.exit_code)
    return result


def _inputs_of(
    step: Step,
    stamps: Mapping[Path, Stamp | None],
    journal: Journal,
    references: Mapping[Path, Stamp | str] | None,
) -> Iterable[Stamp]:
    """What a step read, as the plan stamped it: the render, or (sync) the master as its
    step made it and the segment narration."""
    if step.kind != "sync":
        stamp = stamps.get(step.render)
        return [stamp] if stamp is not None else []
    made = journal.latest.get(step.needs or "")
    out = list(made.outputs) if made is not None else []
    reference = None if step.sync is None else step.sync.reference
    ref = None if references is None or reference is None else references.get(reference)
    if isinstance(ref, Stamp):
        out.append(ref)
    return out


def _stamp_outputs(paths: Iterable[Path]) -> list[Stamp]:
    """Outputs by size and modification time: a re-run checks they are still as made
    without reading them."""
    out: list[Stamp] = []
    for path in paths:
        st = path.stat()
        out.append(Stamp(str(path.absolute()), st.st_size, st.st_mtime_ns, None))
    return out


def summarise(
    plan: DeliveryPlan,
    latest: Mapping[str, Record],
    blocked: Collection[str] = (),
    *,
    this_run: bool = True,
) -> list[RenderSummary]:
    """Each render's state from the plan (blocked steps) and the journal (the rest);
    ``this_run``: a step the plan kept says ``kept`` (else ``done``, as in the report,
    which must not change when a re-run changes nothing)."""
    rows = []
    for rp in plan.renders:
        row = RenderSummary(rp.render)
        if rp.problem is not None:
            row.steps["receive"] = "error"
            row.reason = rp.problem
            rows.append(row)
            continue
        for sp in rp.steps:
            record = latest.get(sp.step.key)
            if sp.action == "blocked" or record is None or sp.step.key in blocked:
                row.steps[sp.step.kind] = "blocked"
                row.reason = row.reason or sp.reason
                continue
            state = record.status if record.status != "done" else "done"
            if this_run and sp.action == "keep" and record.status == "done":
                state = "kept"
            row.steps[sp.step.kind] = state
            if record.status != "done":
                row.reason = row.reason or f"{sp.step.kind}: {record.reason}"
            if sp.step.kind == "receive" and record.result:
                row.received = record.result.get("validation", {}).get("status")
            if sp.step.kind == "sync" and record.result:
                sync = record.result.get("sync", {})
                row.verdict, row.score = sync.get("verdict"), sync.get("score")
        if any(state == "blocked" for state in row.steps.values()):
            # A step blocked in this run by a dependency that failed in it: the
            # dependency's own reason is the one to show.
            failed = [
                f"{k}: {latest[f'{k}:{rp.render}'].reason}"
                for k, s in row.steps.items()
                if s in ("failed", "error") and f"{k}:{rp.render}" in latest
            ]
            row.reason = failed[0] if failed else row.reason
        rows.append(row)
    return rows


# ---------------------------------------------------------------- batch steps


def _batch(
    plan: DeliveryPlan,
    journal: Journal,
    result: DeliveryResult,
    blocked: Collection[str],
    namer: Namer,
    workers: int = 1,
) -> None:
    """selects, timeline, report -- each kept when what it is made from is unchanged.
    The report reads each take's media (thumbnails, waveforms) on ``workers`` processes."""
    from handoff.deliver.batch import report_step, selects_step, timeline_step

    latest = journal.latest
    out = plan.options.out
    force = plan.options.force
    masters = _done_outputs(plan, latest, "master", blocked)
    if plan.manifest is not None:
        manifest = plan.manifest
        # The takes measured in this state of the batch: a sync step the plan or this
        # run blocked (its master failed) has no say, whatever an older run measured.
        takes = [
            record.result["sync"]
            for sp in plan.steps
            if sp.step.kind == "sync" and sp.action != "blocked" and sp.step.key not in blocked
            for record in [latest.get(sp.step.key)]
            if record is not None and record.result and "sync" in record.result
        ]
        settings = {
            "manifest": str(manifest.path),
            "takes": takes,
            "tolerance_ms": plan.options.tolerance_ms,
        }
        result.batch["selects"] = _run_batch_step(
            journal, "selects", lambda: selects_step(plan, takes), settings, result, force, namer
        )
    selects = journal.latest.get(f"selects:{BATCH_KEY}")
    timeline_from: dict[str, Any] = {"formats": list(plan.options.formats)}
    if plan.manifest is not None:
        timeline_from["selects"] = None if selects is None else [s.to_json() for s in
                                                                 selects.outputs]  # fmt: skip
    timeline_from["masters"] = [s.to_json() for s in masters]
    if plan.manifest is not None and result.batch.get("selects") not in ("written", "kept"):
        result.batch["timeline"] = "not made: there is no selects file"
    elif not masters:
        result.batch["timeline"] = "not made: no master was made"
    else:
        result.batch["timeline"] = _run_batch_step(
            journal, "timeline", lambda: timeline_step(plan, masters), timeline_from, result,
            force, namer,
        )  # fmt: skip
    picks: set[Path] = set()
    if selects is not None and selects.status == "done" and selects.result:
        doc = selects.result.get("selects", {})
        result.regenerate = [s["segment"] for s in doc.get("segments", []) if s.get("regenerate")]
        picks = {(out / s["pick"]).absolute() for s in doc.get("segments", [])}

    def rows(this_run: bool) -> list[RenderSummary]:
        made = summarise(plan, journal.latest, blocked, this_run=this_run)
        for row in made:
            master = journal.latest.get(f"master:{row.render}")
            row.picked = master is not None and any(Path(o.path) in picks for o in master.outputs)
        return made

    summary = [r.to_json() for r in rows(this_run=False)]
    report_from = {
        "renders": summary,
        "records": sorted(
            (r.key, r.status, r.settings, [s.to_json() for s in r.outputs])
            for r in journal.latest.values()
            if r.key != f"report:{BATCH_KEY}"
        ),
    }
    result.batch["report"] = _run_batch_step(
        journal, "report", lambda: report_step(plan, journal.latest, summary, workers), report_from,
        result, force, namer,
    )  # fmt: skip
    result.renders = rows(this_run=True)


def _done_outputs(
    plan: DeliveryPlan, latest: Mapping[str, Record], kind: str, blocked: Collection[str]
) -> list[Stamp]:
    """The files the ``kind`` steps made that stand now (not from a step blocked since)."""
    out: list[Stamp] = []
    for sp in plan.steps:
        if sp.step.kind != kind or sp.action == "blocked" or sp.step.key in blocked:
            continue
        record = latest.get(sp.step.key)
        if record is not None and record.status == "done" and outputs_intact(record):
            out += record.outputs
    return out


def _run_batch_step(
    journal: Journal,
    name: str,
    run: Callable[[], tuple[list[Path], dict[str, Any]]],
    settings: dict[str, Any],
    result: DeliveryResult,
    force: bool,
    namer: Namer,
) -> str:
    key = f"{name}:{BATCH_KEY}"
    digest = settings_digest(settings)
    last = journal.latest.get(key)
    if (
        not force
        and last is not None
        and last.status == "done"
        and last.settings == digest
        and outputs_intact(last)
    ):
        result.outputs[name] = [s.path for s in last.outputs]
        return "kept"
    try:
        paths, produced = run()
    except HandoffError as exc:
        said = rendered(exc.message, namer)
        journal.append(Record(key, name, "failed", digest, (), (), reason=said))
        return said
    except OSError as exc:
        journal.append(Record(key, name, "failed", digest, (), (), reason=describe(exc)))
        return describe(exc)
    journal.append(Record(key, name, "done", digest, (), tuple(_stamp_outputs(paths)),
                          result=produced))  # fmt: skip
    result.outputs[name] = [str(p) for p in paths]
    return "written"
