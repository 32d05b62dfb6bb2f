"""``handoff deliver --cluster`` on real Dask clusters (no mock of Dask anywhere).

One small batch (a conditioned narration, three takes of its segment 1 -- in sync,
picture 2 frames late, picture drifting -- and a 48-byte broken render) is delivered
by the process pool and by a ``distributed.LocalCluster`` (2 worker processes, one
thread each); the two deliveries must agree. Then the cluster's failure cases: a worker
killed mid-master, a client that sees the files through another path (--path-map), a
scheduler that does not answer, and a client killed with its cluster running.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handoff.deliver.plan import Step
from handoff.deliver.steps import StepOutcome
from handoff.errors import UsageError
from handoff.export.plan import ExportOptions
from handoff.sync.measure import SyncJob
from tests.conftest import REPO, MakeDir, run_handoff

distributed = pytest.importorskip("distributed")
otio = pytest.importorskip("opentimelineio")

from handoff.deliver.cluster import PathMap, parse_path_map  # noqa: E402

TAKES = ("001_take1.mp4", "001_take2.mp4", "001_take3.mp4")
BROKEN = "002_broken.mp4"


# ---------------------------------------------------------------- the batch


def _make_batch(root: Path) -> Path:
    """The batch of /tmp/dv/make.py, smaller: 160x120, 10 s takes."""
    from handoff.files.manifest import load_manifest
    from handoff.media.audio import decode_audio
    from handoff.media.synth import TakeSpec, babble, write_take, write_wav
    from handoff.prep import PrepOptions, prep_audio

    rate = 48000
    voice = babble(30.0, rate, level=0.05, seed=3)
    src = write_wav(root / "narr.wav", np.stack([voice, voice]).astype(np.float32), rate)
    prepped = prep_audio(src, root / "cond", PrepOptions(name="narration", overwrite=True))
    manifest = load_manifest(prepped.manifest_path)
    narration = decode_audio(manifest.path.parent / manifest.segments[0].file)
    head = narration.samples[:, : round(10 * narration.sample_rate)]
    renders = root / "renders"
    renders.mkdir()
    specs = (TakeSpec(), TakeSpec(picture_delay_s=2 / 24), TakeSpec(picture_stretch=1.01))
    for name, spec in zip(TAKES, specs, strict=True):
        write_take(renders / name, head, narration.sample_rate,
                   replace(spec, width=160, height=120, audio_channels=1))  # fmt: skip
    (renders / BROKEN).write_bytes(b"\0" * 48)
    return root


@pytest.fixture(scope="module")
def batch(module_tmp: MakeDir) -> Path:
    return _make_batch(module_tmp("batch"))


def _args(root: Path, out: Path, *more: str) -> list[str]:
    return ["deliver", str(root / "renders"), "--manifest", str(root / "cond" / "manifest.json"),
            "--out", str(out), "--format", "otio", *more]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


class _Running:
    """``handoff deliver --json`` in a child process of its own session, its events read
    as they come (stdout by a thread, stderr into a file)."""

    def __init__(self, args: list[str], env: Mapping[str, str] | None = None) -> None:
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by finish)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "handoff", *args],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=dict(env or _env()),
            start_new_session=True,
        )
        self.events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.seen: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.events.put(json.loads(line))

    def wait_for(self, step: str, event: str = "started", timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.events.get(timeout=0.2)
            except queue.Empty:
                if not self.reader.is_alive() and self.events.empty():
                    break
                continue
            self.seen.append(got)
            if got.get("event") == event and got.get("step") == step:
                return got
        self.finish(kill=True)
        raise AssertionError(f"no {event!r} {step} event: {self.seen}")

    def finish(
        self, timeout: float = 300, kill: bool = False
    ) -> tuple[int, list[dict[str, Any]], str]:
        if kill:
            self.proc.kill()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        finally:
            self.reader.join(timeout=10)
        while not self.events.empty():
            self.seen.append(self.events.get())
        with self.stderr:
            self.stderr.seek(0)
            err = self.stderr.read()
        return code, self.seen, err


# ---------------------------------------------------------------- what a delivery made


def _picks(out: Path) -> list[tuple[int, str, list[str]]]:
    doc = json.loads((out / "selects.json").read_text())
    return [
        (s["segment"], Path(s["pick"]).name, [Path(a).name for a in s["alternates"]])
        for s in doc["segments"]
    ]


def _clips(out: Path) -> dict[str, list[tuple[str, Any, Any]]]:
    """Each .otio timeline: its clips' names, source ranges and places (trimmed ranges)."""
    made: dict[str, list[tuple[str, Any, Any]]] = {}
    for path in sorted((out / "timeline").glob("*.otio")):
        timeline = otio.adapters.read_from_file(str(path))
        made[path.name] = [
            (clip.name, clip.source_range, clip.trimmed_range_in_parent())
            for clip in timeline.find_clips()
        ]
    return made


