"""What a delivery will do: every render's steps, and which of them the journal already has.

:func:`plan_delivery` is pure: it takes the renders found, what each render is now (its
:class:`~handoff.deliver.journal.Stamp`: size, modification time, content fingerprint),
the journal's last record of every step, and the options, and returns a frozen
:class:`DeliveryPlan` -- printable with ``--dry-run``, comparable in tests, run by
:mod:`handoff.deliver.run` on a process pool or a Dask cluster.

Each render has up to four steps, each a unit of work a worker can run alone
(:mod:`handoff.deliver.steps`):

* ``receive``: probe it and validate it, as received, against the master preset;
* ``master``: export it with the master preset into ``masters/`` (the export checks its
  output against the preset before the file gets its name), then validate the file as
  published;
* ``review``: the same with the review preset into ``review/`` (``--review``);
* ``sync``: measure the master against its segment of the narration (``--manifest``).

``master`` and ``review`` need ``receive`` (an unreadable render is reported once, not
three times); ``sync`` needs ``master`` (what is measured is what the editor gets). Then
the batch steps -- selects, timelines, report -- run in the client from the journal's
results (:mod:`handoff.deliver.run`).

A step is **kept** when the journal's last record of it has the same settings, the same
input (by content: a file copied or touched but unchanged is the same input), and every
output it made is still there as it was made. It is **run** otherwise, and the plan
says why: new, the render changed, the settings changed, an output is missing or was
changed, it failed last time, or ``--force``. A step whose input could not be read
(status ``error``) is kept with its error until the input changes: reading the same
bytes again would fail again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, Literal

from handoff.deliver.journal import Record, Stamp, outputs_intact, settings_digest
from handoff.export.engines import Engine
from handoff.export.plan import ExportOptions, ExportSettings, destination, export_settings
from handoff.files.fsutil import InputGuard
from handoff.files.manifest import Manifest
from handoff.sync.measure import SyncJob, plan_sync
from handoff.validate.spec import load_spec

__all__ = [
    "BATCH_KEY",
    "FILE_STEPS",
    "DeliverOptions",
    "DeliveryPlan",
    "RenderPlan",
    "Step",
    "StepPlan",
    "plan_delivery",
    "spec_identity",
]

StepKind = Literal["receive", "master", "review", "sync"]
FILE_STEPS: Final[tuple[StepKind, ...]] = ("receive", "master", "review", "sync")
BATCH_KEY: Final = "batch"
"""The key suffix of the batch steps' records (``selects:batch`` ...)."""

MASTERS, REVIEW, TIMELINE = "masters", "review", "timeline"


