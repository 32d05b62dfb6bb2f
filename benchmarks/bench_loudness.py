"""Benchmark handoff's loudness of long files against FFmpeg's ebur128.

Run from the repository root::

    python benchmarks/bench_loudness.py [--hours 1,3] [--repeat 3] \
        [--workdir benchmarks/_work] [--json results.json]

In one run it

1. makes (once; cached in the work folder) a 48 kHz stereo 16-bit WAV of each length:
   minutes of a speech-like signal (two voices, one per channel, so it is not dual-mono)
   at levels that change from minute to minute, with pauses, written a minute at a time;
2. times, per file, three command lines, interleaved (repetition 1 in order, 2 reversed,
   ...): ``handoff validate --spec ltx2-audio --json``, ``handoff probe --loudness
   --json`` and ``ffmpeg -i X -af ebur128=peak=true -f null -``. Every timed run is a fresh
   worker process (this script with ``_worker``) that runs the command once; wall time,
   CPU time and peak RSS are the child's (``resource.getrusage(RUSAGE_CHILDREN)``), and
   the 1-minute load average is recorded before and after each run;
3. checks that the three agree: integrated loudness within 0.1 LU and true peak within
   0.2 dB of ebur128's (ebur128 prints one decimal);
4. prints a Markdown table with the ratios to ffmpeg (and writes JSON with every raw
   figure when asked). It exits 1 if any figure disagrees.

Timings on a shared machine are noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import benchlib

RATE = 48000
GENERATOR_VERSION = 1
LUFS_TOLERANCE = 0.1  # the acceptance: within 0.1 LU of ebur128
PEAK_TOLERANCE = 0.2  # ebur128's summary prints the true peak to 0.1 dB

_EBUR128_I = re.compile(r"I:\s+(-?[\d.]+|-inf)\s+LUFS")
_EBUR128_PEAK = re.compile(r"Peak:\s+(-?[\d.]+|-inf)\s+dBFS")


# ----------------------------------------------------------------------------- media


def make_wav(path: Path, hours: float) -> Path:
    """The test programme, written a minute at a time (never held whole)."""
    if path.exists() and path.stat().st_size > 0:
        return path
    from fractions import Fraction

    import av
    import numpy as np

    from handoff.files.fsutil import atomic_output
    from handoff.media.synth import speech_like

    t0 = time.perf_counter()
    # Eight distinct minutes per voice, cycled at levels that vary by minute (so the
    # gating and the loudness range have something to do).
    pauses = [(s, 0.4) for s in range(7, 59, 9)]
    left = [speech_like(60.0, RATE, level=0.25, pauses=pauses, seed=s) for s in range(8)]
    right = [speech_like(60.0, RATE, level=0.2, pauses=pauses, seed=s + 8) for s in range(8)]
    levels = [1.0, 0.5, 1.2, 0.8, 0.3, 1.0, 0.7, 1.1, 0.9, 0.4, 1.3]
    minutes = round(hours * 60)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, replace=True) as tmp, av.open(str(tmp), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE, layout="stereo")
        assert isinstance(stream, av.AudioStream)
        pts = 0
        for m in range(minutes):
            g = levels[m % len(levels)]
            minute = np.stack([left[m % 8] * g, right[(m * 3) % 8] * g]).astype(np.float32)
            for start in range(0, minute.shape[1], 1 << 16):
                block = np.ascontiguousarray(minute[:, start : start + (1 << 16)])
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                frame.sample_rate = RATE
                frame.pts = pts
                frame.time_base = Fraction(1, RATE)
                pts += block.shape[1]
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    benchlib.say(f"made {path.name} in {time.perf_counter() - t0:.1f} s")
    return path


# ----------------------------------------------------------------------------- tools


def _ffmpeg() -> str:
    # The binary the project's ffmpeg engine uses (and its tests measure against).
    from handoff.export.engines.ffmpeg_engine import find_ffmpeg

    return find_ffmpeg()


def commands(path: Path) -> dict[str, list[str]]:
    handoff = [sys.executable, "-m", "handoff"]
    return {
        "validate": [*handoff, "validate", "--spec", "ltx2-audio", "--json", str(path)],
        "probe": [*handoff, "probe", "--loudness", "--json", str(path)],
        "ffmpeg": [
            _ffmpeg(),
            "-hide_banner",
            "-nostats",
            "-nostdin",
            "-i",
            str(path),
            "-af",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ],
    }


LABELS = {
    "validate": "handoff validate --spec ltx2-audio",
    "probe": "handoff probe --loudness",
    "ffmpeg": "ffmpeg -af ebur128=peak=true",
}


def figures(key: str, stdout: str, stderr: str) -> dict[str, float | None]:
    """Integrated loudness and true peak as the tool printed them."""
    if key == "validate":
        m = json.loads(stdout)["files"][0]["measurements"]
        return {"lufs": m["audio.integrated_lufs"], "peak": m["audio.true_peak_dbtp"]}
    if key == "probe":
        m = json.loads(stdout)[0]["loudness"]
        return {"lufs": m["integrated_lufs"], "peak": m["true_peak_dbtp"]}
    summary = stderr[stderr.rfind("Summary:") :]
    i_match, peak_match = _EBUR128_I.search(summary), _EBUR128_PEAK.search(summary)
    return {
        "lufs": float(i_match.group(1)) if i_match else None,
        "peak": float(peak_match.group(1)) if peak_match else None,
    }


def worker(job_file: Path) -> None:
    """Run one command once, under :func:`benchlib.measure_command`; print JSON."""
    job = json.loads(job_file.read_text())

    def run(job: dict[str, Any]) -> dict[str, Any]:
        proc, stats = benchlib.measure_command(job["argv"], method="ru_maxrss of the child")
        stats["exit_code"] = proc.returncode
        stats["figures"] = figures(job["key"], proc.stdout, proc.stderr)
        return stats

    print(json.dumps(benchlib.with_loadavg(run, job)))


# ----------------------------------------------------------------------------- report


def summarise(title: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for key, rs in runs.items():
        tools[key] = benchlib.tool_summary(LABELS[key], {}, rs, rss_per_run=False)
        tools[key]["figures"] = rs[0]["figures"]
        tools[key]["exit_codes"] = sorted({r["exit_code"] for r in rs})
    ref = tools["ffmpeg"]["figures"]
    agrees = True
    for key in ("validate", "probe"):
        f = tools[key]["figures"]
        ok = (
            f["lufs"] is not None
            and ref["lufs"] is not None
            and abs(f["lufs"] - ref["lufs"]) <= LUFS_TOLERANCE
            and f["peak"] is not None
            and ref["peak"] is not None
            and abs(f["peak"] - ref["peak"]) <= PEAK_TOLERANCE
        )
        tools[key]["agrees_with_ffmpeg"] = ok
        agrees = agrees and ok
    return {"title": title, "tools": tools, "agrees": agrees}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| file | tool | median wall s | x ffmpeg | median CPU s | peak RSS MiB | "
        "integrated LUFS | true peak dBTP | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ff = r["tools"]["ffmpeg"]["median_wall_s"]
        for t in r["tools"].values():
            f = t["figures"]
            loads = [x[0] for x in t["loadavg_1min"] if x and x[0] is not None]
            load = f"{statistics.median(loads):.1f}" if loads else "?"
            lines.append(
                f"| {r['title']} | {t['label']} | {t['median_wall_s']:.1f} | "
                f"{t['median_wall_s'] / ff:.2f} | {t['median_cpu_s']:.1f} | "
                f"{t['peak_rss_mib']:.0f} | {f['lufs']} | {f['peak']} | {load} |"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["_worker"]:
        worker(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hours", default="1,3", help="programme lengths, hours (1,3)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (3)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=benchlib.WORKDIR,
        help="where generated media is cached (benchmarks/_work)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)
    try:
        hours = [float(h) for h in args.hours.split(",") if h]
    except ValueError:
        parser.error(f"--hours takes numbers separated by commas, got {args.hours!r}")
    if args.repeat < 1 or not hours or min(hours) <= 0:
        parser.error("--repeat must be at least 1 and every length positive")
    workdir: Path = args.workdir.resolve()
    jobs_dir = workdir / "loudness_jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)

    benchlib.warm_page_cache()
    fingerprint = benchlib.handoff_fingerprint()
    rows = []
    for h in hours:
        wav = make_wav(workdir / f"programme_{h:g}h_v{GENERATOR_VERSION}.wav", h)
        title = f"{h:g}-hour WAV"
        tools = [
            benchlib.Tool(key, LABELS[key], {"key": key, "argv": argv_})
            for key, argv_ in commands(wav).items()
        ]
        runs = benchlib.run_case(
            __file__,
            f"loudness-{h:g}h",
            tools,
            args.repeat,
            jobs_dir,
            describe=lambda r: (
                f"{r['wall_s']:.1f} s, {benchlib.mib(r['peak_rss_kib']):.0f} MiB, "
                f"{r['figures']}, load {r['loadavg_1min'][0]}"
            ),
        )
        rows.append(summarise(title, runs))

    changed = benchlib.source_changed(fingerprint)
    print(markdown(rows))
    for r in rows:
        if not r["agrees"]:
            print(f"\n{r['title']}: handoff and ffmpeg disagree (see the table)")
    if args.json is not None:
        doc = {
            "command": benchlib.command_line(argv),
            "repeat": args.repeat,
            "machine": benchlib.machine(),
            "timer": "time.perf_counter around the child, in a fresh worker process per run",
            "memory": "resource.getrusage(RUSAGE_CHILDREN).ru_maxrss of that worker",
            "handoff_source_sha256": fingerprint,
            "handoff_source_changed_during_run": changed,
            "cases": rows,
        }
        benchlib.write_json(args.json, doc)
    return 0 if all(r["agrees"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
