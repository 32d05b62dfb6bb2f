"""Child processes that die with their parent, and a pool that loses only a crashed job.

Three guarantees, each for a failure seen in the field:

* **A crash costs one file.** :func:`run_jobs` runs jobs in worker processes and always
  knows which job each worker holds. When a worker dies (a native crash in a decoder,
  the out-of-memory killer), only that job gets a failure; the worker is replaced and
  the batch goes on. ``concurrent.futures.ProcessPoolExecutor`` cannot do this: one dead
  worker breaks the pool and fails every job still pending ("a process in the process
  pool was terminated abruptly").
* **Children die with their parent.** A worker or an ``ffmpeg`` child asks the kernel
  to signal it when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``, prctl(2)), so a
  ``kill -9`` of handoff does not leave encoders writing for minutes, re-parented to
  PID 1. Where that call does not exist, a worker polls its parent id instead.
* **SIGTERM cleans up like Ctrl-C.** :func:`raise_on_sigterm` turns SIGTERM into
  :class:`Terminated` (a ``KeyboardInterrupt``), so ``finally`` blocks run: temporary
  ``.part`` files are removed and child encoders are killed before the process exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "Terminated",
    "child_preexec",
    "die_with_parent",
    "raise_on_sigterm",
    "run_jobs",
]

J = TypeVar("J")
R = TypeVar("R")
Progress = Callable[[int, int], None]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_STOP_GRACE_S = 5.0  # how long stopping workers may take to clean up before SIGKILL


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM): unwind and clean up, as for Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    # Once: clean-up must not be cut short by a second SIGTERM. One comes often: the
    # kernel sends PR_SET_PDEATHSIG each time the thread a child was re-parented to exits,
    # so a dying multi-threaded parent signals its children once per thread (measured:
    # two SIGTERMs 13 ms apart in each --jobs 2 worker after kill -9 of handoff).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def raise_on_sigterm() -> None:
    """Raise :class:`Terminated` in the main thread when SIGTERM arrives."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return fn


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Have this process receive ``sig`` when its parent process dies.

    ``parent`` is the pid the parent had when it started this process: if it has
    already gone (it died before this call), the signal is sent at once. On Linux the
    kernel delivers it (PR_SET_PDEATHSIG); elsewhere a daemon thread polls the parent
    id every half second.
    """
    expected = os.getppid() if parent is None else parent
    prctl = _prctl()
    if prctl is not None and prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0:
        if os.getppid() != expected:
            os.kill(os.getpid(), sig)
        return

    def watch() -> None:
        while os.getppid() == expected:
            time.sleep(0.5)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="handoff-parent-watch", daemon=True).start()


def child_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that kills the child (SIGKILL) when
    the process that started it dies; None where the system has no such call.

    Only a small, allocation-free ctypes call runs between fork and exec.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


# ---------------------------------------------------------------- the pool


def _worker_main(conn: Any, work: Callable[[Any, Progress], Any], parent: int) -> None:
    """A worker: take (index, job) messages until told to stop or the parent goes."""
    raise_on_sigterm()
    try:
        # Inside the try: a parent already gone makes this send SIGTERM at once, and
        # the Terminated it raises is a quiet stop, not a traceback (seen when the
        # parent was killed with SIGKILL while its workers were still starting).
        die_with_parent(signal.SIGTERM, parent)
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the parent has gone
                return
            if message is None:
                return
            index, job = message

            def progress(done: int, total: int, index: int = index) -> None:
                conn.send(("progress", index, done, total))

            try:
                result = work(job, progress)
            except Exception as exc:  # the job's own failure: report it, stay alive
                from handoff.errors import describe

                conn.send(("error", index, describe(exc)))
            else:
                conn.send(("result", index, result))
    except (KeyboardInterrupt, BrokenPipeError, EOFError, ConnectionResetError):
        return  # stopped (Ctrl-C, SIGTERM, parent gone): clean-up has run on the way out


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start a worker with SIGINT ignored, which it inherits and keeps.

    A Ctrl-C reaches every process of the terminal's group. A worker still starting
    (Python's own start-up, importing handoff) met it outside any handler and printed a
    KeyboardInterrupt traceback above the command's one-line message. The parent sees
    the Ctrl-C anyway and stops its workers (:func:`_stop`: SIGTERM, which a worker turns
    into a clean-up, :func:`raise_on_sigterm`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass(slots=True)
class _Worker(Generic[J]):
    process: Any
    conn: Any
    job: int | None = None


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


def run_jobs(
    jobs: Sequence[J],
    work: Callable[[J, Progress], R],
    workers: int,
    *,
    failed: Callable[[J, str], R],
    on_progress: Callable[[int, int, int], None] | None = None,
    on_result: Callable[[J, R], None] | None = None,
    follow_up: Callable[[J, R], Sequence[J]] | None = None,
    on_start: Callable[[int, J], None] | None = None,
) -> list[R]:
    """Run ``work(job, progress)`` for every job in up to ``workers`` processes.

    ``work`` must be a module-level function (workers are spawned, not forked: the
    parent holds FFmpeg threads and open codecs). Results come back in job order.
    A job whose ``work`` raises, or whose worker dies under it, gets
    ``failed(job, reason)``; the others are not affected. ``on_progress`` receives
    (job index, done, total) and ``on_result`` each result as it arrives, in the parent.
    ``follow_up`` returns the jobs a result makes possible (a step that needs the one
    just done); they go to the front of the queue (depth first: a batch stopped half
    way holds whole renders, not every render's first step), and their results follow
    the others' in the list.
    While any job may still bring more, an idle worker waits for work instead of
    leaving (a new worker costs a spawn and the imports). ``on_start`` receives (job
    index, job) as a job is handed to a worker.
    """
    context = multiprocessing.get_context("spawn")
    all_jobs = list(jobs)
    pending = deque(range(len(all_jobs)))
    results: dict[int, R] = {}
    live: list[_Worker[J]] = []
    idle: list[_Worker[J]] = []

    def start() -> None:
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=_worker_main, args=(theirs, work, os.getpid()), daemon=True
        )
        with _sigint_ignored():
            process.start()
        theirs.close()
        worker: _Worker[J] = _Worker(process, ours)
        live.append(worker)
        give(worker)

    def give(worker: _Worker[J]) -> None:
        if not worker.process.is_alive():
            # Its last result arrived as it died: a job given now would be failed as
            # the dead worker's own. The loop replaces the worker.
            worker.job = None
            return
        worker.job = pending.popleft() if pending else None
        if worker.job is None and follow_up is not None and any(w.job is not None for w in live):
            idle.append(worker)  # a job still running may bring more
            return
        if worker.job is not None and on_start is not None:
            on_start(worker.job, all_jobs[worker.job])
        with contextlib.suppress(OSError):
            worker.conn.send(None if worker.job is None else (worker.job, all_jobs[worker.job]))

    def finish(index: int, result: R) -> None:
        results[index] = result
        if on_result is not None:
            on_result(all_jobs[index], result)
        if follow_up is not None:
            first = len(all_jobs)
            all_jobs.extend(follow_up(all_jobs[index], result))
            pending.extendleft(reversed(range(first, len(all_jobs))))

    def dispatch() -> None:
        while pending and idle:
            give(idle.pop())
        while pending and len(live) < workers:
            start()

    def drain(worker: _Worker[J]) -> None:
        while True:
            try:
                if not worker.conn.poll():
                    return
                message = worker.conn.recv()
            except (EOFError, OSError):
                return
            kind, index = message[0], message[1]
            if kind == "progress":
                if on_progress is not None:
                    on_progress(index, message[2], message[3])
                continue
            finish(index, message[2] if kind == "result" else failed(all_jobs[index], message[2]))
            give(worker)

    try:
        for _ in range(min(workers, len(all_jobs))):
            start()
        while len(results) < len(all_jobs):
            waiting = [w.conn for w in live] + [w.process.sentinel for w in live]
            multiprocessing.connection.wait(waiting, timeout=1.0)
            for worker in list(live):
                drain(worker)
                if worker.process.is_alive():
                    continue
                worker.process.join()
                drain(worker)  # a result sent just before the end
                live.remove(worker)
                worker.conn.close()
                if worker in idle:
                    idle.remove(worker)
                if worker.job is not None and worker.job not in results:
                    reason = f"the worker process {_death(worker.process.exitcode)} on this file"
                    lost, worker.job = worker.job, None
                    finish(lost, failed(all_jobs[lost], reason))
            dispatch()
    finally:
        _stop(live)
    return [results[i] for i in range(len(all_jobs))]


def _stop(live: Sequence[_Worker[Any]]) -> None:
    """Ask idle workers to leave, busy ones to clean up; kill what lingers."""
    for worker in live:
        with contextlib.suppress(OSError):
            worker.conn.send(None)
        if worker.job is not None and worker.process.is_alive():
            with contextlib.suppress(OSError):
                worker.process.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for worker in live:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        with contextlib.suppress(OSError):
            worker.conn.close()
