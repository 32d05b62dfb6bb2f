"""Conformance of the export engines: each must realise the plan's time model exactly.

Every source is made here. Its picture carries *flash* frames (all white) and its sound
1 kHz *beeps* at the same instants, and a bar that moves 7 px a frame, so each output
frame can be traced back to the source frame it shows. The outputs are read back with
PyAV (decode) and with handoff's own probe and validator.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from handoff.errors import ToolError
from handoff.export.engines import ENGINES, Engine, execute, ffmpeg_engine, pyav_engine
from handoff.export.plan import ExportOptions, ExportPlan, plan_export
from handoff.media.audio import decode_audio
from handoff.media.h264 import avcc_length_size, nal_unit_types
from handoff.media.synth import ClipSpec, vfr_times, write_clip
from handoff.probe.reader import MediaInfo, probe
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec
from tests.conftest import MakeDir, run_handoff

EXTENSION = {"h264-review": ".mp4", "prores-master": ".mov"}
RATE = 48000
WIDTH, HEIGHT = 320, 180
BAR_STEP = 7  # px the synth bar moves per source frame (handoff.media.synth._frame_image)
AAC_FRAME = 1024

# ------------------------------------------------------------------ reading outputs


@dataclass(frozen=True, slots=True)
class Picture:
    flashes: list[int]
    """Indices of white frames."""
    bars: list[float | None]
    """Left edge of the moving bar in each frame (None on a flash)."""


def read_picture(path: Path) -> Picture:
    flashes: list[int] = []
    bars: list[float | None] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24").astype(np.int32)
            if rgb.mean() > 200:
                flashes.append(i)
            # The background is a grey ramp (R = G = B); the bar is (40, 80, 120).
            row = rgb[rgb.shape[0] // 2]
            cols = np.flatnonzero(row[:, 2] - row[:, 0] > 40)
            bars.append(float(cols.mean()) - 7.5 if cols.size else None)
    return Picture(flashes, bars)


def beep_onsets(samples: npt.NDArray[np.float32], rate: int) -> list[float]:
    """Start times of the 1 kHz bursts: where the 1 ms mean square, centred, first
    reaches half its peak (a centred window crosses half energy at the onset itself)."""
    mono = samples.astype(np.float64).mean(axis=0)
    window = rate // 1000  # one period of 1 kHz: no ripple on the plateau
    energy = np.convolve(mono**2, np.ones(window) / window, mode="same")
    above = energy >= 0.5 * energy.max()
    rising = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    onsets: list[float] = []
    for i in rising:
        if not onsets or i / rate - onsets[-1] > 0.02:
            onsets.append(i / rate)
    return onsets


def source_frame_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        return [
            frame.pts * stream.time_base
            for frame in container.decode(stream)
            if frame.pts is not None
        ]


def time_model_violations(
    bars: Sequence[float | None], times: Sequence[Fraction], plan: ExportPlan
) -> list[str]:
    """Output frames that do not show a source frame nearest to their tick.

    Plan: output frame k shows the source frame nearest to v0 + (k / fps) / scale. The
    bar tells the shown frame apart from its neighbours (7 px per frame); on an exact
    tie either neighbour is accepted (the plan does not say which).
    """
    v = plan.video
    bad: list[str] = []
    period = WIDTH - 16
    for k, x in enumerate(bars):
        if x is None:
            continue
        tick = v.source_start + Fraction(k) / v.fps / v.scale
        near = sorted(range(len(times)), key=lambda i: abs(times[i] - tick))[:3]
        shown = min(near, key=lambda i: abs((BAR_STEP * i) % period - x))
        if abs((BAR_STEP * shown) % period - x) > 2:
            bad.append(f"frame {k}: bar at {x:.1f} px is none of source frames {near}")
        elif abs(times[shown] - tick) != abs(times[near[0]] - tick):
            bad.append(f"frame {k}: shows source frame {shown}, nearest is {near[0]}")
    return bad


def fps_filter_choice(times: Sequence[Fraction], fps: Fraction, frames: int) -> list[int]:
    """What ffmpeg's ``fps=round=near`` alone would show: for each tick, the last frame
    whose time rounds (half up) to that tick or before it (libavfilter/vf_fps.c)."""
    rounded = [math.floor(t * fps + Fraction(1, 2)) for t in times]
    return [max(i for i, r in enumerate(rounded) if r <= k or i == 0) for k in range(frames)]


def nearest_choice(times: Sequence[Fraction], fps: Fraction, frames: int) -> list[int]:
    return [
        min(range(len(times)), key=lambda i: (abs(times[i] - Fraction(k) / fps), times[i]))
        for k in range(frames)
    ]


# ------------------------------------------------------------------ making sources


def vfr_with_events(seconds: float, events: Sequence[Fraction]) -> list[Fraction]:
    """VFR frame times around 30 fps (+/- 25 %), with the frame nearest each event moved
    onto it: the source then has flash and beep at the same instant (the synth puts the
    flash on the nearest frame and the beep at the exact instant, so otherwise the
    source itself would be up to half a frame out)."""
    times = vfr_times(seconds, 30, 0.25)
    for e in events:
        i = min(range(len(times)), key=lambda j: abs(times[j] - e))
        assert times[i - 1] < e < times[i + 1]
        times[i] = e
    return times


def write_offset_clip(
    path: Path,
    *,
    video_start: Fraction,
    audio_start: Fraction,
    events: Sequence[Fraction],
    fps: int = 24,
    seconds: int = 3,
) -> Path:
    """A MOV whose sound starts at another time than its picture (PCM, so no encoder
    delay blurs where it starts). Flash and beep at each event, in source time."""
    tb = Fraction(1, 90000)
    with av.open(str(path), "w", format="mov") as out:
        video = out.add_stream("libx264", rate=fps)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.time_base = tb
        video.codec_context.time_base = tb
        video.options = {"preset": "ultrafast"}
        sound = out.add_stream("pcm_s16le", rate=RATE, layout="stereo")
        assert isinstance(sound, av.AudioStream)
        ramp = (np.arange(WIDTH) * 160 // (WIDTH - 1)).astype(np.uint8)
        flash_frames = {round((e - video_start) * fps) for e in events}
        for i in range(seconds * fps):
            img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            img[:] = ramp[None, :, None]
            x = (i * BAR_STEP) % (WIDTH - 16)
            img[:, x : x + 16] = (40, 80, 120)
            if i in flash_frames:
                img[:] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = round((video_start + Fraction(i, fps)) / tb)
            frame.time_base = tb
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        n = seconds * RATE
        rng = np.random.default_rng(7)
        track = (rng.standard_normal((2, n)) * 0.001).astype(np.float32)
        beep_n = RATE // 20
        beep = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(beep_n) / RATE)
        for e in events:
            start = round((e - audio_start) * RATE)
            track[:, start : start + beep_n] += beep.astype(np.float32)
        pcm = (np.clip(track, -1, 1) * 32767).astype(np.int16)
        first = round(audio_start * RATE)
        for start in range(0, n, AAC_FRAME):
            block = np.ascontiguousarray(pcm[:, start : start + AAC_FRAME].T).reshape(1, -1)
            aframe = av.AudioFrame.from_ndarray(block, format="s16", layout="stereo")
            aframe.sample_rate = RATE
            aframe.pts = first + start
            aframe.time_base = Fraction(1, RATE)
            for packet in sound.encode(aframe):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    return path


def export(
    source: Path | MediaInfo,
    preset: str,
    engine: Engine,
    out_dir: Path,
    **options: object,
) -> tuple[ExportPlan, Path]:
    info = source if isinstance(source, MediaInfo) else probe(source)
    dest = out_dir / f"{info.path.stem}-{engine}{EXTENSION[preset]}"
    plan = plan_export(info, load_spec(preset), ExportOptions(**options), dest=dest)  # type: ignore[arg-type]
    execute(plan, dest, engine)
    return plan, dest


# ------------------------------------------------------------------ shared checks


def check_deliverable(plan: ExportPlan, out: Path, preset: str) -> None:
    """CFR at the plan's rate, 48 kHz, GOP per preset, exact lengths, passes its spec."""
    info = probe(out)
    v, a = info.video, info.audio
    assert v is not None and a is not None and plan.audio is not None
    assert v.frame_rate_mode == "CFR"
    assert v.fps == plan.video.fps
    assert v.frames == plan.video.frames
    assert v.start_s == 0.0 and a.start_s == 0.0
    assert a.sample_rate == RATE
    if preset == "h264-review":
        assert v.max_keyframe_interval_s <= 2.0 + 1e-9
        assert v.all_keyframes_idr is True
    else:
        assert v.intra_only
    # Audio and video end together: the plan rounds to the nearest sample.
    assert abs(a.duration_s - v.duration_s) <= 1 / RATE
    # The container holds exactly the plan's samples (the edit list for AAC)...
    assert round(a.duration_s * RATE) == plan.audio.samples
    # ...and the decoder gives them all. FFmpeg's AAC decoder does not apply the end of
    # the edit list: it returns whole 1024-sample frames, so for AAC the decoded count
    # is the plan's count rounded up to a frame (priming is trimmed exactly).
    decoded = decode_audio(out).samples.shape[1]
    if a.codec == "aac":
        assert decoded == -(-plan.audio.samples // AAC_FRAME) * AAC_FRAME
    else:
        assert decoded == plan.audio.samples
    report = validate_file(out, load_spec(preset))
    assert report.status == "pass", report.findings
    assert not report.findings, report.findings


def sync_errors(out: Path, fps: Fraction, expected: Sequence[Fraction]) -> list[float]:
    """|flash - beep| per event, in seconds, after checking both land where expected."""
    picture = read_picture(out)
    decoded = decode_audio(out)
    beeps = beep_onsets(decoded.samples, decoded.sample_rate)
    flashes = [Fraction(k) / fps for k in picture.flashes]
    assert len(flashes) == len(expected), (picture.flashes, expected)
    assert len(beeps) == len(expected), (beeps, expected)
    errors = []
    for flash, beep, e in zip(flashes, beeps, expected, strict=True):
        # Each event is on an output tick: the flash lands exactly on it...
        assert abs(flash - e) <= 1 / (2 * fps)
        assert flash == e
        # ...and the sound stays within 1 ms of it (the onset detector reads about
        # 0.2 ms late; resampling and AAC add less than that).
        assert abs(beep - float(e)) < 0.001
        errors.append(abs(float(flash) - beep))
    assert max(errors) <= 1 / (2 * float(fps))
    return errors


# ------------------------------------------------------------------ sync through VFR

VFR_EVENTS = (Fraction(1, 2), Fraction(3, 2), Fraction(5, 2))
"""On ticks of both 24 and 30 fps (multiples of 1/6 s), so the flash frame is the
source frame nearest to an output tick and the expected error is zero."""


@pytest.fixture(scope="module")
def vfr_source(module_tmp: MakeDir) -> Path:
    folder = module_tmp("vfr")
    times = vfr_with_events(3.5, VFR_EVENTS)
    events = tuple(float(e) for e in VFR_EVENTS)  # halves: exact as floats
    spec = ClipSpec(width=WIDTH, height=HEIGHT, frame_times=times, events=events)
    return write_clip(folder / "vfr.mp4", spec)


def test_vfr_source_is_a_real_test(vfr_source: Path) -> None:
    """The source is VFR, and nearest-frame choice differs from what the fps filter
    alone would pick on it: an engine that just used ``fps=round=near`` fails below."""
    info = probe(vfr_source)
    assert info.video is not None and info.video.frame_rate_mode == "VFR"
    times = source_frame_times(vfr_source)
    for fps in (Fraction(24), Fraction(30)):
        frames = round(info.video.duration_s * fps)
        assert fps_filter_choice(times, fps, frames) != nearest_choice(times, fps, frames)


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30)], ids=["24", "30"])
@pytest.mark.parametrize("preset", ["h264-review", "prores-master"])
@pytest.mark.parametrize("engine", ENGINES)
def test_sync_through_vfr(
    vfr_source: Path, engine: Engine, preset: str, fps: Fraction, tmp_path: Path
) -> None:
    plan, out = export(vfr_source, preset, engine, tmp_path, fps=fps)
    assert plan.video.conversion == "nearest"
    sync_errors(out, fps, VFR_EVENTS)
    picture = read_picture(out)
    assert time_model_violations(picture.bars, source_frame_times(vfr_source), plan) == []
    check_deliverable(plan, out, preset)


