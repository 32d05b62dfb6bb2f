"""Executors of export plans: PyAV in-process (default) and the ffmpeg command line.

Both take the same :class:`~handoff.export.plan.ExportPlan` and write the file it describes
to the path they are given (a temporary file beside the destination; the caller
renames it). Neither decides anything the plan has not decided.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from handoff.export.plan import ExportPlan

__all__ = ["ENGINES", "Engine", "Progress", "execute"]

Engine = Literal["pyav", "ffmpeg"]
ENGINES: tuple[Engine, ...] = ("pyav", "ffmpeg")
Progress = Callable[[int, int], None]
"""Called with (frames written, frames in all) as the export goes."""


def execute(
    plan: ExportPlan, out_path: Path, engine: Engine = "pyav", progress: Progress | None = None
) -> None:
    """Write ``plan`` to ``out_path`` with the chosen engine."""
    if engine == "pyav":
        from handoff.export.engines import pyav_engine

        pyav_engine.run(plan, out_path, progress)
    else:
        from handoff.export.engines import ffmpeg_engine

        ffmpeg_engine.run(plan, out_path, progress)