@dataclass(frozen=True, slots=True)
class DeliverOptions:
    """What ``handoff deliver`` was asked to do (flags, or a batch file)."""

    out: Path
    preset: str = "prores-master"
    review: str | None = None
    manifest: Path | None = None
    formats: tuple[str, ...] = ("all",)
    fps: Fraction | Literal["source"] | None = None
    crop: tuple[int, int] | Literal["auto", "none"] = "auto"
    add_silence: bool = False
    allow_truncated: bool = False
    reencode: bool = False
    """Encode every stream, even one the export would copy (``ExportOptions.reencode``)."""
    engine: Engine = "pyav"
    tolerance_ms: float | None = None
    force: bool = False

    def export_options(self, folder: Path) -> ExportOptions:
        # Deliver owns its output folders: an output is replaced when its step runs
        # again (a re-rendered take), always by rename, never left half-written.
        return ExportOptions(
            fps=self.fps,
            crop=self.crop,
            add_silence=self.add_silence,
            allow_truncated=self.allow_truncated,
            reencode=self.reencode,
            out_dir=folder,
            overwrite=True,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "preset": self.preset,
            "review": self.review,
            "manifest": None if self.manifest is None else str(self.manifest),
            "formats": list(self.formats),
            "fps": None if self.fps is None else str(self.fps),
            "crop": self.crop if isinstance(self.crop, str) else "x".join(map(str, self.crop)),
            "add_silence": self.add_silence,
            "allow_truncated": self.allow_truncated,
            "reencode": self.reencode,
            "engine": self.engine,
            "tolerance_ms": self.tolerance_ms,
            "force": self.force,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One unit of work on one render: sent to a worker as it is (it pickles)."""

    kind: StepKind
    render: Path
    spec: str | None = None
    """The preset: validated against (receive), exported with (master, review)."""
    dest: Path | None = None
    """The file the step makes (master, review)."""
    export: ExportOptions | None = None
    engine: Engine = "pyav"
    sync: SyncJob | None = None
    needs: str | None = None
    """The key of the step that must be done first."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """What decides the output besides the input (its digest is journaled)."""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.render}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "step": self.kind,
            "render": str(self.render),
            "spec": self.spec,
            "dest": None if self.dest is None else str(self.dest),
            "needs": self.needs,
            "sync_reference": (
                None
                if self.sync is None or self.sync.reference is None
                else str(self.sync.reference)
            ),
        }


@dataclass(frozen=True, slots=True)
class StepPlan:
    step: Step
    action: Literal["run", "keep", "blocked"]
    reason: str
    """Why it runs (new, changed, ...), or what is kept, or what blocks it."""
    record: Record | None = None
    """The journal's last record of the step (kept steps: the result reused)."""

    def to_json(self) -> dict[str, Any]:
        return {**self.step.to_json(), "action": self.action, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class RenderPlan:
    render: Path
    stamp: Stamp | None
    steps: tuple[StepPlan, ...]
    problem: str | None = None
    """Why the render cannot be used at all (it could not be found or stamped)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "render": str(self.render),
            "fingerprint": None if self.stamp is None else self.stamp.fingerprint,
            "problem": self.problem,
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    options: DeliverOptions
    renders: tuple[RenderPlan, ...]
    manifest: Manifest | None

    @property
    def steps(self) -> tuple[StepPlan, ...]:
        return tuple(s for r in self.renders for s in r.steps)

    @property
    def to_run(self) -> tuple[StepPlan, ...]:
        return tuple(s for s in self.steps if s.action == "run")

    @property
    def kept(self) -> tuple[StepPlan, ...]:
        return tuple(s for s in self.steps if s.action == "keep")

    def to_json(self) -> dict[str, Any]:
        counts = {a: sum(s.action == a for s in self.steps) for a in ("run", "keep", "blocked")}
        return {
            "schema": "handoff.deliver-plan/1",
            "options": self.options.to_json(),
            "summary": {"renders": len(self.renders), **counts},
            "renders": [r.to_json() for r in self.renders],
        }


def spec_identity(name_or_path: str) -> dict[str, str]:
    """A preset by what it says, not by its name alone: a TOML file edited since the
    last run makes its steps run again."""
    spec = load_spec(name_or_path)
    path = Path(name_or_path)
    if path.suffix.lower() == ".toml" and path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return {"name": spec.name, "file": str(path.absolute()), "sha256": digest}
    return {"name": spec.name}


@dataclass(frozen=True, slots=True)
class _Preset:
    identity: dict[str, str]
    settings: ExportSettings


def _presets(options: DeliverOptions) -> dict[str, _Preset]:
    """Each preset read once for the whole batch (not once a render)."""
    names = [options.preset, *([options.review] if options.review is not None else [])]
    return {n: _Preset(spec_identity(n), export_settings(load_spec(n))) for n in names}


def _steps_for(
    render: Path, options: DeliverOptions, manifest: Manifest | None, presets: Mapping[str, _Preset]
) -> list[Step]:
    """The steps of one render, in the order they depend on each other."""
    out = options.out
    master_preset = presets[options.preset]
    receive = Step("receive", render, spec=options.preset,
                   settings={"spec": master_preset.identity})  # fmt: skip
    steps = [receive]
    shared: dict[str, Any] = {
        "fps": None if options.fps is None else str(options.fps),
        "crop": options.to_json()["crop"],
        "add_silence": options.add_silence,
    }
    if options.allow_truncated:
        # Only when asked, so the digest of every delivery made without it stays as it was.
        shared["allow_truncated"] = True
    if options.reencode:
        # The same: a copied master and an encoded one are different files.
        shared["reencode"] = True

    def export(kind: StepKind, preset: str, folder: str) -> Step:
        made = presets[preset]
        return Step(
            kind,
            render,
            spec=preset,
            dest=destination(render, made.settings, out / folder),
            export=options.export_options(out / folder),
            engine=options.engine,
            needs=receive.key,
            settings={"spec": made.identity, **shared},
        )

    master = export("master", options.preset, MASTERS)
    steps.append(master)
    if options.review is not None:
        steps.append(export("review", options.review, REVIEW))
    if manifest is not None:
        assert master.dest is not None
        job = plan_sync([master.dest], manifest=manifest, tolerance_ms=options.tolerance_ms).jobs[0]
        steps.append(
            Step(
                "sync",
                render,
                sync=job,
                needs=master.key,
                settings={
                    "reference": None if job.reference is None else str(job.reference),
                    "segment": job.segment,
                    "tolerance_ms": options.tolerance_ms,
                },
            )
        )
    return steps


def _decide(
    step: Step,
    inputs: Sequence[Stamp] | None,
    record: Record | None,
    force: bool,
) -> tuple[Literal["run", "keep"], str]:
    """Run or keep one step whose inputs are known now (None: made by a step that runs)."""
    if force:
        return "run", "--force"
    if record is None:
        return "run", "new"
    if record.settings != settings_digest(step.settings):
        return "run", "the settings changed"
    if inputs is None:
        return "run", f"{step.needs.split(':')[0] if step.needs else 'its input'} runs again"
    if len(inputs) != len(record.inputs) or not all(
        a.same_file(b) for a, b in zip(inputs, record.inputs, strict=True)
    ):
        return "run", "its input changed"
    if record.status == "failed":
        return "run", f"it failed last time ({record.reason})"
    if not outputs_intact(record):
        return "run", "an output it made is missing or was changed"
    if record.status == "error":
        return "keep", f"kept: the input could not be used ({record.reason})"
    return "keep", "done"


def plan_delivery(
    renders: Sequence[tuple[Path, Stamp | str]],
    options: DeliverOptions,
    journal: Mapping[str, Record],
    *,
    manifest: Manifest | None = None,
    references: Mapping[Path, Stamp | str] | None = None,
) -> DeliveryPlan:
    """Decide every render's steps.

    ``renders``: each render with its stamp now, or the one-line reason it cannot be
    stamped (it vanished, it cannot be read). ``journal``: the last record per step key.
    ``references``: the stamp of each segment narration the sync steps measure against
    (a re-conditioned narration makes its sync steps run again).
    """
    planned: list[RenderPlan] = []
    guard = InputGuard([r for r, _ in renders])
    presets = _presets(options)
    claimed: dict[Path, Path] = {}
    for render, stamp in renders:
        if isinstance(stamp, str):
            planned.append(RenderPlan(render, None, (), problem=stamp))
            continue
        steps = _steps_for(render, options, manifest, presets)
        clash = _clash(render, steps, claimed, guard)
        if clash is not None:
            planned.append(RenderPlan(render, stamp, (), problem=clash))
            continue
        decided: dict[str, StepPlan] = {}
        for step in steps:
            record = journal.get(step.key)
            needed = decided.get(step.needs) if step.needs else None
            if needed is not None and needed.action == "blocked":
                decided[step.key] = StepPlan(step, "blocked", needed.reason, record)
                continue
            if (
                needed is not None
                and needed.action == "keep"
                and needed.record is not None
                and needed.record.status == "error"
            ):
                why = f"{needed.step.kind} could not use the render: {needed.record.reason}"
                decided[step.key] = StepPlan(step, "blocked", why, record)
                continue
            inputs = _inputs_now(step, stamp, needed, references)
            if isinstance(inputs, str):
                decided[step.key] = StepPlan(step, "blocked", inputs, record)
                continue
            action, reason = _decide(step, inputs, record, options.force)
            decided[step.key] = StepPlan(step, action, reason, record)
        planned.append(RenderPlan(render, stamp, tuple(decided.values())))
    return DeliveryPlan(options, tuple(planned), manifest)


def _clash(
    render: Path, steps: Sequence[Step], claimed: dict[Path, Path], guard: InputGuard
) -> str | None:
    """Why the render's outputs cannot be written: another render of the batch claimed
    the same name (two folders each with a 001_take1.mp4), or one would be written
    over an input. Claims the names when they are free."""
    dests = [s.dest for s in steps if s.dest is not None]
    for dest in dests:
        key = dest.absolute()
        if key in claimed:
            return f"same output name as {claimed[key]} ({dest.name}): rename one of them"
        hit = guard.input_at(dest)
        if hit is not None:
            return f"its output {dest} would write over the input {hit}"
    for dest in dests:
        claimed[dest.absolute()] = render
    return None


def _inputs_now(
    step: Step,
    render: Stamp,
    needed: StepPlan | None,
    references: Mapping[Path, Stamp | str] | None,
) -> list[Stamp] | str | None:
    """The files a step reads, as they are now; None when one of them is made by a step
    that runs in this delivery; a string when the step cannot run at all."""
    if step.kind != "sync":
        return [render]
    assert step.sync is not None
    if step.sync.problem is not None:
        return step.sync.problem
    if needed is None or needed.action == "run" or needed.record is None:
        return None
    made = needed.record.outputs
    reference = step.sync.reference
    ref = None if references is None or reference is None else references.get(reference)
    if isinstance(ref, str):
        return ref
    return [*made, *([ref] if ref is not None else [])]
