"""Worker processes: a crash costs one job; children die with their parent; SIGTERM cleans up.

Crashes here are real: a worker that aborts or dereferences NULL in C, a worker killed
with SIGKILL as the out-of-memory killer would, a parent killed with ``kill -9``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from handoff.files.fsutil import OUTPUT_MARK
from handoff.jobs.processes import run_jobs
from tests.conftest import MakeDir

REPO = Path(__file__).resolve().parents[1]


def _crashing_work(job: str, progress: Callable[[int, int], None]) -> str:
    """Module level, so spawned workers can import it: crash natively on some jobs."""
    progress(0, 1)
    if job == "abort":
        os.abort()  # SIGABRT, as FFmpeg's assertions do
    if job == "segv":
        ctypes.string_at(0)  # SIGSEGV: a read of address 0 in C
    if job == "raise":
        raise ValueError("missing format")
    progress(1, 1)
    return f"ok {job}"


def test_a_crashed_worker_costs_only_its_own_job() -> None:
    jobs = ["a", "abort", "b", "segv", "c", "raise", "d", "e"]
    seen: list[tuple[str, str]] = []
    results = run_jobs(
        jobs,
        _crashing_work,
        2,
        failed=lambda job, why: f"failed {job}: {why}",
        on_result=lambda job, result: seen.append((job, result)),
    )
    assert results[0] == "ok a" and results[2] == "ok b" and results[4] == "ok c"
    assert results[6:] == ["ok d", "ok e"]
    assert results[1] == "failed abort: the worker process killed by SIGABRT on this file"
    assert results[3] == "failed segv: the worker process killed by SIGSEGV on this file"
    assert results[5].startswith("failed raise: unexpected ValueError: missing format")
    assert sorted(seen) == sorted(zip(jobs, results, strict=True))


def test_follow_ups_run_before_later_jobs_first_steps() -> None:
    """Depth first: with one worker, a job's follow-ups (a render's master after its
    receive) run before the next job, so a batch stopped half way holds whole renders."""
    started: list[str] = []
    results = run_jobs(
        ["a", "b", "c"],
        _crashing_work,
        1,
        failed=lambda job, why: f"failed {job}: {why}",
        follow_up=lambda job, result: [f"{job}+1", f"{job}+2"] if len(job) == 1 else [],
        on_start=lambda index, job: started.append(job),
    )
    assert started == ["a", "a+1", "a+2", "b", "b+1", "b+2", "c", "c+1", "c+2"]
    assert results == ["ok a", "ok b", "ok c", "ok a+1", "ok a+2", "ok b+1", "ok b+2",
                       "ok c+1", "ok c+2"]  # fmt: skip


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc), zombies excluded."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def slow_sources(module_tmp: MakeDir) -> Path:
    """Two clips that take seconds to export as ProRes HQ (about 4 CPU-seconds each)."""
    from fractions import Fraction

    from handoff.media.synth import ClipSpec, write_clip

    folder = module_tmp("slow")
    spec = ClipSpec(
        fps=Fraction(24), seconds=4.0, width=960, height=540, video_options={"preset": "ultrafast"}
    )
    for name in ("a.mp4", "b.mp4"):
        write_clip(folder / name, spec)
    return folder


def _start_export(args: list[str], cwd: Path, stderr: Path) -> subprocess.Popen[bytes]:
    with stderr.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "handoff", "export", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )


def _wait_for_parts(folder: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and any(".part" in p.name for p in folder.iterdir()):
            time.sleep(0.3)  # encoding is under way
            return
        time.sleep(0.05)
    raise AssertionError(f"no .part file appeared in {folder}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    ("engine", "jobs", "sig"),
    [
        ("ffmpeg", "1", signal.SIGKILL),
        ("pyav", "2", signal.SIGKILL),
        ("ffmpeg", "2", signal.SIGKILL),
        ("ffmpeg", "1", signal.SIGTERM),
        ("pyav", "2", signal.SIGTERM),
    ],
)
def test_no_child_outlives_a_killed_export(
    tmp_path: Path, slow_sources: Path, engine: str, jobs: str, sig: signal.Signals
) -> None:
    out = tmp_path / "out"
    args = [str(slow_sources), "--preset", "prores-master", "--out", str(out)]
    args += ["--engine", engine, "--jobs", jobs]
    proc = _start_export(args, tmp_path, tmp_path / "stderr.txt")
    try:
        _wait_for_parts(out)
        children = _children(proc.pid)
        assert children, "the export runs no child process to check"
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.1)
        assert not [c for c in children if _alive(c)], "children outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Workers share handoff's stderr: none of them may print a traceback as it stops (a
    # dying parent can send PR_SET_PDEATHSIG once per thread; a second SIGTERM did).
    err = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in err, err
    if sig == signal.SIGTERM:
        # SIGTERM unwinds: one line, exit 143, and no partial file left behind.
        assert proc.returncode == 143, err
        assert err.startswith("handoff: error: terminated")
        assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != OUTPUT_MARK]
    # The rerun clears what a kill left and completes.
    done = subprocess.run(
        [sys.executable, "-m", "handoff", "export", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARK, "a.mov", "b.mov"]


def test_a_worker_whose_parent_died_before_it_started_stops_quietly() -> None:
    """``kill -9`` of handoff while its workers are still starting: a worker finds its
    parent gone as it arranges to die with it, and stops without a traceback (the
    SIGTERM it sends itself was raised outside the worker's clean-up once)."""
    script = (
        "import multiprocessing as mp\n"
        "from handoff.jobs.processes import _worker_main\n"
        "from tests.test_processes import _crashing_work\n"
        "if __name__ == '__main__':\n"
        "    ctx = mp.get_context('spawn')\n"
        "    mine, theirs = ctx.Pipe()\n"
        "    # pid 1 is not this worker's parent: to the worker, its parent is gone.\n"
        "    p = ctx.Process(target=_worker_main, args=(theirs, _crashing_work, 1))\n"
        "    p.start(); p.join(60)\n"
        "    print('exitcode', p.exitcode)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip() == "exitcode 0", done.stdout + done.stderr
