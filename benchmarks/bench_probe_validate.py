"""Benchmark handoff's probe and validate against pymediainfo and ffmpeg's ebur128.

Run from the repository root::

    python benchmarks/bench_probe_validate.py [--files 200] [--repeat 3] \
        [--workdir benchmarks/_work] [--json results.json]

In one run it

1. makes (once; cached in the work folder) a batch of small H.264 + AAC MP4 clips of four
   kinds -- review-compliant (2-s GOP), variable frame rate, 24 kHz audio, and 30 fps
   without sound -- one hour of 1080p24 H.264 + AAC built by repeating the packets of one
   encoded GOP, and a 5-minute 48 kHz narration-like WAV;
2. times each case as a pair of tools, interleaved: repetition 1 runs A then B,
   repetition 2 runs B then A, and so on, so drift on a noisy shared machine falls on
   both alike. Every timed run is a fresh worker process (this script with ``_worker``)
   that imports its tool, warms it up on one small file outside the timer, then times
   the work with ``time.perf_counter``; peak RSS and CPU time come from
   ``resource.getrusage`` in that worker (RUSAGE_SELF for in-process tools,
   RUSAGE_CHILDREN for the ffmpeg binary);
3. checks that both tools of a case found the same facts (frame counts, sample rates,
   frame-rate mode, loudness), so the timings compare equal work;
4. prints a Markdown table (and writes JSON with every raw time when asked).

Timings on a shared machine are noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import benchlib

GENERATOR_VERSION = 1
HOUR_S = 3600
HOUR_FPS = 24
HOUR_GOP = 48
AUDIO_RATE = 48000
AAC_FRAME = 1024
KINDS = ("review", "vfr", "audio24k", "noaudio30")

# ----------------------------------------------------------------------------- media


def _clip_spec(i: int) -> Any:
    from handoff.media.synth import ClipSpec, vfr_times

    kind = KINDS[i % len(KINDS)]
    # A flash frame and beep at a per-file instant keeps every file's bytes distinct.
    events = (0.4 + (i % 11) * 0.1,)
    if kind == "review":
        return ClipSpec(gop=48, profile="high", events=events)
    if kind == "vfr":
        return ClipSpec(
            frame_times=vfr_times(2.0, 24, 0.25, seed=i), gop=48, profile="high", events=events
        )
    if kind == "audio24k":
        return ClipSpec(gop=48, profile="high", audio_rate=24000, events=events)
    return ClipSpec(fps=Fraction(30), gop=60, profile="high", audio_rate=None, events=events)


def _batch_paths(workdir: Path, count: int) -> list[Path]:
    folder = workdir / "batch"
    return [folder / f"clip_{i:04d}_{KINDS[i % len(KINDS)]}.mp4" for i in range(count)]


def make_batch(workdir: Path, count: int) -> list[Path]:
    from handoff.files.fsutil import atomic_output
    from handoff.media.synth import write_clip

    paths = _batch_paths(workdir, count)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    made = 0
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        if path.exists() and path.stat().st_size > 0:
            continue
        with atomic_output(path, replace=True) as tmp:
            write_clip(tmp, _clip_spec(i))
        made += 1
    if made:
        benchlib.say(f"made {made} batch clips in {time.perf_counter() - t0:.1f} s")
    return paths


def make_hour(path: Path) -> Path:
    """One hour of 1080p24 H.264 (2-s GOPs) + stereo AAC-LC 48 kHz, by packet repetition.

    One GOP of a still picture and two seconds of a tone are encoded; their packets are
    muxed over and over with shifted timestamps, interleaved by time: 255,150 packets,
    about 80 MB (nearly all of it the 192 kb/s audio), made in a few seconds.
    """
    if path.exists() and path.stat().st_size > 0:
        return path
    import av
    import numpy as np

    from handoff.files.fsutil import atomic_output

    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = HOUR_FPS * HOUR_S
    audio_packets = HOUR_S * AUDIO_RATE // AAC_FRAME
    with atomic_output(path, replace=True) as tmp, av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=HOUR_FPS)
        vs.width, vs.height, vs.pix_fmt = 1920, 1080, "yuv420p"
        vs.options = {
            "preset": "ultrafast",
            "profile": "high",
            "x264-params": f"keyint={HOUR_GOP}:scenecut=0:bframes=0",
        }
        aus = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        aus.bit_rate = 192000
        still = av.VideoFrame.from_ndarray(np.zeros((1080, 1920, 3), np.uint8), format="rgb24")
        still = still.reformat(format="yuv420p")
        video: list[tuple[bytes, bool]] = []
        for i in range(HOUR_GOP):
            still.pts, still.time_base = i, Fraction(1, HOUR_FPS)
            video += [(bytes(p), p.is_keyframe) for p in vs.encode(still)]
        video += [(bytes(p), p.is_keyframe) for p in vs.encode(None)]
        assert len(video) == HOUR_GOP
        t = np.arange(2 * AUDIO_RATE) / AUDIO_RATE
        tone = (0.1 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        stereo = np.ascontiguousarray(np.stack([tone, tone]))
        audio: list[bytes] = []
        for start in range(0, stereo.shape[1], AAC_FRAME):
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(stereo[:, start : start + AAC_FRAME]),
                format="fltp",
                layout="stereo",
            )
            af.sample_rate, af.pts, af.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
            audio += [bytes(p) for p in aus.encode(af)]
        audio += [bytes(p) for p in aus.encode(None)]
        cycle = audio[2:-2]  # steady state: no priming, no flush tail
        next_audio = 0
        for i in range(frames):
            data, is_key = video[i % HOUR_GOP]
            pkt = av.Packet(data)
            pkt.stream = vs
            pkt.time_base = Fraction(1, HOUR_FPS)
            pkt.pts = pkt.dts = i
            pkt.duration = 1
            pkt.is_keyframe = is_key
            out.mux(pkt)
            # Audio packets that start before the next frame does.
            while (
                next_audio < audio_packets
                and next_audio * AAC_FRAME * HOUR_FPS < (i + 1) * AUDIO_RATE
            ):
                apkt = av.Packet(cycle[next_audio % len(cycle)])
                apkt.stream = aus
                apkt.time_base = Fraction(1, AUDIO_RATE)
                apkt.pts = apkt.dts = next_audio * AAC_FRAME
                apkt.duration = AAC_FRAME
                apkt.is_keyframe = True
                out.mux(apkt)
                next_audio += 1
        assert next_audio == audio_packets
    benchlib.say(f"made the 1-hour file in {time.perf_counter() - t0:.1f} s")
    return path


def make_wav(path: Path, seconds: float) -> Path:
    if path.exists() and path.stat().st_size > 0:
        return path
    from handoff.files.fsutil import atomic_output
    from handoff.media.synth import speech_like, write_wav

    path.parent.mkdir(parents=True, exist_ok=True)
    pauses = [(s, 0.4) for s in range(7, int(seconds) - 1, 9)]
    with atomic_output(path, replace=True) as tmp:
        write_wav(tmp, speech_like(seconds, AUDIO_RATE, level=0.25, pauses=pauses), AUDIO_RATE)
    return path


# ----------------------------------------------------------------------------- worker

# A tool takes the paths and returns one JSON-able fact record per path.
Tool = Callable[[Sequence[Path]], list[Any]]


def _tool_handoff_probe(method: str = "auto") -> Tool:
    from handoff.probe.reader import probe

    def run(paths: Sequence[Path]) -> list[Any]:
        out: list[Any] = []
        for p in paths:
            info = probe(p, method="packets" if method == "packets" else "auto")
            v, a = info.video, info.audio
            out.append(
                {
                    "frames": v.frames if v else None,
                    "mode": v.frame_rate_mode if v else None,
                    "audio_rate": a.sample_rate if a else None,
                    "audio_duration_s": a.duration_s if a else None,
                    "duration_s": info.duration_s,
                    "read_from": info.read_from,
                }
            )
        return out

    return run


def _tool_handoff_validate(spec_name: str) -> Tool:
    from handoff.validate.check import validate_file
    from handoff.validate.spec import load_spec

    spec = load_spec(spec_name)

    def run(paths: Sequence[Path]) -> list[Any]:
        out: list[Any] = []
        for p in paths:
            report = validate_file(p, spec)
            out.append(
                {
                    "status": report.status,
                    "failed_rules": sorted(f.rule for f in report.findings),
                    "measurements": dict(report.measurements),
                }
            )
        return out

    return run


def _tool_mediainfo() -> Tool:
    from pymediainfo import MediaInfo

    def run(paths: Sequence[Path]) -> list[Any]:
        out: list[Any] = []
        for p in paths:
            mi = MediaInfo.parse(p, parse_speed=1.0)
            v = mi.video_tracks[0] if mi.video_tracks else None
            a = mi.audio_tracks[0] if mi.audio_tracks else None
            out.append(
                {
                    "frames": int(v.frame_count) if v is not None and v.frame_count else None,
                    "mode": v.frame_rate_mode if v is not None else None,
                    "audio_rate": int(a.sampling_rate) if a is not None else None,
                    "audio_samples": (
                        int(a.samples_count) if a is not None and a.samples_count else None
                    ),
                    "duration_ms": float(mi.general_tracks[0].duration or 0),
                }
            )
        return out

    return run


_EBUR128_I = re.compile(r"I:\s+(-?[\d.]+|-inf)\s+LUFS")
_EBUR128_PEAK = re.compile(r"Peak:\s+(-?[\d.]+|-inf)\s+dBFS")


def _ffmpeg_cmd(path: Path) -> list[str]:
    return [
        benchlib.ffmpeg_exe(),
        "-hide_banner",
        "-nostats",
        "-nostdin",
        "-i",
        str(path),
        "-vn",
        "-af",
        "ebur128=peak=true:framelog=verbose",
        "-f",
        "null",
        "-",
    ]


def _tool_ffmpeg_ebur128() -> Tool:
    def run(paths: Sequence[Path]) -> list[Any]:
        out: list[Any] = []
        for p in paths:
            proc = subprocess.run(_ffmpeg_cmd(p), capture_output=True, text=True, check=True)
            summary = proc.stderr[proc.stderr.rfind("Summary:") :]
            i_match, peak_match = _EBUR128_I.search(summary), _EBUR128_PEAK.search(summary)
            out.append(
                {
                    "integrated_lufs": float(i_match.group(1)) if i_match else None,
                    "true_peak_dbtp": float(peak_match.group(1)) if peak_match else None,
                }
            )
        return out

    return run


TOOLS: dict[str, tuple[str, Callable[[], Tool], bool]] = {
    # name: (label, factory, runs as a child process)
    "handoff-probe": ("handoff probe", _tool_handoff_probe, False),
    "handoff-validate-h264": (
        "handoff validate --spec h264-review",
        lambda: _tool_handoff_validate("h264-review"),
        False,
    ),
    "handoff-validate-ltx2": (
        "handoff validate --spec ltx2-audio",
        lambda: _tool_handoff_validate("ltx2-audio"),
        False,
    ),
    "handoff-probe-packets": (
        "handoff probe, packet scan",
        lambda: _tool_handoff_probe("packets"),
        False,
    ),
    "mediainfo": ("pymediainfo parse_speed=1.0", _tool_mediainfo, False),
    "ffmpeg-ebur128": ("ffmpeg -af ebur128=peak=true", _tool_ffmpeg_ebur128, True),
}


def worker(tool_name: str, warmup: Path, paths_file: Path) -> None:
    """Time one tool over the listed files; print one JSON object on stdout.

    Memory: for in-process tools the RSS high-water mark is reset after the warm-up and
    read back (VmHWM) after the timed work, so ``peak_rss_kib`` is the peak of the timed
    section -- the interpreter and the tool's libraries included; ``rss_before_kib`` is
    the RSS at the start of it. For the ffmpeg binary it is the largest ``ru_maxrss`` of
    the waited children; Linux starts a child's count at its parent's RSS at fork time, so
    it is exact only above that floor (``rss_before_kib``, the lean worker's RSS).
    """
    paths = [Path(line) for line in paths_file.read_text().splitlines() if line]
    _label, factory, child = TOOLS[tool_name]
    run = factory()
    run([warmup])  # first-call costs (library load, codec lookup) stay outside the timer
    method = (
        "ru_maxrss of the ffmpeg child (RUSAGE_CHILDREN)"
        if child
        else "ru_maxrss of the worker (includes the warm-up)"
    )
    load_before = benchlib.loadavg()
    facts, result = benchlib.measure(lambda: run(paths), children=child, method=method)
    result["loadavg_1min"] = [load_before, benchlib.loadavg()]
    json.dump({**result, "facts": facts}, sys.stdout)


# ----------------------------------------------------------------------------- runner


@dataclass
class Case:
    name: str
    title: str
    paths: list[Path]
    tool_a: str
    tool_b: str
    warmup: Path
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    agreement: str = ""
    agrees: bool = True


def run_case(case: Case, repeat: int, workdir: Path) -> None:
    """Time the case's two tools, interleaved, each run a fresh worker that is not
    retried (a failure ends the benchmark)."""
    paths_file = workdir / f"{case.name}.paths"
    paths_file.write_text("".join(f"{p}\n" for p in case.paths))
    case.runs = benchlib.run_interleaved(
        case.name,
        [case.tool_a, case.tool_b],
        repeat,
        lambda tool: benchlib.run_worker(
            __file__, [tool, str(case.warmup), str(paths_file)], tool, attempts=1
        ),
        lambda r: f"{r['wall_s']:.3f} s",
    )


def _facts(case: Case, tool: str) -> list[dict[str, Any]]:
    runs = case.runs[tool]
    first: list[dict[str, Any]] = runs[0]["facts"]
    if any(r["facts"] != first for r in runs[1:]):
        case.agrees = False
        case.agreement += f"{tool} gave different facts between repetitions; "
    return first


def check_probe_agreement(case: Case) -> None:
    """Per file: frame count, frame-rate mode and audio sample rate the same in both."""
    ours, theirs = _facts(case, case.tool_a), _facts(case, case.tool_b)
    mismatches: list[str] = []
    for path, h, m in zip(case.paths, ours, theirs, strict=True):
        for key in ("frames", "mode", "audio_rate"):
            if h[key] != m[key]:
                mismatches.append(f"{path.name} {key}: handoff {h[key]} vs MediaInfo {m[key]}")
        if h["audio_duration_s"] is not None and m["audio_samples"] is not None:
            samples = round(h["audio_duration_s"] * h["audio_rate"])
            # MediaInfo's sample count comes from its duration in whole milliseconds.
            if abs(samples - m["audio_samples"]) > h["audio_rate"] // 1000:
                mismatches.append(
                    f"{path.name} audio: handoff {samples} samples vs "
                    f"MediaInfo {m['audio_samples']}"
                )
    frames = sum(h["frames"] or 0 for h in ours)
    tables = sum(h.get("read_from") == "sample tables" for h in ours)
    case.agreement += f"handoff read the sample tables of {tables} of {len(ours)} files; "
    if mismatches:
        case.agrees = False
        case.agreement += f"{len(mismatches)} mismatches, e.g. {mismatches[0]}"
    else:
        case.agreement += (
            f"same frame count ({frames} frames in all), frame-rate mode, audio rate "
            "and audio length on every file"
        )


def check_validate_agreement(case: Case, probe_case: Case | None) -> None:
    """Validate's verdicts are the ones the batch's make-up says they should be."""
    ours = _facts(case, case.tool_a)
    _facts(case, case.tool_b)
    expected_rules = {
        "review": [],
        # VFR at about 24 fps: not CFR, and its average rate is not exactly 24 either.
        "vfr": ["frame-rate", "frame-rate-mode"],
        # AAC at 24 kHz cannot reach 192 kb/s: the encoder caps it.
        "audio24k": ["audio-bit-rate", "audio-sample-rate"],
        "noaudio30": ["audio-present"],
    }
    wrong = [
        f"{p.name}: {r['failed_rules']}"
        for p, r in zip(case.paths, ours, strict=True)
        if r["failed_rules"] != expected_rules[p.stem.split("_", 2)[2]]
    ]
    tally: dict[str, int] = {}
    for r in ours:
        tally[r["status"]] = tally.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))
    if wrong:
        case.agrees = False
        case.agreement += f"{len(wrong)} unexpected verdicts, e.g. {wrong[0]}; {summary}"
    else:
        case.agreement += f"every verdict as built ({summary}); MediaInfo parsed all files"
    if probe_case is not None and not probe_case.agrees:
        case.agreement += " (see probe case: facts disagree)"


def check_loudness_agreement(case: Case) -> None:
    ours = _facts(case, case.tool_a)[0]["measurements"]
    theirs = _facts(case, case.tool_b)[0]
    d_i = ours["audio.integrated_lufs"] - theirs["integrated_lufs"]
    d_tp = ours["audio.true_peak_dbtp"] - theirs["true_peak_dbtp"]
    text = (
        f"integrated {ours['audio.integrated_lufs']:.2f} vs {theirs['integrated_lufs']:.1f} LUFS "
        f"(diff {d_i:+.2f} LU); true peak {ours['audio.true_peak_dbtp']:.2f} vs "
        f"{theirs['true_peak_dbtp']:.1f} dBTP (diff {d_tp:+.2f} dB)"
    )
    # ffmpeg prints one decimal; its true peak oversamples 4x, handoff's may differ.
    if abs(d_i) > 0.15 or abs(d_tp) > 0.3:
        case.agrees = False
        text = "DISAGREE: " + text
    case.agreement += text


def summarise(case: Case) -> dict[str, Any]:
    def stats(tool: str) -> dict[str, Any]:
        runs = case.runs[tool]
        walls = [r["wall_s"] for r in runs]
        return {
            "tool": TOOLS[tool][0],
            "wall_s": walls,
            "median_wall_s": statistics.median(walls),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "peak_rss_mib": benchlib.mib(max(r["peak_rss_kib"] for r in runs)),
            "rss_before_mib": benchlib.mib(max(r["rss_before_kib"] for r in runs)),
            "rss_growth_mib": benchlib.mib(
                max(r["peak_rss_kib"] - r["rss_before_kib"] for r in runs)
            ),
            "rss_method": runs[0]["rss_method"],
            "files_per_s": len(case.paths) / statistics.median(walls),
            "loadavg_1min": [r.get("loadavg_1min") for r in runs],
        }

    a, b = stats(case.tool_a), stats(case.tool_b)
    return {
        "case": case.name,
        "title": case.title,
        "files": len(case.paths),
        "handoff": a,
        "other": b,
        "ratio_wall": a["median_wall_s"] / b["median_wall_s"],
        "ratio_cpu": a["median_cpu_s"] / b["median_cpu_s"] if b["median_cpu_s"] else None,
        "agrees": case.agrees,
        "agreement": case.agreement,
    }


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| case | files | handoff median s | other median s | ratio handoff/other "
        "| handoff files/s | other files/s | CPU s handoff / other "
        "| peak RSS MiB (growth) handoff / other | load avg (1 min) | results agree |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        a, b = r["handoff"], r["other"]
        lines.append(
            f"| {r['title']} | {r['files']} | {a['median_wall_s']:.3f} | {b['median_wall_s']:.3f} "
            f"| **{r['ratio_wall']:.2f}** | {a['files_per_s']:.1f} | {b['files_per_s']:.1f} "
            f"| {a['median_cpu_s']:.2f} / {b['median_cpu_s']:.2f} "
            f"| {a['peak_rss_mib']:.0f} (+{a['rss_growth_mib']:.0f}) "
            f"/ {b['peak_rss_mib']:.0f} (+{b['rss_growth_mib']:.0f}) "
            f"| {_load_range(a, b)} "
            f"| {'yes' if r['agrees'] else 'NO'} |"
        )
    lines.append("")
    lines.append("Raw wall times (s), in run order per tool:")
    lines.append("")
    for r in rows:
        a, b = r["handoff"], r["other"]
        raw_a = ", ".join(f"{x:.3f}" for x in a["wall_s"])
        raw_b = ", ".join(f"{x:.3f}" for x in b["wall_s"])
        lines.append(f"- {r['title']}: {a['tool']} [{raw_a}]; {b['tool']} [{raw_b}]")
    lines.append("")
    lines.append("Agreement checks:")
    lines.append("")
    lines.extend(f"- {r['title']}: {r['agreement']}" for r in rows)
    return "\n".join(lines)


def _load_range(*sides: dict[str, Any]) -> str:
    """The lowest and highest 1-minute load average seen around the case's timed runs."""
    seen = [
        x for side in sides for pair in side["loadavg_1min"] if pair for x in pair if x is not None
    ]
    return f"{min(seen):.1f}-{max(seen):.1f}" if seen else "?"


def machine() -> dict[str, Any]:
    """The machine, PyAV's libavformat, pymediainfo and its libmediainfo."""
    import pymediainfo

    try:  # a private helper: its shape may change between pymediainfo releases
        libmediainfo: str | None = str(pymediainfo.MediaInfo._get_library()[2])
    except (AttributeError, IndexError, OSError, TypeError):
        libmediainfo = None
    return benchlib.machine(av_library="libavformat", loadavg_at_end=False, ffmpeg=False) | {
        "pymediainfo": pymediainfo.__version__,
        "libmediainfo": libmediainfo,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        worker(argv[1], Path(argv[2]), Path(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=200, help="clips in the batch (200)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (3)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=benchlib.WORKDIR,
        help="where generated media is cached (benchmarks/_work)",
    )
    parser.add_argument("--wav-seconds", type=float, default=300.0, help="narration length")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument(
        "--cases",
        default="batch-probe,batch-validate,hour-probe,hour-probe-packets,wav-loudness",
        help="comma-separated subset of the cases (hour-probe-packets: the 1-hour file "
        "probed by scanning every packet, as probe did before it read sample tables)",
    )
    args = parser.parse_args(argv)
    if args.files < 1 or args.repeat < 1:
        parser.error("--files and --repeat must be at least 1")
    wanted = set(args.cases.split(","))
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    batch = make_batch(workdir, args.files)
    warm = batch[0]
    cases: list[Case] = []
    if "batch-probe" in wanted:
        cases.append(Case("batch-probe", "probe, batch", batch, "handoff-probe", "mediainfo", warm))
    if "batch-validate" in wanted:
        cases.append(
            Case(
                "batch-validate",
                "validate h264-review, batch",
                batch,
                "handoff-validate-h264",
                "mediainfo",
                warm,
            )
        )
    if "hour-probe" in wanted:
        hour = make_hour(workdir / "hour_1080p24.mp4")
        cases.append(
            Case("hour-probe", "probe, 1-hour 1080p24", [hour], "handoff-probe", "mediainfo", warm)
        )
    if "hour-probe-packets" in wanted:
        hour = make_hour(workdir / "hour_1080p24.mp4")
        cases.append(
            Case(
                "hour-probe-packets",
                "probe by packet scan, 1-hour 1080p24",
                [hour],
                "handoff-probe-packets",
                "mediainfo",
                warm,
            )
        )
    if "wav-loudness" in wanted:
        if importlib.util.find_spec("handoff.media.audio") is None:
            benchlib.say("handoff.media.audio is not there yet: skipping the loudness case")
        else:
            minutes = f"{args.wav_seconds / 60:.3g}"
            wav = make_wav(workdir / f"narration_{int(args.wav_seconds)}s.wav", args.wav_seconds)
            warm_wav = make_wav(workdir / "narration_1s.wav", 1.0)
            cases.append(
                Case(
                    "wav-loudness",
                    f"validate ltx2-audio vs ebur128, {minutes}-min WAV",
                    [wav],
                    "handoff-validate-ltx2",
                    "ffmpeg-ebur128",
                    warm_wav,
                )
            )

    fingerprint = benchlib.handoff_fingerprint()
    probe_case: Case | None = None
    for case in cases:
        benchlib.say(f"{case.name}: {TOOLS[case.tool_a][0]} vs {TOOLS[case.tool_b][0]}")
        run_case(case, args.repeat, workdir)
        if case.name in ("batch-probe", "hour-probe", "hour-probe-packets"):
            check_probe_agreement(case)
            if case.name == "batch-probe":
                probe_case = case
        elif case.name == "batch-validate":
            check_validate_agreement(case, probe_case)
        else:
            check_loudness_agreement(case)

    rows = [summarise(c) for c in cases]
    changed = benchlib.source_changed(fingerprint)
    print(markdown(rows))
    if args.json is not None:
        doc = {
            "command": benchlib.command_line(argv),
            "repeat": args.repeat,
            "machine": machine(),
            "timer": "time.perf_counter in a fresh worker process per run, after a warm-up call",
            "memory": "resource.getrusage ru_maxrss of that worker "
            "(RUSAGE_CHILDREN for the ffmpeg binary)",
            "handoff_source_sha256": fingerprint,
            "handoff_source_changed_during_run": changed,
            "cases": rows,
        }
        benchlib.write_json(args.json, doc)
    return 0 if all(c.agrees for c in cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
