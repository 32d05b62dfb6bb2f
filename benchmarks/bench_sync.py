"""Benchmark ``handoff sync`` against simply decoding the take with the ffmpeg CLI.

Run from the repository root::

    python benchmarks/bench_sync.py [--repeat 3] [--seconds 120] [--clips 8] \
        [--clip-seconds 20] [--workdir benchmarks/_work] [--json results.json] [--profile]

In one run it

1. makes (once; cached in the work folder) takes with known sync truth, the way an
   audio-conditioned model returns them: a narration (``synth.babble``, 48 kHz mono
   24-bit WAV) and a talking-head take of it (``synth.write_take``, picture 20 ms late,
   sound in sync) rendered small and brought to 1920x1080 24 fps by the ffmpeg CLI,
   which also lays a slowly drifting fine texture and a little temporal noise over it
   and encodes H.264 High 4:2:0 with libx264 ``veryfast`` CRF 19 (as LTX-2 writes it;
   about 10 Mb/s), the take's AAC 48 kHz stereo copied in. A 2-minute take, one made
   the same way twice as long, and a batch of shorter 1280x720 takes of one narration;
2. times, interleaved (repetition 1 runs the tools in one order, repetition 2 in the
   reverse order, and so on), each run in a fresh worker process (this script with
   ``_worker``):

   - ``decode``: ``python -m handoff sync TAKE --reference WAV --jobs 1 --json`` (start-up
     included, as a user runs it) against the ffmpeg binary of imageio-ffmpeg only
     decoding the take: ``ffmpeg -nostdin -i TAKE -f null -`` (its picture and its
     sound, as sync decodes both); and, for attribution, the same demux and decode done
     by PyAV in-process with nothing else (the floor of a PyAV-based measurement);
   - ``length``: the same sync on the 2-minute take against the 4-minute one (time
     and peak memory against length), then, untimed, where the memory goes: the
     narration read whole, and the take decoded streaming (each step's peak growth);
   - ``jobs``: ``handoff sync`` of the batch with ``--jobs 2`` against ``--jobs 1``;

   wall time with ``time.perf_counter``, CPU time and peak RSS with
   ``resource.getrusage`` (RUSAGE_CHILDREN for the command lines, which the lean worker
   spawns; for the in-process PyAV decode RUSAGE_SELF and the kernel's high-water mark,
   reset before the work);
3. checks that the work was done and is equal: every sync run reports status ok, the
   picture within one frame of its truth and the sound within 1 ms of it, and a length
   of exactly the take's frames; ffmpeg (and PyAV) decode exactly that many frames;
   ``--jobs 2`` gives the same figures as ``--jobs 1``;
4. prints a Markdown table (and writes JSON with every raw time when asked); with
   ``--profile`` also runs one sync of the 2-minute take under cProfile and says where
   its time goes.

Timings on a shared machine are noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib
from benchlib import Tool

GENERATOR_VERSION = 1
FPS = 24
AUDIO_RATE = 48000
UPSCALE = 5  # takes are rendered at a fifth of their size and scaled up by ffmpeg
MAIN_DELAY_S = 0.02  # the picture of the long takes is this late (the truth to find)
BATCH_DELAYS_S = (0.0, 0.02, -0.02)  # batch take i: BATCH_DELAYS_S[i % 3]
AUDIO_TOLERANCE_MS = 1.0
CASES = ("decode", "length", "jobs")


def frame_ms() -> float:
    return 1000.0 / FPS


def _length(seconds: float) -> str:
    return f"{seconds / 60:g}-min" if seconds % 60 == 0 else f"{seconds:g}-s"


# ----------------------------------------------------------------------------- media


@dataclass(frozen=True)
class Take:
    path: Path
    narration: Path
    seconds: float
    width: int
    height: int
    picture_delay_s: float

    @property
    def frames(self) -> int:
        return math.floor(self.seconds * FPS)


def _media_dir(workdir: Path) -> Path:
    return workdir / "sync_media"


def make_narration(workdir: Path, seconds: float, seed: int) -> Path:
    """``synth.babble`` (syllables of random length, pitch and gap), 48 kHz mono 24-bit."""
    path = _media_dir(workdir) / f"narration_{seconds:g}s_s{seed}_v{GENERATOR_VERSION}.wav"
    if path.exists() and path.stat().st_size > 0:
        return path
    from handoff.files.fsutil import atomic_output
    from handoff.media.synth import babble, write_wav

    with atomic_output(path, replace=True) as tmp:
        write_wav(tmp, babble(seconds, AUDIO_RATE, seed=seed)[None, :], AUDIO_RATE)
    return path


def _texture_graph(width: int, height: int, seconds: float, seed: int) -> str:
    """The ffmpeg filter graph that brings the small render to full size.

    Scaled up (Lanczos), then overlaid with a fine static texture (uniform noise, lightly
    blurred) drifting one pixel a frame right and down -- motion the encoder has to find
    everywhere, as in a slow camera move -- and a little fresh noise on the luma of every
    frame. The mouth (near black) keeps its shape: overlay leaves dark areas dark.
    """
    tex = (
        f"color=c=gray:s={width}x{height}:r={FPS}:d={seconds:g},format=yuv420p,"
        f"noise=c0s=40:c0f=u:all_seed={seed},gblur=sigma=0.8,"
        f"scroll=h={1 / width:.10f}:v={1 / height:.10f}"
    )
    return (
        f"[0:v]scale={width}:{height}:flags=lanczos,format=yuv420p[b];{tex}[t];"
        f"[b][t]blend=all_mode=overlay:all_opacity=0.5:shortest=1,"
        f"noise=c0s=2:c0f=t:all_seed={seed + 1}[v]"
    )


def make_take(
    workdir: Path,
    narration: Path,
    seconds: float,
    width: int,
    height: int,
    seed: int,
    picture_delay_s: float,
) -> Take:
    """A take of ``narration`` with its picture ``picture_delay_s`` late, as ``Take``."""
    delay_ms = round(picture_delay_s * 1000)
    name = (
        f"take_{width}x{height}p{FPS}_{seconds:g}s_s{seed}_d{delay_ms}ms_v{GENERATOR_VERSION}.mp4"
    )
    path = _media_dir(workdir) / name
    take = Take(path, narration, seconds, width, height, picture_delay_s)
    if path.exists() and path.stat().st_size > 0:
        return take
    from handoff.files.fsutil import atomic_output
    from handoff.media.audio import decode_audio
    from handoff.media.synth import TakeSpec, write_take

    t0 = time.perf_counter()
    samples = decode_audio(narration).samples[0]
    spec = TakeSpec(
        width=width // UPSCALE,
        height=height // UPSCALE,
        picture_delay_s=picture_delay_s,
        seed=seed,
    )
    small = path.with_name(f".{path.stem}.small.mp4")
    write_take(small, samples, AUDIO_RATE, spec)
    try:
        with atomic_output(path, replace=True) as tmp:
            argv = [
                benchlib.ffmpeg_exe(),
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-i",
                str(small),
                "-filter_complex",
                _texture_graph(width, height, seconds, seed),
                "-map",
                "[v]",
                "-map",
                "0:a",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "19",
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
                "-colorspace",
                "bt709",
                "-color_primaries",
                "bt709",
                "-color_trc",
                "bt709",
                "-color_range",
                "tv",
                "-c:a",
                "copy",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
                str(tmp),
            ]
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"ffmpeg could not make {path.name}:\n{proc.stderr[-3000:]}")
    finally:
        small.unlink(missing_ok=True)
    benchlib.say(f"made {path.name} in {time.perf_counter() - t0:.1f} s")
    return take


def media_facts(take: Take) -> dict[str, Any]:
    """What the take is, read back with handoff's probe (no decoding)."""
    from handoff.probe.reader import probe

    info = probe(take.path)
    v, a = info.video, info.audio
    size = take.path.stat().st_size
    return {
        "path": str(take.path),
        "narration": str(take.narration),
        "bytes": size,
        "mbit_per_s": 8 * size / take.seconds / 1e6,
        "frames": v.frames if v else None,
        "size": f"{v.width}x{v.height}" if v else None,
        "fps": str(v.fps) if v else None,
        "profile": v.profile if v else None,
        "pix_fmt": v.pix_fmt if v else None,
        "audio": f"{a.codec} {a.sample_rate} Hz {a.channels} ch" if a else None,
        "truth_picture_late_ms": take.picture_delay_s * 1000,
        "truth_sound_late_ms": 0.0,
    }


