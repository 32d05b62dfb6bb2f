"""``handoff validate``: files against a delivery spec, PASS / FAIL / ERROR each."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from handoff.cli.common import die, errors, escaped, flags, media, say, write_json
from handoff.errors import UsageError, describe
from handoff.files.find import MediaItem
from handoff.files.fsutil import InputGuard, atomic_write_bytes
from handoff.validate.check import FileReport, exit_code, validate_file
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


def junit_xml(reports: Sequence[FileReport], spec_name: str) -> bytes:
    """JUnit XML: one testcase per file, a failure per failed file, an error per unreadable."""
    from lxml import etree

    failures = sum(r.status == "fail" for r in reports)
    errors = sum(r.status == "error" for r in reports)
    suites = etree.Element("testsuites")
    suite = etree.SubElement(
        suites,
        "testsuite",
        name=f"handoff validate --spec {spec_name}",
        tests=str(len(reports)),
        failures=str(failures),
        errors=str(errors),
    )
    for r in reports:
        # XML 1.0 holds no control character and no lone surrogate (a file name's bytes
        # that are not UTF-8): both appear as escapes, as on the terminal.
        case = etree.SubElement(suite, "testcase", classname=spec_name, name=escaped(str(r.path)))
        if r.status == "error":
            el = etree.SubElement(case, "error", message=escaped(r.error or "unreadable"))
            el.text = escaped(r.error or "unreadable")
        elif r.status == "fail":
            failed = [f for f in r.findings if f.severity == "error"]
            message = "; ".join(f"{f.rule}: got {f.actual}" for f in failed)
            el = etree.SubElement(case, "failure", message=escaped(message))
            el.text = escaped(
                "\n".join(
                    f"{f.rule}: expected {f.expected}, got {f.actual} -- {f.message}"
                    for f in failed
                )
            )
        warnings = [f for f in r.findings if f.severity == "warning"]
        if warnings or r.notes:
            out = etree.SubElement(case, "system-out")
            out.text = escaped(
                "\n".join([f"warning {f.rule}: {f.message}" for f in warnings] + list(r.notes))
            )
    return bytes(etree.tostring(suites, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _check_report_path(report: Path, inputs: Sequence[MediaItem]) -> None:
    """A report file (JUnit) must be a file, and never one of the files it reports on."""
    if report.is_dir():
        raise UsageError("--junit names a folder; give a file name such as report.xml", report)
    InputGuard(i for i in inputs if isinstance(i, Path)).check(report)


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
            _check_report_path(junit, items)
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
            # A report of this run replaces one of an earlier run: it is the point of it.
            atomic_write_bytes(junit, junit_xml(reports, spec.name), replace=True)
    sys.exit(code)