def _states(out: Path) -> dict[str, str]:
    doc = json.loads((out / "report.json").read_text())
    return {Path(r["render"]).name: r["state"] for r in doc["renders"]}


def _check_masters(out: Path) -> None:
    """Every take has its master, each passes the preset as an editor would check it,
    and no partial file carries a final name (a .part is hidden: .NAME.PID.X.part.mov)."""
    masters = out / "masters"
    finals = sorted(p.name for p in masters.iterdir() if not p.name.startswith("."))
    assert finals == [Path(t).with_suffix(".mov").name for t in TAKES]
    checked = run_handoff("validate", str(masters), "--spec", "prores-master")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASS") == len(TAKES), checked.stdout


def _journal(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]


def _tagged(tag: str) -> dict[int, str]:
    """Live processes whose environment carries ``HANDOFF_TEST_TAG=tag``: pid -> command."""
    found: dict[int, str] = {}
    needle = f"HANDOFF_TEST_TAG={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue  # a zombie waits for its reaper; it runs nothing
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


# ---------------------------------------------------------------- 1. same outputs


def test_a_local_cluster_delivers_what_the_process_pool_does(batch: Path, tmp_path: Path) -> None:
    pool, dask = tmp_path / "pool", tmp_path / "dask"
    by_pool = run_handoff(*_args(batch, pool, "--jobs", "2"))
    assert by_pool.returncode == 1, by_pool.stderr  # the broken render
    run = _Running([*_args(batch, dask, "--jobs", "2", "--cluster", "local"), "--json"])
    code, events, err = run.finish()
    assert code == 1, err
    assert "Traceback" not in err and "Warning" not in err, err

    assert _picks(dask) == _picks(pool)
    assert _picks(dask)[0][1] == "001_take1.mov"  # the take in sync
    clips = _clips(dask)
    assert clips and clips == _clips(pool)
    assert any(name.startswith("001_take1") for track in clips.values() for name, _, _ in track)
    _check_masters(pool)
    _check_masters(dask)
    states = _states(dask)
    assert states == _states(pool)
    assert states == {**{t: "done" for t in TAKES}, BROKEN: "failed"}

    # --json: the start and progress of each master come from the Dask workers.
    assert events[0]["event"] == "plan" and events[0]["backend"].startswith("dask LocalCluster")
    for take in TAKES:
        mine = [e for e in events if e.get("render") == take and e.get("step") == "master"]
        kinds = [e["event"] for e in mine]
        assert kinds[0] == "started" and kinds[-1] == "done", kinds
        progress = [e for e in mine if e["event"] == "progress"]
        assert progress and progress[-1]["done"] == progress[-1]["total"] == 240  # 10 s at 24
    assert events[-1]["event"] == "finished" and events[-1]["exit_code"] == 1


# ---------------------------------------------------------------- 2. a worker killed


@pytest.fixture
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",  # not 8787: another cluster on the machine may hold it
    ) as running:
        yield running


