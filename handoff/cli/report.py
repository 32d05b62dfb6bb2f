"""``handoff report``: the HTML page of a delivery folder, for people."""

from __future__ import annotations

from pathlib import Path

import click

from handoff.cli.common import errors, note, say


@click.command("report")
@click.argument("delivery", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the page (default: DELIVERY/report.html, replaced).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Takes read side by side, in worker processes (default: the cores available).",
)
def report_cmd(delivery: Path, out: Path | None, jobs: int | None) -> None:
    """Write one self-contained HTML page of the batch handoff deliver wrote into
    DELIVERY (from its report.json): a summary and what to regenerate, then per
    segment its takes, the pick first, with thumbnails, waveforms, the sync plot,
    loudness, the spec verdict and each file's facts. No network needed to view it.
    """
    from handoff.report import write_report

    with errors():
        result = write_report(delivery, out, jobs)
    for name, reason in result.unreadable:
        note(f"{name}: shown without pictures: {reason}")
    report = result.report
    say(
        f"wrote {result.path} ({len(report.takes)} take(s) in {report.segment_count} "
        f"segment(s); {result.size_bytes / 1e6:.2f} MB)"
    )
    for line in report.next_steps():
        say(f"  {line}")
