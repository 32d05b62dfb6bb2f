"""prep-audio against ffmpeg-normalize on the same 5-minute narration, in one run.

Both tools are run as a user would run them (fresh processes, start-up included),
alternating which goes first, and both outputs are measured afterwards with FFmpeg's
ebur128 (imageio-ffmpeg's binary) so the comparison says whether each met -16 LUFS
and -3 dBTP, not only how long it took.

    pip install ffmpeg-normalize   # not a project dependency; needed only here
    python benchmarks/bench_prep.py --repeat 3

ffmpeg-normalize finds FFmpeg through FFMPEG_PATH; the script points it at the
imageio-ffmpeg binary. Timings on a shared machine are noisy: read the ratio.

Memory: ``--memory-seconds 3600`` (the default; 0 skips it) also makes a narration of that
length the same way and runs ``handoff prep-audio`` on it once, in a fresh worker process
that reports the child's wall time, CPU time (user + system) and peak RSS
(``ru_maxrss`` of RUSAGE_CHILDREN; Linux starts it at the worker's own RSS at fork, about
60 MiB here, so only figures above that are the child's). ``--only-memory`` runs that
case alone (ffmpeg-normalize is then not needed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib
import numpy as np

from handoff.media.synth import speech_like, write_wav

FFMPEG = benchlib.ffmpeg_exe()


def make_source(workdir: Path, seconds: float) -> Path:
    """A quiet stereo 44.1 kHz narration with silence at both ends and paragraph pauses."""
    path = workdir / f"narration_{int(seconds)}s_44k1_stereo.wav"
    if path.exists():
        return path
    rate = 44100
    pauses = [(t, 1.5) for t in np.arange(25.0, seconds - 10, 27.0)]
    mono = speech_like(seconds, rate, level=0.05, pauses=pauses, lead=3.0, tail=3.0)
    # Bursts louder than the speech around them: peaks a linear gain cannot clear.
    for t in np.arange(10.0, seconds, 40.0):
        a = int(t * rate)
        mono[a : a + rate // 5] *= 3.0
    workdir.mkdir(parents=True, exist_ok=True)
    return write_wav(path, np.stack([mono, 0.9 * mono]), rate, "pcm_s16le")


def ebur128(path: Path, mono_content: bool) -> tuple[float, float]:
    """Integrated LUFS and true peak dBTP by FFmpeg's meter."""
    chain = "pan=mono|c0=c0,ebur128=peak=true" if mono_content else "ebur128=peak=true"
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-af", chain, "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    summary = out[out.rfind("Summary:") :]
    lufs = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))  # type: ignore[union-attr]
    return lufs, peak


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def memory_worker(source: Path, out_dir: Path) -> None:
    """Run prep-audio once on ``source`` and print its figures as JSON (in a fresh worker,
    so that RUSAGE_CHILDREN holds this one child only)."""
    argv = [sys.executable, "-m", "handoff", "prep-audio", str(source), "--out", str(out_dir)]
    argv += ["--name", "narration", "--overwrite"]
    proc, stats = benchlib.measure_command(argv, method="ru_maxrss of the child")
    stats["exit_code"] = proc.returncode
    stats["segments"] = len(list(out_dir.glob("0*_narration.wav")))
    print(json.dumps(stats))


def memory_case(workdir: Path, seconds: float) -> dict[str, float]:
    source = make_source(workdir, seconds)
    out_dir = workdir / f"handoff_{int(seconds)}s"
    benchlib.say(f"prep-audio of {source.name} for its peak RSS")
    load = benchlib.loadavg()
    done = subprocess.run(
        [sys.executable, __file__, "_memory", str(source), str(out_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    stats: dict[str, float] = json.loads(done.stdout)
    print(f"\nprep-audio of a {seconds / 60:.0f}-minute narration ({source.name}):")
    print("| wall s | CPU s | peak RSS MiB | segments | exit | load (1 min) before |")
    print("|--:|--:|--:|--:|--:|--:|")
    print(
        f"| {stats['wall_s']:.1f} | {stats['cpu_s']:.1f} | "
        f"{benchlib.mib(stats['peak_rss_kib']):.0f} | {stats['segments']:.0f} | "
        f"{stats['exit_code']:.0f} | {load} |"
    )
    return stats


def main() -> int:
    if sys.argv[1:2] == ["_memory"]:
        memory_worker(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/_work/prep"))
    parser.add_argument(
        "--memory-seconds",
        type=float,
        default=3600.0,
        help="length of the narration whose peak RSS is measured (3600; 0: skip)",
    )
    parser.add_argument("--only-memory", action="store_true", help="measure the peak RSS only")
    args = parser.parse_args()
    if args.only_memory:
        if args.memory_seconds <= 0:
            parser.error("--only-memory needs --memory-seconds above 0")
        memory_case(args.workdir, args.memory_seconds)
        return 0
    beside = Path(sys.executable).with_name("ffmpeg-normalize")
    normalize = str(beside) if beside.exists() else shutil.which("ffmpeg-normalize")
    if normalize is None:
        print("ffmpeg-normalize is not installed: pip install ffmpeg-normalize", file=sys.stderr)
        return 2
    source = make_source(args.workdir, args.seconds)
    env = {**os.environ, "FFMPEG_PATH": FFMPEG}
    ours_dir = args.workdir / "handoff"
    theirs = args.workdir / "ffmpeg-normalize.wav"
    ours = [sys.executable, "-m", "handoff", "prep-audio", str(source), "--out", str(ours_dir)]
    ours += ["--name", "narration", "--overwrite"]
    fn = [normalize, str(source), "-t", "-16", "-tp", "-3", "-ar", "48000", "-c:a", "pcm_s24le"]
    fn += ["-o", str(theirs), "-f"]
    times: dict[str, list[float]] = {"handoff": [], "ffmpeg-normalize": []}
    for i in range(args.repeat):
        order = [("handoff", ours), ("ffmpeg-normalize", fn)]
        for label, argv in order if i % 2 == 0 else order[::-1]:
            times[label].append(timed(argv, env))
            benchlib.say(f"  rep {i + 1} {label}: {times[label][-1]:.2f} s")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"source: {source.name}, {args.seconds:.0f} s\n")
    print("| tool | median wall s | raw s | output | ebur128 LUFS | true peak dBTP |")
    print("|---|--:|---|---|--:|--:|")
    for seg in sorted(ours_dir.glob("0*_narration.wav")):
        lufs, peak = ebur128(seg, mono_content=True)
        print(
            f"| handoff prep-audio | {med['handoff']:.2f} | "
            f"{', '.join(f'{t:.2f}' for t in times['handoff'])} | {seg.name} (mono content) | "
            f"{lufs:.1f} | {peak:.1f} |"
        )
    lufs, peak = ebur128(theirs, mono_content=False)
    print(
        f"| ffmpeg-normalize | {med['ffmpeg-normalize']:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in times['ffmpeg-normalize'])} | {theirs.name} | "
        f"{lufs:.1f} | {peak:.1f} |"
    )
    print(f"\nratio handoff / ffmpeg-normalize: {med['handoff'] / med['ffmpeg-normalize']:.2f}")
    if args.memory_seconds > 0:
        memory_case(args.workdir, args.memory_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
