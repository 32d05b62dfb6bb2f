"""Benchmark ``handoff export`` against the plain ffmpeg CLI doing the same encode.

Run from the repository root::

    python benchmarks/bench_export.py [--repeat 3] [--seconds 10] \
        [--workdir benchmarks/_work] [--json results.json] [--profile]

In one run it

1. makes (once; cached in the work folder) a 1920x1080 24 fps H.264 High source with
   AAC-LC 48 kHz stereo (a panning texture, a moving bar and film-grain-like noise, so
   the encoders have real work; speech-like sound), and a batch of shorter 1280x720
   clips of the same kind;
2. times, interleaved (repetition 1 runs the tools in one order, repetition 2 in the
   reverse order, and so on), each run in a fresh worker process (this script with
   ``_worker``):

   - ``h264`` and ``prores``: ``python -m handoff export SRC --preset h264-review|
     prores-master --fps 24 --jobs 1 --engine pyav`` (start-up, probe, plan, encode,
     validation of the output and rename included, as a user runs it) against the ffmpeg
     binary of imageio-ffmpeg running the argv of ``ffmpeg_engine.command(plan, out)``
     (the same filters, codec options, GOP, audio resampling and padding), and, for
     attribution, the PyAV engine alone in-process (``engines.execute(plan, out)``
     after a warm-up, without start-up, probe or validation);
   - ``jobs``: ``handoff export`` of the batch with ``--jobs 2`` against ``--jobs 1``;

   wall time with ``time.perf_counter``, CPU time and peak RSS with
   ``resource.getrusage`` (RUSAGE_CHILDREN for the command lines, RUSAGE_SELF for the
   in-process engine);
3. checks that the outputs are equivalent: frame count, frame rate, decoded audio
   sample count, ``validate_file(out, load_spec(preset))`` passing for every output,
   and the picture and sound of each output against handoff's (PSNR, sample
   difference);
4. prints a Markdown table (and writes JSON with every raw time when asked); with
   ``--profile`` also profiles a PyAV export per preset (stage times, cProfile).

Every export here encodes (``--reencode``, ``ExportOptions(reencode=True)``): the H.264
sources already meet h264-review, which an export would otherwise copy as they are
(``bench_conform.py`` times that); this benchmark times the encode.

Timings on a shared machine are noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

# Time the checkout this script sits in: run by its path, Python puts benchmarks/ first on
# sys.path, and an editable install elsewhere would supply ``handoff`` -- to this script,
# its in-process workers and the source fingerprint -- while ``python -m handoff`` runs
# the copy in the current folder.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import benchlib

GENERATOR_VERSION = 1
FPS = 24
AUDIO_RATE = 48000
AAC_FRAME = 1024
PRESETS = {"h264": "h264-review", "prores": "prores-master"}
CASES = ("h264", "prores", "jobs")

# ----------------------------------------------------------------------------- media


def source_path(workdir: Path, width: int, height: int, seconds: float, seed: int) -> Path:
    name = f"export_src_{width}x{height}p{FPS}_{seconds:g}s_s{seed}_v{GENERATOR_VERSION}.mp4"
    return workdir / "export_media" / name


def make_clip(path: Path, width: int, height: int, seconds: float, seed: int) -> Path:
    """A camera-like H.264 High + AAC-LC clip, tagged BT.709, 24 fps, 2-s GOPs.

    Picture: a horizontal ramp under a texture (four sine gratings and 32-pixel blocks of
    random level) that pans back and forth, a bright bar crossing the frame, and fresh
    +/-4 grain on every frame -- motion to estimate, edges and noise to code, so neither
    encoder is timed on a trivially flat picture. Chroma drifts slowly. Encoded with
    libx264 veryfast CRF 20 (about 11 Mb/s at 1080p). Sound: two different speech-like
    voices (``synth.speech_like``) on a quiet 220 Hz bed, AAC-LC 192 kb/s, interleaved
    with the picture and as long as it.
    """
    if path.exists() and path.stat().st_size > 0:
        return path
    import av
    import numpy as np

    from handoff.files.fsutil import atomic_output
    from handoff.media.synth import speech_like

    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = round(seconds * FPS)
    samples = frames * AUDIO_RATE // FPS
    t = np.arange(samples, dtype=np.float64) / AUDIO_RATE
    bed = 0.02 * np.sin(2 * math.pi * 220.0 * t)
    left = speech_like(samples / AUDIO_RATE, AUDIO_RATE, level=0.3, seed=seed) + bed
    right = speech_like(samples / AUDIO_RATE, AUDIO_RATE, level=0.25, seed=seed + 100) + bed
    sound = np.ascontiguousarray(np.stack([left, right]).astype(np.float32))

    with atomic_output(path, replace=True) as tmp, av.open(str(tmp), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS)
        assert isinstance(vs, av.VideoStream)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        cc = vs.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1
        vs.options = {
            "preset": "veryfast",
            "profile": "high",
            "crf": "20",
            "x264-params": f"keyint={2 * FPS}:min-keyint={2 * FPS}:scenecut=0",
        }
        aus = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        assert isinstance(aus, av.AudioStream)
        aus.bit_rate = 192000
        sent = 0
        picture = benchlib.moving_picture(width, height, frames, seed=seed, phase=seed, blocks=True)
        for i, frame in enumerate(picture):
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in vs.encode(frame):
                out.mux(packet)
            # The sound that starts before the next frame does, so the file interleaves.
            while sent < samples and sent * FPS < (i + 1) * AUDIO_RATE:
                block = np.ascontiguousarray(sound[:, sent : sent + AAC_FRAME])
                af = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = AUDIO_RATE, sent, Fraction(1, AUDIO_RATE)
                for packet in aus.encode(af):
                    out.mux(packet)
                sent += block.shape[1]
        for packet in vs.encode(None):
            out.mux(packet)
        for packet in aus.encode(None):
            out.mux(packet)
    benchlib.say(f"made {path.name} in {time.perf_counter() - t0:.1f} s")
    return path


def make_warm_clip(path: Path) -> Path:
    """A 1-s 320x240 clip for the in-process engine's untimed warm-up export."""
    if path.exists() and path.stat().st_size > 0:
        return path
    from handoff.files.fsutil import atomic_output
    from handoff.media.synth import ClipSpec, write_clip

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, replace=True) as tmp:
        write_clip(tmp, ClipSpec(seconds=1.0, gop=48, profile="high"))
    return path


