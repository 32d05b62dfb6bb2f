"""``handoff demo``: synthesise a small batch and run every capability on it.

The batch mirrors what users hand us: a raw LTX-2-like render (one keyframe, 24 kHz
audio, untagged colour), a phone clip with variable frame rate, a review copy and a
ProRes master made the way the specs want, a narration conditioned for LTX-2, and an
MP4 whose write was interrupted; then stand-in renders for the conditioned narration
put on a timeline, and takes of one segment -- in sync, picture late, picture drifting
-- measured, the best one picked and handed on with the others beside it; last, the
takes delivered in one resumable step (``handoff deliver``'s library) and delivered
again, which redoes nothing. Each step prints what it found and whether that is the
verdict the file should get.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handoff.analysis import loudness
from handoff.errors import InputError
from handoff.export.plan import ExportOptions
from handoff.export.run import export_batch, plan_jobs
from handoff.files.fsutil import atomic_write_bytes, clear_stale_parts, mark_output_folder
from handoff.files.manifest import load_manifest
from handoff.media.audio import decode_audio
from handoff.media.synth import (
    ClipSpec,
    TakeSpec,
    babble,
    speech_like,
    vfr_times,
    write_clip,
    write_take,
    write_wav,
)
from handoff.prep import PrepOptions, prep_audio
from handoff.probe.reader import channels_text, error_json, probe, rate_text, to_json
from handoff.sync.measure import TakeSync, plan_sync, run_sync, sync_json
from handoff.sync.selects import selects_from_sync, write_selects
from handoff.timeline.model import TimelineBuild
from handoff.validate.check import FileReport, validate_file
from handoff.validate.spec import load_spec

if TYPE_CHECKING:
    from handoff.deliver import DeliveryPlan, DeliveryResult, Record

__all__ = ["make_demo_media", "run_demo"]

Echo = Callable[[str], None]

_X264_2S_GOP = "keyint=48:min-keyint=48:scenecut=0:open-gop=0"


def _narration(path: Path) -> Path:
    """A dual-mono narration at -16 LUFS with 150 ms of pre-roll, written as 24-bit PCM."""
    mono = speech_like(8.0, 48000, pauses=[(3.0, 0.6)], lead=0.15, tail=0.3)
    measured = loudness.integrated_loudness(mono[None, :], 48000)
    gain = 10 ** ((-16.0 - measured) / 20)
    mono = mono * gain
    # Keep the true peak under -3 dBTP with margin: the synthetic voice is peaky.
    peak = 10 ** (loudness.true_peak(mono[None, :], 48000) / 20)
    ceiling = 10 ** (-3.5 / 20)
    if peak > ceiling:
        mono = (ceiling * mono / peak).astype(mono.dtype)
    return write_wav(path, np.stack([mono, mono]), 48000, "pcm_s24le")


def make_demo_media(outdir: Path) -> dict[str, tuple[Path, str | None, str]]:
    """Write the demo batch; return name -> (path, spec to check it against, expected)."""
    clips = outdir / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    (outdir / "masters").mkdir(exist_ok=True)
    (outdir / "narration").mkdir(exist_ok=True)
    (outdir / "broken").mkdir(exist_ok=True)
    made: dict[str, tuple[Path, str | None, str]] = {}

    # What Lightricks/LTX-2's ltx-pipelines writes (encode_video in
    # ltx_pipelines/utils/media_io): PyAV's libx264 at crf 19, preset veryfast, with no
    # GOP option, so x264's default keyint 250 (one keyframe per clip); only the matrix
    # and range colour tags (no primaries or transfer); no faststart. Its HQ pipeline
    # writes 1920x1088 (1080 padded to a multiple of 64), LTX-2.0's vocoder gives 24 kHz
    # sound, and frame counts are 8k+1. 49 frames keep the demo quick.
    raw = write_clip(
        clips / "001_ltx2_raw.mp4",
        ClipSpec(
            width=1920,
            height=1088,
            seconds=49 / 24,
            video_options={
                "crf": "19",
                "preset": "veryfast",
                "x264-params": "keyint=250:scenecut=0",
            },
            gop=250,
            colour_tags=False,
            audio_rate=24000,
            audio_bit_rate=120000,
            audio_seconds=49 / 24 + 0.02,
            faststart=False,
            events=[0.5, 1.5],
        ),
    )
    made["LTX-2 raw render"] = (raw, "h264-review", "fail")
    review = write_clip(
        clips / "002_review.mp4",
        ClipSpec(
            width=640,
            height=360,
            seconds=4.0,
            gop=48,
            profile="high",
            video_options={"preset": "veryfast", "x264-params": _X264_2S_GOP},
            audio_bit_rate=192000,
            events=[1.0, 2.5],
        ),
    )
    made["review copy"] = (review, "h264-review", "pass")
    phone = write_clip(
        clips / "003_phone_vfr.mp4",
        ClipSpec(
            width=640,
            height=360,
            frame_times=vfr_times(3.0, 30.0, 0.25),
            video_options={"preset": "veryfast"},
            audio_bit_rate=128000,
        ),
    )
    made["phone clip (VFR)"] = (phone, "h264-review", "fail")
    master = write_clip(
        outdir / "masters" / "001_master.mov",
        ClipSpec(
            width=640,
            height=360,
            seconds=2.0,
            video_codec="prores_ks",
            pix_fmt="yuv422p10le",
            video_options={"profile": "3"},
            audio_codec="pcm_s24le",
            audio_bit_rate=None,
        ),
    )
    made["ProRes master"] = (master, "prores-master", "pass")
    narration = _narration(outdir / "narration" / "001_narration.wav")
    made["narration"] = (narration, "ltx2-audio", "pass")
    # What an interrupted MP4 write leaves: ftyp, then an mdat header, and no moov.
    broken = outdir / "broken" / "interrupted.mp4"
    atomic_write_bytes(
        broken,
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
        + b"\x00\x00\x00\x08free"
        + b"\x00\x00\x00\x00mdat",
        replace=True,
    )
    made["interrupted write"] = (broken, "h264-review", "error")
    return made


def _mark(good: bool) -> str:
    """The first column of every verdict: did handoff find what the demo made it to find?"""
    return "as expected  " if good else "UNEXPECTED   "


def _verdict_line(label: str, report: FileReport, expected: str) -> str:
    mark = _mark(report.status == expected)
    detail = ""
    if report.error:
        detail = report.error
    elif report.findings:
        detail = ", ".join(f.rule for f in report.findings if f.severity == "error") or ", ".join(
            f"{f.rule} (warning)" for f in report.findings
        )
    return f"  {mark}{label:20s} {report.status.upper():5s} {detail}"


def _demo_export(outdir: Path, made: dict[str, tuple[Path, str | None, str]], echo: Echo) -> bool:
    """Export the raw render and the phone clip as review copies and as ProRes masters."""
    echo("\n3. export: editor-ready files at 24 fps, 48 kHz, 2-second GOPs")
    sources = [made["LTX-2 raw render"][0], made["phone clip (VFR)"][0]]
    ok = True
    for preset, folder in (("h264-review", "review"), ("prores-master", "masters")):
        # The demo makes its media anew on every run: its earlier outputs are replaced.
        options = ExportOptions(
            fps=Fraction(24), out_dir=outdir / "export" / folder, overwrite=True
        )
        jobs, refused = plan_jobs(sources, preset, options, "pyav")
        results = refused + export_batch(jobs, 1)
        for r in results:
            if r.status != "done" or r.dest is None:
                ok = False
                echo(f"  {_mark(False)}{r.source.name} [{preset}] {r.status}: {r.error}")
                continue
            report = validate_file(r.dest, load_spec(preset))
            ok &= report.status == "pass"
            mark = _mark(report.status == "pass")
            echo(
                f"  {mark}{r.dest.relative_to(outdir)} [{preset}] validate "
                f"{report.status.upper()}  ({r.seconds:.1f} s)"
            )
            for note in r.notes:
                echo(f"       - {note}")
    return ok


def _demo_prep(outdir: Path, echo: Echo) -> bool:
    """Condition a quiet 150-second stereo narration at 44.1 kHz into LTX-2 segments."""
    echo("\n4. prep-audio: narration at -16 LUFS / -3 dBTP, cut at pauses")
    # Babble, not speech_like: its syllables never repeat, so the sync step cannot take a
    # picture a syllable off for one in sync; it pauses now and then, as a speaker
    # breathes, and here for 1.2 s between paragraphs, where prep-audio should cut.
    rate = 44100
    voice = babble(146.0, rate, level=0.05, seed=7)
    for t in (24.0, 51.0, 77.0, 104.0, 128.0):
        voice[round(t * rate) : round((t + 1.2) * rate)] = 0.0
    silence = np.zeros(2 * rate)
    mono = np.concatenate([silence, voice, silence]).astype(np.float32)
    source = write_wav(
        outdir / "narration" / "long_narration.wav", np.stack([mono, mono * 0.9]), rate
    )
    result = prep_audio(
        source, outdir / "conditioned", PrepOptions(name="narration", overwrite=True)
    )
    mark_output_folder(outdir / "conditioned", [source])
    spec = load_spec("ltx2-audio")
    ok = True
    m = result.master
    echo(
        f"  master {m.path.relative_to(outdir)}: gain {m.gain_db:+.1f} dB, "
        f"{m.integrated_lufs:.2f} LUFS, {m.true_peak_dbtp:.2f} dBTP"
    )
    for seg in result.segments:
        report = validate_file(seg.path, spec)
        ok &= report.status == "pass"
        mark = _mark(report.status == "pass")
        echo(
            f"  {mark}{seg.path.relative_to(outdir)} {seg.samples / 48000:.1f} s, "
            f"{seg.integrated_lufs:.2f} LUFS, {seg.true_peak_dbtp:.2f} dBTP, source "
            f"{seg.source_in / 48000:.1f}-{seg.source_out / 48000:.1f} s "
            f"[ltx2-audio] {report.status.upper()}"
        )
    echo(f"  -> {result.manifest_path.relative_to(outdir)}")
    return ok and len(result.segments) >= 2


def _demo_timeline(outdir: Path, echo: Echo) -> bool:
    """Stand-in renders for the conditioned segments, then a timeline in every format."""

    from handoff.timeline.project import timeline_from_paths

    echo("\n5. timeline: the renders on V1 where their narration is, the master locked on A1")
    manifest_path = outdir / "conditioned" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    # What a generator would hand back for each segment: a clip as long as the segment,
    # in a folder whose name carries the characters that break editors' imports.
    renders = outdir / "renders" / "Épisode 1 & co"
    renders.mkdir(parents=True, exist_ok=True)
    for seg in manifest["segments"]:
        write_clip(
            renders / f"{seg['index']:03d}_render.mp4",
            ClipSpec(
                width=640,
                height=360,
                fps=Fraction(24),
                seconds=seg["samples"] / 48000,
                gop=48,
                profile="high",
                video_options={"preset": "ultrafast", "x264-params": _X264_2S_GOP},
            ),
        )
    build = timeline_from_paths([renders], manifest_path=manifest_path, name="handoff demo")
    for c in build.summary()["clips"]:
        echo(
            f"  V1 {Path(c['path']).name}: frames {c['start']}-{c['end']} "
            f"(segment {c['segment']}, {c['rounding_ms']:+.1f} ms from exact)"
        )
    for note in build.notes:
        echo(f"       - {note}")
    names = [f"{seg['index']:03d}_render" for seg in manifest["segments"]]
    return _write_timelines(build, outdir / "timeline", outdir, names, echo, lock=True)


def _write_timelines(
    build: TimelineBuild,
    folder: Path,
    outdir: Path,
    names: Sequence[str],
    echo: Echo,
    *,
    lock: bool = False,
    audition: bool = False,
) -> bool:
    """Write the timeline in every format into ``folder`` and read each back: well-formed,
    every one of ``names`` in it (and an audition in the FCPXML when asked)."""
    from lxml import etree

    from handoff.timeline import FORMATS, render

    ok = True
    folder.mkdir(exist_ok=True)
    for fmt, about in FORMATS.items():
        dest = folder / f"{build.timeline.name}{about.suffix}"
        data = render(build.timeline, fmt)
        atomic_write_bytes(dest, data, replace=True)
        if fmt.endswith("otio"):
            text = json.dumps(json.loads(data))
        else:
            etree.fromstring(data)
            text = data.decode("utf-8")
        good = all(name in text for name in names)
        if audition and fmt == "fcpxml":
            good &= "<audition" in text
        ok &= good
        said = f"{about.editor}; {about.lock}" if lock else about.editor
        echo(f"  {_mark(good)}{dest.relative_to(outdir)} ({said})")
    return ok


_TAKE_SECONDS = 20.0
"""How much of segment 1 the stand-in takes cover: four of sync's 8-second drift windows
(a drift is fitted from three), and made and measured in a few seconds."""

# (file, what it is, the verdict it must get, how it was made). Named as a user names
# takes: the segment number first, so sync finds each take's narration.
_TAKES: tuple[tuple[str, str, str, TakeSpec], ...] = (
    ("001_scene_take1.mp4", "in sync", "in", TakeSpec()),
    ("001_scene_take2.mp4", "picture 2 frames late", "out", TakeSpec(picture_delay_s=2 / 24)),
    ("001_scene_take3.mp4", "picture 1 % slow, drifting", "out", TakeSpec(picture_stretch=1.01)),
)


def _signed(x: float | None, unit: str = " ms") -> str:
    if x is None:
        return "-"
    value = round(x, 1)
    return f"{value + 0.0 if value else 0.0:+.1f}{unit}"


def _take_line(r: TakeSync, expected: str) -> tuple[bool, str]:
    """One take's figures and whether its verdict is the one its making calls for."""
    a, p = r.audio, r.picture
    if r.status != "ok" or a is None:
        return False, f"  {_mark(False)}{r.name} ERROR {r.error}"
    figures = f"sound {_signed(a.offset_ms) if a.matched else 'not the narration'}"
    if p is not None:
        figures += f", picture {_signed(p.offset_ms)}"
        if p.drift_ms_per_min is not None and abs(p.drift_ms_per_min) >= 1.0:
            figures += f" drifting {_signed(p.drift_ms_per_min, ' ms/min')}"
    where = ""
    good = r.verdict == expected
    if r.verdict == "out":
        exceeds = None if p is None else p.exceeds_at_s
        if exceeds == 0.0:
            where = ": out from its first frame"
        elif exceeds is not None:
            where = f": out at {exceeds:.1f} s"
            if r.recut_at_s is not None:
                where += f", regenerate from {r.recut_at_s:.1f} s"
    mark = _mark(good)
    score = "-" if r.score is None else f"{r.score:5.1f}"
    wanted = "" if good else f" (should be {expected.upper()})"
    line = f"  {mark}{r.name} {r.verdict.upper():3s}  score {score}, {figures}{where}{wanted}"
    return good, line