# ------------------------------------------------------------------ LTX-2-like input


@pytest.mark.parametrize("preset", ["h264-review", "prores-master"])
@pytest.mark.parametrize("engine", ENGINES)
def test_ltx2_like_source(engine: Engine, preset: str, tmp_path: Path) -> None:
    """1920x1088 (1080 padded), 24 kHz sound, one keyframe, no colour tags."""
    spec = ClipSpec(
        width=1920,
        height=1088,
        fps=Fraction(24),
        seconds=0.5,
        colour_tags=False,
        audio_rate=24000,
        audio_bit_rate=128000,
        video_options={"preset": "ultrafast"},
        events=(0.25,),
    )
    source = write_clip(tmp_path / "ltx.mp4", spec)
    info = probe(source)
    assert info.video is not None and info.video.keyframes == 1
    assert info.video.color_primaries is None
    plan, out = export(info, preset, engine, tmp_path)
    result = probe(out)
    v = result.video
    assert v is not None and (v.width, v.height) == (1920, 1080)
    assert (v.color_primaries, v.color_transfer, v.color_matrix) == ("bt709",) * 3
    assert v.color_range == "tv"
    sync_errors(out, Fraction(24), [Fraction(1, 4)])
    check_deliverable(plan, out, preset)


# ------------------------------------------------------------------ 25 fps sources


