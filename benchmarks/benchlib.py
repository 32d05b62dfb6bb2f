"""Machinery the benchmark scripts share: workers, measurement, the machine, the report.

The scripts are run as ``python benchmarks/bench_X.py``, which puts this folder first on
``sys.path``, so they ``import benchlib``; the worker processes they start are the same
script run the same way (``python /abs/path/bench_X.py _worker ...``), so they find it
too. Nothing here imports handoff, PyAV or numpy at import time: a lean worker that
only runs a command line stays lean.

What is here:

- printing progress (:func:`say`) and finding the ffmpeg binary (:func:`ffmpeg_exe`);
- reading memory and load from ``/proc`` (:func:`status_kib`, :func:`reset_peak_rss`,
  :func:`loadavg`), CPU time (:func:`cpu_seconds`), and one timed piece of work with its
  CPU time and peak RSS (:func:`measure`, :func:`measure_command`, :func:`with_loadavg`);
- the timed runs: a fresh worker process per run, tried again on failure
  (:func:`run_worker`), and repetitions that alternate the tools' order
  (:func:`run_interleaved`, :func:`run_case`);
- the report: per-tool figures (:func:`tool_summary`), the raw times, load and checks
  under the table (:func:`report_tail`), cProfile rows (:func:`profile_rows`,
  :func:`profile_table`);
- the run's context: machine facts (:func:`machine`), a hash of handoff's source
  (:func:`handoff_fingerprint`, :func:`source_changed`), the command line and the JSON
  file (:func:`command_line`, :func:`write_json`), the untimed warm-up of the page cache
  (:func:`warm_page_cache`); the command line's shared pieces (:data:`WORKDIR`,
  :func:`parse_cases`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

WORKDIR = Path(__file__).resolve().parent / "_work"
"""Where the scripts cache media by default: ``benchmarks/_work`` (git-ignored)."""

# ----------------------------------------------------------------------------- basics


def say(msg: str) -> None:
    """Progress for the person running the script: on stderr, flushed (stdout is the
    report, or a worker's JSON)."""
    print(msg, file=sys.stderr, flush=True)


def ffmpeg_exe() -> str:
    """The ffmpeg binary of imageio-ffmpeg, the one every script times and measures with."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def mib(kib: float) -> float:
    """KiB to MiB."""
    return kib / 1024.0


# ----------------------------------------------------------------------------- measuring


def status_kib(field_name: str) -> int | None:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in KiB; None off Linux."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(ru: resource.struct_rusage) -> float:
    """User plus system CPU time of a ``resource.getrusage`` record."""
    return ru.ru_utime + ru.ru_stime


def loadavg() -> float | None:
    """The 1-minute load average: how busy the machine was (others' work included)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def measure(work: Callable[[], T], *, children: bool, method: str) -> tuple[T, dict[str, Any]]:
    """Run ``work()`` once under ``time.perf_counter`` and ``resource.getrusage``.

    Returns its value and the figures ``wall_s``, ``cpu_s``, ``peak_rss_kib``,
    ``rss_before_kib`` (the RSS of this process just before) and ``rss_method`` (how the
    peak was read), in that order.

    ``children=True``: the work is a command line this process waits for; CPU and peak
    are RUSAGE_CHILDREN's (the peak is the largest ``ru_maxrss`` of the waited children;
    Linux starts a child's count at its parent's RSS at fork time, so it is exact only
    above ``rss_before_kib``). ``rss_method`` is ``method``.

    ``children=False``: the work runs in this process; the kernel's RSS high-water mark
    is reset first and read back after (VmHWM), so the peak is the timed section's,
    the interpreter and libraries included; where it cannot be reset, the peak is
    RUSAGE_SELF's ``ru_maxrss`` and ``rss_method`` is ``method``.
    """
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    reset = not children and reset_peak_rss()
    rss_before = status_kib("VmRSS") or 0
    ru0 = resource.getrusage(who)
    t0 = time.perf_counter()
    value = work()
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(who)
    peak = (status_kib("VmHWM") if reset else None) or ru1.ru_maxrss
    return value, {
        "wall_s": wall,
        "cpu_s": cpu_seconds(ru1) - cpu_seconds(ru0),
        "peak_rss_kib": peak,
        "rss_before_kib": rss_before,
        "rss_method": "VmHWM reset before the work" if reset else method,
    }


def measure_command(
    argv: Sequence[str], *, method: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run a command line (output captured as text, exit status not checked) under
    :func:`measure` with ``children=True``: the finished process and its figures."""
    return measure(
        lambda: subprocess.run(argv, capture_output=True, text=True, check=False),
        children=True,
        method=method,
    )


def with_loadavg(
    run: Callable[[dict[str, Any]], dict[str, Any]], job: dict[str, Any]
) -> dict[str, Any]:
    """``run(job)`` with ``loadavg_1min``, the load before and after it, added."""
    before = loadavg()
    result = run(job)
    result["loadavg_1min"] = [before, loadavg()]
    return result


# ----------------------------------------------------------------------------- runs


@dataclass
class Tool:
    """One side of a comparison: ``key`` names it in the results, ``label`` in the
    report, and ``job`` (JSON) tells the script's worker what to run."""

    key: str
    label: str
    job: dict[str, Any]


def run_worker(
    script: str | Path,
    args: Sequence[str],
    name: str,
    *,
    attempts: int = 3,
    wait_s: float = 60.0,
) -> dict[str, Any]:
    """Run ``python SCRIPT _worker ARGS...`` in a fresh process and return the JSON object
    it prints on stdout, with ``attempt`` (which try it was) added.

    A failed run is said (the end of its stderr) and tried again after ``wait_s``, up to
    ``attempts`` times -- in a shared checkout someone may be half-way through an edit
    of handoff -- then ``SystemExit``. ``name`` names the worker in those messages.
    """
    cmd = [sys.executable, str(Path(script).resolve()), "_worker", *args]
    for attempt in range(1, attempts + 1):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            result: dict[str, Any] = json.loads(proc.stdout)
            result["attempt"] = attempt
            return result
        say(f"worker {name} failed (attempt {attempt}):\n{proc.stderr[-2000:]}")
        if attempt < attempts:
            time.sleep(wait_s)
    raise SystemExit(f"worker {name} failed {attempts} times")


def run_interleaved(
    case_name: str,
    keys: Sequence[str],
    repeat: int,
    run_one: Callable[[str], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
) -> dict[str, list[dict[str, Any]]]:
    """``repeat`` repetitions of ``run_one(key)`` for every key, interleaved: repetition 1
    runs the keys in order, repetition 2 in reverse, and so on, so drift on a noisy
    shared machine falls on every tool alike. Each run is said as ``describe(result)``.
    Returns the results per key, in run order.
    """
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for rep in range(repeat):
        order = keys if rep % 2 == 0 else list(reversed(keys))
        for key in order:
            result = run_one(key)
            runs[key].append(result)
            say(f"  {case_name} rep {rep + 1}/{repeat} {key}: {describe(result)}")
    return runs


def run_case(
    script: str | Path,
    case_name: str,
    tools: Sequence[Tool],
    repeat: int,
    jobs_dir: Path,
    *,
    job_prefix: str = "",
    describe: Callable[[dict[str, Any]], str],
) -> dict[str, list[dict[str, Any]]]:
    """Write each tool's job to ``jobs_dir/{job_prefix}{case_name}-{key}.json`` and time
    it ``repeat`` times, interleaved (:func:`run_interleaved`), each run a fresh worker
    of ``script`` (:func:`run_worker`, ``_worker JOB_FILE``)."""
    files: dict[str, Path] = {}
    for tool in tools:
        f = jobs_dir / f"{job_prefix}{case_name}-{tool.key}.json"
        f.write_text(json.dumps(tool.job, indent=1))
        files[tool.key] = f
    return run_interleaved(
        case_name,
        [t.key for t in tools],
        repeat,
        lambda key: run_worker(script, [str(files[key])], files[key].name),
        describe,
    )


# ----------------------------------------------------------------------------- report


def tool_summary(
    label: str, job: dict[str, Any], runs: Sequence[dict[str, Any]], *, rss_per_run: bool
) -> dict[str, Any]:
    """One tool's figures over its runs, for the JSON and the table: the label and job,
    every wall and CPU time and load average, the medians, the peak RSS and how it was
    read.

    ``rss_per_run=True`` also keeps each run's peak and starting RSS (``peak_rss_mib``
    and ``rss_before_mib``, lists) and names the largest peak ``max_peak_rss_mib``;
    ``False`` keeps only the largest, as ``peak_rss_mib``.
    """
    walls = [r["wall_s"] for r in runs]
    out: dict[str, Any] = {
        "label": label,
        "job": job,
        "wall_s": walls,
        "cpu_s": [r["cpu_s"] for r in runs],
    }
    if rss_per_run:
        out["peak_rss_mib"] = [mib(r["peak_rss_kib"]) for r in runs]
        out["rss_before_mib"] = [mib(r["rss_before_kib"]) for r in runs]
    out["loadavg_1min"] = [r.get("loadavg_1min") for r in runs]
    out["median_wall_s"] = statistics.median(walls)
    out["median_cpu_s"] = statistics.median(r["cpu_s"] for r in runs)
    peak = mib(max(r["peak_rss_kib"] for r in runs))
    out["max_peak_rss_mib" if rss_per_run else "peak_rss_mib"] = peak
    out["rss_method"] = runs[0]["rss_method"]
    return out


def report_tail(
    rows: Sequence[Mapping[str, Any]],
    *,
    raw_heading: str,
    raw_note: Callable[[Mapping[str, Any]], str],
    checks_heading: str,
) -> list[str]:
    """The lines under the tables: every raw wall time (``raw_heading``, then per case
    ``key [times]`` and ``raw_note(tool)`` for each tool), the 1-minute load average
    when each run started, and the checks (``checks_heading``, then each case's)."""
    lines = [raw_heading, ""]
    for r in rows:
        parts = []
        for key, t in r["tools"].items():
            raw = ", ".join(f"{x:.2f}" for x in t["wall_s"])
            parts.append(f"{key} [{raw}]{raw_note(t)}")
        lines.append(f"- {r['title']}: " + "; ".join(parts))
    lines += ["", "1-minute load average when each run started, same order (2 cores):", ""]
    for r in rows:
        parts = []
        for key, t in r["tools"].items():
            loads = [x[0] if x and x[0] is not None else float("nan") for x in t["loadavg_1min"]]
            parts.append(f"{key} [" + ", ".join(f"{x:.1f}" for x in loads) + "]")
        lines.append(f"- {r['title']}: " + "; ".join(parts))
    lines += ["", checks_heading, ""]
    for r in rows:
        lines += [f"- {r['title']}: {c}" for c in r["checks"]]
    return lines


def profile_rows(stats: Any, top: int, *, builtins_bare: bool) -> list[dict[str, Any]]:
    """The ``top`` functions of a ``pstats.Stats`` by own time: name, calls, own and
    cumulative seconds. A function is named ``file.py:line(name)``; with
    ``builtins_bare``, built-ins (file ``~``) by their bare name."""
    table: dict[tuple[str, int, str], Any] = stats.stats
    rows = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in sorted(
        table.items(), key=lambda kv: -kv[1][2]
    )[:top]:
        bare = builtins_bare and filename == "~"
        name = func if bare else f"{Path(filename).name}:{line}({func})"
        rows.append({"function": name, "calls": ncalls, "tottime_s": tottime, "cumtime_s": cumtime})
    return rows


def profile_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """:func:`profile_rows` as a Markdown table."""
    lines = ["| function | calls | own s | cumulative s |", "|---|--:|--:|--:|"]
    for row in rows:
        lines.append(
            f"| `{row['function']}` | {row['calls']} | {row['tottime_s']:.2f} "
            f"| {row['cumtime_s']:.2f} |"
        )
    return lines


# ----------------------------------------------------------------------------- context


def machine(
    *, av_library: str = "libavcodec", loadavg_at_end: bool = True, ffmpeg: bool = True
) -> dict[str, Any]:
    """Facts about the machine and the libraries measured with, for the JSON.

    Always: ``nproc`` (CPUs this process may use), ``platform_processor``, ``cpu_model``,
    ``machine``, ``memory_gib``, ``python``, ``pyav`` and ``pyav_<av_library>`` (the
    version of that FFmpeg library inside PyAV). With ``loadavg_at_end``, the three load
    averages as the run ends, after ``memory_gib``; with ``ffmpeg``, imageio-ffmpeg's
    version and the first line of its binary's ``-version``, last.
    """
    mem_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = cpu or line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import av

    facts: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)),
        "platform_processor": platform.processor(),
        "cpu_model": cpu,
        "machine": platform.machine(),
        "memory_gib": round(mem_kib / 1024**2, 1) if mem_kib else None,
    }
    if loadavg_at_end:
        load = Path("/proc/loadavg")
        facts["loadavg_at_end"] = load.read_text().split()[:3] if load.exists() else None
    facts["python"] = platform.python_version()
    facts["pyav"] = av.__version__
    facts[f"pyav_{av_library}"] = ".".join(map(str, av.library_versions.get(av_library, ())))
    if ffmpeg:
        import imageio_ffmpeg

        first = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout
        facts["imageio_ffmpeg"] = getattr(imageio_ffmpeg, "__version__", None)
        facts["ffmpeg"] = first.splitlines()[0] if first else None
    return facts


def handoff_fingerprint() -> str:
    """A hash of handoff's source, to notice the code changing under a run."""
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec("handoff")
    digest = hashlib.sha256()
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        for src in sorted(root.rglob("*.py")):
            digest.update(src.name.encode())
            digest.update(src.read_bytes())
    return digest.hexdigest()[:16]


def source_changed(fingerprint: str) -> bool:
    """Whether handoff's source differs from ``fingerprint`` (taken before the timed
    runs); if so, says so."""
    changed = handoff_fingerprint() != fingerprint
    if changed:
        say("warning: handoff's source changed during the run; run again for clean figures")
    return changed


def warm_page_cache(*, ffmpeg: bool = True) -> None:
    """Untimed: bring the interpreter, handoff, PyAV (and, with ``ffmpeg``, the ffmpeg
    binary) into the page cache, so the first timed run does not pay for the disk."""
    subprocess.run([sys.executable, "-m", "handoff", "--help"], capture_output=True, check=True)
    if ffmpeg:
        subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, check=True)


