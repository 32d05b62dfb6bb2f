"""``handoff deliver``: the whole batch, from renders to the editor's folder, resumable."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from handoff.cli.common import (
    EXIT_OK,
    TOLERANCE_MS,
    clear_parts,
    die,
    errors,
    flag,
    flags,
    media,
    note,
)
from handoff.deliver import (
    JOURNAL_NAME,
    DeliverOptions,
    DeliveryEvent,
    DeliveryPlan,
    DeliveryResult,
    FolderLock,
    InProcess,
    Journal,
    ProcessPool,
    RenderSummary,
    Stamper,
    load_batch_file,
    plan_delivery,
    run_delivery,
)
from handoff.errors import InputError, ToolError, UsageError
from handoff.files.find import AUDIO_SUFFIXES, is_folder, segment_number
from handoff.files.names import shown
from handoff.timeline import FORMATS as TIMELINE_FORMATS

_JSON_PROGRESS_EVERY_S = 0.5
_STEP_WORD = {"receive": "received", "master": "master", "review": "review", "sync": "sync"}
# The batch file's keys are the options' names; click's default_map is keyed by the
# parameters' names, which differ for these (a file's out = ... was otherwise ignored).
_PARAM_OF_KEY = {"out": "out_dir", "format": "formats", "fps": "fps_text", "crop": "crop_text"}


def _load_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """--config: the batch file's options become the defaults the flags override."""
    if value is None:
        return None
    with errors():
        loaded = load_batch_file(value)
    loaded = {_PARAM_OF_KEY.get(k, k): v for k, v in loaded.items()}
    ctx.default_map = {**(ctx.default_map or {}), **loaded}
    return value