# ----------------------------------------------------------------------------- worker


def _sync_summary(stdout: str) -> list[dict[str, Any]]:
    """The figures checked, per take, from ``handoff sync --json``."""
    doc = json.loads(stdout)
    found = []
    for t in doc["takes"]:
        audio, picture = t.get("audio") or {}, t.get("picture") or {}
        found.append(
            {
                "path": t["path"],
                "status": t["status"],
                "verdict": t["verdict"],
                "error": t["error"],
                "duration_s": t["duration_s"],
                "audio_offset_ms": audio.get("audio_offset_ms"),
                "audio_drift_ppm": audio.get("audio_drift_ppm"),
                "picture_offset_ms": picture.get("picture_offset_ms"),
                "picture_confidence": picture.get("confidence"),
                "score": t["score"],
            }
        )
    return found


def _worker_cli(job: dict[str, Any]) -> dict[str, Any]:
    """Run one command line; this worker imports nothing heavy, so it stays lean."""
    proc, result = benchlib.measure_command(
        job["argv"], method="ru_maxrss of the largest descendant (RUSAGE_CHILDREN)"
    )
    result["exit_code"] = proc.returncode
    if job.get("parse") == "sync":
        # sync exits 1 when a take is out of tolerance: still a measurement, judged later.
        if proc.returncode not in (0, 1):
            raise SystemExit(f"handoff sync exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        result["takes"] = _sync_summary(proc.stdout)
    elif job.get("parse") == "ffmpeg":
        if proc.returncode != 0:
            raise SystemExit(f"ffmpeg exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        counts = re.findall(r"frame=\s*(\d+)", proc.stderr)
        result["frames"] = int(counts[-1]) if counts else None
    return result


def _worker_pyav(job: dict[str, Any]) -> dict[str, Any]:
    """Demux and decode the take's picture and sound with PyAV, as sync does, and nothing
    else; in-process, after the imports."""
    import av

    from handoff.media.audio import open_media

    path = Path(job["take"])

    def decode() -> tuple[int, int]:
        frames = samples = 0
        with open_media(path) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            video.thread_type = "AUTO"
            for packet in container.demux(video, audio):
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        frames += 1
                    elif isinstance(frame, av.AudioFrame):
                        samples += frame.samples
            # demux() ends each stream with an empty packet, whose decode() drains the decoder.
        return frames, samples

    (frames, samples), result = benchlib.measure(
        decode, children=False, method="ru_maxrss of the worker"
    )
    return {**result, "frames": frames, "audio_samples": samples}


def _worker_split(job: dict[str, Any]) -> dict[str, Any]:
    """Where sync's memory goes, in two steps as ``measure_take`` takes them: the
    narration read whole, then the take decoded streaming. The kernel's high-water mark
    is reset before each step; its growth over the RSS at the step's start is reported.
    Uses sync's private steps (``_load_reference``, ``_read_take``): not timed, and
    skipped with a note if they are renamed."""
    import handoff.sync.measure as sync
    from handoff.sync.align import AudioAligner

    load = getattr(sync, "_load_reference", None)
    read = getattr(sync, "_read_take", None)
    if load is None or read is None:
        return {"skipped": "handoff.sync.measure has no _load_reference/_read_take any more"}

    def step(fn: Any, *args: Any) -> tuple[Any, dict[str, float]]:
        if not benchlib.reset_peak_rss():
            raise OSError("cannot reset the RSS high-water mark (/proc/self/clear_refs)")
        before = benchlib.status_kib("VmRSS") or 0
        value = fn(*args)
        peak, after = benchlib.status_kib("VmHWM") or 0, benchlib.status_kib("VmRSS") or 0
        return value, {
            "rss_before_mib": before / 1024,
            "peak_growth_mib": (peak - before) / 1024,
            "held_after_mib": (after - before) / 1024,
        }

    reference, narration = step(load, Path(job["narration"]))
    aligner = AudioAligner(reference.analysis, max_lag_s=sync.MAX_LAG_S)
    _take, take = step(read, Path(job["take"]), aligner)
    return {"narration": narration, "take": take}


def worker(job_file: Path) -> None:
    job: dict[str, Any] = json.loads(job_file.read_text())
    if job["kind"] == "split":
        json.dump(_worker_split(job), sys.stdout)
        return
    run = _worker_pyav if job["kind"] == "pyav" else _worker_cli
    json.dump(benchlib.with_loadavg(run, job), sys.stdout)


# ----------------------------------------------------------------------------- runner


@dataclass
class Case:
    name: str
    title: str
    takes: list[Take]
    tools: list[Tool]
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    ok: bool = True


def _describe_run(result: dict[str, Any]) -> str:
    return (
        f"{result['wall_s']:.2f} s wall, {result['cpu_s']:.2f} s CPU, "
        f"{result['peak_rss_kib'] / 1024:.0f} MiB peak"
    )


def sync_argv(takes: Sequence[Take], jobs: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "handoff",
        "sync",
        *(str(t.path) for t in takes),
        "--reference",
        str(takes[0].narration),
        "--jobs",
        str(jobs),
        "--json",
    ]


def _sync_tool(key: str, label: str, takes: Sequence[Take], jobs: int) -> Tool:
    return Tool(key, label, {"kind": "cli", "parse": "sync", "argv": sync_argv(takes, jobs)})


def build_decode_case(take: Take, pyav: bool) -> Case:
    tools = [
        _sync_tool("sync", "handoff sync --jobs 1 (CLI)", [take], 1),
        Tool(
            "ffmpeg",
            "ffmpeg -i TAKE -f null - (decode only)",
            {
                "kind": "cli",
                "parse": "ffmpeg",
                "argv": [
                    benchlib.ffmpeg_exe(),
                    "-nostdin",
                    "-stats",
                    "-i",
                    str(take.path),
                    "-f",
                    "null",
                    "-",
                ],
            },
        ),
    ]
    if pyav:
        tools.append(
            Tool(
                "pyav",
                "PyAV demux + decode alone (in-process)",
                {"kind": "pyav", "take": str(take.path)},
            )
        )
    title = f"{_length(take.seconds)} {take.width}x{take.height}p{FPS}"
    return Case("decode", f"sync vs decode, {title}", [take], tools)


def build_length_case(short: Take, long: Take) -> Case:
    tools = [
        _sync_tool("short", f"handoff sync, {_length(short.seconds)} take", [short], 1),
        _sync_tool("long", f"handoff sync, {_length(long.seconds)} take", [long], 1),
    ]
    return Case("length", "sync, take length", [short, long], tools)


def build_jobs_case(batch: Sequence[Take]) -> Case:
    tools = [
        _sync_tool("jobs1", "handoff sync --jobs 1", batch, 1),
        _sync_tool("jobs2", "handoff sync --jobs 2", batch, 2),
    ]
    first = batch[0]
    title = f"{len(batch)} takes of {first.seconds:g} s {first.width}x{first.height}"
    return Case("jobs", title, list(batch), tools)


# ----------------------------------------------------------------------------- checks


def _check_sync_run(take: Take, found: dict[str, Any]) -> list[str]:
    """What is wrong with one take's sync figures (empty: right)."""
    problems = []
    if found["status"] != "ok":
        return [f"status {found['status']}: {found['error']}"]
    truth = take.picture_delay_s * 1000
    pic, snd = found["picture_offset_ms"], found["audio_offset_ms"]
    if pic is None or abs(pic - truth) > frame_ms():
        problems.append(f"picture {pic} ms, truth {truth:g} ms")
    if snd is None or abs(snd) > AUDIO_TOLERANCE_MS:
        problems.append(f"sound {snd} ms, truth 0 ms")
    expected = take.frames / FPS
    if found["duration_s"] is None or abs(found["duration_s"] - expected) > 0.0005:
        problems.append(f"duration {found['duration_s']} s, expected {expected:g} s")
    if found["verdict"] != "in":
        problems.append(f"verdict {found['verdict']}")
    return problems


def check_case(case: Case) -> None:
    """Every run of every tool did the whole work and got the known answers."""
    by_path = {str(t.path): t for t in case.takes}
    for tool in case.tools:
        runs = case.runs[tool.key]
        problems: list[str] = []
        figures: list[str] = []
        for i, run in enumerate(runs, start=1):
            if "takes" in run:
                expected_paths = [str(t.path) for t in case.takes] if case.name == "jobs" else None
                paths = [f["path"] for f in run["takes"]]
                if expected_paths is not None and sorted(paths) != sorted(expected_paths):
                    problems.append(f"run {i}: {len(paths)} takes reported")
                for found in run["takes"]:
                    take = by_path[found["path"]]
                    problems += [
                        f"run {i} {take.path.name}: {p}" for p in _check_sync_run(take, found)
                    ]
                if run["exit_code"] != 0:
                    problems.append(f"run {i}: exit {run['exit_code']}")
                if case.name != "jobs" or i == 1:
                    for found in run["takes"]:
                        figures.append(
                            f"{Path(found['path']).name}: picture {found['picture_offset_ms']} ms "
                            f"(confidence {found['picture_confidence']}), sound "
                            f"{found['audio_offset_ms']} ms, {found['duration_s']} s"
                        )
            else:
                take = case.takes[0]
                if run.get("frames") != take.frames:
                    problems.append(f"run {i}: {run.get('frames')} frames, expected {take.frames}")
                figures.append(f"{run.get('frames')} frames")
        unique = sorted(set(figures), key=figures.index)
        shown = "; ".join(unique[:3]) + (f"; ... ({len(unique)} in all)" if len(unique) > 3 else "")
        case.checks.append(
            f"{tool.key} ({len(runs)} runs): {shown}"
            + (f" -- PROBLEMS: {'; '.join(problems)}" if problems else " -- ok")
        )
        if problems:
            case.ok = False
    if case.name == "jobs":
        one = [sorted(r["takes"], key=lambda f: f["path"]) for r in case.runs["jobs1"]]
        two = [sorted(r["takes"], key=lambda f: f["path"]) for r in case.runs["jobs2"]]
        same = all(a == one[0] for a in one + two)
        case.checks.append(
            "--jobs 2 and --jobs 1 report " + ("identical figures" if same else "DIFFERENT figures")
        )
        if not same:
            case.ok = False


def memory_split(takes: Sequence[Take], jobs_dir: Path) -> list[dict[str, Any]]:
    """One untimed run per take of :func:`_worker_split`, in a fresh process."""
    found = []
    for take in takes:
        job = {"kind": "split", "narration": str(take.narration), "take": str(take.path)}
        f = jobs_dir / f"sync-split-{take.seconds:g}s.json"
        f.write_text(json.dumps(job))
        benchlib.say(f"memory split, {_length(take.seconds)} take")
        try:
            result = benchlib.run_worker(__file__, [str(f)], f.name, attempts=1)
        except SystemExit as exc:  # sync's private steps changed: the timings still stand
            result = {"skipped": f"memory split failed: {exc}"[:300]}
        result["seconds"] = take.seconds
        found.append(result)
    return found


# ----------------------------------------------------------------------------- report


def summarise(case: Case) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for tool in case.tools:
        runs = case.runs[tool.key]
        tools[tool.key] = benchlib.tool_summary(tool.label, tool.job, runs, rss_per_run=True)
        tools[tool.key]["results"] = [
            {k: v for k, v in r.items() if k in ("takes", "frames", "audio_samples", "exit_code")}
            for r in runs
        ]
    keys = [t.key for t in case.tools]
    # The ratio asked for: the first tool over the second, except --jobs 2 over --jobs 1
    # and the long take over the short one.
    a, b = {"jobs": ("jobs2", "jobs1"), "length": ("long", "short")}.get(
        case.name, (keys[0], keys[1])
    )
    row: dict[str, Any] = {
        "case": case.name,
        "title": case.title,
        "takes": [str(t.path) for t in case.takes],
        "tools": tools,
        "ratio": [a, b],
        "ratio_wall": tools[a]["median_wall_s"] / tools[b]["median_wall_s"],
        "ratio_cpu": tools[a]["median_cpu_s"] / tools[b]["median_cpu_s"],
        "ok": case.ok,
        "checks": case.checks,
    }
    if "pyav" in tools:
        row["ratio_pyav_wall"] = tools["pyav"]["median_wall_s"] / tools["ffmpeg"]["median_wall_s"]
    return row


def _spread(walls: Sequence[float]) -> str:
    return f"{min(walls):.2f}-{max(walls):.2f}"


def markdown(
    rows: Sequence[dict[str, Any]], cases: Sequence[Case], split: Sequence[dict[str, Any]] = ()
) -> str:
    by_name = {c.name: c for c in cases}
    lines: list[str] = []
    for r in rows:
        t = r["tools"]
        if r["case"] == "decode":
            s, f, p = t["sync"], t["ffmpeg"], t.get("pyav")
            n = by_name["decode"].takes[0].frames
            lines += [
                "| case | frames | ratio sync/ffmpeg | sync median s | ffmpeg decode median s "
                "| ratio PyAV decode/ffmpeg | PyAV decode median s | fps sync / ffmpeg "
                "| CPU s sync / ffmpeg / PyAV | peak RSS MiB sync / ffmpeg / PyAV | equal work |",
                "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
                f"| {r['title']} | {n} | **{r['ratio_wall']:.2f}** | {s['median_wall_s']:.2f} "
                f"| {f['median_wall_s']:.2f} "
                + (f"| {r['ratio_pyav_wall']:.2f} | {p['median_wall_s']:.2f} " if p else "| - | - ")
                + f"| {n / s['median_wall_s']:.0f} / {n / f['median_wall_s']:.0f} "
                f"| {s['median_cpu_s']:.1f} / {f['median_cpu_s']:.1f}"
                + (f" / {p['median_cpu_s']:.1f}" if p else "")
                + f" | {s['max_peak_rss_mib']:.0f} / {f['max_peak_rss_mib']:.0f}"
                + (f" / {p['max_peak_rss_mib']:.0f}" if p else "")
                + f" | {'yes' if r['ok'] else 'NO'} |",
                "",
            ]
        elif r["case"] == "length":
            short, long = by_name["length"].takes
            lines += [
                "| take | frames | sync median s | ratio to the shorter | CPU s "
                "| peak RSS MiB (max of runs) | peak RSS MiB per run | right answers |",
                "|---|--:|--:|--:|--:|--:|---|---|",
            ]
            for key, take in (("short", short), ("long", long)):
                x = t[key]
                ratio = x["median_wall_s"] / t["short"]["median_wall_s"]
                lines.append(
                    f"| {_length(take.seconds)} {take.width}x{take.height} | {take.frames} "
                    f"| {x['median_wall_s']:.2f} | {ratio:.2f} | {x['median_cpu_s']:.1f} "
                    f"| {x['max_peak_rss_mib']:.0f} "
                    f"| {', '.join(f'{m:.0f}' for m in x['peak_rss_mib'])} "
                    f"| {'yes' if r['ok'] else 'NO'} |"
                )
            lines.append("")
        elif r["case"] == "jobs":
            j1, j2 = t["jobs1"], t["jobs2"]
            n = len(r["takes"])
            lines += [
                "| case | takes | ratio jobs2/jobs1 | speed-up | --jobs 1 median s "
                "| --jobs 2 median s | takes/min jobs 1 / jobs 2 | CPU s jobs 1 / jobs 2 "
                "| peak RSS MiB jobs 1 / jobs 2 | right answers |",
                "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
                f"| {r['title']} | {n} | **{r['ratio_wall']:.2f}** | {1 / r['ratio_wall']:.2f}x "
                f"| {j1['median_wall_s']:.2f} | {j2['median_wall_s']:.2f} "
                f"| {60 * n / j1['median_wall_s']:.1f} / {60 * n / j2['median_wall_s']:.1f} "
                f"| {j1['median_cpu_s']:.1f} / {j2['median_cpu_s']:.1f} "
                f"| {j1['max_peak_rss_mib']:.0f} / {j2['max_peak_rss_mib']:.0f} "
                f"| {'yes' if r['ok'] else 'NO'} |",
                "",
            ]
    if split:
        lines += [
            "Where sync's memory goes (untimed, one fresh process per take; growth of the "
            "peak over the RSS at the start of each step):",
            "",
            "| take | RSS before MiB | reading the narration: peak growth / held after MiB "
            "| decoding the take, streaming: peak growth / held after MiB |",
            "|---|--:|--:|--:|",
        ]
        for x in split:
            if "skipped" in x:
                lines.append(f"| {_length(x['seconds'])} | skipped: {x['skipped']} | | |")
                continue
            n, t = x["narration"], x["take"]
            lines.append(
                f"| {_length(x['seconds'])} | {n['rss_before_mib']:.0f} "
                f"| +{n['peak_growth_mib']:.0f} / +{n['held_after_mib']:.0f} "
                f"| +{t['peak_growth_mib']:.0f} / +{t['held_after_mib']:.0f} |"
            )
        lines.append("")
    lines += benchlib.report_tail(
        rows,
        raw_heading="Raw wall times (s), in run order per tool (spread min-max):",
        raw_note=lambda x: f" ({_spread(x['wall_s'])})",
        checks_heading="Checks (equal work, right answers):",
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- profile

# (stage, file name, function): cumulative times read from the profile. Stages under
# "take:" are parts of _read_take; the rest of it is the demux loop and resampling.
_STAGES = (
    ("reference: decode the narration, resample to 16 kHz", "sync.py", "_load_reference"),
    ("take: demux, decode and analyse, streaming (all of it)", "sync.py", "_read_take"),
    (
        "take: FFmpeg decoding (`Packet.decode`, picture and sound)",
        "~",
        "<method 'decode' of 'av.packet.Packet' objects>",
    ),
    ("take: picture figures (`add_picture`: luma, motion)", "sync.py", "add_picture"),
    ("take: sound figures (`add_sound`: 1 ms power, GCC-PHAT)", "sync.py", "add_sound"),
    ("take: of which GCC-PHAT windows (`AudioAligner.feed`)", "align.py", "feed"),
    (
        "take: resampling to 16 kHz (`AudioResampler.resample`, reference too)",
        "~",
        "<method 'resample' of 'av.audio.resampler.AudioResampler' objects>",
    ),
    ("measure: fits, picture lag, slate, score (`_measure`)", "sync.py", "_measure"),
    ("measure: of which `picture_lag`", "align.py", "picture_lag"),
)


def run_profile(take: Take, workdir: Path, top: int) -> dict[str, Any]:
    """One ``handoff sync --jobs 1`` of ``take`` under cProfile, in a fresh process."""
    import pstats

    out = workdir / "sync_profile.pstats"
    argv = [sys.executable, "-m", "cProfile", "-o", str(out), *sync_argv([take], 1)[1:]]
    benchlib.say("profiling one sync run (cProfile)")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = benchlib.cpu_seconds(ru1) - benchlib.cpu_seconds(ru0)
    if proc.returncode not in (0, 1) or not out.exists():
        raise SystemExit(f"profiled sync failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    stats = pstats.Stats(str(out))
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = float(stats.total_tt)  # type: ignore[attr-defined]
    stages = []
    for label, filename, func in _STAGES:
        hits = [
            v
            for (f, _line, name), v in table.items()
            if name == func and (f == filename or Path(f).name == filename)
        ]
        cum = sum(h[3] for h in hits)
        stages.append({"stage": label, "cumulative_s": cum, "share": cum / total if total else 0})
    return {
        "take": str(take.path),
        "argv": argv,
        "wall_s": wall,
        "cpu_s": cpu,
        "profiled_total_s": total,
        "stages": stages,
        "top_tottime": benchlib.profile_rows(stats, top, builtins_bare=True),
        "takes": _sync_summary(proc.stdout),
    }


def profile_markdown(p: dict[str, Any]) -> str:
    lines = [
        "",
        f"Profile of one `handoff sync --jobs 1` of {Path(p['take']).name} under cProfile "
        f"(fresh process): {p['wall_s']:.2f} s wall, {p['cpu_s']:.2f} s CPU, "
        f"{p['profiled_total_s']:.2f} s profiled. Stages (cumulative; indented rows are "
        "parts of the row above them):",
        "",
        "| stage | s | share of run |",
        "|---|--:|--:|",
    ]
    for s in p["stages"]:
        lines.append(f"| {s['stage']} | {s['cumulative_s']:.2f} | {100 * s['share']:.0f} % |")
    lines += ["", "By own time:", "", *benchlib.profile_table(p["top_tottime"])]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        worker(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (3)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=120.0,
        help="length of the 1080p take (120; the long one is twice that)",
    )
    parser.add_argument("--clips", type=int, default=8, help="takes in the --jobs batch (8)")
    parser.add_argument("--clip-seconds", type=float, default=20.0, help="batch take length (20)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=benchlib.WORKDIR,
        help="where generated media goes (benchmarks/_work)",
    )
    parser.add_argument("--cases", default=",".join(CASES), help="subset of decode,length,jobs")
    parser.add_argument("--no-pyav", action="store_true", help="skip the PyAV decode-alone runs")
    parser.add_argument(
        "--profile", action="store_true", help="also profile one sync of the 1080p take"
    )
    parser.add_argument("--top", type=int, default=12, help="cProfile rows to show (12)")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.clips < 1 or args.seconds <= 0 or args.clip_seconds <= 0:
        parser.error("--repeat, --clips, --seconds and --clip-seconds must be positive")
    wanted = benchlib.parse_cases(parser, args.cases, CASES)
    workdir: Path = args.workdir.resolve()
    jobs_dir = workdir / "sync_jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)

    exe = benchlib.ffmpeg_exe()
    version = subprocess.run([exe, "-version"], capture_output=True, text=True, check=True)
    benchlib.say(f"ffmpeg: {exe}\n  {version.stdout.splitlines()[0]}")

    cases: list[Case] = []
    media: dict[str, Any] = {}
    main_take: Take | None = None
    if "decode" in wanted or "length" in wanted or args.profile:
        narration = make_narration(workdir, args.seconds, 1)
        main_take = make_take(workdir, narration, args.seconds, 1920, 1080, 1, MAIN_DELAY_S)
        media["main"] = media_facts(main_take)
        if "decode" in wanted:
            cases.append(build_decode_case(main_take, not args.no_pyav))
        if "length" in wanted:
            long_narration = make_narration(workdir, 2 * args.seconds, 1)
            long_take = make_take(
                workdir, long_narration, 2 * args.seconds, 1920, 1080, 1, MAIN_DELAY_S
            )
            media["long"] = media_facts(long_take)
            cases.append(build_length_case(main_take, long_take))
    if "jobs" in wanted:
        batch_narration = make_narration(workdir, args.clip_seconds, 7)
        batch = [
            make_take(
                workdir,
                batch_narration,
                args.clip_seconds,
                1280,
                720,
                20 + i,
                BATCH_DELAYS_S[i % len(BATCH_DELAYS_S)],
            )
            for i in range(args.clips)
        ]
        media["batch"] = [media_facts(t) for t in batch]
        cases.append(build_jobs_case(batch))
    for key, facts in media.items():
        for f in facts if isinstance(facts, list) else [facts]:
            benchlib.say(
                f"{key}: {Path(f['path']).name}: {f['size']} {f['fps']} fps {f['profile']} "
                f"{f['pix_fmt']}, {f['frames']} frames, {f['mbit_per_s']:.1f} Mb/s, {f['audio']}"
            )

    # The ffmpeg binary was run for its version above: warm the rest.
    benchlib.warm_page_cache(ffmpeg=False)

    fingerprint = benchlib.handoff_fingerprint()
    for case in cases:
        benchlib.say(f"{case.name}: " + " vs ".join(t.label for t in case.tools))
        case.runs = benchlib.run_case(
            __file__,
            case.name,
            case.tools,
            args.repeat,
            jobs_dir,
            job_prefix="sync-",
            describe=_describe_run,
        )
        check_case(case)
    rows = [summarise(c) for c in cases]
    length = next((c for c in cases if c.name == "length"), None)
    split = memory_split(length.takes, jobs_dir) if length is not None else []
    profile = run_profile(main_take, workdir, args.top) if args.profile and main_take else None
    changed = benchlib.source_changed(fingerprint)
    print(markdown(rows, cases, split) + (profile_markdown(profile) if profile else ""))
    if args.json is not None:
        doc = {
            "command": benchlib.command_line(argv),
            "repeat": args.repeat,
            "seconds": args.seconds,
            "machine": benchlib.machine(),
            "ffmpeg_exe": exe,
            "media": media,
            "timer": "time.perf_counter in a fresh worker process per run",
            "cpu": "resource.getrusage user+system: RUSAGE_CHILDREN for command lines, "
            "RUSAGE_SELF for the in-process PyAV decode",
            "handoff_source_sha256": fingerprint,
            "handoff_source_changed_during_run": changed,
            "cases": rows,
            "memory_split": split,
            "profile": profile,
        }
        benchlib.write_json(args.json, doc)
    return 0 if all(c.ok for c in cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
