"""Benchmark ``handoff deliver`` against the same steps run as separate commands.

Run from the repository root::

    python benchmarks/bench_deliver.py [--clips 40] [--noop-clips 500] [--repeat 1] \
        [--workdir benchmarks/_work] [--json results.json]

In one run it

1. makes (once; cached in the work folder) a batch as an audio-conditioned model
   returns it: one ``synth.babble`` narration conditioned by ``prep_audio`` into exactly
   ``--clips`` segments (``PrepOptions(segment_min=5, segment_max=7.5, max_seconds=8)``;
   the narration's length is adjusted until the cuts give that many), and one render per
   segment, ``NNN_take1.mp4``, made by ``synth.write_take`` from the segment's own
   audio at 1280x720 24 fps (H.264 + AAC 48 kHz stereo); and a batch of ``--noop-clips``
   tiny renders (160x120, 1 s) for the journal's no-op re-run;
2. times, each run in a fresh worker process (this script with ``_worker``), the
   40-clip batch delivered with ``--preset prores-master --format all`` four ways,
   interleaved (repetition 1 in one order, repetition 2 in the reverse, ...):

   - ``pool``: ``handoff deliver RENDERS --manifest M --out D --jobs 2``;
   - ``cluster``: the same with ``--cluster local --jobs 2`` (a Dask LocalCluster);
   - ``loop``: the same steps as separate commands in a bash loop, one file at a time,
     as a user would script them: per render ``probe``, ``validate --spec
     prores-master``, ``export --preset prores-master --jobs 1``, ``validate`` of the
     master; then ``sync masters/ --manifest M --selects selects.json`` and ``timeline
     --selects selects.json --format all``;
   - ``batch_cmds``: the same commands, each given the whole folder once (``export
     renders/ --jobs 2``, ``sync --jobs 2``);

   then the no-op re-run of ``deliver`` (``--jobs 2``) into the finished folder, and
   the same for a finished batch of ``--noop-clips`` tiny renders (delivered once
   first, timed and reported apart); with ``strace`` present, one more untimed no-op
   re-run under ``strace -f -e trace=openat`` counts the media files it opened;
3. checks: every way gives the same picks (``selects.json``, segment by segment), the
   same masters (count and frames) and the timeline in every format; every deliver
   exits 0; the no-op re-runs run no step and fingerprint no file;
4. prints Markdown tables, ratios against ``loop`` (and writes JSON with every raw time
   when asked).

Timings on a shared machine are noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Time the checkout this script sits in (see bench_export.py).
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib

GENERATOR_VERSION = 1
RATE = 48000
PRESET = "prores-master"
FAST_KEYS = ("pool", "cluster", "loop", "batch_cmds")
_FINGERPRINTED = re.compile(
    r"(\d+) step\(s\) run, (\d+) kept from the journal.*?; (\d+) file\(s\) fingerprinted"
)

# ----------------------------------------------------------------------------- media


def make_batch(root: Path, clips: int) -> tuple[Path, Path, dict[str, Any]]:
    """The narration, its conditioned segments and one 720p render per segment; cached.
    Returns the manifest, the renders folder and facts about the batch."""
    import numpy as np

    from handoff.files.manifest import load_manifest
    from handoff.media.audio import decode_audio
    from handoff.media.synth import TakeSpec, babble, write_take, write_wav
    from handoff.prep import PrepOptions, prep_audio

    root = root / f"deliver_batch_{clips}_v{GENERATOR_VERSION}"
    facts_file = root / "facts.json"
    renders = root / "renders"
    if facts_file.exists():
        facts = json.loads(facts_file.read_text())
        return Path(facts["manifest"]), renders, facts
    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    options = PrepOptions(
        name="narration", overwrite=True, segment_min=5.0, segment_max=7.5, max_seconds=8.0
    )
    seconds = 6.6 * clips
    for attempt in range(12):
        voice = babble(seconds, RATE, level=0.05, seed=7 + attempt)
        src = write_wav(
            root / "narration_source.wav", np.stack([voice, voice]).astype(np.float32), RATE
        )
        result = prep_audio(src, root / "cond", options)
        manifest = load_manifest(result.manifest_path)
        found = len(manifest.segments)
        benchlib.say(f"narration of {seconds:.0f} s: {found} segments (want {clips})")
        if found == clips:
            break
        seconds *= clips / found
    else:
        raise SystemExit(f"could not condition a narration into {clips} segments")
    renders.mkdir(exist_ok=True)
    lengths = []
    for seg in manifest.segments:
        audio = decode_audio(manifest.path.parent / seg.file)
        lengths.append(audio.samples.shape[1] / audio.sample_rate)
        write_take(
            renders / f"{seg.index:03d}_take1.mp4",
            audio.samples,
            audio.sample_rate,
            TakeSpec(width=1280, height=720, picture_noise=2.0),
        )
    facts = {
        "manifest": str(result.manifest_path),
        "narration_s": seconds,
        "segments": clips,
        "segment_s_min": min(lengths),
        "segment_s_max": max(lengths),
        "segment_s_total": sum(lengths),
        "short_segments_under_5s": sum(x < 5.0 for x in lengths),
        "render_bytes": sum(p.stat().st_size for p in renders.iterdir()),
    }
    facts_file.write_text(json.dumps(facts, indent=1))
    benchlib.say(f"made the {clips}-clip batch in {time.perf_counter() - t0:.0f} s")
    return Path(facts["manifest"]), renders, facts


def make_tiny_batch(root: Path, clips: int) -> Path:
    """``clips`` renders of 1 s at 160x120 (distinct sound each), for the no-op re-run."""
    from handoff.media.synth import TakeSpec, babble, write_take

    renders = root / f"deliver_tiny_{clips}_v{GENERATOR_VERSION}"
    done = renders / ".complete"
    if done.exists():
        return renders
    t0 = time.perf_counter()
    renders.mkdir(parents=True, exist_ok=True)
    for i in range(1, clips + 1):
        path = renders / f"{i:03d}_take1.mp4"
        if not path.exists():
            write_take(
                path,
                babble(1.0, RATE, level=0.1, seed=1000 + i),
                RATE,
                TakeSpec(width=160, height=120),
            )
    done.write_text("")
    benchlib.say(f"made {clips} tiny renders in {time.perf_counter() - t0:.0f} s")
    return renders


# ----------------------------------------------------------------------------- commands


def deliver_argv(renders: Path, out: Path, manifest: Path | None, cluster: bool) -> list[str]:
    argv = [sys.executable, "-m", "handoff", "deliver", str(renders)]
    if manifest is not None:
        argv += ["--manifest", str(manifest)]
    argv += ["--out", str(out), "--preset", PRESET, "--format", "all", "--jobs", "2"]
    if cluster:
        argv += ["--cluster", "local"]
    return argv


def loop_script(renders: Path, out: Path, manifest: Path, *, batch: bool) -> str:
    """The bash script a user would write: one file at a time (``batch=False``) or each
    command given the whole folder (``batch=True``). Exits with the number of commands
    that failed (the validation of an H.264 render against prores-master fails by
    design and is not counted)."""
    lines = [
        "#!/usr/bin/env bash",
        f"R={renders}",
        f"D={out}",
        f"M={manifest}",
        f"H='{sys.executable} -m handoff'",
        "fail=0",
        'run() { "$@" > /dev/null || fail=$((fail + 1)); }',
        'mkdir -p "$D/masters"',
    ]
    if batch:
        lines += [
            'run $H probe "$R"/*.mp4',
            f'$H validate "$R"/*.mp4 --spec {PRESET} > /dev/null  # H.264: no ProRes master',
            f'run $H export "$R"/*.mp4 --preset {PRESET} --out "$D/masters/" --jobs 2',
            f'run $H validate "$D/masters"/*.mov --spec {PRESET}',
            'run $H sync "$D/masters/" --manifest "$M" --selects "$D/selects.json" --jobs 2',
        ]
    else:
        lines += [
            'for f in "$R"/*.mp4; do',
            '  b=$(basename "$f" .mp4)',
            '  run $H probe "$f"',
            f'  $H validate "$f" --spec {PRESET} > /dev/null  # H.264: no ProRes master',
            f'  run $H export "$f" --preset {PRESET} --out "$D/masters/" --jobs 1',
            f'  run $H validate "$D/masters/$b.mov" --spec {PRESET}',
            "done",
            'run $H sync "$D/masters/" --manifest "$M" --selects "$D/selects.json"',
        ]
    lines += [
        'run $H timeline --selects "$D/selects.json" --format all --out "$D/timeline/"',
        'exit "$fail"',
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- worker


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    """Run one command line (the out folder removed first, untimed, when asked)."""
    if job.get("clean"):
        shutil.rmtree(job["clean"], ignore_errors=True)
    proc, result = benchlib.measure_command(
        job["argv"], method="ru_maxrss of the largest descendant (RUSAGE_CHILDREN)"
    )
    if proc.returncode not in job.get("ok_codes", [0]):
        raise SystemExit(
            f"{job['argv'][:3]} exited {proc.returncode}:\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    result["returncode"] = proc.returncode
    m = _FINGERPRINTED.search(proc.stdout)
    if m:
        result["steps_run"], result["steps_kept"], result["fingerprinted"] = map(int, m.groups())
    result["nothing_to_do"] = "Nothing to do" in proc.stdout
    result["stdout_tail"] = proc.stdout[-600:]
    return result


def _describe(result: dict[str, Any]) -> str:
    extra = ""
    if "fingerprinted" in result:
        extra = f", {result['steps_run']} step(s) run, {result['fingerprinted']} fingerprinted"
    return f"{result['wall_s']:.2f} s wall, {result['cpu_s']:.2f} s CPU{extra}"


def worker(job_file: Path) -> None:
    job: dict[str, Any] = json.loads(job_file.read_text())
    json.dump(benchlib.with_loadavg(_worker, job), sys.stdout)


# ----------------------------------------------------------------------------- checks


def picks(out: Path) -> dict[str, Any]:
    """Segment -> the pick's file name and its measured figures, from selects.json."""
    doc = json.loads((out / "selects.json").read_text())
    found: dict[str, Any] = {}
    for seg in doc.get("segments", []):
        pick = seg.get("pick")
        key = str(seg.get("segment", seg.get("index")))
        if isinstance(pick, dict):
            found[key] = Path(str(pick.get("take") or pick.get("file") or pick.get("path"))).name
        else:
            found[key] = None if pick is None else Path(str(pick)).name
    return found


