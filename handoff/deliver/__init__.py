"""``handoff deliver``: the whole batch, from renders to the editor's folder, resumable.

:func:`plan_delivery` (pure) decides each render's steps from what the renders are now
and what the journal holds; :func:`run_delivery` runs the steps that must run on a
backend (this process, the local process pool, or a Dask cluster), journaling each
outcome as it arrives, then writes the selects, the timelines and the report.
"""

from handoff.deliver.config import load_batch_file
from handoff.deliver.journal import (
    JOURNAL_NAME,
    FolderLock,
    Journal,
    Record,
    Stamp,
    Stamper,
    outputs_intact,
    settings_digest,
)
from handoff.deliver.plan import DeliverOptions, DeliveryPlan, Step, StepPlan, plan_delivery
from handoff.deliver.run import (
    Backend,
    DeliveryEvent,
    DeliveryResult,
    InProcess,
    ProcessPool,
    RenderSummary,
    run_delivery,
)
from handoff.deliver.steps import StepOutcome, run_step

__all__ = [
    "JOURNAL_NAME",
    "Backend",
    "DeliverOptions",
    "DeliveryEvent",
    "DeliveryPlan",
    "DeliveryResult",
    "FolderLock",
    "InProcess",
    "Journal",
    "ProcessPool",
    "Record",
    "RenderSummary",
    "Stamp",
    "Stamper",
    "Step",
    "StepOutcome",
    "StepPlan",
    "load_batch_file",
    "outputs_intact",
    "plan_delivery",
    "run_delivery",
    "run_step",
    "settings_digest",
]
