"""``handoff sync``: each take's sound against the narration and its picture against its
sound; ``--selects`` ranks the takes of each segment."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from handoff.cli.common import (
    EXIT_OK,
    TOLERANCE_MS,
    clear_parts,
    errors,
    flags,
    interrupted,
    media,
    note,
    say,
    skipped,
    write_json,
)
from handoff.errors import OutputExistsError, UsageError
from handoff.export.run import default_jobs
from handoff.files.fsutil import InputGuard
from handoff.files.names import shown


def _ms(x: float | None, digits: int = 1) -> str:
    """Signed, without a "-0.0" for a figure that rounds to nothing."""
    if x is None:
        return "-"
    shown_value = round(x, digits)
    return f"{shown_value + 0.0 if shown_value else 0.0:+.{digits}f}"


def render_sync(results: Sequence[Any]) -> str:
    """The terminal table of ``handoff sync``: one row per take, then its notes."""
    from handoff.sync.measure import TakeSync

    rows: list[TakeSync] = list(results)
    width = min(40, max([len(shown(r.name)) for r in rows] + [4]))
    head = (
        f"{'take':<{width}}  seg  {'sound late':>10}  {'sound stretch':>13}  "
        f"{'picture late':>12}  {'picture drift':>13}  {'out at':>7}  {'score':>5}  verdict"
    )
    lines = [head]
    for r in rows:
        name = shown(r.name)
        name = name if len(name) <= width else name[: width - 1] + "~"
        seg = "-" if r.segment is None else f"{r.segment:03d}"
        if r.status != "ok":
            lines.append(f"{name:<{width}}  {seg:>3}  ERROR: {flags(r.error or '')}")
            continue
        a, p = r.audio, r.picture
        sound = "not narr." if a is None or not a.matched else f"{_ms(a.offset_ms)} ms"
        stretch = "-" if a is None or a.drift_ppm is None else f"{_ms(a.drift_ppm, 0)} ppm"
        pic = "-" if p is None else f"{_ms(p.offset_ms)} ms"
        drift = (
            "-" if p is None or p.drift_ms_per_min is None else f"{_ms(p.drift_ms_per_min)} ms/min"
        )
        out_at = "-" if p is None or p.exceeds_at_s is None else f"{p.exceeds_at_s:.1f} s"
        score = "-" if r.score is None else f"{r.score:.1f}"
        lines.append(
            f"{name:<{width}}  {seg:>3}  {sound:>10}  {stretch:>13}  {pic:>12}  {drift:>13}  "
            f"{out_at:>7}  {score:>5}  {r.verdict}"
        )
    for r in rows:
        extra = list(r.notes)
        if r.slate is not None:
            s = r.slate
            parts = [f"click at {s.click_s * 1000:.2f} ms"]
            if s.audio_offset_ms is not None:
                parts.append(f"sound late {s.audio_offset_ms:+.2f} ms (sample-exact)")
            if s.picture_offset_ms is not None:
                parts.append(f"picture late {s.picture_offset_ms:+.1f} ms (to the frame)")
            extra.append("slate: " + ", ".join(parts))
        if r.audio is not None and r.audio.note and not r.audio.matched:
            extra.append(r.audio.note)
        if extra:
            lines.append(f"{shown(r.name)}:")
            lines += [f"  - {flags(n)}" for n in extra]
    return "\n".join(lines)


@click.command("sync")
@click.argument("takes", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--reference",
    type=click.Path(path_type=Path, readable=False),
    help="The narration every take was conditioned on (WAV or any audio file).",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, readable=False),
    help="prep-audio's manifest.json: each take is measured against the segment its "
    "name starts with (002_... -> segment 2).",
)
@click.option(
    "--tolerance-ms",
    type=TOLERANCE_MS,
    help="Largest picture error allowed, in ms. Default: one frame of each take.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Takes measured side by side (worker processes). Default: the cores available.",
)
@click.option(
    "--selects",
    "selects_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a selects file (needs --manifest): per segment the best take, the "
    "alternates in order, and the segments to regenerate. Edit it, then "
    "`handoff timeline --selects FILE`.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the selects file if it exists. Without it an existing one is kept and "
    "skipped with a note (the takes are still measured; the exit code is theirs).",
)
@click.option(
    "--dry-run", is_flag=True, help="Show which take goes with which narration; measure nothing."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON report (docs/reference/json.md)."
)
def sync_cmd(
    takes: Sequence[Path],
    reference: Path | None,
    manifest: Path | None,
    tolerance_ms: float | None,
    jobs: int | None,
    selects_out: Path | None,
    overwrite: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Measure each take's sync: its sound against the narration, its picture against
    its sound, and where it drifts out of tolerance.

    TAKES are files or folders (expanded to the media inside). Every take is measured
    against --reference, or with --manifest against its own segment. For each take:

    \b
      sound late     the take's sound against the narration (GCC-PHAT, to ~0.01 ms),
                     and its stretch in ppm; "not narr." when it is other sound
      picture late   the picture against the take's own sound (picture change vs
                     loudness change; about a frame on real footage), and its drift
      out at         where the error first exceeds the tolerance, with a re-cut
                     point (a pause in the narration before it) in the notes
      score          0-100, higher is better: errors weighted as viewers notice them
                     (ITU-R BT.1359: sound early from 45 ms, sound late from 125 ms)

    A take that starts with a click (prep-audio --click) and a flash or cut is also
    measured from it, sample-exact; the notes say so.

    With --selects FILE (and --manifest) the takes of each segment are ranked by score
    into a selects file: the pick, the alternates, and the segments where no take is
    within tolerance (to regenerate, from the re-cut point). It is plain JSON: swap a
    pick by hand, then `handoff timeline --selects FILE` places each pick shifted by
    its measured sound offset, with the alternates beside it.

    \b
    Examples:
      handoff sync renders/ --manifest cond/manifest.json
      handoff sync renders/ --manifest cond/manifest.json --selects selects.json
      handoff sync take1.mp4 take2.mp4 --reference narration.wav --json
      handoff sync renders/ --manifest cond/manifest.json --tolerance-ms 20 --jobs 2

    Exit codes: 0 every take within the tolerance; 1 any take out of it (or its sound
    is not the narration); 2 a take or its narration could not be read (the others are
    still measured), or the command was used wrongly.
    """
    from handoff.files.find import check_readable
    from handoff.files.manifest import load_manifest
    from handoff.sync.measure import exit_code, plan_sync, run_sync, sync_json

    with errors():
        if (reference is None) == (manifest is None):
            raise UsageError("give --reference WAV or --manifest manifest.json (one of them)")
        if reference is not None:
            check_readable(reference)
        if selects_out is not None and manifest is None:
            raise UsageError("--selects needs --manifest (selects are made per segment)")
        loaded = None if manifest is None else load_manifest(manifest)
        plan = plan_sync(
            media(takes), reference=reference, manifest=loaded, tolerance_ms=tolerance_ms
        )
    if dry_run:
        if as_json:
            write_json(plan.to_json())
        else:
            for job in plan.jobs:
                against = job.problem or f"against {job.reference}"
                say(f"{job.take}: {against}")
        sys.exit(EXIT_OK)
    guard = None
    if selects_out is not None:
        with errors():
            inputs = [j.take for j in plan.jobs] + [j.reference for j in plan.jobs if j.reference]
            guard = InputGuard([*inputs, *([manifest] if manifest else [])])
            guard.check(selects_out)
            if not overwrite and (selects_out.exists() or selects_out.is_symlink()):
                note(skipped(selects_out))
                selects_out = None
            else:
                clear_parts([selects_out.parent])
    workers = jobs or default_jobs()
    try:
        results = run_sync(plan, jobs=workers)
    except KeyboardInterrupt as exc:
        interrupted(exc)
    code = exit_code(results)
    document = sync_json(plan, results)
    picked: dict[str, Any] | None = None
    if selects_out is not None:
        from handoff.sync.selects import selects_from_sync, write_selects

        with errors():
            picked = selects_from_sync(document, relative_to=selects_out.parent)
            try:
                write_selects(selects_out, picked, replace=overwrite, guard=guard)
            except OutputExistsError:  # another run wrote it while this one measured
                note(skipped(selects_out))
                picked = None
    if as_json:
        write_json({**document, "exit_code": code})
    else:
        say(render_sync(results))
        counts = {v: sum(r.verdict == v for r in results) for v in ("in", "out", "error")}
        click.echo(
            f"\n{len(results)} take(s): {counts['in']} in sync, {counts['out']} out, "
            f"{counts['error']} could not be measured"
        )
        if picked is not None and selects_out is not None:
            say(render_selects(picked, selects_out))
    sys.exit(code)


def render_selects(picked: dict[str, Any], path: Path) -> str:
    """What the selects file says, one line a segment."""
    lines = [f"selects -> {path}"]
    for seg in picked["segments"]:
        pick = shown(Path(seg["pick"]).name)
        alts = len(seg["alternates"])
        line = f"  {seg['segment']:03d}: {pick}" + (f" (+{alts} alternate(s))" if alts else "")
        if seg["regenerate"]:
            at = seg["recut_at_s"]
            line += "  REGENERATE" + (f" from {at:.1f} s" if at is not None else " (whole segment)")
        lines.append(line)
    for item in picked["unplaced"]:
        lines.append(f"  not placed: {shown(Path(item['path']).name)}: {item['reason']}")
    return "\n".join(lines)