# ----------------------------------------------------------------------------- worker


def _worker_cli(job: dict[str, Any]) -> dict[str, Any]:
    """Run one command line; this worker imports nothing heavy, so it stays lean."""
    proc, result = benchlib.measure_command(
        job["argv"], method="ru_maxrss of the largest child (RUSAGE_CHILDREN)"
    )
    if proc.returncode != 0:
        raise SystemExit(f"{job['argv'][0]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    if job.get("handoff_json"):
        report = json.loads(proc.stdout)
        result["statuses"] = [f["status"] for f in report["files"]]
        result["file_seconds"] = [f["seconds"] for f in report["files"]]
        result["errors"] = [f["error"] for f in report["files"] if f["error"]]
    return result


def _worker_engine(job: dict[str, Any]) -> dict[str, Any]:
    """The PyAV engine alone, in-process: probe and plan outside the timer, warmed up."""
    from handoff.export.engines import execute
    from handoff.export.plan import ExportOptions, plan_export
    from handoff.probe.reader import probe
    from handoff.validate.spec import load_spec

    spec = load_spec(job["preset"])
    options = ExportOptions(fps=Fraction(FPS), reencode=True)
    warm_out = Path(job["warm_out"])
    warm_plan = plan_export(probe(Path(job["warm_source"])), spec, options, dest=warm_out)
    execute(warm_plan, warm_out, "pyav")
    out = Path(job["out"])
    plan = plan_export(probe(Path(job["source"])), spec, options, dest=out)
    _, result = benchlib.measure(
        lambda: execute(plan, out, "pyav"), children=False, method="ru_maxrss of the worker"
    )
    return result


def _describe_run(result: dict[str, Any]) -> str:
    return f"{result['wall_s']:.2f} s wall, {result['cpu_s']:.2f} s CPU"


def worker(job_file: Path) -> None:
    job: dict[str, Any] = json.loads(job_file.read_text())
    run = _worker_engine if job["kind"] == "engine" else _worker_cli
    json.dump(benchlib.with_loadavg(run, job), sys.stdout)


# ----------------------------------------------------------------------------- profile


def profile_worker(preset: str, source: Path, out: Path, top: int) -> None:
    """Stage times (wall and CPU) of one export as handoff runs it, and a cProfile of
    the PyAV engine; one JSON object on stdout."""
    import cProfile
    import io
    import pstats

    stages: dict[str, dict[str, float]] = {}

    def timed(name: str) -> Any:
        class _Stage:
            def __enter__(self) -> None:
                self.ru0 = resource.getrusage(resource.RUSAGE_SELF)
                self.t0 = time.perf_counter()

            def __exit__(self, *exc: object) -> None:
                wall = time.perf_counter() - self.t0
                ru1 = resource.getrusage(resource.RUSAGE_SELF)
                cpu = benchlib.cpu_seconds(ru1) - benchlib.cpu_seconds(self.ru0)
                stages[name] = {"wall_s": wall, "cpu_s": cpu}

        return _Stage()

    with timed("import handoff.cli (click, PyAV, numpy)"):
        import handoff.cli  # noqa: F401
        from handoff.export.engines import execute
        from handoff.export.plan import ExportOptions, plan_export
        from handoff.probe.reader import probe
        from handoff.validate.check import validate_file
        from handoff.validate.spec import load_spec

    import av

    spec = load_spec(preset)
    with timed("probe source"):
        info = probe(source)
    with timed("plan"):
        plan = plan_export(info, spec, ExportOptions(fps=Fraction(FPS), reencode=True), dest=out)
    with timed("demux + decode only (video threads AUTO, audio)"), av.open(str(source)) as src:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        for _frame in src.decode(vin, *src.streams.audio):
            pass
    filters = _filter_whatif(source, plan.video)
    profiler = cProfile.Profile()
    with timed("engine: execute(plan, out, 'pyav') under cProfile"):
        profiler.enable()
        execute(plan, out, "pyav")
        profiler.disable()
    with timed("validate output"):
        report = validate_file(out, spec)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    rows = benchlib.profile_rows(stats, top, builtins_bare=False)
    json.dump(
        {
            "preset": preset,
            "frames": plan.video.frames,
            "stages": stages,
            "validate_status": report.status,
            "filter_graph": filters,
            "top_tottime": rows,
            "pstats_text": text.getvalue(),
        },
        sys.stdout,
    )


def _filter_whatif(source: Path, vplan: Any, count: int = 48) -> list[dict[str, Any]]:
    """The PyAV engine's filter graph alone on ``count`` decoded frames, as handoff builds
    it, and with the colour matrix and range declared to the format filter (libavfilter
    11 negotiates them; undeclared, its scaler may convert between matrices).

    Per variant: wall and CPU ms per frame, the output frame's colour tags, and the
    mean absolute luma difference from the source's (scaled to the output's bit depth).
    """
    import av
    import numpy as np
    from av.filter import Graph

    from handoff.export.engines import pyav_engine

    with av.open(str(source)) as src:
        vin = src.streams.video[0]
        frames = [f for _, f in zip(range(count), src.decode(vin), strict=False)]
        variants: list[tuple[str, Any]] = [("as handoff builds it", pyav_engine._graph(vin, vplan))]
        if vplan.rotation == 0 and vplan.crop is None:
            graph = Graph()
            chain = [
                graph.add_buffer(template=vin),
                graph.add(
                    "format",
                    f"pix_fmts={vplan.pix_fmt}:color_spaces={vplan.color_matrix}"
                    f":color_ranges={vplan.color_range}",
                ),
                graph.add("buffersink"),
            ]
            graph.link_nodes(*chain).configure()
            variants.append(("colour matrix and range declared", graph))
        found = []
        for name, graph in variants:
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            outs: list[Any] = []  # only the first is kept: holding them all would time page faults
            for f in frames:
                graph.vpush(f)
                result = graph.vpull()
                if not outs:
                    outs.append(result)
            wall = time.perf_counter() - t0
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = benchlib.cpu_seconds(ru1) - benchlib.cpu_seconds(ru0)
            a, b = _luma(frames[0]).astype(np.float64), _luma(outs[0]).astype(np.float64)
            scale = 4.0 if b.dtype == np.uint16 or b.max() > 255 else 1.0
            found.append(
                {
                    "variant": name,
                    "frames": len(frames),
                    "ms_per_frame_wall": 1000 * wall / len(frames),
                    "ms_per_frame_cpu": 1000 * cpu / len(frames),
                    "out_colorspace": int(outs[0].colorspace),
                    "out_color_range": int(outs[0].color_range),
                    "luma_mean_abs_diff_vs_source": float(np.mean(np.abs(b - a * scale))),
                }
            )
    return found


# ----------------------------------------------------------------------------- runner


@dataclass
class Tool(benchlib.Tool):
    """A tool and the files each of its runs writes."""

    outputs: list[Path]


@dataclass
class Case:
    name: str
    title: str
    preset: str
    inputs: list[Path]
    tools: list[Tool]
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    ok: bool = True
    expected: dict[str, Any] = field(default_factory=dict)


def _handoff_cli(
    inputs: Sequence[Path], preset: str, out_dir: Path, jobs: int, engine: str = "pyav"
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "handoff",
        "export",
        *map(str, inputs),
        "--preset",
        preset,
        "--fps",
        str(FPS),
        "--reencode",
        "--out",
        str(out_dir),
        "--jobs",
        str(jobs),
        "--engine",
        engine,
        "--overwrite",
        "--json",
    ]


def build_codec_case(name: str, source: Path, warm: Path, workdir: Path, engine: bool) -> Case:
    from handoff.export.engines.ffmpeg_engine import command
    from handoff.export.plan import ExportOptions, export_settings, plan_export
    from handoff.probe.reader import probe
    from handoff.validate.spec import load_spec

    preset = PRESETS[name]
    spec = load_spec(preset)
    ext = export_settings(spec).extension
    out_root = workdir / "export_out" / name
    dirs = {k: out_root / k for k in ("handoff", "ffmpeg", "engine")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    outs = {k: d / f"{source.stem}{ext}" for k, d in dirs.items()}
    plan = plan_export(
        probe(source), spec, ExportOptions(fps=Fraction(FPS), reencode=True), dest=outs["ffmpeg"]
    )
    argv = command(plan, outs["ffmpeg"], ffmpeg=benchlib.ffmpeg_exe())
    tools = [
        Tool(
            "handoff",
            f"handoff export --preset {preset} --jobs 1 (CLI, PyAV engine)",
            {
                "kind": "cli",
                "argv": _handoff_cli([source], preset, dirs["handoff"], 1),
                "handoff_json": True,
            },
            [outs["handoff"]],
        ),
        Tool(
            "ffmpeg",
            "ffmpeg CLI, ffmpeg_engine.command()",
            {"kind": "cli", "argv": argv},
            [outs["ffmpeg"]],
        ),
    ]
    if engine:
        tools.append(
            Tool(
                "engine",
                "PyAV engine in-process (execute only)",
                {
                    "kind": "engine",
                    "preset": preset,
                    "source": str(source),
                    "out": str(outs["engine"]),
                    "warm_source": str(warm),
                    "warm_out": str(out_root / f"warm{ext}"),
                },
                [outs["engine"]],
            )
        )
    title = {"h264": "H.264 h264-review", "prores": "ProRes 422 HQ prores-master"}[name]
    case = Case(name, title, preset, [source], tools)
    case.expected = {
        "frames": plan.video.frames,
        "samples": plan.audio.samples if plan.audio else None,
        "ffmpeg_argv": argv,
    }
    return case


def build_jobs_case(clips: Sequence[Path], workdir: Path) -> Case:
    from handoff.export.plan import export_settings
    from handoff.validate.spec import load_spec

    preset = "h264-review"
    ext = export_settings(load_spec(preset)).extension
    tools = []
    for jobs in (1, 2):
        out_dir = workdir / "export_out" / f"jobs{jobs}"
        out_dir.mkdir(parents=True, exist_ok=True)
        tools.append(
            Tool(
                f"jobs{jobs}",
                f"handoff export --jobs {jobs}",
                {
                    "kind": "cli",
                    "argv": _handoff_cli(clips, preset, out_dir, jobs),
                    "handoff_json": True,
                },
                [out_dir / f"{c.stem}{ext}" for c in clips],
            )
        )
    return Case("jobs", f"{len(clips)} clips, h264-review", preset, list(clips), tools)


# ----------------------------------------------------------------------------- checks


def _luma(frame: Any) -> Any:
    """A copy of the luma plane as it is stored (uint8, or uint16 for 10-bit formats)."""
    import numpy as np

    plane = frame.planes[0]
    deep = frame.format.name.endswith(("10le", "12le", "16le"))
    dtype = np.dtype(np.uint16 if deep else np.uint8)
    arr = np.frombuffer(memoryview(plane), dtype=dtype)
    return arr.reshape(plane.height, plane.line_size // dtype.itemsize)[:, : plane.width].copy()


def decode_output(path: Path, every: int, sound: bool = True) -> dict[str, Any]:
    """Decoded frame count, every ``every``-th luma plane, and the whole sound."""
    import av
    import numpy as np

    lumas: list[Any] = []
    frames = 0
    chunks: list[Any] = []
    with av.open(str(path)) as c:
        vin = c.streams.video[0]
        vin.thread_type = "AUTO"
        for frame in c.decode(vin):
            if frames % every == 0:
                lumas.append(_luma(frame))
            frames += 1
    if sound:
        with av.open(str(path)) as c:
            for af in c.decode(c.streams.audio[0]):
                arr = af.to_ndarray()
                if not af.format.is_planar:
                    arr = arr.reshape(-1, len(af.layout.channels)).T
                if arr.dtype.kind in "iu":
                    arr = arr.astype(np.float64) / float(2 ** (8 * arr.dtype.itemsize - 1))
                chunks.append(arr.astype(np.float64))
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0))
    return {"frames": frames, "lumas": lumas, "sound": audio}


def _psnr(a: Any, b: Any, peak: float) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def _min_psnr(ours: Sequence[Any], theirs: Sequence[Any], scale: float, peak: float) -> float:
    """Worst PSNR over frame pairs; ``theirs`` is multiplied by ``scale`` (8 -> 10 bit: 4)."""
    pairs = list(zip(ours, theirs, strict=False))
    if not pairs:
        return math.nan
    return min(_psnr(a, b.astype("float32") * scale, peak) for a, b in pairs)


def _db(x: float) -> str:
    return "identical" if x == math.inf else f"{x:.1f} dB"


def check_codec_case(case: Case) -> None:
    """Every output: the plan's frame count and sample count, 24 fps CFR, its preset
    passing; and its picture and sound against the source and against handoff's."""
    import numpy as np

    from handoff.probe.reader import probe
    from handoff.validate.check import validate_file
    from handoff.validate.spec import load_spec

    spec = load_spec(case.preset)
    every = 12
    source = decode_output(case.inputs[0], every, sound=False)["lumas"]
    facts: dict[str, dict[str, Any]] = {}
    decoded: dict[str, dict[str, Any]] = {}
    for tool in case.tools:
        out = tool.outputs[0]
        info = probe(out)
        report = validate_file(out, spec)
        v, a = info.video, info.audio
        dec = decode_output(out, every)
        decoded[tool.key] = dec
        deep = "10" in (v.pix_fmt or "") if v else False
        facts[tool.key] = {
            "bytes": out.stat().st_size,
            "frames_probe": v.frames if v else None,
            "frames_decoded": dec["frames"],
            "fps": str(v.fps) if v else None,
            "frame_rate_mode": v.frame_rate_mode if v else None,
            "profile": v.profile if v else None,
            "pix_fmt": v.pix_fmt if v else None,
            "color": [v.color_primaries, v.color_transfer, v.color_matrix, v.color_range]
            if v
            else None,
            "audio_codec": a.codec if a else None,
            "audio_rate": a.sample_rate if a else None,
            # After the edit list (AAC priming and tail padding hidden), as a player plays it.
            "audio_samples": round(a.duration_s * (a.sample_rate or 0)) if a else None,
            # Every sample the decoder gives, AAC tail padding of the last frame included.
            "audio_samples_decoded": int(dec["sound"].shape[1]),
            "validate": report.status,
            "findings": [f"{f.severity}:{f.rule}" for f in report.findings],
            "luma_psnr_vs_source_min_db": _min_psnr(
                dec["lumas"], source, 4.0 if deep else 1.0, 1023.0 if deep else 255.0
            ),
        }
    exp = case.expected
    ref_key = case.tools[0].key
    ref = facts[ref_key]
    for key, f in facts.items():
        problems = []
        if f["frames_probe"] != exp["frames"] or f["frames_decoded"] != exp["frames"]:
            problems.append(f"frames {f['frames_probe']}/{f['frames_decoded']} != {exp['frames']}")
        if f["fps"] != str(FPS) or f["frame_rate_mode"] != "CFR":
            problems.append(f"fps {f['fps']} {f['frame_rate_mode']}")
        if f["audio_rate"] != AUDIO_RATE or f["audio_samples"] != exp["samples"]:
            problems.append(
                f"audio {f['audio_rate']} Hz, {f['audio_samples']} samples != {exp['samples']}"
            )
        if f["audio_samples_decoded"] != ref["audio_samples_decoded"]:
            problems.append(f"decoded samples {f['audio_samples_decoded']} vs handoff's")
        if f["validate"] != "pass" or f["findings"]:
            problems.append(f"validate {f['validate']} {f['findings']}")
        for k in ("profile", "pix_fmt", "color", "audio_codec"):
            if f[k] != ref[k]:
                problems.append(f"{k} {f[k]} vs {ref[k]}")
        # The source is 8-bit 4:2:0 at CRF 20 and the outputs are CRF 18 or ProRes HQ: a
        # faithful output keeps its luma well above 40 dB from the source's.
        if not f["luma_psnr_vs_source_min_db"] >= 40.0:
            problems.append(
                f"picture far from the source (min {f['luma_psnr_vs_source_min_db']:.1f} dB)"
            )
        compare = ""
        if key != ref_key:
            deep = "10" in (f["pix_fmt"] or "")
            worst = _min_psnr(
                decoded[ref_key]["lumas"], decoded[key]["lumas"], 1.0, 1023.0 if deep else 255.0
            )
            sa, sb = decoded[ref_key]["sound"], decoded[key]["sound"]
            n = min(sa.shape[1], sb.shape[1])
            diff = float(np.max(np.abs(sa[:, :n] - sb[:, :n]))) if n else math.nan
            f["luma_psnr_vs_handoff_min_db"] = None if worst == math.inf else worst
            f["picture_identical_to_handoff"] = worst == math.inf
            f["audio_max_abs_diff_vs_handoff"] = diff
            compare = (
                f"; picture vs handoff's: {_db(worst)}; sound vs handoff's: max |diff| {diff:.2g}"
            )
            if not diff <= 0.01:
                problems.append(f"sound differs from handoff's (max |diff| {diff:.3f})")
        if problems:
            case.ok = False
        case.checks.append(
            f"{key}: {f['frames_decoded']} frames at {f['fps']} fps {f['frame_rate_mode']}, "
            f"{f['audio_samples']} audio samples at {f['audio_rate']} Hz "
            f"({f['audio_samples_decoded']} decoded), {f['bytes'] / 1e6:.1f} MB, "
            f"validate {f['validate']}"
            + (f" {f['findings']}" if f["findings"] else "")
            + f"; luma vs source (every {every}th frame): min "
            + _db(f["luma_psnr_vs_source_min_db"])
            + compare
            + (f" -- PROBLEMS: {'; '.join(problems)}" if problems else "")
        )
    case.expected["facts"] = facts


def check_jobs_case(case: Case) -> None:
    from handoff.probe.reader import probe

    for tool in case.tools:
        for run in case.runs[tool.key]:
            if run.get("statuses") != ["done"] * len(case.inputs):
                case.ok = False
                case.checks.append(f"{tool.key}: statuses {run.get('statuses')} {run['errors']}")
                break
        frames = []
        samples = []
        for out in tool.outputs:
            info = probe(out)
            frames.append(info.video.frames if info.video else 0)
            a = info.audio
            samples.append(round(a.duration_s * (a.sample_rate or 0)) if a else 0)
        case.expected.setdefault("frames", {})[tool.key] = frames
        case.checks.append(
            f"{tool.key}: {len(tool.outputs)} outputs done and passing h264-review "
            f"(handoff checks each before renaming it); {sum(frames)} frames, "
            f"{sum(samples)} audio samples in all"
        )
    f = case.expected["frames"]
    if f["jobs1"] != f["jobs2"]:
        case.ok = False
        case.checks.append("frame counts differ between --jobs 1 and --jobs 2")


# ----------------------------------------------------------------------------- report


def summarise(case: Case) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for tool in case.tools:
        runs = case.runs[tool.key]
        tools[tool.key] = benchlib.tool_summary(tool.label, tool.job, runs, rss_per_run=False)
        if "file_seconds" in runs[0]:
            tools[tool.key]["file_seconds"] = [r["file_seconds"] for r in runs]
            tools[tool.key]["median_in_export_s"] = statistics.median(
                sum(r["file_seconds"]) for r in runs
            )
    a, b = case.tools[0].key, case.tools[1].key
    row: dict[str, Any] = {
        "case": case.name,
        "title": case.title,
        "preset": case.preset,
        "inputs": [str(p) for p in case.inputs],
        "tools": tools,
        "ratio_wall": tools[a]["median_wall_s"] / tools[b]["median_wall_s"],
        "ratio_cpu": tools[a]["median_cpu_s"] / tools[b]["median_cpu_s"],
        "ok": case.ok,
        "checks": case.checks,
        "expected": {k: v for k, v in case.expected.items() if k != "facts"},
        "output_facts": case.expected.get("facts"),
    }
    if case.name == "jobs":
        # Listed --jobs 1 first: the ratio asked for is jobs2 / jobs1.
        row["ratio_wall"] = tools["jobs2"]["median_wall_s"] / tools["jobs1"]["median_wall_s"]
        row["ratio_cpu"] = tools["jobs2"]["median_cpu_s"] / tools["jobs1"]["median_cpu_s"]
    elif "engine" in tools:
        row["ratio_engine_wall"] = tools["engine"]["median_wall_s"] / tools[b]["median_wall_s"]
    return row


def markdown(rows: Sequence[dict[str, Any]], frames: dict[str, int]) -> str:
    lines: list[str] = []
    codec = [r for r in rows if r["case"] != "jobs"]
    if codec:
        lines += [
            "| case | frames | handoff CLI median s | ffmpeg CLI median s "
            "| ratio handoff/ffmpeg | engine alone median s | ratio engine/ffmpeg "
            "| fps handoff / ffmpeg | CPU s handoff / ffmpeg / engine "
            "| peak RSS MiB handoff / ffmpeg / engine | equivalent |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
        ]
        for r in codec:
            t = r["tools"]
            h, f, e = t["handoff"], t["ffmpeg"], t.get("engine")
            n = frames[r["case"]]
            e_wall = f"{e['median_wall_s']:.2f}" if e else "-"
            e_ratio = f"{r['ratio_engine_wall']:.2f}" if e else "-"
            e_cpu = f" / {e['median_cpu_s']:.1f}" if e else ""
            e_rss = f" / {e['peak_rss_mib']:.0f}" if e else ""
            lines.append(
                f"| {r['title']} | {n} | {h['median_wall_s']:.2f} | {f['median_wall_s']:.2f} "
                f"| **{r['ratio_wall']:.2f}** | {e_wall} | {e_ratio} "
                f"| {n / h['median_wall_s']:.1f} / {n / f['median_wall_s']:.1f} "
                f"| {h['median_cpu_s']:.1f} / {f['median_cpu_s']:.1f}{e_cpu} "
                f"| {h['peak_rss_mib']:.0f} / {f['peak_rss_mib']:.0f}{e_rss} "
                f"| {'yes' if r['ok'] else 'NO'} |"
            )
        lines.append("")
    for r in rows:
        if r["case"] != "jobs":
            continue
        t = r["tools"]
        j1, j2 = t["jobs1"], t["jobs2"]
        n = len(r["inputs"])
        lines += [
            "| case | clips | --jobs 1 median s | --jobs 2 median s | ratio jobs2/jobs1 "
            "| clips/s jobs 1 / jobs 2 | CPU s jobs 1 / jobs 2 | peak RSS MiB jobs 1 / jobs 2 "
            "| all done |",
            "|---|--:|--:|--:|--:|--:|--:|--:|---|",
            f"| {r['title']} | {n} | {j1['median_wall_s']:.2f} | {j2['median_wall_s']:.2f} "
            f"| **{r['ratio_wall']:.2f}** "
            f"| {n / j1['median_wall_s']:.2f} / {n / j2['median_wall_s']:.2f} "
            f"| {j1['median_cpu_s']:.1f} / {j2['median_cpu_s']:.1f} "
            f"| {j1['peak_rss_mib']:.0f} / {j2['peak_rss_mib']:.0f} "
            f"| {'yes' if r['ok'] else 'NO'} |",
            "",
        ]
    lines += benchlib.report_tail(
        rows,
        raw_heading="Raw wall times (s), in run order per tool:",
        raw_note=_in_export_note,
        checks_heading="Equivalence checks:",
    )
    return "\n".join(lines)


def _in_export_note(tool: Mapping[str, Any]) -> str:
    """After a handoff tool's raw times: the median time spent inside ``export_one``."""
    if "median_in_export_s" not in tool:
        return ""
    return f" (inside export_one: median {tool['median_in_export_s']:.2f})"


def run_profiles(cases: Sequence[Case], workdir: Path, top: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for case in cases:
        if case.name == "jobs":
            continue
        out = workdir / "export_out" / case.name / f"profile{case.tools[0].outputs[0].suffix}"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_profile",
            case.preset,
            str(case.inputs[0]),
            str(out),
            str(top),
        ]
        benchlib.say(f"profiling a PyAV export, {case.preset}")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"profile worker failed:\n{proc.stderr[-4000:]}")
        found.append(json.loads(proc.stdout))
    return found


