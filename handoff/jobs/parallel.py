"""The cores this process may use, and a few threads for numpy work.

numpy's FFTs, convolutions and BLAS calls release the GIL, so independent chunks of
one signal (channels, filter bands) run side by side on threads without a process pool.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["run_threads", "usable_cores"]

_T = TypeVar("_T")


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_threads(jobs: Sequence[Callable[[], _T]], max_workers: int = 4) -> list[_T]:
    """Run independent jobs on up to ``max_workers`` threads; results in job order."""
    workers = min(usable_cores(), max_workers, len(jobs))
    if workers <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: job(), jobs))