def write_rate_clip(folder: Path, fps: int) -> Path:
    spec = ClipSpec(width=WIDTH, height=HEIGHT, fps=Fraction(fps), seconds=3.0, events=(1.0, 2.0))
    return write_clip(folder / f"s{fps}.mp4", spec)


def plan_24(source: Path, preset: str, dest: Path) -> ExportPlan:
    """The plan most engine tests run: ``source`` to ``preset`` at 24 fps, frames dropped."""
    return plan_export(
        probe(source),
        load_spec(preset),
        ExportOptions(fps=Fraction(24), rate_conversion="drop"),
        dest=dest,
    )


@pytest.fixture(scope="module")
def source_25(module_tmp: MakeDir) -> Path:
    return write_rate_clip(module_tmp("s25"), 25)


@pytest.fixture(scope="module")
def source_50(module_tmp: MakeDir) -> Path:
    return write_rate_clip(module_tmp("s50"), 50)


@pytest.mark.parametrize("source_fps", [25, 50])
@pytest.mark.parametrize("preset", ["h264-review", "prores-master"])
@pytest.mark.parametrize("engine", ENGINES)
def test_retime_to_24(
    request: pytest.FixtureRequest, source_fps: int, engine: Engine, preset: str, tmp_path: Path
) -> None:
    """25 -> 24 keeps every frame, 50 -> 24 every 2nd; both 25/24 times as long."""
    source: Path = request.getfixturevalue(f"source_{source_fps}")
    info = probe(source)
    assert info.video is not None
    plan, out = export(info, preset, engine, tmp_path, fps=Fraction(24), rate_conversion="retime")
    assert plan.video.scale == Fraction(25, 24)
    assert plan.video.step == source_fps // 25
    result = probe(out)
    assert result.video is not None
    assert result.video.frames == info.video.frames // plan.video.step == 75
    assert result.video.duration_s == pytest.approx(info.video.duration_s * 25 / 24, abs=1e-9)
    # Source frame i * step is output frame i: the flashes (source 1 s and 2 s) stay on
    # output frames 25 and 50.
    picture = read_picture(out)
    assert picture.flashes == [25, 50]
    assert time_model_violations(picture.bars, source_frame_times(source), plan) == []
    # The sound is stretched with the picture, so the beeps move to 25/24 of their time.
    sync_errors(out, Fraction(24), [Fraction(25, 24), Fraction(50, 24)])
    check_deliverable(plan, out, preset)


