"""Stage 2, validate: the facts of a file judged against a delivery spec.

:mod:`~handoff.validate.spec` parses the declarative TOML specs (the built-in ones are in
``specs/``); :mod:`~handoff.validate.check` evaluates their rules on probe facts and
returns a :class:`~handoff.validate.check.FileReport` per file.
"""

from handoff.validate.check import FileReport, Finding, validate_file, validate_info
from handoff.validate.spec import Spec, load_spec

__all__ = ["FileReport", "Finding", "Spec", "load_spec", "validate_file", "validate_info"]
