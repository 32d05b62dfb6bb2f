"""Stage 3, export: a conforming master or review copy from what the generator rendered.

:mod:`~handoff.export.plan` is where every decision is made: a pure function turns probe
facts and options into a frozen :class:`~handoff.export.plan.ExportPlan`.
:mod:`~handoff.export.engines` carry a plan out (PyAV in-process, or the ffmpeg command
line) and decide nothing. :mod:`~handoff.export.run` ties them together per file and per
batch, checks each output against its preset and reports every outcome as a result.
"""

from handoff.export.plan import ExportOptions, ExportPlan, plan_export
from handoff.export.run import ExportJob, ExportResult, export_batch, export_one

__all__ = [
    "ExportJob",
    "ExportOptions",
    "ExportPlan",
    "ExportResult",
    "export_batch",
    "export_one",
    "plan_export",
]