def _demo_sync(outdir: Path, echo: Echo) -> bool:
    """Stand-in takes of segment 1 -- in sync, picture late, picture drifting -- measured
    against its narration; the best one picked and put on a timeline, the others beside it."""

    from handoff.timeline.project import timeline_from_selects

    echo("\n6. sync: three takes of segment 1 against its narration; the best one picked")
    manifest_path = outdir / "conditioned" / "manifest.json"
    manifest = load_manifest(manifest_path)
    segment = manifest.segments[0]
    narration = decode_audio(manifest_path.parent / segment.file)
    head = narration.samples[:, : round(_TAKE_SECONDS * narration.sample_rate)]
    folder = outdir / "takes"
    folder.mkdir(exist_ok=True)
    takes: list[Path] = []
    for name, what, _, spec in _TAKES:
        # Small and mono: what is measured does not need 1080p or two channels.
        small = replace(spec, width=160, height=120, audio_channels=1)
        takes.append(write_take(folder / name, head, narration.sample_rate, small).resolve())
        echo(f"  made {(folder / name).relative_to(outdir)}  ({what})")
    echo(
        f"       - the first {_TAKE_SECONDS:.0f} s of segment {segment.index} "
        f"({segment.file}), 160x120 at 24 fps"
    )

    plan = plan_sync(takes, manifest=manifest)
    results = run_sync(plan)
    ok = len(results) == len(_TAKES)
    for r, (_, _, expected, _) in zip(results, _TAKES, strict=False):
        good, line = _take_line(r, expected)
        ok &= good
        echo(line)
    # Beyond the verdicts: the late take is late by what it was made with (2 frames,
    # within half a frame), the drifting one goes out inside the take and has a pause in
    # the narration to regenerate from.
    late, drifting = results[1], results[2]
    exceeds = None if drifting.picture is None else drifting.picture.exceeds_at_s
    for good, wrong in (
        (
            late.picture is not None and abs(late.picture.offset_ms - 2000 / 24) < 1000 / 48,
            f"{late.name}: its picture should be 2 frames (83.3 ms) late",
        ),
        (
            exceeds is not None and 0.0 < exceeds < _TAKE_SECONDS,
            f"{drifting.name}: it should go out of tolerance inside the take",
        ),
        (drifting.recut_at_s is not None, f"{drifting.name}: it should have a re-cut point"),
    ):
        ok &= good
        if not good:
            echo(f"  !! {wrong}")
    document = sync_json(plan, results)
    atomic_write_bytes(outdir / "sync.json", json.dumps(document, indent=2).encode(), replace=True)
    echo("  -> sync.json")

    picked = selects_from_sync(document, relative_to=outdir)
    selects_path = outdir / "selects.json"
    write_selects(selects_path, picked, replace=True)
    chosen = picked["segments"][0] if len(picked["segments"]) == 1 else None

    def named(path: str) -> Path:  # selects paths are relative to the selects file
        return (outdir / path).resolve()

    good = (
        chosen is not None
        and named(chosen["pick"]) == takes[0].resolve()
        and [named(a) for a in chosen["alternates"]] == [t.resolve() for t in takes[1:]]
        and not chosen["regenerate"]
    )
    ok &= good
    if chosen is not None:
        alternates = ", ".join(Path(a).name for a in chosen["alternates"]) or "none"
        echo(
            f"  {_mark(good)}{selects_path.relative_to(outdir)}: segment "
            f"{chosen['segment']:03d} pick {Path(chosen['pick']).name}, alternates {alternates}"
        )
    else:
        echo(f"  !! {selects_path.relative_to(outdir)}: not one segment ({picked['segments']})")

    build = timeline_from_selects(selects_path)
    for c in [*build.placements, *build.alternates]:
        role = "the pick" if c.rank == 1 else "alternate, track disabled"
        moved = (
            "its sound not measured: placed unshifted"
            if c.offset_ms is None
            else f"its sound {_signed(c.offset_ms)} late: placed that much earlier"
        )
        echo(f"  V{c.rank} {c.source.path.name}: frames {c.start}-{c.end} ({role}; {moved})")
    ok &= [c.source.path.name for c in build.placements] == [takes[0].name]
    ok &= [c.source.path.name for c in build.alternates] == [t.name for t in takes[1:]]
    # The pick and both alternates in every format; FCPXML carries them as an audition.
    names = [t.stem for t in takes]
    return ok & _write_timelines(build, outdir / "edit", outdir, names, echo, audition=True)


