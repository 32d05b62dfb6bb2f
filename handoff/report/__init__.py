"""The report: one self-contained HTML page per delivered batch, for people.

:mod:`~handoff.report.model` collects what ``handoff deliver`` recorded
(``report.json``) into frozen views by a pure function; :mod:`~handoff.report.assets`
reads each take's media in worker processes (thumbnails, waveforms, loudness) and
:mod:`~handoff.report.plots` draws its plots; :mod:`~handoff.report.page` lays it all
out with lxml; :mod:`~handoff.report.run` ties them together and writes the page.
"""

from handoff.report.model import BatchReport, SegmentView, SyncView, TakeView, collect
from handoff.report.run import ReportResult, build_page, read_document, write_report

__all__ = [
    "BatchReport",
    "ReportResult",
    "SegmentView",
    "SyncView",
    "TakeView",
    "build_page",
    "collect",
    "read_document",
    "write_report",
]
