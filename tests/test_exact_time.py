"""Exact time end to end: an odd time base survives probe -> plan -> both engines ->
timeline as the same fractions, compared as fractions (never floats with a tolerance).

The sources start an hour in, a tick off any frame or sample boundary of the other
stream: there a float second no longer holds the exact time (3600 + 12345/90000 s as
a double, brought back with ``limit_denominator(10**9)``, is 2927808357470/813249113).
Each frame carries its own index as ten black or white blocks, so the output is read
back frame by frame; the sound is PCM noise, so a PCM output is compared sample by
sample.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import opentimelineio as otio
import pytest
from lxml import etree

from handoff.export.engines import ENGINES, Engine, execute, ffmpeg_engine
from handoff.export.plan import ExportOptions, ExportPlan, plan_export
from handoff.media.audio import decode_audio
from handoff.media.synth import write_wav
from handoff.probe.reader import fraction_str, probe, to_json
from handoff.probe.timing import analyse_frame_times
from handoff.timeline import render
from handoff.timeline.project import timeline_from_paths
from handoff.validate.spec import load_spec
from tests.conftest import MakeDir

NTSC = Fraction(30000, 1001)
VIDEO_TB = Fraction(1, 90000)
HOUR_TICKS = 3600 * 90000
BITS = 11  # frame index in 11 blocks of 16 px: up to 2047 frames
WIDTH, HEIGHT = 16 * BITS, 32
OUT_RATE = 48000


@dataclass(frozen=True, slots=True)
class OddSource:
    path: Path
    video_start: int
    """First frame's pts, in 1/90000."""
    frames: int
    audio_rate: int
    audio_start: int
    """First sample's pts, in 1/audio_rate."""
    pcm: npt.NDArray[np.int16]
    """The sound as written, (2, n)."""


def write_odd_source(
    path: Path,
    *,
    frames: int,
    video_start: int,
    audio_codec: str,
    audio_rate: int,
    audio_start: int,
    seconds: int,
) -> OddSource:
    """A 29.97 fps H.264 picture (lossless, so every frame's index reads back) at
    1/90000 and a stereo sound, each starting at the given pts. The movie time scale
    holds both streams' ticks, so the edit lists that place them are exact (FFmpeg's
    default of 1000 rounds them to the millisecond)."""
    scale = math.lcm(90000, audio_rate)
    rng = np.random.default_rng(5)
    pcm = (rng.standard_normal((2, seconds * audio_rate)) * 3000).astype(np.int16)
    fmt = "mp4" if path.suffix == ".mp4" else "mov"
    with av.open(str(path), "w", format=fmt, options={"movie_timescale": str(scale)}) as out:
        video = out.add_stream("libx264", rate=NTSC)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.time_base = VIDEO_TB
        video.codec_context.time_base = VIDEO_TB
        video.options = {"preset": "ultrafast", "qp": "0"}
        sound = out.add_stream(audio_codec, rate=audio_rate, layout="stereo")
        assert isinstance(sound, av.AudioStream)
        for i in range(frames):
            img = np.zeros((HEIGHT, WIDTH), np.uint8)
            for b in range(BITS):
                if i >> b & 1:
                    img[:, b * 16 : (b + 1) * 16] = 255
            frame = av.VideoFrame.from_ndarray(img, format="gray").reformat(format="yuv420p")
            frame.pts = video_start + round(Fraction(i) / NTSC / VIDEO_TB)
            frame.time_base = VIDEO_TB
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio_codec == "aac":
            step = sound.codec_context.frame_size or 1024
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=audio_rate)
        else:
            step, resampler = 1024, None
        for start in range(0, pcm.shape[1], step):
            block = np.ascontiguousarray(pcm[:, start : start + step].T).reshape(1, -1)
            aframe = av.AudioFrame.from_ndarray(block, format="s16", layout="stereo")
            aframe.sample_rate = audio_rate
            aframe.pts = audio_start + start
            aframe.time_base = Fraction(1, audio_rate)
            for converted in resampler.resample(aframe) if resampler else [aframe]:
                for packet in sound.encode(converted):
                    out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    return OddSource(path, video_start, frames, audio_rate, audio_start, pcm)


@pytest.fixture(scope="module")
def sources(module_tmp: MakeDir) -> dict[str, OddSource]:
    folder = module_tmp("exact")
    return {
        # 12345 ticks of 1/90000 are 6584 samples at 48 kHz: the sound, 1234 samples
        # after the picture, lands on a whole output sample and can be compared exactly.
        "mov-48k": write_odd_source(
            folder / "mov48.mov", frames=900, video_start=HOUR_TICKS + 12345,
            audio_codec="pcm_s16le", audio_rate=48000, audio_start=3600 * 48000 + 6584 + 1234,
            seconds=31,
        ),
        # Sound 2205 samples of 1/44100 before an hour, the picture 7 ticks after it.
        "mov-44k": write_odd_source(
            folder / "mov44.mov", frames=120, video_start=HOUR_TICKS + 7,
            audio_codec="pcm_s16le", audio_rate=44100, audio_start=3600 * 44100 - 2205,
            seconds=5,
        ),
        "mp4-aac": write_odd_source(
            folder / "aac.mp4", frames=120, video_start=HOUR_TICKS + 7,
            audio_codec="aac", audio_rate=44100, audio_start=3600 * 44100 + 1234, seconds=4,
        ),
    }  # fmt: skip