def outputs_of(out: Path) -> dict[str, Any]:
    from handoff.probe.reader import probe

    masters = sorted((out / "masters").glob("*.mov"))
    frames = {}
    for m in masters:
        info = probe(m)
        frames[m.name] = info.video.frames if info.video else None
    timeline = (
        sorted(p.name for p in (out / "timeline").iterdir()) if (out / "timeline").exists() else []
    )
    return {"masters": len(masters), "frames": frames, "timeline": timeline, "picks": picks(out)}


def openat_media(argv: list[str], media: Path, log: Path) -> dict[str, Any] | None:
    """One untimed run under ``strace -f -e trace=openat``: files opened in ``media``
    (the renders) and in all; None without strace (or when ptrace is refused)."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    proc = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=openat", "-o", str(log), *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not log.exists():
        return {"error": (proc.stderr or "")[-300:]}
    text = log.read_text(errors="replace")
    opened = re.findall(r'openat\([^,]+, "([^"]+)"[^)]*\) = \d+', text)
    prefix = str(media.resolve())
    in_media = [p for p in opened if p.startswith(prefix) and not p.endswith("/")]
    media_files = [p for p in in_media if Path(p).suffix in (".mp4", ".mov", ".wav")]
    return {
        "openat_ok": len(opened),
        "opened_in_renders": len(in_media),
        "media_files_opened": len(media_files),
        "examples": media_files[:5],
    }


# ----------------------------------------------------------------------------- report


def summary(tools: dict[str, Any], key: str, label: str, job: dict[str, Any]) -> dict[str, Any]:
    s = benchlib.tool_summary(label, job, tools[key], rss_per_run=False)
    for k in ("fingerprinted", "steps_run", "nothing_to_do"):
        if k in tools[key][0]:
            s[k] = [r[k] for r in tools[key]]
    return s


def markdown(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    fast = doc.get("batch")
    if fast:
        ref = fast["tools"]["loop"]
        n = fast["clips"]
        lines += [
            f"| {n} clips 720p, prores-master, --format all | median wall s | ratio wall / loop "
            "| clips/min | CPU s | ratio CPU / loop | peak RSS MiB |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for t in fast["tools"].values():
            lines.append(
                f"| {t['label']} | {t['median_wall_s']:.1f} "
                f"| **{t['median_wall_s'] / ref['median_wall_s']:.2f}** "
                f"| {60 * n / t['median_wall_s']:.1f} | {t['median_cpu_s']:.1f} "
                f"| {t['median_cpu_s'] / ref['median_cpu_s']:.2f} | {t['peak_rss_mib']:.0f} |"
            )
        lines.append("")
    noops = doc.get("noop", [])
    if noops:
        lines += [
            "| no-op re-run of deliver | renders | median wall s | CPU s | peak RSS MiB "
            "| steps run | files fingerprinted | media files opened (strace) |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for r in noops:
            t = r["tool"]
            st = r.get("strace") or {}
            opened = st.get("media_files_opened", "-")
            lines.append(
                f"| {r['title']} | {r['renders']} | **{t['median_wall_s']:.2f}** "
                f"| {t['median_cpu_s']:.2f} | {t['peak_rss_mib']:.0f} "
                f"| {', '.join(map(str, t.get('steps_run', [])))} "
                f"| {', '.join(map(str, t.get('fingerprinted', [])))} | {opened} |"
            )
        lines.append("")
        for r in noops:
            if r.get("first"):
                f = r["first"]
                lines.append(
                    f"First delivery of {r['title']} (timed once, not a no-op): "
                    f"{f['wall_s']:.1f} s wall, {f['cpu_s']:.1f} s CPU, "
                    f"{benchlib.mib(f['peak_rss_kib']):.0f} MiB peak."
                )
        lines.append("")
    rows = []
    if fast:
        rows.append({"title": fast["title"], "tools": fast["tools"], "checks": fast["checks"]})
    for r in noops:
        rows.append({"title": r["title"], "tools": {"noop": r["tool"]}, "checks": r["checks"]})
    lines += benchlib.report_tail(
        rows,
        raw_heading="Raw wall times (s), in run order per tool:",
        raw_note=lambda t: "",
        checks_heading="Checks:",
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        worker(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clips", type=int, default=40, help="renders in the timed batch (40)")
    parser.add_argument(
        "--noop-clips",
        type=int,
        default=500,
        help="tiny renders for the no-op re-run (500; 0 skips)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per way (1)")
    parser.add_argument("--cases", default="batch,noop", help="subset of batch,noop")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=benchlib.WORKDIR,
        help="media and delivery folders (benchmarks/_work)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.clips < 1 or args.noop_clips < 0:
        parser.error("--repeat and --clips must be positive")
    wanted = benchlib.parse_cases(parser, args.cases, ("batch", "noop"))
    workdir: Path = args.workdir.resolve()
    media = workdir / "deliver_media"
    outs = workdir / "deliver_out"
    jobs_dir = workdir / "deliver_jobs"
    for d in (media, outs, jobs_dir):
        d.mkdir(parents=True, exist_ok=True)

    manifest, renders, batch_facts = make_batch(media, args.clips)
    tiny = make_tiny_batch(media, args.noop_clips) if args.noop_clips and "noop" in wanted else None
    benchlib.warm_page_cache(ffmpeg=False)
    fingerprint = benchlib.handoff_fingerprint()
    doc: dict[str, Any] = {
        "command": benchlib.command_line(argv),
        "repeat": args.repeat,
        "batch_media": batch_facts,
    }
    ok = True

    out_of = {k: outs / f"{k}_{args.clips}" for k in FAST_KEYS}
    if "batch" in wanted:
        labels = {
            "pool": "`deliver --jobs 2` (process pool)",
            "cluster": "`deliver --cluster local --jobs 2` (Dask)",
            "loop": "bash loop, one file at a time (c)",
            "batch_cmds": "the same commands, each on the whole folder (c')",
        }
        jobs: dict[str, dict[str, Any]] = {}
        for key in FAST_KEYS:
            out = out_of[key]
            if key in ("pool", "cluster"):
                argv_k = deliver_argv(renders, out, manifest, key == "cluster")
            else:
                script = jobs_dir / f"{key}_{args.clips}.sh"
                script.write_text(loop_script(renders, out, manifest, batch=key == "batch_cmds"))
                argv_k = ["bash", str(script)]
            jobs[key] = {"argv": argv_k, "clean": str(out)}
        tools = [benchlib.Tool(k, labels[k], jobs[k]) for k in FAST_KEYS]
        benchlib.say("batch: " + " vs ".join(labels.values()))
        runs = benchlib.run_case(
            __file__, "batch", tools, args.repeat, jobs_dir, describe=_describe
        )
        checks: list[str] = []
        found = {k: outputs_of(out_of[k]) for k in FAST_KEYS}
        ref = found["loop"]
        for key in FAST_KEYS:
            f = found[key]
            same = f["picks"] == ref["picks"] and f["frames"] == ref["frames"]
            in_all = all(v is not None for v in f["picks"].values())
            ok &= same and in_all and f["masters"] == args.clips and len(f["timeline"]) >= 5
            frames = sum(v or 0 for v in f["frames"].values())
            picked = sum(v is not None for v in f["picks"].values())
            checks.append(
                f"{key}: {f['masters']} masters ({frames} frames), "
                f"{picked}/{len(f['picks'])} segments picked, "
                f"timeline files {f['timeline']}; picks and master frames "
                + ("the same as the loop's" if same else "DIFFER from the loop's")
            )
        doc["batch"] = {
            "title": f"{args.clips} clips 720p",
            "clips": args.clips,
            "tools": {t.key: summary(runs, t.key, t.label, t.job) for t in tools},
            "checks": checks,
            "picks": found["loop"]["picks"],
        }

    if "noop" in wanted:
        doc["noop"] = []
        cases: list[tuple[str, Path, Path | None, Path, bool]] = []
        if "batch" in wanted or (out_of["pool"] / "journal.jsonl").exists():
            cases.append(
                (
                    f"{args.clips} clips 720p (the pool's folder)",
                    renders,
                    manifest,
                    out_of["pool"],
                    False,
                )
            )
        if tiny is not None:
            cases.append(
                (
                    f"{args.noop_clips} clips 160x120, 1 s, no manifest",
                    tiny,
                    None,
                    outs / f"tiny_{args.noop_clips}",
                    True,
                )
            )
        for title, rdir, man, out, first in cases:
            argv_d = deliver_argv(rdir, out, man, cluster=False)
            entry: dict[str, Any] = {"title": title, "renders": len(list(rdir.glob("*.mp4")))}
            if first:
                job_file = jobs_dir / f"first-{out.name}.json"
                job_file.write_text(json.dumps({"argv": argv_d, "clean": str(out)}))
                benchlib.say(f"first delivery of {title}")
                entry["first"] = benchlib.run_worker(__file__, [str(job_file)], job_file.name)
                benchlib.say(f"  {_describe(entry['first'])}")
            tool = benchlib.Tool("noop", "no-op re-run", {"argv": argv_d})
            r = benchlib.run_case(
                __file__, f"noop-{out.name}", [tool], args.repeat + 2, jobs_dir, describe=_describe
            )["noop"]
            entry["tool"] = summary({"noop": r}, "noop", tool.label, tool.job)
            entry["strace"] = openat_media(argv_d, rdir, jobs_dir / f"strace-{out.name}.log")
            quiet = all(
                x.get("steps_run") == 0 and x.get("fingerprinted") == 0 and x["nothing_to_do"]
                for x in r
            )
            ok &= quiet
            st = entry["strace"] or {}
            entry["checks"] = [
                (
                    "every re-run ran no step, fingerprinted no file and said 'Nothing to do'"
                    if quiet
                    else f"NOT a no-op: {[x.get('stdout_tail') for x in r][:1]}"
                ),
                f"under strace: {st.get('media_files_opened', 'n/a')} media file(s) opened in the "
                f"renders folder ({st.get('opened_in_renders', 'n/a')} opens there, "
                f"{st.get('openat_ok', 'n/a')} in all)"
                if st and "error" not in st
                else f"strace: {st.get('error', 'not available')}",
            ]
            doc["noop"].append(entry)

    changed = benchlib.source_changed(fingerprint)
    doc["machine"] = benchlib.machine(ffmpeg=False)
    doc["handoff_source_sha256"] = fingerprint
    doc["handoff_source_changed_during_run"] = changed
    print(markdown(doc))
    print(f"\nBatch: {json.dumps(batch_facts)}")
    print(f"Load average at the end: {doc['machine'].get('loadavg_at_end')}")
    if args.json is not None:
        benchlib.write_json(args.json, doc)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