def _deliver_once(
    outdir: Path, takes: Sequence[Path], backend: Any
) -> tuple[DeliveryPlan, DeliveryResult, dict[str, Record]]:
    """One ``handoff deliver demo-out/takes --manifest ... --out demo-out/delivery``, as
    the command runs it: the folder locked, every render and narration stamped (the
    journal's fingerprints reused), planned, run, journaled."""
    from handoff.deliver import (
        DeliverOptions,
        FolderLock,
        Journal,
        Stamper,
        plan_delivery,
        run_delivery,
    )

    # Absolute paths, as the journal keeps them: a run from another folder is the same run.
    manifest = load_manifest((outdir / "conditioned" / "manifest.json").absolute())
    folder = (outdir / "delivery").absolute()
    options = DeliverOptions(out=folder, manifest=manifest.path.absolute())
    with FolderLock(folder), Journal.open(folder) as journal:
        stamper = Stamper(journal.known_stamps())
        renders = [(take, stamper.stamp(take)) for take in takes]
        references: dict[Path, Any] = {
            ref: stamper.stamp(ref)
            for ref in (manifest.path.parent / seg.file for seg in manifest.segments)
        }
        plan = plan_delivery(
            renders, options, journal.latest, manifest=manifest, references=references
        )
        result = run_delivery(plan, journal, backend, references=references)
        latest = dict(journal.latest)
    return plan, result, latest


