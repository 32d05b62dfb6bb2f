"""Benchmark conforming a file that already meets its preset: ``handoff export`` against
``handoff export --reencode`` of the same file.

Run from the repository root::

    python benchmarks/bench_conform.py [--repeat 3] [--seconds 120] \
        [--workdir benchmarks/_work] [--json results.json]

In one run it

1. makes (once; cached in the work folder) two 1920x1080 24 fps sources whose picture
   meets its preset and whose sound does not (44.1 kHz, so the sound is resampled
   either way and only the picture's handling differs):

   - ``prores``: a ProRes 422 HQ master (prores_ks profile 3, ``yuv422p10le``, BT.709
     tags) with 24-bit PCM at 44.1 kHz in MOV;
   - ``h264``: an H.264 High review copy (x264 veryfast CRF 20, closed 2-s GOPs, every
     keyframe IDR, BT.709 tags) with AAC-LC 192 kb/s at 44.1 kHz in MP4 (faststart);

   each picture a panning texture, a moving bar and fresh grain on every frame, so that
   an encode has real work;
2. asks the plan what it will do (``--dry-run --json``: each stream's action and rule);
3. times, interleaved (repetition 1 runs the two in one order, repetition 2 in the
   reverse order, and so on), each run in a fresh worker process (this script with
   ``_worker``), ``python -m handoff export SRC --preset prores-master|h264-review
   --jobs 1 --overwrite --json`` (start-up, probe, plan, the export, the check of the
   output and the rename included, as a user runs it) against the same with
   ``--reencode``; wall time with ``time.perf_counter``, CPU time and peak RSS with
   ``resource.getrusage`` (RUSAGE_CHILDREN);
4. checks every output: ``done``, ``validate_file(out, load_spec(preset))`` passing, the
   frame count the source's, 48 kHz sound; and whether its picture is the source's bit
   for bit (every video packet's bytes equal, in order) -- required of the conform
   runs, reported for the ``--reencode`` ones;
5. prints a Markdown table (and writes JSON with every raw time when asked).

Timings on a shared machine are noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import zip_longest
from pathlib import Path
from typing import Any

# Time the checkout this script sits in (see bench_export.py): its workers, and the
# ``python -m handoff`` they run, import handoff from the repository above this folder.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib

REPO = Path(__file__).resolve().parent.parent

GENERATOR_VERSION = 1
FPS = 24
SOURCE_RATE = 44100
PRESETS = {"prores": "prores-master", "h264": "h264-review"}
TITLES = {
    "prores": "ProRes 422 HQ + 44.1 kHz PCM -> prores-master",
    "h264": "H.264 High + 44.1 kHz AAC -> h264-review",
}
CASES = ("prores", "h264")

# ----------------------------------------------------------------------------- media


def source_path(workdir: Path, name: str, seconds: float) -> Path:
    ext = ".mov" if name == "prores" else ".mp4"
    return (
        workdir
        / "conform_media"
        / f"conform_{name}_1080p{FPS}_{seconds:g}s_v{GENERATOR_VERSION}{ext}"
    )


def make_source(path: Path, name: str, seconds: float) -> Path:
    """The ``name`` source (module docstring), ``seconds`` long; kept once made."""
    if path.exists() and path.stat().st_size > 0:
        return path
    import av
    import numpy as np

    from handoff.files.fsutil import atomic_output
    from handoff.media.synth import speech_like

    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = 1920, 1080
    frames = round(seconds * FPS)
    samples = frames * SOURCE_RATE // FPS
    voice = speech_like(samples / SOURCE_RATE, SOURCE_RATE, level=0.3, seed=5)[:samples]
    sound = np.ascontiguousarray(np.stack([voice, voice * 0.8]).astype(np.float32))

    prores = name == "prores"
    options = {} if prores else {"movflags": "+faststart"}
    with atomic_output(path, replace=True) as tmp, av.open(str(tmp), "w", options=options) as out:
        vs = out.add_stream("prores_ks" if prores else "libx264", rate=FPS)
        assert isinstance(vs, av.VideoStream)
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv422p10le" if prores else "yuv420p"
        cc = vs.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1
        if prores:
            vs.options = {"profile": "3", "vendor": "apl0"}
        else:
            cc.gop_size = 2 * FPS
            vs.options = {
                "preset": "veryfast",
                "profile": "high",
                "crf": "20",
                "x264-params": f"keyint={2 * FPS}:min-keyint={2 * FPS}:scenecut=0:open-gop=0",
            }
        aus = out.add_stream("pcm_s24le" if prores else "aac", rate=SOURCE_RATE, layout="stereo")
        assert isinstance(aus, av.AudioStream)
        if not prores:
            aus.bit_rate = 192000
        block_size = 1024
        sent = 0
        for i, frame in enumerate(benchlib.moving_picture(width, height, frames, seed=7)):
            if prores:
                frame = frame.reformat(format="yuv422p10le")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in vs.encode(frame):
                out.mux(packet)
            # The sound that starts before the next frame does, so the file interleaves.
            while sent < samples and sent * FPS < (i + 1) * SOURCE_RATE:
                chunk = np.ascontiguousarray(sound[:, sent : sent + block_size])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate, af.pts = SOURCE_RATE, sent
                af.time_base = Fraction(1, SOURCE_RATE)
                for packet in aus.encode(af):
                    out.mux(packet)
                sent += chunk.shape[1]
        for packet in vs.encode(None):
            out.mux(packet)
        for packet in aus.encode(None):
            out.mux(packet)
    benchlib.say(f"made {path.name} in {time.perf_counter() - t0:.1f} s")
    return path


# ----------------------------------------------------------------------------- worker


def _handoff_export(source: Path, preset: str, out_dir: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "handoff", "export", str(source), "--preset", preset,
            "--out", str(out_dir), "--jobs", "1", "--overwrite", "--json", *more]  # fmt: skip


def worker(job_file: Path) -> None:
    """Run one command line; this worker imports nothing heavy, so it stays lean."""
    job: dict[str, Any] = json.loads(job_file.read_text())

    def run(job: dict[str, Any]) -> dict[str, Any]:
        proc, result = benchlib.measure_command(
            job["argv"], method="ru_maxrss of the largest child (RUSAGE_CHILDREN)"
        )
        if proc.returncode not in (0, 1):
            raise SystemExit(f"handoff exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        report = json.loads(proc.stdout)
        result["statuses"] = [f["status"] for f in report["files"]]
        result["errors"] = [f["error"] for f in report["files"] if f["error"]]
        return result

    # The child runs this checkout's handoff, wherever the script is run from.
    os.environ["PYTHONPATH"] = str(REPO)
    json.dump(benchlib.with_loadavg(run, job), sys.stdout)


def _describe_run(result: dict[str, Any]) -> str:
    return f"{result['wall_s']:.2f} s wall, {result['cpu_s']:.2f} s CPU {result['statuses']}"


# ----------------------------------------------------------------------------- checks


@dataclass
class Case:
    name: str
    source: Path
    preset: str
    tools: list[benchlib.Tool]
    outputs: dict[str, Path]
    decision: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


def plan_decisions(source: Path, preset: str, out_dir: Path) -> dict[str, Any]:
    """What the plan does with each stream, from ``--dry-run --json`` (untimed)."""
    import subprocess

    argv = [*_handoff_export(source, preset, out_dir), "--dry-run"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed:\n{proc.stderr[-3000:]}")
    plan = json.loads(proc.stdout)["files"][0]["plan"]
    return {
        "frames": plan["video"]["frames"],
        "picture": plan["video"]["decision"],
        "sound": plan["audio"]["decision"] if plan["audio"] else None,
    }


def picture_packets(a: Path, b: Path) -> tuple[int, int, int | None]:
    """(packets in a, packets in b, index of the first whose bytes differ or None):
    every video packet of the two files, in decoding order, compared byte for byte."""
    import av

    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        pa = (bytes(p) for p in ca.demux(ca.streams.video[0]) if p.size)
        pb = (bytes(p) for p in cb.demux(cb.streams.video[0]) if p.size)
        na = nb = 0
        first: int | None = None
        for i, (x, y) in enumerate(zip_longest(pa, pb)):
            na += x is not None
            nb += y is not None
            if first is None and x != y:
                first = i
    return na, nb, first


def check_case(case: Case) -> None:
    from handoff.probe.reader import probe
    from handoff.validate.check import validate_file
    from handoff.validate.spec import load_spec

    spec = load_spec(case.preset)
    frames = case.decision["frames"]
    for tool in case.tools:
        problems = []
        statuses = {s for r in case.runs[tool.key] for s in r["statuses"]}
        if statuses != {"done"}:
            problems.append(f"statuses {sorted(statuses)} {case.runs[tool.key][0]['errors']}")
        out = case.outputs[tool.key]
        info = probe(out)
        report = validate_file(out, spec)
        if report.status != "pass":
            problems.append(f"validate {report.status}")
        got = info.video.frames if info.video else 0
        if got != frames:
            problems.append(f"{got} frames, expected {frames}")
        if info.audio is None or info.audio.sample_rate != 48000:
            problems.append("sound not at 48 kHz")
        na, nb, first = picture_packets(case.source, out)
        exact = first is None
        if tool.key == "conform" and not exact:
            problems.append("the picture is not the source's bit for bit")
        case.facts[tool.key] = {"packets": [na, nb], "first_different": first,
                                "bit_exact": exact, "validate": report.status}  # fmt: skip
        same = (
            f"picture bit-exact ({na} packets)"
            if exact
            else f"picture re-encoded or changed (packet {first} of {na} differs first; "
            f"output has {nb})"
        )
        case.ok &= not problems
        case.checks.append(
            f"{tool.key}: {got} frames, validate {report.status}, {same}"
            + (f" -- PROBLEMS: {'; '.join(problems)}" if problems else "")
        )


# ----------------------------------------------------------------------------- report


def summarise(case: Case) -> dict[str, Any]:
    tools = {
        t.key: benchlib.tool_summary(t.label, t.job, case.runs[t.key], rss_per_run=False)
        for t in case.tools
    }
    c, r = tools["conform"], tools["reencode"]
    return {
        "case": case.name,
        "title": TITLES[case.name],
        "preset": case.preset,
        "source": str(case.source),
        "decision": case.decision,
        "tools": tools,
        "ratio_wall": c["median_wall_s"] / r["median_wall_s"],
        "ratio_cpu": c["median_cpu_s"] / r["median_cpu_s"] if r["median_cpu_s"] else math.nan,
        "ok": case.ok,
        "checks": case.checks,
        "output_facts": case.facts,
    }


def _action(d: Mapping[str, Any] | None) -> str:
    if d is None:
        return "-"
    return d["action"] if d["rule"] is None else f"{d['action']} ({d['rule']})"


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| case | frames | plan: picture / sound | conform median s | --reencode median s "
        "| ratio conform/reencode | CPU s conform / reencode "
        "| peak RSS MiB conform / reencode | picture bit-exact (conform) | all checks |",
        "|---|--:|---|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in rows:
        t, d = r["tools"], r["decision"]
        c, e = t["conform"], t["reencode"]
        exact = r["output_facts"]["conform"]["bit_exact"]
        lines.append(
            f"| {r['title']} | {d['frames']} | {_action(d['picture'])} / {_action(d['sound'])} "
            f"| {c['median_wall_s']:.2f} | {e['median_wall_s']:.2f} | **{r['ratio_wall']:.2f}** "
            f"| {c['median_cpu_s']:.1f} / {e['median_cpu_s']:.1f} "
            f"| {c['peak_rss_mib']:.0f} / {e['peak_rss_mib']:.0f} "
            f"| {'yes' if exact else 'NO'} | {'yes' if r['ok'] else 'NO'} |"
        )
    lines.append("")
    lines += benchlib.report_tail(
        rows,
        raw_heading="Raw wall times (s), in run order per tool:",
        raw_note=lambda _t: "",
        checks_heading="Checks:",
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        worker(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (3)")
    parser.add_argument("--seconds", type=float, default=120.0, help="source length (120)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=benchlib.WORKDIR,
        help="where generated media and outputs go (benchmarks/_work)",
    )
    parser.add_argument("--cases", default=",".join(CASES), help="subset of prores,h264")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.seconds <= 0:
        parser.error("--repeat and --seconds must be positive")
    wanted = benchlib.parse_cases(parser, args.cases, CASES)
    workdir: Path = args.workdir.resolve()
    jobs_dir = workdir / "conform_jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)

    cases: list[Case] = []
    for name in wanted:
        source = make_source(source_path(workdir, name, args.seconds), name, args.seconds)
        preset = PRESETS[name]
        out_root = workdir / "conform_out" / name
        ext = ".mov" if preset == "prores-master" else ".mp4"
        tools: list[benchlib.Tool] = []
        outputs: dict[str, Path] = {}
        for key, more, label in (("conform", (), f"handoff export --preset {preset}"),
                                 ("reencode", ("--reencode",),
                                  f"handoff export --preset {preset} --reencode")):  # fmt: skip
            argv_ = _handoff_export(source, preset, out_root / key, *more)
            tools.append(benchlib.Tool(key, label, {"argv": argv_}))
            outputs[key] = out_root / key / f"{source.stem}{ext}"
        decision = plan_decisions(source, preset, out_root / "conform")
        cases.append(Case(name, source, preset, tools, outputs, decision))

    benchlib.warm_page_cache(ffmpeg=False)
    fingerprint = benchlib.handoff_fingerprint()
    for case in cases:
        benchlib.say(f"{case.name}: " + " vs ".join(t.label for t in case.tools))
        case.runs = benchlib.run_case(
            __file__, case.name, case.tools, args.repeat, jobs_dir, describe=_describe_run
        )
        benchlib.say(f"{case.name}: checking the outputs")
        check_case(case)
    rows = [summarise(c) for c in cases]
    changed = benchlib.source_changed(fingerprint)
    print(markdown(rows))
    if args.json is not None:
        doc = {
            "command": benchlib.command_line(argv),
            "repeat": args.repeat,
            "seconds": args.seconds,
            "machine": benchlib.machine(ffmpeg=False),
            "timer": "time.perf_counter in a fresh worker process per run",
            "cpu": "resource.getrusage user+system of the handoff child (RUSAGE_CHILDREN)",
            "handoff_source_sha256": fingerprint,
            "handoff_source_changed_during_run": changed,
            "cases": rows,
        }
        benchlib.write_json(args.json, doc)
    return 0 if all(c.ok for c in cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
