"""``handoff validate``: files against a delivery spec, PASS / FAIL / ERROR each."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from handoff.cli.common import die, errors, flags, media, say, write_json
from handoff.errors import describe
from handoff.validate.check import FileReport, exit_code, validate_file
from handoff.validate.junit import check_report_path, write_junit
from handoff.validate.spec import load_spec


def _parse_options(raw: Sequence[str], allow_ntsc: bool) -> dict[str, bool]:
    options: dict[str, bool] = {}
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep:
            value = "true"
        low = value.strip().lower()
        if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            die(f"--option {item}: the value must be true or false")
        options[name.strip()] = low in ("true", "1", "yes", "on")
    if allow_ntsc:
        options["allow_ntsc"] = True
    return options


def render_report(report: FileReport) -> str:
    head = {"pass": "PASS ", "fail": "FAIL ", "error": "ERROR"}[report.status]
    lines = [f"{head}  {report.path}"]
    if report.error:
        lines.append(f"       {flags(report.error)}")
    for f in report.findings:
        mark = "x" if f.severity == "error" else "!"
        lines.append(
            f"       {mark} {f.rule}: expected {f.expected}, got {f.actual}"
            + (f" -- {flags(f.message)}" if f.message else "")
        )
    lines += [f"       note: {flags(n)}" for n in report.notes]
    return "\n".join(lines)


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--spec",
    "spec_name",
    required=True,
    metavar="NAME|FILE",
    help="A built-in spec (see 'handoff specs') or a TOML spec file.",
)
@click.option(
    "--option",
    "raw_options",
    multiple=True,
    metavar="NAME=BOOL",
    help="Set a spec option, e.g. --option allow_ntsc=false (24 or 30 fps only). "
    "Repeatable; 'handoff specs' lists each spec's options and defaults.",
)
@click.option(
    "--allow-ntsc",
    is_flag=True,
    help="Shorthand for --option allow_ntsc=true (the built-in specs' default; kept for "
    "scripts written when it was not).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON report (docs/reference/json.md)."
)
@click.option(
    "--junit",
    type=click.Path(path_type=Path, readable=False),
    help="Also write a JUnit XML report to this file (for CI); an earlier report there is "
    "replaced.",
)
def validate_cmd(
    paths: Sequence[Path],
    spec_name: str,
    raw_options: Sequence[str],
    allow_ntsc: bool,
    as_json: bool,
    junit: Path | None,
) -> None:
    """Check media files against a delivery spec.

    Folders expand recursively to the media files inside. Each file gets PASS, FAIL
    (with every rule it breaks: expected, actual, why) or ERROR (unreadable). One bad
    file never stops the others.

    \b
    Exit codes: 0 all pass; 1 any file fails; 2 any file is unreadable, or the spec
    or options are wrong.
    \b
    Examples:
      handoff validate renders/ --spec h264-review
      handoff validate narration/*.wav --spec ltx2-audio --json
      handoff validate masters/ --spec prores-master --junit report.xml
      handoff validate out.mp4 --spec ./my-spec.toml
    """
    with errors():
        spec = load_spec(spec_name)
        options = spec.resolve_options(_parse_options(raw_options, allow_ntsc))
        items = media(paths)
        if junit is not None:
            check_report_path(junit, [i for i in items if isinstance(i, Path)])
    reports: list[FileReport] = []
    for item in items:
        if isinstance(item, Path):
            report = validate_file(item, spec, options)
        else:
            report = FileReport(item.path or Path(), spec.name, "error", error=describe(item))
        reports.append(report)
        if not as_json:
            say(render_report(report))
    code = exit_code(reports)
    counts = {s: sum(r.status == s for r in reports) for s in ("pass", "fail", "error")}
    if as_json:
        write_json(
            {
                "spec": spec.name,
                "options": options,
                "summary": {"files": len(reports), **counts},
                "exit_code": code,
                "files": [r.to_json() for r in reports],
            }
        )
    else:
        click.echo(
            f"\n{len(reports)} file(s) against '{spec.name}': {counts['pass']} pass, "
            f"{counts['fail']} fail, {counts['error']} error"
        )
    if junit is not None:
        with errors():
            write_junit(junit, reports, spec.name)
    sys.exit(code)
