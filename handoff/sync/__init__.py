"""Stage 5, sync: how well each generated take keeps time, and which take to use.

:mod:`~handoff.sync.measure` plans the measurements (:func:`plan_sync`) and runs them per
take: the take's sound against its narration, its picture against its sound, drift and the
re-cut point, a score. :mod:`~handoff.sync.align` holds the pure timing estimators on
arrays; :mod:`~handoff.sync.selects` turns results into the selects file the timeline
stage reads.
"""

from handoff.sync.measure import SyncPlan, TakeSync, measure_take, plan_sync, run_sync
from handoff.sync.selects import Selects, load_selects, selects_from_sync

__all__ = [
    "Selects",
    "SyncPlan",
    "TakeSync",
    "load_selects",
    "measure_take",
    "plan_sync",
    "run_sync",
    "selects_from_sync",
]
