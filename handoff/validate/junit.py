"""JUnit XML for a validation run: what CI systems (GitLab, Jenkins, GitHub's test
reporters) show as one test case per file.

The element and attribute names are those of the JUnit XML schema as Ant and Maven
Surefire write it: ``testsuites/testsuite(tests, failures, errors)/testcase(classname,
name)``, a ``failure`` for a file that fails its spec and an ``error`` for one that could
not be read, ``system-out`` for warnings and notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from lxml import etree

from handoff.errors import Option, Text, UsageError
from handoff.files.fsutil import InputGuard, atomic_write_bytes
from handoff.files.names import shown_lines
from handoff.validate.check import FileReport

__all__ = ["check_report_path", "junit_xml", "write_junit"]


def junit_xml(reports: Sequence[FileReport], spec_name: str) -> bytes:
    """JUnit XML: one testcase per file, a failure per failed file, an error per unreadable."""
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
        name = shown_lines(str(r.path))
        case = etree.SubElement(suite, "testcase", classname=spec_name, name=name)
        if r.status == "error":
            el = etree.SubElement(case, "error", message=shown_lines(r.error or "unreadable"))
            el.text = shown_lines(r.error or "unreadable")
        elif r.status == "fail":
            failed = [f for f in r.findings if f.severity == "error"]
            message = "; ".join(f"{f.rule}: got {f.actual}" for f in failed)
            el = etree.SubElement(case, "failure", message=shown_lines(message))
            el.text = shown_lines(
                "\n".join(
                    f"{f.rule}: expected {f.expected}, got {f.actual} -- {f.message}"
                    for f in failed
                )
            )
        warnings = [f for f in r.findings if f.severity == "warning"]
        if warnings or r.notes:
            out = etree.SubElement(case, "system-out")
            out.text = shown_lines(
                "\n".join([f"warning {f.rule}: {f.message}" for f in warnings] + list(r.notes))
            )
    return bytes(etree.tostring(suites, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def check_report_path(report: Path, inputs: Iterable[Path]) -> None:
    """A report file must be a file, and never one of the files it reports on (checked
    before any file is validated, so a wrong name costs no work)."""
    if report.is_dir():
        raise UsageError(
            Text(Option("report"), " names a folder; give a file name such as report.xml"), report
        )
    InputGuard(inputs).check(report)


def write_junit(report: Path, reports: Sequence[FileReport], spec_name: str) -> None:
    """Write the JUnit XML atomically. A report of this run replaces one of an earlier
    run there: it is the point of it."""
    atomic_write_bytes(report, junit_xml(reports, spec_name), replace=True)