def test_a_worker_killed_mid_master_costs_nothing(
    batch: Path, tmp_path: Path, cluster: Any
) -> None:
    out = tmp_path / "d"
    address = cluster.scheduler_address
    with distributed.Client(address) as client:
        pids: dict[str, int] = client.run(os.getpid)
        run = _Running([*_args(batch, out, "--cluster", address), "--json"])
        started = run.wait_for("master")
        # The worker holding a master task right now (the event may lead the state).
        victim = None
        deadline = time.monotonic() + 10
        while victim is None and time.monotonic() < deadline:
            for worker, keys in client.processing().items():
                if any(str(k).startswith("handoff-master-") for k in keys):
                    victim = worker
                    break
            else:
                time.sleep(0.05)
        assert victim is not None, "no worker was running a master"
        os.kill(pids[victim], signal.SIGKILL)
        code, events, err = run.finish()
        assert code == 1, err  # the broken render; the three takes are delivered
        # The nanny brought a new worker process up in the dead one's place.
        after = client.run(os.getpid)
        assert pids[victim] not in after.values()
    failed = [e for e in events if e["event"] == "failed"]
    assert [e["render"] for e in failed] == [BROKEN], failed
    done = {(e["render"], e["step"]) for e in events if e["event"] == "done"}
    assert {(t, "master") for t in TAKES} <= done
    assert started["render"] in TAKES
    # The killed worker's master was started again on a worker that lived.
    starts = [e["render"] for e in events if e["event"] == "started" and e["step"] == "master"]
    assert len(starts) > len(set(starts)), starts
    _check_masters(out)
    assert _states(out) == {**{t: "done" for t in TAKES}, BROKEN: "failed"}
    # The dead worker's .part is hidden; the next run clears it (never a final name).
    for leftover in (out / "masters").glob(".*.part*"):
        assert leftover.name.startswith(".")


# ---------------------------------------------------------------- 3. --path-map


def _step(root: Path) -> Step:
    render = root / "renders" / "001_take1.mp4"
    return Step(
        "sync",
        render,
        spec=str(root / "presets" / "mine.toml"),
        dest=root / "out" / "masters" / "001_take1.mov",
        export=ExportOptions(out_dir=root / "out" / "masters", fps=Fraction(24)),
        sync=SyncJob(root / "out" / "masters" / "001_take1.mov", root / "cond" / "001.wav", 1),
        needs=f"master:{render}",
    )


def test_path_map_sends_worker_paths_and_brings_client_paths_back() -> None:
    mapped = parse_path_map(["/mnt/farm=/data/farm", "/mnt/cond/=/srv/cond/"])
    local = _step(Path("/mnt/farm"))
    there = mapped.step(local)
    assert there.render == Path("/data/farm/renders/001_take1.mp4")
    assert there.dest == Path("/data/farm/out/masters/001_take1.mov")
    assert there.export is not None and there.export.out_dir == Path("/data/farm/out/masters")
    assert there.export.fps == Fraction(24)
    assert there.sync is not None and there.sync.take == there.dest
    assert there.sync.reference == Path("/data/farm/cond/001.wav")
    assert there.spec == "/data/farm/presets/mine.toml"
    assert there.needs == local.needs and there.settings == local.settings
    # A built-in preset's name is no path; a path outside every pair is left as it is.
    assert mapped.step(replace(local, spec="prores-master")).spec == "prores-master"
    assert mapped.to_worker(Path("/mnt/farmhouse/x.mp4")) == Path("/mnt/farmhouse/x.mp4")
    assert mapped.to_worker(Path("/mnt/cond/a.wav")) == Path("/srv/cond/a.wav")

    result = {
        "export": {"source": str(there.render), "output": str(there.dest), "frames": 240},
        "sync": {"take": str(there.dest), "paths": [str(there.dest), "/elsewhere/x"]},
    }
    outcome = StepOutcome(local.key, "done", None, (there.dest,), result, 1.5)
    back = mapped.outcome(outcome)
    assert back.outputs == (local.dest,)
    assert back.result == {
        "export": {"source": str(local.render), "output": str(local.dest), "frames": 240},
        "sync": {"take": str(local.dest), "paths": [str(local.dest), "/elsewhere/x"]},
    }
    assert (back.key, back.status, back.seconds) == (outcome.key, "done", 1.5)
    # Round trip: worker paths and back are where they started.
    assert mapped.step(replace(local, render=mapped.to_client(there.render))) == there
    assert PathMap().step(local) is local


