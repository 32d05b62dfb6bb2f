"""Stage 2, validate: the facts of a file judged against a delivery spec.

:mod:`~handoff.validate.spec` parses the declarative TOML specs (the built-in ones are in
``specs/``); :mod:`~handoff.validate.check` evaluates their rules on probe facts and
returns a :class:`~handoff.validate.check.FileReport` per file; :mod:`~handoff.validate.junit`
writes a run's reports as JUnit XML for CI.
"""

from handoff.validate.check import FileReport, Finding, validate_file, validate_info
from handoff.validate.junit import junit_xml, write_junit
from handoff.validate.spec import Spec, load_spec

__all__ = [
    "FileReport",
    "Finding",
    "Spec",
    "junit_xml",
    "load_spec",
    "validate_file",
    "validate_info",
    "write_junit",
]
