"""The batch steps of a delivery, run in the client once the per-file steps are done:
the selects file, the timelines, the report. Each returns the files it wrote and a
JSON result for the journal; each writes atomically."""

from __future__ import annotations

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
    plan: DeliveryPlan,
    latest: Mapping[str, Record],
    summary: Sequence[Mapping[str, Any]],
    workers: int = 1,
) -> tuple[list[Path], dict[str, Any]]:
    """``report.json`` (everything the journal knows of each render, for scripts) and
    ``report.html``, the page for people (:mod:`handoff.report`: each take's thumbnails,
    waveforms and sync plot, read from its master on ``workers`` processes)."""
    from handoff.report import build_page, collect

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
    # The page reads the document as written (through JSON), as `handoff report` does.
    page, _ = build_page(collect(json.loads(body), out), out / REPORT_HTML, workers)
    atomic_write_bytes(out / REPORT_HTML, page, replace=True, guard=guard)
    return [out / REPORT_JSON, out / REPORT_HTML], {"renders": len(renders)}