class _Terminal:
    """Progress for a person: an overall bar and a line per running step (rich)."""

    def __init__(self, plan: DeliveryPlan, live: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True, highlight=False)
        self.live = live and self.console.is_terminal
        self.lock = threading.Lock()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
            transient=True,
        )
        self.overall = self.progress.add_task("all steps", total=len(plan.to_run), speed="")
        self.tasks: dict[str, Any] = {}
        self.counted = {sp.step.key for sp in plan.to_run}
        self.out = plan.options.out

    def __enter__(self) -> _Terminal:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def say(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __call__(self, event: DeliveryEvent) -> None:
        with self.lock:
            self._handle(event)

    def _handle(self, event: DeliveryEvent) -> None:
        label = f"{shown(event.render)} {_STEP_WORD[event.step]}"
        if event.kind == "started":
            self.tasks[event.key] = self.progress.add_task(label, total=None, speed="")
        elif event.kind == "progress":
            task = self.tasks.get(event.key)
            if task is None:
                task = self.tasks[event.key] = self.progress.add_task(label, total=None, speed="")
            unit = "fps" if event.step in ("master", "review") else "/s"
            self.progress.update(task, total=event.total, completed=event.done)
            speed = self.progress.tasks[self._index(task)].speed
            self.progress.update(task, speed="" if speed is None else f"{speed:5.0f} {unit}")
        elif event.kind in ("done", "failed"):
            task = self.tasks.pop(event.key, None)
            if task is not None:
                self.progress.remove_task(task)
            self.progress.advance(self.overall)
            took = "" if event.seconds is None else f" ({event.seconds:.1f} s)"
            if event.kind == "done":
                made = ", ".join(shown(_within(o, self.out)) for o in event.outputs)
                made = f" -> {made}" if made else ""
                self.say(f"done     {label}{made}{took}")
            else:
                self.say(f"FAILED   {label}: {flags(event.reason or '')}")
        elif event.kind == "blocked" and event.key in self.counted:
            # Blocked in this run by a step that failed in it (the plan's own blocked
            # steps are in the summary table: a re-run does not repeat them line by line).
            self.progress.advance(self.overall)
            self.say(f"not run  {label}: {flags(event.reason or '')}")

    def _index(self, task: Any) -> int:
        return next(i for i, t in enumerate(self.progress.tasks) if t.id == task)


def _within(path: str, folder: Path) -> str:
    """A path inside the delivery folder as ``masters/001.mov``; others as they are."""
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return path


class _JsonLines:
    """One JSON event per line on stdout, for scripts and farm dashboards."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: dict[str, float] = {}

    def emit(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, ensure_ascii=False, allow_nan=False)
        with self.lock:
            click.echo(line)
            sys.stdout.flush()

    def __call__(self, event: DeliveryEvent) -> None:
        if event.kind == "kept":  # a finished batch of 500 renders is not 2000 lines
            return
        now = time.monotonic()
        if event.kind == "progress" and event.done != event.total:
            # Workers report every frame; a dashboard needs a few lines a second.
            if now - self.last.get(event.key, 0.0) < _JSON_PROGRESS_EVERY_S:
                return
            self.last[event.key] = now
        self.emit({**event.to_json(), "t": round(time.time(), 3)})


def _step_cell(row: RenderSummary, step: str) -> str:
    """A step's state; for ``received``, the render's verdict against the preset."""
    state = row.steps.get(step, "-")
    if step == "receive" and state in ("done", "kept") and row.received is not None:
        return {"pass": "passes", "fail": "needs export"}.get(row.received, row.received)
    return state


def _summary_table(result: DeliveryResult, steps: Sequence[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    width = shutil.get_terminal_size((120, 20)).columns
    console = Console(highlight=False, width=None if sys.stdout.isatty() else max(width, 120))
    table = Table(title=None, show_edge=False, pad_edge=False)
    heads = ("render", "state", *(_STEP_WORD[s] for s in steps), "in sync", "score", "pick",
             "reason")  # fmt: skip
    for head in heads:
        table.add_column(head, overflow="fold")
    for row in result.renders:
        state = {"failed": "FAILED", "kept": "already done", "done": "done"}[row.state]
        table.add_row(
            shown(row.render.name),
            state,
            *(_step_cell(row, s) for s in steps),
            row.verdict or "-",
            "-" if row.score is None else f"{row.score:.1f}",
            "PICK" if row.picked else "",
            flags(row.reason or ""),
        )
    console.print(table)


@click.command("deliver")
@click.argument("renders", nargs=-1, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False, readable=False),
    is_eager=True,
    expose_value=False,
    callback=_load_config,
    help="A batch file (TOML) holding these options, so a batch is re-run unchanged; "
    "flags given here win over it (docs/howto/batch.md).",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, readable=False),
    help="prep-audio's manifest.json: measure each master against its segment "
    "(002_... -> segment 2), pick the best take of each, and lay the picks on the "
    "timeline over the master narration. Without it: export, validate, and a timeline "
    "of every master in name order.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The delivery folder: masters/, review/, timeline/, selects.json, report.html, "
    "report.json and the journal (journal.jsonl). Required.",
)
@click.option(
    "--preset",
    default="prores-master",
    show_default=True,
    metavar="NAME|FILE",
    help="The master's preset (see 'handoff specs'); each render is also validated "
    "against it as received.",
)
@click.option(
    "--review",
    default=None,
    metavar="NAME|FILE",
    help="Also export a review copy with this preset into review/ (e.g. h264-review).",
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice([*TIMELINE_FORMATS, "all"]),
    help="Timeline formats to write into timeline/ (repeat the option). Default: all.",
)
@click.option("--fps", "fps_text", default=None, metavar="RATE|source",
              help="Output frame rate, as for 'handoff export --fps'.")  # fmt: skip
@click.option("--crop", "crop_text", default="auto", show_default=True,
              metavar="WxH|auto|none", help="Centre crop, as for 'handoff export'.")  # fmt: skip
@click.option(
    "--add-silence",
    is_flag=True,
    help="Give a render without sound a silent track, as for 'handoff export'.",
)
@click.option(
    "--allow-truncated",
    is_flag=True,
    help="Export what an incomplete (cut short) render holds, as for 'handoff export'; "
    "without it such a render is reported and left out.",
)
@click.option(
    "--reencode",
    is_flag=True,
    help="Encode every stream of the masters and review copies, even one that already "
    "meets the preset and would be copied, as for 'handoff export --reencode'.",
)
@click.option(
    "--engine",
    type=click.Choice(["pyav", "ffmpeg"]),
    default="pyav",
    show_default=True,
    help="Export engine, as for 'handoff export --engine'.",
)
@click.option(
    "--tolerance-ms",
    type=TOLERANCE_MS,
    help="Largest picture error allowed in sync, in ms. Default: one frame of each take.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Steps side by side: worker processes on this machine, or the workers of "
    "--cluster local. Default: the cores available.",
)
@click.option(
    "--cluster",
    metavar="local|ADDRESS",
    help="Run the per-file steps on Dask: 'local' starts a LocalCluster here; an address "
    "(tcp://host:8786) uses a running scheduler whose workers see the same files "
    "(needs pip install 'handoff[cluster]').",
)
@click.option(
    "--path-map",
    multiple=True,
    metavar="LOCAL=WORKER",
    help="With --cluster: a folder as this machine sees it and as the workers do "
    "(repeat for several).",
)
@click.option("--force", is_flag=True, help="Redo every step, whatever the journal says.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show each step and whether it would run or is kept; do nothing.",
)
@click.option(
    "--json", "as_json", is_flag=True,
    help="One JSON event per line on stdout (started, progress, done, failed, blocked, "
    "finished) instead of the display.",
)  # fmt: skip
def deliver_cmd(
    renders: Sequence[Path],
    manifest: Path | None,
    out_dir: Path | None,
    preset: str,
    review: str | None,
    formats: Sequence[str],
    fps_text: str | None,
    crop_text: str,
    add_silence: bool,
    allow_truncated: bool,
    reencode: bool,
    engine: str,
    tolerance_ms: float | None,
    jobs: int | None,
    cluster: str | None,
    path_map: Sequence[str],
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """The overnight batch in one command, from renders to the editor's folder.

    For every render (files or folders of them): probe it and validate it as
    received; export the master (and with --review a review copy) and validate what
    was written; with --manifest, measure the master's sync against its segment. Then
    rank each segment's takes into selects.json, write the picks' timeline in every
    format, and the report. The delivery folder:

    \b
      masters/  review/  timeline/   the files for the editor
      selects.json                   each segment's pick and alternates (--manifest)
      report.html  report.json       what the batch came to
      journal.jsonl                  every step, as it finished

    Resumable: every step is journaled as it finishes, with what it read (path, size,
    time, content fingerprint) and what it made. Run the same command again after a
    Ctrl-C, a kill or a reboot and only what is missing, failed, or whose render
    changed is done; a finished batch is checked in seconds without reading its media.
    --force redoes all. A second deliver into the same folder at the same time is
    refused. One bad render never stops the others.

    \b
    Examples:
      handoff deliver renders/ --manifest cond/manifest.json --out delivery/
      handoff deliver renders/ --out delivery/ --review h264-review --format premiere-xml
      handoff deliver renders/ --manifest cond/manifest.json --out delivery/ --cluster local
      handoff deliver --config batch.toml
      handoff deliver renders/ --out delivery/ --dry-run

    Exit codes: 0 every render delivered and every segment has a take in sync; 1 a
    render failed (the others are delivered) or a segment must be regenerated; 2 the
    command was used wrongly (or the folder is busy with another deliver).
    """
    from handoff.export.plan import check_rate_choice, export_settings, parse_crop, parse_fps
    from handoff.files.manifest import load_manifest
    from handoff.validate.spec import load_spec

    with errors():
        if out_dir is None:
            raise UsageError("give the delivery folder: --out DELIVERY (or out = ... in --config)")
        if not renders:
            raise UsageError("give the renders: files or folders (or renders = [...] in --config)")
        spec = load_spec(preset)
        fps = None if fps_text is None else parse_fps(fps_text)
        check_rate_choice(spec, export_settings(spec), fps)
        if review is not None:
            rspec = load_spec(review)
            check_rate_choice(rspec, export_settings(rspec), fps)
        if path_map and cluster is None:
            raise UsageError("--path-map is for --cluster: the workers' view of the files")
        manifest = None if manifest is None else _absolute(manifest)
        loaded = None if manifest is None else load_manifest(manifest)
        options = DeliverOptions(
            out=_absolute(out_dir),
            preset=preset,
            review=review,
            manifest=manifest,
            formats=tuple(formats) or ("all",),
            fps=fps,
            crop=parse_crop(crop_text),
            add_silence=add_silence,
            allow_truncated=allow_truncated,
            reencode=reencode,
            engine=engine,  # type: ignore[arg-type]
            tolerance_ms=tolerance_ms,
            force=force,
        )
        found = _renders(renders, out_dir)
        _check_any(found)
        backend = _backend(cluster, jobs, path_map)
    if dry_run:
        _dry_run(found, options, loaded, as_json)
        sys.exit(EXIT_OK)
    connect = getattr(backend, "connect", None)
    try:
        with errors():
            if connect is not None:
                connect()  # a scheduler that does not answer: before the folder is made
            lock = FolderLock(options.out)
            lock.__enter__()
        try:
            _deliver(found, options, loaded, backend, as_json, out_dir)
        finally:
            lock.__exit__(None, None, None)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()


def _absolute(path: Path) -> Path:
    """Absolute, with ``..`` taken out (os.path.abspath): the journal keys each step by
    its render's path, so ``renders/a.mp4`` given from the batch's folder and
    ``../b1/renders/a.mp4`` from another (or from a batch file's folder) must be the same
    key, or a re-run redoes every step."""
    return Path(os.path.abspath(path))  # noqa: PTH100 -- not resolve(): symlinks stay as given


def _renders(paths: Sequence[Path], out_dir: Path) -> list[tuple[Path, str | None]]:
    """Each render with the reason it cannot be used (None: it can); audio files found
    inside folders (the narration beside the renders) are left out with a note."""
    named = {p for p in paths if not is_folder(p)}
    out: list[tuple[Path, str | None]] = []
    left = 0
    for item in media(paths, outputs=[out_dir]):
        if isinstance(item, InputError):
            out.append((item.path or Path(), str(item)))
        elif item not in named and item.suffix.lower() in AUDIO_SUFFIXES:
            left += 1
        else:
            out.append((_absolute(item), None))
    if left:
        note(f"left out {left} audio file(s) found in the folders (renders are video)")
    return out


def _check_any(found: Sequence[tuple[Path, str | None]]) -> None:
    """Nothing at all to deliver is the command's error (exit 2), found before a
    delivery folder is made; one missing render among others is that render's failure."""
    if any(problem is None and path.is_file() for path, problem in found):
        return
    said = [problem or f"{path}: no such file" for path, problem in found[:3]]
    raise InputError("no render to deliver: " + ("; ".join(said) or "no video among the inputs"))


def _backend(cluster: str | None, jobs: int | None, path_map: Sequence[str]) -> Any:
    from handoff.jobs.parallel import usable_cores

    if cluster is None:
        workers = jobs or usable_cores()
        return InProcess() if workers <= 1 else ProcessPool(workers)
    try:
        from handoff.deliver.cluster import DaskCluster, parse_path_map
    except ImportError:
        raise ToolError(
            "--cluster needs Dask distributed: pip install 'handoff[cluster]'"
        ) from None
    address = None if cluster == "local" else cluster
    return DaskCluster(address, workers=jobs or usable_cores(), path_map=parse_path_map(path_map))


def _stamp_all(
    found: Sequence[tuple[Path, str | None]], journal_stamps: Any, loaded: Any
) -> tuple[list[tuple[Path, Any]], dict[Path, Any], int]:
    """Stamp every render and segment narration (fingerprints reused from the journal
    when size and time are unchanged: no media is read on a re-run)."""
    from handoff.errors import os_reason

    stamper = Stamper(journal_stamps)
    renders: list[tuple[Path, Any]] = []
    for path, problem in found:
        if problem is not None:
            renders.append((path, problem))
            continue
        try:
            renders.append((path, stamper.stamp(path)))
        except OSError as exc:
            renders.append((path, f"{path}: {os_reason(exc)}"))
    references: dict[Path, Any] = {}
    if loaded is not None:
        # Only the narrations a render is measured against: a segment no take was
        # made for yet is no input of this delivery (and would be read on every run).
        wanted = {segment_number(path.name) for path, _ in found}
        for seg in loaded.segments:
            if seg.index not in wanted:
                continue
            ref = loaded.path.parent / seg.file
            try:
                references[ref] = stamper.stamp(ref)
            except OSError as exc:
                references[ref] = f"the narration of segment {seg.index:03d}: {os_reason(exc)}"
    return renders, references, stamper.hashed


def _dry_run(found: Any, options: DeliverOptions, loaded: Any, as_json: bool) -> None:
    journal_path = options.out / JOURNAL_NAME
    with errors():
        journal = Journal.open(options.out) if journal_path.exists() else None
        latest = {} if journal is None else journal.latest
        stamps = [] if journal is None else journal.known_stamps()
        renders, references, _ = _stamp_all(found, stamps, loaded)
        plan = plan_delivery(renders, options, latest, manifest=loaded, references=references)
        if journal is not None:
            journal.close()
    if as_json:
        click.echo(json.dumps(plan.to_json(), indent=2, ensure_ascii=False))
        return
    for rp in plan.renders:
        click.echo(shown(str(rp.render)))
        if rp.problem is not None:
            click.echo(f"  cannot be used: {flags(rp.problem)}")
        for sp in rp.steps:
            word = {"run": "run ", "keep": "keep", "blocked": "not run"}[sp.action]
            click.echo(f"  {word:<8} {_STEP_WORD[sp.step.kind]:<15} {flags(sp.reason)}")
    summary = plan.to_json()["summary"]
    click.echo(
        f"\n{summary['renders']} render(s): {summary['run']} step(s) would run, "
        f"{summary['keep']} kept from the journal, {summary['blocked']} not run; then "
        "selects, timelines and the report"
    )


def _stopped(exc: KeyboardInterrupt, journal: Path) -> NoReturn:
    """Ctrl-C or SIGTERM: what finished is journaled; say how to go on."""
    from handoff.jobs.processes import Terminated

    what = "terminated" if isinstance(exc, Terminated) else "interrupted"
    die(
        f"{what}: every step that finished is kept (journal {journal}); no partial file has "
        "a final name; run the same command again to resume",
        143 if isinstance(exc, Terminated) else 130,
    )


def _deliver(
    found: Any, options: DeliverOptions, loaded: Any, backend: Any, as_json: bool, typed: Path
) -> None:
    """Run the delivery; ``typed``: the folder as the user gave it (for what is printed)."""
    started = time.monotonic()
    with errors():
        journal = Journal.open(options.out)
    for line in journal.notes:
        note(line)
    clear_parts([options.out / "masters", options.out / "review", options.out])
    with errors():
        renders, references, hashed = _stamp_all(found, journal.known_stamps(), loaded)
        plan = plan_delivery(renders, options, journal.latest, manifest=loaded,
                             references=references)  # fmt: skip
    jsonl = _JsonLines() if as_json else None
    if jsonl is not None:
        jsonl.emit({"event": "plan", **plan.to_json()["summary"], "backend": backend.name})
    elif plan.kept:
        note(f"{len(plan.kept)} step(s) already done are kept (journal {journal.path}); "
             "--force redoes them")  # fmt: skip
    display = _Terminal(plan, live=not as_json)
    try:
        with errors():
            try:
                with display:
                    result = run_delivery(plan, journal, backend, listener=jsonl or display,
                                          references=references, name=flag)  # fmt: skip
            except KeyboardInterrupt as exc:
                _stopped(exc, journal.path)
    finally:
        journal.close()
    took = time.monotonic() - started
    if jsonl is not None:
        jsonl.emit({"event": "finished", **result.to_json(), "seconds": round(took, 3)})
        sys.exit(result.exit_code)
    steps = [
        s
        for s in ("receive", "master", "review", "sync")
        if any(s in r.steps for r in result.renders)
    ]
    _summary_table(result, steps)
    delivered = sum(r.state != "failed" for r in result.renders)
    failed = len(result.renders) - delivered
    click.echo(
        f"\n{len(result.renders)} render(s): {delivered} delivered, {failed} failed; "
        f"{result.ran} step(s) run, {result.kept} kept from the journal, "
        f"{result.blocked} not run ({took:.1f} s; {hashed} file(s) fingerprinted)"
    )
    click.echo(f"delivery folder: {shown(str(typed))}")
    for name, state in result.batch.items():
        made = [shown(_within(p, options.out)) for p in result.outputs.get(name, [])]
        click.echo(f"  {name + ':':<10} {flags(state)}" + (f": {', '.join(made)}" if made else ""))
    if result.regenerate:
        click.echo("regenerate segment(s): " + ", ".join(f"{n:03d}" for n in result.regenerate))
    if result.ran == 0 and not any(v == "written" for v in result.batch.values()):
        click.echo(
            f"Nothing to do: every step is in the journal ({shown(str(typed / JOURNAL_NAME))})."
        )
    sys.exit(result.exit_code)