def profile_markdown(profiles: Sequence[dict[str, Any]]) -> str:
    lines: list[str] = []
    for p in profiles:
        lines += [
            "",
            f"Profile of one PyAV export, {p['preset']} ({p['frames']} frames), "
            "fresh process, stages in order:",
            "",
            "| stage | wall s | CPU s | CPU / wall |",
            "|---|--:|--:|--:|",
        ]
        for name, s in p["stages"].items():
            ratio = s["cpu_s"] / s["wall_s"] if s["wall_s"] else math.nan
            lines.append(f"| {name} | {s['wall_s']:.2f} | {s['cpu_s']:.2f} | {ratio:.2f} |")
        if p.get("filter_graph"):
            lines += [
                "",
                "The engine's filter graph alone (first frames of the source, decoded):",
                "",
                "| graph | ms/frame wall | ms/frame CPU | output colorspace / range "
                "| mean abs luma diff vs source |",
                "|---|--:|--:|--:|--:|",
            ]
            for g in p["filter_graph"]:
                lines.append(
                    f"| {g['variant']} | {g['ms_per_frame_wall']:.1f} | "
                    f"{g['ms_per_frame_cpu']:.1f} | {g['out_colorspace']} / "
                    f"{g['out_color_range']} | {g['luma_mean_abs_diff_vs_source']:.2f} |"
                )
        lines += ["", "cProfile, by own time (C calls made from Python are counted in the caller):"]
        lines += ["", *benchlib.profile_table(p["top_tottime"])]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_worker":
        worker(Path(argv[1]))
        return 0
    if argv and argv[0] == "_profile":
        profile_worker(argv[1], Path(argv[2]), Path(argv[3]), int(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="1080p source length (10)")
    parser.add_argument("--clips", type=int, default=8, help="clips in the --jobs batch (8)")
    parser.add_argument("--clip-seconds", type=float, default=5.0, help="batch clip length (5)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=benchlib.WORKDIR,
        help="where generated media and outputs go (benchmarks/_work)",
    )
    parser.add_argument("--cases", default=",".join(CASES), help="subset of h264,prores,jobs")
    parser.add_argument(
        "--no-engine", action="store_true", help="skip the in-process engine-only runs"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile one PyAV export per preset"
    )
    parser.add_argument("--top", type=int, default=15, help="cProfile rows to show (15)")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.clips < 1 or args.seconds <= 0 or args.clip_seconds <= 0:
        parser.error("--repeat, --clips, --seconds and --clip-seconds must be positive")
    wanted = benchlib.parse_cases(parser, args.cases, CASES)
    workdir: Path = args.workdir.resolve()
    jobs_dir = workdir / "export_jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)

    cases: list[Case] = []
    warm = make_warm_clip(workdir / "export_media" / "warm_320x240_1s.mp4")
    if "h264" in wanted or "prores" in wanted:
        src = make_clip(
            source_path(workdir, 1920, 1080, args.seconds, 1), 1920, 1080, args.seconds, 1
        )
        for name in ("h264", "prores"):
            if name in wanted:
                cases.append(build_codec_case(name, src, warm, workdir, not args.no_engine))
    if "jobs" in wanted:
        clips = [
            make_clip(
                source_path(workdir, 1280, 720, args.clip_seconds, 10 + i),
                1280,
                720,
                args.clip_seconds,
                10 + i,
            )
            for i in range(args.clips)
        ]
        cases.append(build_jobs_case(clips, workdir))

    benchlib.warm_page_cache()

    fingerprint = benchlib.handoff_fingerprint()
    for case in cases:
        benchlib.say(f"{case.name}: " + " vs ".join(t.label for t in case.tools))
        case.runs = benchlib.run_case(
            __file__, case.name, case.tools, args.repeat, jobs_dir, describe=_describe_run
        )
        benchlib.say(f"{case.name}: checking the outputs")
        if case.name == "jobs":
            check_jobs_case(case)
        else:
            check_codec_case(case)
    rows = [summarise(c) for c in cases]
    frames = {
        c.name: int(c.expected["frames"]) for c in cases if isinstance(c.expected["frames"], int)
    }
    profiles = run_profiles(cases, workdir, args.top) if args.profile else []
    changed = benchlib.source_changed(fingerprint)
    print(markdown(rows, frames) + profile_markdown(profiles))
    if args.json is not None:
        doc = {
            "command": benchlib.command_line(argv),
            "repeat": args.repeat,
            "seconds": args.seconds,
            "machine": benchlib.machine(),
            "timer": "time.perf_counter in a fresh worker process per run",
            "cpu": "resource.getrusage user+system: RUSAGE_CHILDREN for command lines, "
            "RUSAGE_SELF for the in-process engine",
            "handoff_source_sha256": fingerprint,
            "handoff_source_changed_during_run": changed,
            "cases": rows,
            "profiles": profiles,
        }
        benchlib.write_json(args.json, doc)
    return 0 if all(c.ok for c in cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