def _demo_deliver(outdir: Path, echo: Echo) -> bool:
    """The takes delivered in one resumable step -- received, mastered, measured, picked,
    laid out, reported -- into ``delivery/``, then delivered again: nothing to redo."""
    from handoff.deliver import InProcess, ProcessPool
    from handoff.jobs.parallel import usable_cores

    echo("\n7. deliver: the takes in one resumable command, into delivery/")
    folder = outdir / "delivery"
    takes = [(outdir / "takes" / name).absolute() for name, _, _, _ in _TAKES]
    cores = min(2, usable_cores())
    backend = ProcessPool(cores) if cores > 1 else InProcess()
    plan, result, latest = _deliver_once(outdir, takes, backend)
    echo(
        f"  {len(plan.renders)} render(s) on the {backend.name}: {result.ran} step(s) run, "
        f"{result.kept} kept from the journal ({folder.relative_to(outdir)}/journal.jsonl)"
    )
    ok = result.exit_code == 0
    rows = {row.render.name: row for row in result.renders}
    for name, _, expected, _ in _TAKES:
        master = latest.get(f"master:{outdir.absolute() / 'takes' / name}")
        sync = latest.get(f"sync:{outdir.absolute() / 'takes' / name}")
        row = rows.get(name)
        status = (master.result or {}).get("validation", {}).get("status") if master else None
        verdict = (sync.result or {}).get("sync", {}).get("verdict") if sync else None
        good = status == "pass" and verdict == expected and row is not None
        picked = row is not None and row.picked
        good &= picked == (expected == "in")
        ok &= good
        made = (
            Path(master.outputs[0].path).relative_to(outdir.absolute())
            if master and master.outputs
            else "no master"
        )
        score = "-" if row is None or row.score is None else f"{row.score:.1f}"
        echo(
            f"  {_mark(good)}{made} [prores-master] {(status or 'none').upper()}, "
            f"sync {(verdict or 'none').upper()} score {score}" + ("  PICK" if picked else "")
        )
    batch_ok = all(state in ("written", "kept") for state in result.batch.values())
    ok &= batch_ok and set(result.batch) == {"selects", "timeline", "report"}
    for name, state in result.batch.items():
        made = ", ".join(
            str(Path(p).relative_to(outdir.absolute())) for p in result.outputs.get(name, [])
        )
        echo(f"  {_mark(state in ('written', 'kept'))}{name}: {made}")
    # Run it again: every step is in the journal and every output as it was made, so
    # nothing is redone -- not a master, not the timeline, not the report.
    again_plan, again, _ = _deliver_once(outdir, takes, InProcess())
    nothing = (
        not again_plan.to_run
        and again.ran == 0
        and all(state == "kept" for state in again.batch.values())
        and again.exit_code == 0
    )
    ok &= nothing
    echo(
        f"  {_mark(nothing)}run again: {again.kept} step(s) kept, {again.ran} run; "
        f"selects, timeline and report kept"
    )
    return ok


