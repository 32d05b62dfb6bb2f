"""The per-file steps on a Dask ``distributed`` cluster (``--cluster ADDRESS|local``).

What runs where: each step is one Dask task running :func:`handoff.deliver.steps.run_step`
on a worker; the client (this process) submits the steps, hears each outcome, journals
it and submits the steps it lets run. Workers read the renders and write the outputs
on storage every one of them sees; ``path_map`` rewrites a path the client sees
(``/mnt/renders``) into the one the workers see (``/data/renders``) and back.

A worker that dies mid-step (killed, out of memory) loses only that step's temporary
``.part`` file: the scheduler gives the task to another worker (Dask reschedules the
tasks of a lost worker, up to ``distributed.scheduler.allowed-failures`` times, then
raises ``KilledWorker``, which becomes that step's failure). Outputs appear by atomic
rename, so no final-named file is partial whichever worker dies.

Progress: a worker publishes each step's start and its frame counts as Dask events
(``Worker.log_event`` on the topic :data:`TOPIC`), under the step's key as the *client*
knows it (with a path map, the step the worker holds names other paths); the client
subscribes to the topic and passes them to the display.

A local cluster dies with the client: its nannies live in the client process and each
worker is a child of it, which Dask already ends when its pipe to the parent closes
(``distributed.process.AsyncProcess``); a worker plugin adds the kernel's word for it
(PR_SET_PDEATHSIG), which holds even while the worker is deep in an encoder.

``distributed`` is an optional extra (``pip install 'handoff[cluster]'``): this module
imports it, and the command imports this module only for ``--cluster`` (without the
extra, ``--cluster`` says so in one line).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from distributed import Client, KilledWorker, LocalCluster, as_completed, get_worker
from distributed.comm.addressing import get_address_host_port, parse_address
from distributed.comm.registry import get_backend
from distributed.diagnostics.plugin import WorkerPlugin

from handoff.deliver.plan import Step
from handoff.deliver.run import OnOutcome, OnProgress, OnStart
from handoff.deliver.steps import StepOutcome, run_step, worker_died
from handoff.errors import ToolError, UsageError, describe

__all__ = ["TOPIC", "DaskCluster", "PathMap", "parse_path_map"]

TOPIC = "handoff-deliver"
_PROGRESS_EVERY_S = 0.5
_CONNECT_TIMEOUT = "15s"
"""How long a scheduler that does not answer is waited for (Dask's default is 30 s)."""


@dataclass(frozen=True, slots=True)
class PathMap:
    """Folder prefixes as the client sees them and as the workers do."""

    pairs: tuple[tuple[str, str], ...] = ()

    def _swap(self, text: str, to_worker: bool) -> str:
        for local, remote in self.pairs:
            a, b = (local, remote) if to_worker else (remote, local)
            if text == a or text.startswith(a.rstrip("/") + "/"):
                return b.rstrip("/") + text[len(a.rstrip("/")) :]
        return text

    def to_worker(self, path: Path) -> Path:
        return Path(self._swap(str(path), True))

    def to_client(self, path: Path) -> Path:
        return Path(self._swap(str(path), False))

    def back(self, data: Any) -> Any:
        """Every path-like string in a JSON result, as the client sees it."""
        if not self.pairs:
            return data
        if isinstance(data, str):
            return self._swap(data, False)
        if isinstance(data, dict):
            return {k: self.back(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.back(v) for v in data]
        return data

    def step(self, step: Step) -> Step:
        if not self.pairs:
            return step
        w = self.to_worker
        export = step.export
        if export is not None and export.out_dir is not None:
            export = replace(export, out_dir=w(export.out_dir))
        sync = step.sync
        if sync is not None:
            sync = replace(
                sync,
                take=w(sync.take),
                reference=None if sync.reference is None else w(sync.reference),
            )
        spec = step.spec
        if spec is not None and spec.lower().endswith(".toml"):
            spec = str(w(Path(spec)))
        return replace(
            step,
            render=w(step.render),
            dest=None if step.dest is None else w(step.dest),
            export=export,
            sync=sync,
            spec=spec,
        )

    def outcome(self, outcome: StepOutcome) -> StepOutcome:
        if not self.pairs:
            return outcome
        return replace(
            outcome,
            outputs=tuple(self.to_client(p) for p in outcome.outputs),
            result=self.back(outcome.result),
        )


def parse_path_map(items: Sequence[str]) -> PathMap:
    """``LOCAL=WORKER`` pairs (absolute folders), from ``--path-map``."""
    pairs = []
    for item in items:
        local, sep, remote = item.partition("=")
        if not sep or not local or not remote:
            raise UsageError(f"--path-map {item!r}: expected LOCAL=WORKER, two folders")
        pairs.append((str(Path(local).absolute()), remote))
    return PathMap(tuple(pairs))


def _remote_step(step: Step, key: str | None = None) -> StepOutcome:
    """What a Dask worker runs: the step, with its start and progress published under
    ``key``, the step's key as the client knows it (default: the step's own)."""
    worker = get_worker()
    said = step.key if key is None else key
    worker.log_event(TOPIC, {"key": said, "started": True})
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= _PROGRESS_EVERY_S or done >= total:
            last[0] = now
            worker.log_event(TOPIC, {"key": said, "done": done, "total": total})

    return run_step(step, progress)


class _DieWithClient(WorkerPlugin):
    """A worker plugin: a worker of a local cluster goes when the client process that
    started it dies, even by SIGKILL (prctl PR_SET_PDEATHSIG).

    A worker plugin, not a nanny plugin: a ``LocalCluster``'s nannies are objects in the
    client process itself, so a nanny plugin's ``setup`` runs there, where the parent
    is the shell; the worker processes are the client's children. Set up again on each
    worker a nanny restarts (the scheduler keeps the plugin).
    """

    name = "handoff-die-with-client"

    def __init__(self, parent: int) -> None:
        self.parent = parent

    def setup(self, worker: Any) -> None:
        from handoff.jobs.processes import die_with_parent

        if os.getppid() == self.parent:
            die_with_parent(signal.SIGTERM, self.parent)

    def teardown(self, worker: Any) -> None:
        return None


@dataclass(slots=True)
class DaskCluster:
    """``address``: a running scheduler (``tcp://host:8786``), or None for a
    ``LocalCluster`` of ``workers`` processes started (and stopped) here."""

    address: str | None
    workers: int = 2
    path_map: PathMap = field(default_factory=PathMap)
    name: str = "dask"
    _client: Any = field(default=None, repr=False)
    _cluster: Any = field(default=None, repr=False)

    @property
    def local_workers(self) -> int:
        # As many as the cluster was asked for (--jobs): the batch steps run here.
        return self.workers

    def __post_init__(self) -> None:
        # Named before it runs: the plan's first event (--json "backend") says it.
        if self.address is None:
            self.name = f"dask LocalCluster ({self.workers} workers)"
            return
        self.name = f"dask {self.address}"
        # A malformed address is the command's usage error, said before a delivery
        # folder is made (Dask would raise ValueError only when connecting).
        try:
            scheme, _ = parse_address(self.address)
            get_backend(scheme)
            if scheme != "inproc":
                get_address_host_port(self.address)
        except ValueError as exc:
            raise UsageError(
                f"--cluster {self.address!r}: {exc}; expected local or a scheduler's "
                "address, as tcp://host:8786"
            ) from None

    def connect(self) -> None:
        """Start the local cluster or reach the scheduler, once; raises ToolError in one
        line when the scheduler does not answer. The command calls it before it makes
        the delivery folder, so a wrong address leaves nothing behind."""
        if self._client is not None:
            return
        cluster: Any = None
        if self.address is None:
            cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                # The scheduler serves HTTP (health, metrics) even with no dashboard, on
                # 8787 by default: a second local cluster on the machine warned on
                # stderr that the port was taken. Any free port, on this machine only.
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,
            )
        try:
            client = Client(cluster if cluster is not None else self.address,
                            timeout=_CONNECT_TIMEOUT)  # fmt: skip
        except OSError as exc:  # distributed's connect timeout is an OSError too
            if cluster is not None:
                cluster.close()
            # Not describe(): a scheduler that does not answer is no bug in handoff.
            reason = " ".join((exc.strerror or str(exc) or type(exc).__name__).split())
            raise ToolError(
                f"cannot reach the Dask scheduler at {self.address}: {reason} "
                "(is it running, and is the address right?)"
            ) from None
        if cluster is not None:
            client.register_plugin(_DieWithClient(os.getpid()))
        self._client, self._cluster = client, cluster

    def close(self) -> None:
        """Disconnect (and stop the local cluster); safe to call twice."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def run(
        self,
        steps: Sequence[Step],
        *,
        on_start: OnStart,
        on_progress: OnProgress,
        on_outcome: OnOutcome,
    ) -> None:
        self.connect()
        try:
            self._run(self._client, steps, on_start, on_progress, on_outcome)
        finally:
            self.close()

    def _run(
        self,
        client: Any,
        steps: Sequence[Step],
        on_start: OnStart,
        on_progress: OnProgress,
        on_outcome: OnOutcome,
    ) -> None:
        heard: queue.SimpleQueue[Mapping[str, Any]] = queue.SimpleQueue()
        # Runs on the client's event-loop thread: only hand the event to this thread.
        client.subscribe_topic(TOPIC, lambda event: heard.put(event[1]))
        by_key: dict[str, Step] = {}
        by_future: dict[Any, Step] = {}
        pending = as_completed()

        def submit(step: Step) -> None:
            by_key[step.key] = step
            future = client.submit(
                _remote_step,
                self.path_map.step(step),
                step.key,
                key=f"handoff-{step.kind}-{uuid.uuid4().hex[:12]}",
                pure=False,
            )
            by_future[future] = step
            pending.add(future)

        def relay() -> None:
            while True:
                try:
                    event = heard.get_nowait()
                except queue.Empty:
                    return
                step = by_key.get(str(event.get("key")))
                if step is None:
                    continue
                if event.get("started"):
                    on_start(step)
                else:
                    on_progress(step, int(event["done"]), int(event["total"]))

        for step in steps:
            submit(step)
        while not pending.is_empty():
            done = pending.next_batch(block=False)
            relay()
            if not done:
                time.sleep(0.1)
                continue
            for future in done:
                step = by_future.pop(future)
                outcome = self._outcome(step, future)
                relay()
                for more in on_outcome(step, outcome):
                    submit(more)

    def _outcome(self, step: Step, future: Any) -> StepOutcome:
        try:
            outcome: StepOutcome = self.path_map.outcome(future.result())
        except KilledWorker:
            return worker_died(
                step, "the Dask workers running this step died each time it was tried"
            )
        except Exception as exc:
            return StepOutcome(step.key, "failed", f"the Dask task failed: {describe(exc)}")
        finally:
            future.release()
        return outcome
