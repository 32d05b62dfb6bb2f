"""The report of a delivery folder: read ``report.json``, read each take's media in
worker processes, write the page atomically."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoff.errors import InputError
from handoff.files.fsutil import InputGuard, atomic_write_bytes
from handoff.jobs.parallel import usable_cores
from handoff.report.assets import AssetJob, TakeAssets, failed_assets, take_assets
from handoff.report.model import BatchReport, collect
from handoff.report.page import render_page, take_key

__all__ = [
    "REPORT_HTML",
    "REPORT_JSON",
    "ReportResult",
    "asset_jobs",
    "build_page",
    "read_document",
    "write_report",
]

REPORT_JSON, REPORT_HTML = "report.json", "report.html"


@dataclass(frozen=True, slots=True)
class ReportResult:
    path: Path
    report: BatchReport
    size_bytes: int
    unreadable: tuple[tuple[str, str], ...]
    """(take, reason) for each delivered take whose media could not be read."""


def read_document(folder: Path) -> dict[str, Any]:
    """``folder/report.json``, or InputError in one line saying what is wrong."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError("no such folder", folder)
    if not folder.is_dir():
        raise InputError("not a folder: give the delivery folder handoff deliver wrote", folder)
    path = folder / REPORT_JSON
    try:
        text = path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        raise InputError(
            f"not a delivery folder: it has no {REPORT_JSON} (handoff deliver writes one)", folder
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read {REPORT_JSON}: {exc.strerror or exc}", folder) from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InputError(f"not valid JSON ({exc})", path) from None
    if not isinstance(document, dict):
        raise InputError("not a delivery report (not a JSON object)", path)
    return document


def asset_jobs(report: BatchReport) -> list[AssetJob]:
    """One job per delivered take (a take that was not delivered shows its reason)."""
    jobs = []
    for take in report.takes:
        if take.problem is not None:
            continue
        sync = take.sync_detail
        jobs.append(
            AssetJob(
                key=take_key(take),
                media=take.media,
                narration=None if sync is None else sync.reference,
                sync=sync,
                probe_media=take.master is not None,
            )
        )
    return jobs


def _work(job: AssetJob, progress: Callable[[int, int], None]) -> TakeAssets:
    return take_assets(job)


def compute_assets(jobs: Sequence[AssetJob], workers: int | None = None) -> dict[str, TakeAssets]:
    """Every job's assets, in worker processes (one when ``workers`` is 1, in this one)."""
    count = min(workers or usable_cores(), len(jobs))
    if count <= 1:
        results = [take_assets(j) for j in jobs]
    else:
        from handoff.jobs.processes import run_jobs

        results = run_jobs(list(jobs), _work, count, failed=failed_assets)
    return {r.key: r for r in results}


def build_page(
    report: BatchReport, out: Path, jobs: int | None = None
) -> tuple[bytes, dict[str, TakeAssets]]:
    """The page of a collected report, to be written at ``out``, and each take's assets
    (read from its media on ``jobs`` processes)."""
    assets = compute_assets(asset_jobs(report), jobs)
    return render_page(report, assets, out), assets


def write_report(folder: Path, out: Path | None = None, jobs: int | None = None) -> ReportResult:
    """Write the page of the delivery ``folder`` (default ``folder/report.html``),
    replacing an earlier one; never over one of the files it reports on."""
    folder = Path(folder)
    document = read_document(folder)
    dest = folder / REPORT_HTML if out is None else Path(out)
    report = collect(document, folder)
    inputs = [folder / REPORT_JSON]
    for take in report.takes:
        inputs += [p for p in (take.render, take.master, take.review) if p is not None]
    guard = InputGuard(inputs)
    guard.check(dest)  # before the media is read, not only at the end
    page, assets = build_page(report, dest, jobs)
    atomic_write_bytes(dest, page, replace=True, guard=guard)
    unreadable = tuple(
        (t.name, a.problem)
        for t in report.takes
        if (a := assets.get(take_key(t))) is not None and a.problem is not None
    )
    return ReportResult(dest, report, len(page), unreadable)