@pytest.mark.parametrize("engine", ENGINES)
def test_drop_25_to_24_keeps_duration(source_25: Path, engine: Engine, tmp_path: Path) -> None:
    info = probe(source_25)
    assert info.video is not None
    plan, out = export(
        info, "h264-review", engine, tmp_path, fps=Fraction(24), rate_conversion="drop"
    )
    result = probe(out)
    assert result.video is not None
    assert result.video.frames == 72
    assert result.video.duration_s == pytest.approx(info.video.duration_s, abs=1e-9)
    # 25 -> 24 has exact ties (tick 12 at 0.5 s is 0.02 s from frames 12 and 13).
    picture = read_picture(out)
    assert time_model_violations(picture.bars, source_frame_times(source_25), plan) == []
    sync_errors(out, Fraction(24), [Fraction(1), Fraction(2)])
    check_deliverable(plan, out, "h264-review")


def write_held_last_frame(path: Path, hold: Fraction) -> Path:
    """24 fps, one second, no sound, the last frame shown for ``hold`` seconds (a
    screen recorder writes a frame only when something changes)."""
    tb = Fraction(1, 90000)
    with av.open(str(path), "w", format="mov") as out:
        video = out.add_stream("libx264", rate=24)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.time_base = tb
        video.codec_context.time_base = tb
        video.options = {"preset": "ultrafast"}  # no B-frames: the last packet is the last frame
        packets = []
        for i in range(24):
            img = np.full((HEIGHT, WIDTH, 3), 255 if i == 23 else 40, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = round(Fraction(i, 24) / tb)
            frame.time_base = tb
            packets += video.encode(frame)
        packets += video.encode(None)
        packets[-1].duration = round(hold / tb)
        for packet in packets:
            out.mux(packet)
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_held_last_frame_fills_the_plan(engine: Engine, tmp_path: Path) -> None:
    """Ticks after the last frame's start show it, up to the plan's frame count."""
    source = write_held_last_frame(tmp_path / "held.mov", Fraction(1, 2))
    # No sound in the source: h264-review requires a track, so a silent one is asked for.
    plan, out = export(source, "h264-review", engine, tmp_path, fps=Fraction(30), add_silence=True)
    # 23/24 s + 0.5 s at 30 fps: 44 frames, the last 15 of them the held (white) one.
    assert plan.video.frames == 44
    picture = read_picture(out)
    assert len(picture.bars) == 44
    assert picture.flashes == list(range(29, 44))


# ------------------------------------------------------------------ stream offsets


@pytest.mark.parametrize(
    ("video_start", "audio_start"),
    [(Fraction(0), Fraction(1, 4)), (Fraction(1, 2), Fraction(1, 4))],
    ids=["audio-late", "audio-early"],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_stream_offset_is_kept(
    engine: Engine, video_start: Fraction, audio_start: Fraction, tmp_path: Path
) -> None:
    """Output time 0 is the first picture; the sound keeps its place against it."""
    events = (Fraction(1), Fraction(2))
    source = write_offset_clip(
        tmp_path / "offset.mov", video_start=video_start, audio_start=audio_start, events=events
    )
    info = probe(source)
    assert info.video is not None and info.audio is not None
    assert info.video.start_s == video_start and info.audio.start_s == audio_start
    plan, out = export(info, "h264-review", engine, tmp_path, fps=Fraction(24))
    assert plan.audio is not None
    assert plan.audio.offset_samples == (audio_start - video_start) * RATE
    sync_errors(out, Fraction(24), [e - video_start for e in events])
    samples = decode_audio(out).samples
    head = samples[:, : int(0.2 * RATE)]
    if audio_start > video_start:
        # Silence before the sound starts (AAC may smear a little across 0.25 s).
        assert np.abs(head).max() < 1e-4
    else:
        # The sound from before the picture is cut: its noise bed is there at once.
        assert np.sqrt(np.mean(head**2)) > 3e-4
    check_deliverable(plan, out, "h264-review")


# ------------------------------------------------------------------ no sound


@pytest.mark.parametrize("preset", ["h264-review", "prores-master"])
@pytest.mark.parametrize("engine", ENGINES)
def test_add_silence(engine: Engine, preset: str, tmp_path: Path) -> None:
    spec = ClipSpec(width=WIDTH, height=HEIGHT, fps=Fraction(30), seconds=2.0, audio_rate=None)
    source = write_clip(tmp_path / "mute.mp4", spec)
    plan, out = export(source, preset, engine, tmp_path, add_silence=True)
    assert plan.audio is not None and plan.audio.source_index is None
    decoded = decode_audio(out)
    assert decoded.channels == 2
    assert np.abs(decoded.samples).max() == 0.0
    check_deliverable(plan, out, preset)


# ------------------------------------------------------------------ rotation


@pytest.mark.parametrize("with_sound", [True, False], ids=["sound", "mute"])
@pytest.mark.parametrize(
    ("display_rotation", "dark_side"),
    # ffmpeg's -display_rotation is counter-clockwise: the ramp's dark left edge turns
    # to the bottom at 90, to the top at 270, to the right at 180 (as ffmpeg's own
    # autorotate shows it).
    [(90, "bottom"), (270, "top"), (180, "right")],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_rotation_stands_upright(
    engine: Engine, display_rotation: int, dark_side: str, with_sound: bool, tmp_path: Path
) -> None:
    spec = ClipSpec(
        width=WIDTH,
        height=HEIGHT,
        fps=Fraction(24),
        seconds=0.5,
        audio_rate=RATE if with_sound else None,
    )
    plain = write_clip(tmp_path / "plain.mp4", spec)
    source = tmp_path / "rotated.mp4"
    # Only the ffmpeg CLI writes a display matrix here; PyAV has no setter for it.
    argv = [ffmpeg_engine.find_ffmpeg(), "-nostdin", "-loglevel", "error", "-y"]
    argv += ["-display_rotation", str(display_rotation), "-i", str(plain), "-c", "copy"]
    subprocess.run([*argv, str(source)], check=True)
    # A mute source gets a silent track: h264-review requires sound.
    plan, out = export(source, "h264-review", engine, tmp_path, add_silence=True)
    assert plan.video.rotation == (-display_rotation) % 360
    with av.open(str(out)) as container:
        luma = next(container.decode(video=0)).to_ndarray(format="gray").astype(float)
    h, w = luma.shape
    assert (w, h) == ((HEIGHT, WIDTH) if display_rotation in (90, 270) else (WIDTH, HEIGHT))
    sides = {
        "top": luma[: h // 4].mean(),
        "bottom": luma[-h // 4 :].mean(),
        "left": luma[:, : w // 4].mean(),
        "right": luma[:, -w // 4 :].mean(),
    }
    assert min(sides, key=lambda k: sides[k]) == dark_side
    # Turned once: no display matrix left for a player to turn it again.
    result = probe(out)
    assert result.video is not None and result.video.rotation == 0


# ------------------------------------------------------------------ running


@pytest.mark.parametrize("engine", ENGINES)
def test_progress_reaches_the_end(source_25: Path, engine: Engine, tmp_path: Path) -> None:
    plan = plan_24(source_25, "h264-review", tmp_path / "p.mp4")
    calls: list[tuple[int, int]] = []
    execute(plan, plan.dest, engine, lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (plan.video.frames, plan.video.frames)
    done = [c[0] for c in calls]
    assert done == sorted(done) and all(t == plan.video.frames for _, t in calls)


@pytest.mark.parametrize("engine", ENGINES)
def test_encoder_failure_is_one_line_tool_error(
    source_25: Path, engine: Engine, tmp_path: Path
) -> None:
    plan = plan_24(source_25, "h264-review", tmp_path / "bad.mp4")
    options = {**plan.video.options, "profile": "no-such-profile"}
    broken = replace(plan, video=replace(plan.video, options=options))
    with pytest.raises(ToolError) as caught:
        execute(broken, broken.dest, engine)
    assert caught.value.path == plan.source
    assert "\n" not in str(caught.value)


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "handoff-pyav-read"]


def test_pyav_interrupted_stops_its_reading_thread(source_25: Path, tmp_path: Path) -> None:
    # Ctrl-C and SIGTERM (processes.Terminated) arrive on the caller's thread, which
    # encodes while a second thread decodes: the interrupt must stop and join it.
    plan = plan_24(source_25, "prores-master", tmp_path / "cut.mov")

    def interrupt(done: int, total: int) -> None:
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(plan, plan.dest, "pyav", interrupt)
    assert _readers() == []


def test_pyav_encoder_failure_stops_its_reading_thread(source_25: Path, tmp_path: Path) -> None:
    plan = plan_24(source_25, "h264-review", tmp_path / "bad.mp4")
    options = {**plan.video.options, "profile": "no-such-profile"}
    with pytest.raises(ToolError):
        execute(replace(plan, video=replace(plan.video, options=options)), plan.dest, "pyav")
    assert _readers() == []


def test_pyav_reader_errors_reach_the_caller_and_a_full_queue_unblocks() -> None:
    # The reading thread's own failures (a filter graph, "no picture could be decoded")
    # are raised on the caller's thread; a reader waiting on a full queue is released
    # when the caller stops.
    handover = pyav_engine._Handover()
    reader = threading.Thread(
        target=handover.produce, args=(lambda: _raise(ToolError("no picture")),)
    )
    reader.start()
    with pytest.raises(ToolError, match="no picture"):
        handover.get()
    handover.stop(reader)
    assert not reader.is_alive()

    blocked = pyav_engine._Handover()
    stream = av.open(io.BytesIO(), "w", format="mov").add_stream("prores_ks", rate=24)
    item = pyav_engine._Encode(stream, None, 0, Fraction(1, 24))
    filler = threading.Thread(target=blocked.produce, args=(lambda: _fill(blocked, item),))
    filler.start()
    while not blocked.items.full():
        time.sleep(0.01)
    blocked.stop(filler)
    assert not filler.is_alive()


def _raise(exc: Exception) -> None:
    raise exc


def _fill(handover: pyav_engine._Handover, item: pyav_engine._Encode) -> None:
    while True:  # ended only by stop(): put raises once the caller has stopped
        handover.put(item)


def test_pyav_output_is_the_same_bytes_every_run(source_25: Path, tmp_path: Path) -> None:
    # Encoding and muxing run on one thread in the order the reader hands frames over,
    # so thread timing cannot reorder the file; prores_ks is deterministic.
    plan = plan_24(source_25, "prores-master", tmp_path / "a.mov")
    outputs = [tmp_path / "a.mov", tmp_path / "b.mov"]
    for out in outputs:
        execute(plan, out, "pyav")
    first, second = (out.read_bytes() for out in outputs)
    assert len(first) > 100_000 and first == second


def _h264_pictures(path: Path) -> tuple[list[bytes], list[int], str]:
    """The video packets, the slices in each, and x264's settings SEI (its version and
    options, written into the first picture)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        size = avcc_length_size(stream.codec_context.extradata)
        packets = [bytes(p) for p in c.demux(stream) if p.size]
    slices = [sum(t in (1, 5) for t in nal_unit_types(p, size)) for p in packets]
    found = re.search(rb"x264 - core [ -~]+", packets[0])
    assert found, "no x264 settings SEI in the first picture"
    return packets, slices, found.group().decode()


def test_h264_is_encoded_as_the_ffmpeg_cli_encodes_it(source_25: Path, tmp_path: Path) -> None:
    """Both engines run libx264 with frame threads: one slice per picture, the same x264
    options; with the same libx264 build the pictures are the same bytes. (PyAV's own
    default, slice threads, cut every picture into one slice per thread.)"""
    results = {}
    for engine in ENGINES:
        # Each export in a fresh process, as a user runs it: several PyAV exports in one
        # process have been seen to give H.264 bytes that differ between runs (not yet
        # explained), which one export per process does not.
        out = tmp_path / engine
        args = ["--preset", "h264-review", "--fps", "24", "--rate-conversion", "drop"]
        done = run_handoff("export", str(source_25), *args, "--engine", engine, "--out", str(out))
        assert done.returncode == 0, done.stderr
        results[engine] = _h264_pictures(out / f"{source_25.stem}.mp4")
    (ours, our_slices, our_sei), (cli, cli_slices, cli_sei) = results["pyav"], results["ffmpeg"]
    assert set(our_slices) == {1} and set(cli_slices) == {1}
    assert "sliced_threads=0" in our_sei
    # "x264 - core N - ... - options: ...": the same options always; the same build
    # (core and copyright years) gives the same pictures.
    our_build, our_options = our_sei.split(" - options: ")
    cli_build, cli_options = cli_sei.split(" - options: ")
    assert our_options == cli_options
    if our_build == cli_build:
        assert ours == cli


# ------------------------------------------------------------------ the ffmpeg command


@pytest.fixture(scope="module")
def review_plan(source_25: Path) -> ExportPlan:
    """Both streams encoded (its AAC would otherwise be copied as it is; the command of
    a copy: tests/test_conform.py)."""
    options = ExportOptions(fps=Fraction(24), rate_conversion="drop", reencode=True)
    return plan_export(
        probe(source_25), load_spec("h264-review"), options, dest=Path("/nonexistent/out.mp4")
    )


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_command_is_pure_and_plan_driven(review_plan: ExportPlan) -> None:
    # A source and destination that do not exist: building the command reads nothing.
    plan = replace(review_plan, source=Path("/nonexistent/in.mp4"))
    argv = ffmpeg_engine.command(plan, Path("/nonexistent/out.part.mp4"))
    assert argv == ffmpeg_engine.command(plan, Path("/nonexistent/out.part.mp4"))
    assert argv[0] == "ffmpeg" and argv[-1] == "/nonexistent/out.part.mp4"
    i = argv.index("-i")
    assert argv[i + 1] == "/nonexistent/in.mp4"
    assert "-copyts" in argv[:i] and "-noautorotate" in argv[:i]
    graph = option(argv, "-filter_complex")
    assert "fps=fps=24/1:round=near" in graph
    assert f"trim=end_frame={plan.video.frames}" in graph
    assert plan.audio is not None
    assert f"atrim=end_sample={plan.audio.samples}" in graph
    assert "aresample=ochl=stereo:osr=48000" in graph
    assert "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv" in graph
    assert option(argv, "-fps_mode:v") == "passthrough"
    assert option(argv, "-frames:v") == str(plan.video.frames)
    assert option(argv, "-c:v") == "libx264" and option(argv, "-profile:v") == "high"
    assert option(argv, "-g:v") == "48"
    assert option(argv, "-x264-params:v") == "keyint=48:min-keyint=48:scenecut=0:open-gop=0"
    assert option(argv, "-c:a") == "aac" and option(argv, "-b:a") == "224000"
    assert option(argv, "-movflags") == "+faststart+negative_cts_offsets"
    assert option(argv, "-movie_timescale") == "48000"
    assert option(argv, "-f") == "mp4"


def test_command_follows_the_plan(review_plan: ExportPlan) -> None:
    """Retime, rotation, crop, silence and ProRes settings come from the plan fields."""
    v = replace(
        review_plan.video,
        scale=Fraction(25, 24),
        rotation=90,
        crop=None,
        codec="prores_ks",
        pix_fmt="yuv422p10le",
        options={"profile": "3", "vendor": "apl0"},
        gop=None,
    )
    assert review_plan.audio is not None
    a = replace(review_plan.audio, codec="pcm_s24le", bit_rate=None, offset_samples=-480)
    plan = replace(review_plan, video=v, audio=a, format="mov", format_options={})
    argv = ffmpeg_engine.command(plan, Path("out.mov"), ffmpeg="/opt/ff")
    graph = option(argv, "-filter_complex")
    assert argv[0] == "/opt/ff"
    assert "transpose=clock" in graph and "crop=" not in graph
    assert "aresample=ochl=stereo:osr=50000" in graph and "asetrate=48000" in graph
    assert "atrim=start_sample=480" in graph
    assert option(argv, "-profile:v") == "3" and option(argv, "-vendor:v") == "apl0"
    assert "-g:v" not in argv and "-b:a" not in argv and "-movflags" not in argv
    silent = replace(plan, audio=replace(a, source_index=None))
    argv = ffmpeg_engine.command(silent, Path("out.mov"))
    assert option(argv, "-f") == "lavfi" and "anullsrc=r=48000:cl=stereo" in argv


def test_find_ffmpeg_honours_override_and_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = ffmpeg_engine.find_ffmpeg()
    monkeypatch.setenv("HANDOFF_FFMPEG", real)
    assert ffmpeg_engine.find_ffmpeg() == real
    assert ffmpeg_engine.ffmpeg_binary().found_by == "HANDOFF_FFMPEG"
    monkeypatch.setenv("HANDOFF_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(ToolError, match="HANDOFF_FFMPEG"):
        ffmpeg_engine.find_ffmpeg()
    # Without the override: imageio-ffmpeg's binary (a dev dependency), whatever PATH
    # holds -- the build the conformance tests pass on, not whichever ffmpeg came first.
    monkeypatch.delenv("HANDOFF_FFMPEG")
    monkeypatch.setenv("PATH", str(tmp_path))
    chosen = ffmpeg_engine.ffmpeg_binary()
    assert "imageio_ffmpeg" in chosen.path and Path(chosen.path).is_file()
    assert chosen.found_by == "imageio-ffmpeg" and chosen.version[0].isdigit()


def _fake_ffmpeg(folder: Path, version_line: str) -> Path:
    """A program that answers ``-version`` as an ffmpeg of that version would (it is
    never asked to encode: an old version is refused before it runs)."""
    exe = folder / "ffmpeg"
    exe.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    exe.chmod(0o755)
    return exe


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026 the FFmpeg developers", True),
        ("ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021", True),
        ("ffmpeg version n7.1 Copyright (c) 2000-2024 the FFmpeg developers", False),
        ("ffmpeg version N-118000-g1234abcd Copyright (c) 2000-2025", False),
    ],
)
def test_an_ffmpeg_too_old_is_refused_naming_its_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, line: str, refused: bool
) -> None:
    exe = _fake_ffmpeg(tmp_path, line)
    monkeypatch.setenv("HANDOFF_FFMPEG", str(exe))
    if refused:
        version = line.split()[2]
        with pytest.raises(ToolError, match=rf"ffmpeg {re.escape(version)} .* older than 6\.0"):
            ffmpeg_engine.ffmpeg_binary()
    else:
        assert ffmpeg_engine.ffmpeg_binary().path == str(exe)


def test_a_distribution_ffmpeg_on_path_does_not_displace_the_wheel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With an ffmpeg on PATH (Debian's 5.1 on most Linux workstations), the engine still
    runs imageio-ffmpeg's; the PATH one is used only without the wheel, and refused
    when too old (checked against the real binary when the machine has one)."""
    system = shutil.which("ffmpeg")
    if system is None:
        pytest.skip("no ffmpeg on PATH on this machine")
    monkeypatch.delenv("HANDOFF_FFMPEG", raising=False)
    assert ffmpeg_engine.ffmpeg_binary().found_by == "imageio-ffmpeg"
    text, number = ffmpeg_engine.ffmpeg_version(system)
    if number is not None and number < ffmpeg_engine.MIN_VERSION:
        monkeypatch.setenv("HANDOFF_FFMPEG", system)
        with pytest.raises(ToolError, match=re.escape(f"ffmpeg {text} ")):
            ffmpeg_engine.ffmpeg_binary()