def test_parse_path_map_wants_two_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for wrong in ("/a", "=/b", "/a=", ""):
        with pytest.raises(UsageError, match="LOCAL=WORKER"):
            parse_path_map([wrong])
    monkeypatch.chdir(tmp_path)
    assert parse_path_map(["here=/there"]).pairs == ((str(tmp_path / "here"), "/there"),)


def test_path_map_end_to_end_through_a_symlinked_folder(batch: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "b").symlink_to(batch)  # the batch, and the delivery folder, under real/
    link = tmp_path / "link"
    link.symlink_to(real)
    out = link / "d"
    args = [*_args(link / "b", out, "--jobs", "2", "--cluster", "local"),
            "--path-map", f"{link}={real}", "--json"]  # fmt: skip
    code, events, err = _Running(args).finish()
    assert code == 1, err
    _check_masters(real / "d")
    # The client hears the workers' start and progress under its own keys.
    started = {(e["render"], e["step"]) for e in events if e["event"] == "started"}
    assert {(t, "master") for t in TAKES} <= started
    assert any(e["event"] == "progress" for e in events)
    # Everything the client journaled names the files as it sees them.
    journal = _journal(real / "d")
    records = [e["record"] for e in journal if e.get("record", {}).get("step") == "master"]
    assert records
    for record in records:
        assert record["key"].startswith(f"master:{link}/b/renders/")
        if record["status"] == "done":
            assert [o["path"] for o in record["outputs"]] == [
                f"{out}/masters/{Path(record['key']).with_suffix('.mov').name}"
            ]
    assert str(real) not in (real / "d" / "journal.jsonl").read_text()


# ---------------------------------------------------------------- 4. no scheduler


def test_a_scheduler_that_does_not_answer_is_one_line(batch: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_handoff(*_args(batch, tmp_path / "d", "--cluster", "tcp://127.0.0.1:1"))
    assert time.monotonic() - started < 35
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "tcp://127.0.0.1:1" in lines[0] and "bug" not in lines[0], lines


@pytest.mark.parametrize("address", ["scheduler", "http://host:8786", "tcp://host"])
def test_a_malformed_address_is_a_usage_error(batch: Path, tmp_path: Path, address: str) -> None:
    done = run_handoff(*_args(batch, tmp_path / "d", "--cluster", address))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--cluster {address!r}" in lines[0], done.stderr
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------- 5. children die with it


def test_the_local_cluster_dies_with_a_killed_client(batch: Path, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    args = [*_args(batch, tmp_path / "d", "--jobs", "2", "--cluster", "local"), "--json"]
    run = _Running(args, env=_env(HANDOFF_TEST_TAG=tag))
    run.wait_for("receive")
    children = {p: c for p, c in _tagged(tag).items() if p != run.proc.pid}
    # The LocalCluster's nannies are in the client process; its workers are children.
    assert sum("spawn_main" in c for c in children.values()) == 2, children
    run.finish(timeout=10, kill=True)
    deadline = time.monotonic() + 15
    while _tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = _tagged(tag)
    for pid in survivors:  # leave nothing behind whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert not survivors


def _parent_and_death_signal() -> tuple[int, int]:
    """This process's parent and the signal it gets when that parent dies (Linux)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    sig = ctypes.c_int(0)
    libc.prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    return os.getppid(), sig.value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_local_workers_get_the_kernels_death_signal(cluster: Any) -> None:
    """The plugin --cluster local registers: every worker (a child of this process, the
    nannies being objects in it) is signalled by the kernel when this process dies."""
    from handoff.deliver.cluster import _DieWithClient

    with distributed.Client(cluster) as client:
        before = client.run(_parent_and_death_signal)
        assert set(before.values()) == {(os.getpid(), 0)}
        client.register_plugin(_DieWithClient(os.getpid()))
        after = client.run(_parent_and_death_signal)
    assert set(after.values()) == {(os.getpid(), int(signal.SIGTERM))}