def first_sound(path: Path) -> Fraction:
    """Where an independent reader (PyAV's demuxer) says the sound starts: the earliest
    packet kept, plus the priming its skip-samples side data hides."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        tb, rate = stream.time_base, stream.sample_rate
        assert tb is not None
        kept: list[int] = []
        skip = 0
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            if not kept and packet.has_sidedata("skip_samples"):
                skip = int.from_bytes(bytes(packet.get_sidedata("skip_samples"))[:4], "little")
            if not packet.is_discard:
                kept.append(packet.pts)
    return min(kept) * tb + Fraction(skip, rate)


def frame_indices(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [
            sum(1 << b for b in range(BITS) if img[:, b * 16 + 4 : b * 16 + 12].mean() > 128)
            for img in (f.to_ndarray(format="gray") for f in container.decode(video=0))
        ]


# ------------------------------------------------------------------ probe


@pytest.mark.parametrize("name", ["mov-48k", "mov-44k", "mp4-aac"])
def test_probe_gives_exact_times(sources: dict[str, OddSource], name: str) -> None:
    src = sources[name]
    info = probe(src.path)
    v, a = info.video, info.audio
    assert v is not None and a is not None
    assert v.start == Fraction(src.video_start, 90000)
    assert v.duration == Fraction(src.frames * 1001, 30000)
    assert v.fps == NTSC and v.frames == src.frames and v.frame_rate_mode == "CFR"
    assert v.min_frame_interval == v.max_frame_interval == Fraction(1001, 30000)
    sound_start = first_sound(src.path)
    assert a.start == sound_start and (a.start * src.audio_rate).denominator == 1
    if name.startswith("mov"):
        # PCM: the sound starts at the pts written and lasts its samples, exactly.
        assert a.start == Fraction(src.audio_start, src.audio_rate)
        assert a.duration == Fraction(src.pcm.shape[1], src.audio_rate)
    assert info.duration == max(v.start + v.duration, a.start + a.duration) - min(v.start, a.start)
    # People read decimals; scripts get the exact value beside them.
    doc = to_json(info)
    assert doc["video"]["start_s_exact"] == fraction_str(v.start)
    assert Fraction(doc["video"]["start_s_exact"]) == Fraction(src.video_start, 90000)
    assert doc["video"]["start_s"] == round(float(v.start), 6)
    assert Fraction(doc["audio"]["start_s_exact"]) == sound_start
    assert Fraction(doc["audio"]["duration_s_exact"]) == a.duration
    assert Fraction(doc["duration_s_exact"]) == info.duration


# ------------------------------------------------------------------ plan and engines


def _v0_in_command(plan: ExportPlan) -> Fraction:
    """The source time the ffmpeg command subtracts from every frame (setpts)."""
    argv = ffmpeg_engine.command(plan, Path("/nonexistent/out.mov"))
    graph = argv[argv.index("-filter_complex") + 1]
    match = re.search(r"if\(isnan\(PREV_INPTS\)\\?,\(PTS-(\d+)\)", graph)
    assert match is not None, graph
    return Fraction(int(match.group(1)), ffmpeg_engine._FINE_TB)


@pytest.mark.parametrize(
    ("name", "preset"),
    [("mov-48k", "prores-master"), ("mov-48k", "h264-review"), ("mov-44k", "prores-master"),
     ("mp4-aac", "h264-review")],
)  # fmt: skip
@pytest.mark.parametrize("engine", ENGINES)
def test_exact_times_through_plan_and_engines(
    sources: dict[str, OddSource], name: str, preset: str, engine: Engine, tmp_path: Path
) -> None:
    src = sources[name]
    info = probe(src.path)
    assert info.video is not None and info.audio is not None
    dest = tmp_path / f"out{'.mov' if preset == 'prores-master' else '.mp4'}"
    plan = plan_export(info, load_spec(preset), ExportOptions(), dest=dest)
    v0 = Fraction(src.video_start, 90000)
    a0 = first_sound(src.path)
    assert plan.video.source_start == v0 and plan.audio is not None
    assert plan.audio.source_start == a0
    assert plan.audio.offset_samples == round((a0 - v0) * OUT_RATE)
    assert plan.video.conversion == "keep" and plan.video.frames == src.frames
    assert plan.duration == Fraction(src.frames * 1001, 30000)
    assert plan.audio.samples == round(plan.duration * OUT_RATE)
    doc = plan.to_json()
    assert Fraction(doc["video"]["source_start_s_exact"]) == v0
    assert Fraction(doc["audio"]["source_start_s_exact"]) == a0
    assert Fraction(doc["duration_s_exact"]) == plan.duration
    # The command places the first frame at 0 exactly: 1/90000 is whole in its time base.
    assert _v0_in_command(plan) == v0

    execute(plan, dest, engine)
    out = probe(dest)
    ov, oa = out.video, out.audio
    assert ov is not None and oa is not None
    assert ov.start == 0 and ov.duration == plan.duration and ov.frames == plan.video.frames
    assert frame_indices(dest) == list(range(src.frames))
    assert oa.start == 0
    if preset == "prores-master":
        # PCM in MOV: the sound lasts exactly the plan's samples, and where no resampling
        # happens (48 kHz in), every sample sits where the source's time says.
        assert oa.duration == Fraction(plan.audio.samples, OUT_RATE)
        if src.audio_rate == OUT_RATE:
            got = decode_audio(dest).samples
            offset = plan.audio.offset_samples
            assert offset == 1234
            want = np.zeros((2, plan.audio.samples), np.float32)
            body = src.pcm[:, : plan.audio.samples - offset].astype(np.float32) / 32768
            want[:, offset : offset + body.shape[1]] = body
            assert np.array_equal(got, want)
    else:
        # AAC in MP4: the edit list presents exactly the plan's samples.
        assert oa.presented_samples == plan.audio.samples


# ------------------------------------------------------------------ timeline


def test_timeline_lengths_from_exact_durations(
    sources: dict[str, OddSource], tmp_path: Path
) -> None:
    """A master of 147147 samples at 44.1 kHz lasts 1001/300 s, exactly 100 frames at
    29.97. As a float that is 3.3366666666666664 s, which floors to 99 frames."""
    clip = sources["mov-48k"]
    t = np.arange(147147) / 44100
    master = write_wav(
        tmp_path / "narration_master.wav", np.stack([0.1 * np.sin(2 * np.pi * 300 * t)] * 2), 44100
    )
    assert probe(master).audio is not None
    build = timeline_from_paths([clip.path], master_path=master, name="exact")
    timeline = otio.adapters.read_from_string(render(build.timeline, "otio").decode(), "otio_json")
    v1, a1 = timeline.tracks[0], timeline.tracks[1]
    (picture,) = [c for c in v1 if isinstance(c, otio.schema.Clip)]
    (narration,) = [c for c in a1 if isinstance(c, otio.schema.Clip)]
    assert picture.source_range.duration.rate == float(NTSC)
    assert picture.source_range.duration.value == clip.frames
    assert narration.source_range.duration.value == 100
    # The editor's own reader of the Premiere file: the master clip is 100 frames too.
    xml = etree.fromstring(render(build.timeline, "premiere-xml"))
    a1_clip = xml.find("./sequence/media/audio/track/clipitem")
    assert a1_clip is not None and a1_clip.findtext("duration") == "100"


# ------------------------------------------------------------------ naming a rate


def test_a_cfr_rate_is_named_only_within_the_quantisation() -> None:
    """5431 ticks of 1/90000 a frame is 90000/5431 fps exactly. The simplest fraction
    with a denominator up to 1001, 16555/999, is 2.3e-6 away: over 3000 frames that is
    37 ticks, more than quantisation allows, so the exact rate stands."""
    timing = analyse_frame_times([i * 5431 for i in range(3000)], VIDEO_TB)
    assert timing.mode == "CFR" and timing.fps == Fraction(90000, 5431)
    # 18 fps written with a millisecond clock (55 and 56 ms steps) averages 299000/16611
    # fps: within a tick of 18, so it is named 18.
    ms = [round(Fraction(i * 1000, 18)) for i in range(300)]
    named = analyse_frame_times(ms, Fraction(1, 1000))
    assert named.mode == "CFR" and named.fps == 18


# ------------------------------------------------------------------ the JSON reference


def _keys(doc: object, skip: frozenset[str]) -> set[str]:
    if isinstance(doc, dict):
        out = set(doc)
        for key, value in doc.items():
            if key not in skip:
                out |= _keys(value, skip)
        return out
    if isinstance(doc, list):
        return set().union(*(_keys(x, skip) for x in doc)) if doc else set()
    return set()


def test_json_reference_names_every_probe_and_plan_key(sources: dict[str, OddSource]) -> None:
    """Every key ``probe --json`` and a plan print is in docs/reference/json.md (the
    encoder and muxer options inside a plan are the preset's, not the schema's)."""
    reference = (Path(__file__).parent.parent / "docs" / "reference" / "json.md").read_text(
        encoding="utf-8"
    )
    info = probe(sources["mov-48k"].path)
    plan = plan_export(info, load_spec("prores-master"), ExportOptions(), dest=Path("o.mov"))
    keys = _keys(to_json(info), frozenset()) | _keys(
        plan.to_json(), frozenset({"options", "format_options"})
    )
    missing = sorted(k for k in keys if not re.search(rf"\b{re.escape(k)}\b", reference))
    assert not missing, f"keys json.md does not name: {missing}"