def parse_cases(parser: argparse.ArgumentParser, text: str, known: Sequence[str]) -> list[str]:
    """The comma-separated case names of ``--cases``, in the order given; an unknown
    name is a usage error (``parser.error``)."""
    wanted = [c for c in text.split(",") if c]
    unknown = set(wanted) - set(known)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    return wanted


def command_line(argv: Sequence[str]) -> str:
    """How the script was run, for the JSON: ``python SCRIPT ARGS...``."""
    return " ".join(["python", sys.argv[0], *argv])


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """``doc`` as indented JSON at ``path`` (its folder made; what JSON cannot hold,
    such as paths, as text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def moving_picture(
    width: int, height: int, frames: int, *, seed: int, phase: float = 0.0, blocks: bool = False
) -> Iterator[Any]:
    """The benchmarks' camera-like picture, one yuv420p ``av.VideoFrame`` a frame (no
    pts): a horizontal ramp under a texture (four sine gratings at phase ``phase``, and
    with ``blocks`` 32-pixel blocks of random level) that pans back and forth, a bright
    bar crossing the frame, fresh +/-4 grain on every frame and slowly drifting chroma --
    motion to estimate, edges and noise to code, so that an encoder has real work. The
    same arguments give the same frames (numpy's generator seeded with ``seed``)."""
    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    pad = 256
    yy, xx = np.mgrid[0 : height + pad, 0 : width + pad].astype(np.float32)
    tex = np.zeros_like(xx)
    gratings = ((0.011, 0.004, 40.0), (0.003, 0.017, 30.0), (0.05, 0.03, 12.0), (0.13, -0.07, 6.0))
    for k, (fx, fy, amp) in enumerate(gratings):
        tex += amp * np.sin(fx * xx + fy * yy + k + phase)
    if blocks:
        levels = rng.integers(-25, 26, size=((height + pad) // 32 + 1, (width + pad) // 32 + 1))
        tex += np.kron(levels.astype(np.float32), np.ones((32, 32), np.float32))[
            : height + pad, : width + pad
        ]
    del yy, xx
    ramp = np.linspace(16, 120, width, dtype=np.float32)[None, :]
    cy, cx = np.mgrid[0 : height // 2, 0 : width // 2].astype(np.float32)
    bar = max(width // 16, 8)

    def pan(i: int, speed: int) -> int:
        p = (i * speed) % (2 * pad - 2)
        return p if p < pad else 2 * pad - 2 - p

    for i in range(frames):
        x0, y0 = pan(i, 5), pan(i, 3)
        y = ramp + tex[y0 : y0 + height, x0 : x0 + width] * 0.8 + 64.0
        bx = (i * 23) % (width - bar)
        y[:, bx : bx + bar] = 200.0
        y += rng.integers(-4, 5, size=(height, width), dtype=np.int16)
        luma = np.clip(y, 16, 235).astype(np.uint8)
        u = (128 + 40 * np.sin(cx * 0.01 + i * 0.05)).astype(np.uint8)
        v = (128 + 40 * np.cos(cy * 0.013 - i * 0.04)).astype(np.uint8)
        planes = [luma, u.reshape(height // 4, width), v.reshape(height // 4, width)]
        yield av.VideoFrame.from_ndarray(np.concatenate(planes), format="yuv420p")
