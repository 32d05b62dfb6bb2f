"""The batch steps of a delivery, run in the client once the per-file steps are done:
the selects file, the timelines, the report. Each returns the files it wrote and a
JSON result for the journal; each writes atomically."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from handoff.deliver.journal import Record, Stamp
from handoff.deliver.plan import TIMELINE, DeliveryPlan
from handoff.files.fsutil import InputGuard, atomic_write_bytes

__all__ = ["REPORT_HTML", "REPORT_JSON", "SELECTS", "report_step", "selects_step", "timeline_step"]

SELECTS, REPORT_JSON, REPORT_HTML = "selects.json", "report.json", "report.html"


def _guard(plan: DeliveryPlan) -> InputGuard:
    inputs = [rp.render for rp in plan.renders]
    if plan.options.manifest is not None:
        inputs.append(plan.options.manifest)
    return InputGuard(inputs)


def selects_step(
    plan: DeliveryPlan, takes: Sequence[Mapping[str, Any]]
) -> tuple[list[Path], dict[str, Any]]:
    """Rank each segment's measured masters into ``selects.json`` (paths relative to the
    delivery folder, so the folder can move as a whole)."""
    from handoff.sync.measure import SCHEMA as SYNC_SCHEMA
    from handoff.sync.selects import selects_from_sync, write_selects

    assert plan.manifest is not None
    out = plan.options.out
    document = {
        "schema": SYNC_SCHEMA,
        "reference": None,
        "manifest": str(plan.manifest.path.absolute()),
        "tolerance_ms": plan.options.tolerance_ms,
        "takes": list(takes),
    }
    picked = selects_from_sync(document, relative_to=out)
    path = out / SELECTS
    write_selects(path, picked, replace=True, guard=_guard(plan))
    return [path], {"selects": picked}


def timeline_step(
    plan: DeliveryPlan, masters: Sequence[Stamp]
) -> tuple[list[Path], dict[str, Any]]:
    """The picks (with a manifest) or every master in name order, in every format asked."""
    from handoff.files.find import media_sort_key
    from handoff.timeline import FORMATS
    from handoff.timeline.output import plan_timeline_files, write_timeline_files
    from handoff.timeline.project import timeline_from_paths, timeline_from_selects

    out = plan.options.out
    if plan.manifest is not None:
        build = timeline_from_selects(out / SELECTS, manifest_path=plan.manifest.path)
    else:
        clips = sorted((Path(s.path) for s in masters), key=media_sort_key)
        build = timeline_from_paths(clips, name=out.absolute().name or "delivery")
    formats = list(FORMATS) if "all" in plan.options.formats else list(plan.options.formats)
    files = plan_timeline_files(build, formats, out / TIMELINE, replace=True, out_is_folder=True)
    written = write_timeline_files(build, files)
    return [p for _, p in written], {
        "files": {fmt: str(p) for fmt, p in written},
        "notes": [str(n) for n in (*build.notes, *files.notes)],
    }


def report_step(
    plan: DeliveryPlan, latest: Mapping[str, Record], summary: Sequence[Mapping[str, Any]]
) -> tuple[list[Path], dict[str, Any]]:
    """``report.json`` (everything the journal knows of each render, for scripts) and a
    plain ``report.html`` table (for people)."""
    out = plan.options.out
    renders = []
    for row in summary:
        render = row["render"]
        steps = {}
        for kind in ("receive", "master", "review", "sync"):
            record = latest.get(f"{kind}:{render}")
            if record is not None:
                steps[kind] = {
                    "status": record.status,
                    "reason": record.reason,
                    "outputs": [s.path for s in record.outputs],
                    "result": record.result,
                }
        renders.append({**row, "records": steps})
    selects = latest.get("selects:batch")
    document = {
        "schema": "handoff.delivery-report/1",
        "options": plan.options.to_json(),
        "renders": renders,
        "selects": None if selects is None or not selects.result else selects.result["selects"],
    }
    guard = _guard(plan)
    body = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_bytes(out / REPORT_JSON, body.encode("utf-8", "surrogateescape"),
                       replace=True, guard=guard)  # fmt: skip
    atomic_write_bytes(out / REPORT_HTML, _html(document).encode("utf-8", "surrogateescape"),
                       replace=True, guard=guard)  # fmt: skip
    return [out / REPORT_JSON, out / REPORT_HTML], {"renders": len(renders)}


def _html(document: Mapping[str, Any]) -> str:
    """A plain table: one row per render, its state in words and the reason it failed."""
    e = html.escape
    rows = []
    for r in document["renders"]:
        score = "" if r["score"] is None else f"{r['score']:.1f}"
        pick = "PICK" if r["picked"] else ""
        rows.append(
            "<tr>"
            f"<td>{e(Path(r['render']).name)}</td><td>{e(r['state'])}</td>"
            f"<td>{e(r['received'] or '')}</td><td>{e(r['sync_verdict'] or '')}</td>"
            f"<td>{score}</td><td>{pick}</td><td>{e(r['reason'] or '')}</td>"
            "</tr>"
        )
    selects = document["selects"] or {}
    regen = [s["segment"] for s in selects.get("segments", []) if s.get("regenerate")]
    failed = sum(r["state"] == "failed" for r in document["renders"])
    head = f"{len(document['renders'])} render(s), {failed} not delivered" + (
        f"; segments to regenerate: {', '.join(f'{n:03d}' for n in regen)}" if regen else ""
    )
    return (
        "<!doctype html>\n<html lang=en><meta charset=utf-8>"
        "<title>handoff delivery report</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:1.5em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        "</style>\n"
        f"<h1>Delivery report</h1><p>{e(head)}</p>\n"
        "<table><tr><th>render</th><th>state</th><th>as received</th><th>sync</th>"
        "<th>score</th><th>pick</th><th>reason</th></tr>\n" + "\n".join(rows) + "\n</table>\n"
    )