_FOLDERS = (
    ".", "clips", "masters", "narration", "broken", "export/review", "export/masters",
    "conditioned", "renders/Épisode 1 & co", "timeline", "takes", "edit",
    "delivery", "delivery/masters", "delivery/timeline",
)  # fmt: skip
"""Every folder the demo writes into."""


def run_demo(outdir: Path, echo: Echo = print) -> bool:
    """Make the demo batch in ``outdir``, probe and validate it; True if every verdict held."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    echo(f"handoff demo: synthesising sample media in {outdir}")
    # A run into a folder an earlier demo filled replaces its files; what a killed run
    # left half-written there goes first.
    for part in clear_stale_parts(outdir / sub for sub in _FOLDERS):
        echo(f"  removed {part.relative_to(outdir)} (left by an earlier run that was stopped)")
    made = make_demo_media(outdir)
    for label, (path, _, _) in made.items():
        echo(f"  made {path.relative_to(outdir)}  ({label})")

    echo("\n1. probe: what each file is")
    facts = []
    for label, (path, _, _) in made.items():
        try:
            info = probe(path)
        except InputError as exc:
            facts.append(error_json(path, exc.message))
            echo(f"  {label:20s} unreadable: {exc.message}")
            continue
        facts.append(to_json(info))
        v, a = info.video, info.audio
        parts = []
        if v is not None:
            parts.append(
                f"{v.codec} {v.width}x{v.height} {v.frame_rate_mode} "
                f"{rate_text(v.fps, v.frame_rate_mode)}, "
                f"GOP {v.max_keyframe_interval_s:.2f} s"
            )
        if a is not None:
            parts.append(f"{a.codec} {a.sample_rate} Hz {channels_text(a.channels, a.layout)}")
        echo(f"  {label:20s} " + "; ".join(parts))
    atomic_write_bytes(outdir / "probe.json", json.dumps(facts, indent=2).encode(), replace=True)
    echo(f"  -> {outdir / 'probe.json'}")

    echo("\n2. validate: each file against its delivery spec")
    all_ok = True
    reports = []
    for label, (path, spec_name, expected) in made.items():
        if spec_name is None:
            continue
        report = validate_file(path, load_spec(spec_name))
        reports.append(report.to_json())
        all_ok &= report.status == expected
        echo(_verdict_line(f"{label} [{spec_name}]", report, expected))
    atomic_write_bytes(
        outdir / "validate.json", json.dumps(reports, indent=2).encode(), replace=True
    )
    echo(f"  -> {outdir / 'validate.json'}")

    all_ok &= _demo_export(outdir, made, echo)
    all_ok &= _demo_prep(outdir, echo)
    all_ok &= _demo_timeline(outdir, echo)
    all_ok &= _demo_sync(outdir, echo)
    all_ok &= _demo_deliver(outdir, echo)

    phone = next(f for f in facts if f["path"].endswith("003_phone_vfr.mp4"))
    if phone["video"]["frame_rate_mode"] != "VFR":
        all_ok = False
    echo(
        "\nDone: every verdict as expected."
        if all_ok
        else "\nSome verdicts were not what they should be (marked !!)."
    )
    return all_ok
