"""FCPXML writer: valid against Apple's DTDs, exact on re-reading, readable by the
independent ``otio-fcpx-xml-adapter``, with real clips in an awkwardly named folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import opentimelineio as otio
import pytest
from lxml import etree

from handoff.errors import UsageError
from handoff.media.synth import write_wav
from handoff.timeline import TimelineBuild
from handoff.timeline.fcpxml import format_name, write_fcpxml
from tests.conftest import (
    AWKWARD_DIR,
    NLE,
    TimelineProject,
    make_timeline_project,
    project_timeline,
)

RATES = {
    "23.976": Fraction(24000, 1001),
    "24": Fraction(24),
    "25": Fraction(25),
    "29.97": Fraction(30000, 1001),
}
VERSIONS = ("1.9", "1.10", "1.11")
TIME_ATTRS = ("offset", "start", "duration", "tcStart", "frameDuration")


@dataclass(frozen=True)
class Case:
    project: TimelineProject
    paused: bool
    with_master: TimelineBuild
    clips_only: TimelineBuild

    def build(self, master: bool) -> TimelineBuild:
        return self.with_master if master else self.clips_only


def _add_pauses(project: TimelineProject, pause_s: float, tail_s: float) -> None:
    """Rewrite the manifest with a pause between segments and a master that runs on
    after the last one: the timeline then has gaps on V1 and sound past the picture."""
    data = json.loads(project.manifest.read_text(encoding="utf-8"))
    sr = int(data["settings"]["sample_rate"])
    pause = round(pause_s * sr)
    for k, seg in enumerate(data["segments"]):
        seg["source_in"] += k * pause
        seg["source_out"] += k * pause
    total = data["segments"][-1]["source_out"] + round(tail_s * sr)
    data["master"]["samples"] = total
    project.manifest.write_text(json.dumps(data), encoding="utf-8")
    t = np.arange(total) / sr
    write_wav(project.master, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None], sr)


@pytest.fixture(
    scope="module",
    params=[(r, p) for r in RATES for p in (False, True)],
    ids=[f"{r}fps-{'pauses' if p else 'abutting'}" for r in RATES for p in (False, True)],
)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    label, paused = request.param
    project = make_timeline_project(
        tmp_path_factory.mktemp("fcpxml"),
        fps=RATES[label],
        clip_seconds=(2.0, 1.5, 1.0),
        master_channels=2 if paused else 1,
    )
    if paused:
        _add_pauses(project, pause_s=0.75, tail_s=1.0)
    return Case(
        project, paused, project_timeline(project), project_timeline(project, with_master=False)
    )


# ---------------------------------------------------------------- reading helpers


def parse(data: bytes) -> Any:
    """The root element, typed loosely: the tests read many optional attributes."""
    return etree.fromstring(data)


def secs(value: str) -> Fraction:
    """An FCPXML time ("1001/24000s", "3s", "0/1s") as exact seconds."""
    assert value.endswith("s"), value
    return Fraction(value[:-1])


def frames(value: str, rate: Fraction) -> int:
    f = secs(value) * rate
    assert f.denominator == 1, f"{value} is not a whole number of frames at {rate}"
    return f.numerator


def url_to_path(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file" and parts.netloc == "", url
    return Path(unquote(parts.path))


@dataclass(frozen=True)
class Read:
    """One asset-clip as an editor would place it."""

    lane: int
    start: int
    """Timeline frame."""
    source_in: int
    duration: int
    path: Path
    name: str
    enabled: bool
    src_enable: str


def read_layout(doc: Any, rate: Fraction) -> list[Read]:
    """Every asset-clip's timeline position, worked out from the XML alone."""
    assets = {a.get("id"): a for a in doc.iterfind("resources/asset")}
    out = []
    for spine_item in doc.find("library/event/project/sequence/spine"):
        at = frames(spine_item.get("offset"), rate)
        local0 = frames(spine_item.get("start", "0s"), rate)
        pairs = [(spine_item, at, 0)]
        for child in spine_item.iterfind("asset-clip"):
            child_at = at + frames(child.get("offset"), rate) - local0
            pairs.append((child, child_at, int(child.get("lane"))))
        for el, position, lane in pairs:
            if el.tag != "asset-clip":
                continue
            asset = assets[el.get("ref")]
            out.append(
                Read(
                    lane=lane,
                    start=position,
                    source_in=frames(el.get("start", "0s"), rate),
                    duration=frames(el.get("duration"), rate),
                    path=url_to_path(asset.find("media-rep").get("src")),
                    name=el.get("name"),
                    enabled=el.get("enabled", "1") == "1",
                    src_enable=el.get("srcEnable", "all"),
                )
            )
    return out


def expected_picture(build: TimelineBuild) -> list[tuple[int, int, int, Path]]:
    return [(p.start, p.source_start, p.duration, p.source.path) for p in build.placements]


def got(reads: list[Read], lane: int) -> list[tuple[int, int, int, Path]]:
    return sorted((r.start, r.source_in, r.duration, r.path) for r in reads if r.lane == lane)


# ---------------------------------------------------------------- DTD


def dtd_for(version: str) -> etree.DTD:
    path = NLE / f"FCPXMLv{version.replace('.', '_')}.dtd"
    if not path.exists():
        pytest.skip(f"Apple's FCPXML {version} DTD not present: {path}")
    return etree.DTD(str(path))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("master", [True, False], ids=["master", "clips-only"])
def test_valid_against_apple_dtd(case: Case, version: str, master: bool) -> None:
    data = write_fcpxml(case.build(master).timeline, version=version)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n')
    doc = parse(data)
    assert doc.tag == "fcpxml" and doc.get("version") == version
    dtd = dtd_for(version)
    assert dtd.validate(doc), str(dtd.error_log)
    # 1.9+: the file is named by <media-rep>, never by src= on the asset.
    assets = doc.findall("resources/asset")
    assert assets and all(a.get("src") is None and a.find("media-rep") is not None for a in assets)


def test_other_versions_refused(case: Case) -> None:
    with pytest.raises(UsageError, match=r"1\.8 not supported \(one of: 1\.9, 1\.10, 1\.11\)"):
        write_fcpxml(case.with_master.timeline, version="1.8")


# ---------------------------------------------------------------- exact layout


@pytest.mark.parametrize("version", VERSIONS)
def test_layout_with_master(case: Case, version: str) -> None:
    build = case.with_master
    rate = case.project.rate
    doc = parse(write_fcpxml(build.timeline, version=version))

    # The rate is exact: 23.976 is 1001/24000 s a frame, not 1/23 or 1/24.
    fmt = doc.find("resources/format[@id='{}']".format(doc.find(".//sequence").get("format")))
    assert secs(fmt.get("frameDuration")) == 1 / rate
    assert (int(fmt.get("width")), int(fmt.get("height"))) == (160, 96)
    assert fmt.get("name") is None  # 160x96 has no Final Cut name

    # Every time in the file is a whole number of frames.
    for el in doc.iter():
        for attr in TIME_ATTRS:
            if el.get(attr) is not None:
                frames(el.get(attr), rate)

    seq = doc.find("library/event/project/sequence")
    total = round(build.timeline.duration().value)
    assert frames(seq.get("duration"), rate) == total
    assert seq.get("audioRate") == "48k" and seq.get("tcStart") == "0s"
    channels = int(build.timeline.metadata["handoff"]["audio_channels"])
    assert seq.get("audioLayout") == ("mono" if channels == 1 else "stereo")

    reads = read_layout(doc, rate)
    # V1: the clips, in order, where the model put them, picture only.
    v1 = [r for r in reads if r.lane == 0]
    assert [(r.start, r.source_in, r.duration, r.path) for r in v1] == expected_picture(build)
    assert all(r.enabled and r.src_enable == "video" for r in v1)
    # lane -1: the whole master narration, at master_start.
    assert build.master is not None
    master = [r for r in reads if r.lane == -1]
    assert len(master) == 1
    assert master[0].start == build.master_start
    assert master[0].source_in == 0
    assert master[0].start + master[0].duration <= total
    assert master[0].path == build.master.path and master[0].enabled
    # lane -2: every clip's own sound under its picture, disabled.
    a2 = [r for r in reads if r.lane == -2]
    assert got(reads, -2) == expected_picture(build)
    assert all(not r.enabled and r.src_enable == "audio" for r in a2)
    assert {r.lane for r in reads} == {0, -1, -2}

    # The spine runs gap-free from 0 to the end of the sequence.
    t = 0
    for item in seq.find("spine"):
        assert frames(item.get("offset"), rate) == t
        t += frames(item.get("duration"), rate)
    assert t == total


@pytest.mark.parametrize("version", VERSIONS)
def test_layout_clips_only(case: Case, version: str) -> None:
    build = case.clips_only
    rate = case.project.rate
    doc = parse(write_fcpxml(build.timeline, version=version))
    reads = read_layout(doc, rate)
    # Without a master the clips' sound stays linked inside the picture clips (A1).
    assert {r.lane for r in reads} == {0}
    assert got(reads, 0) == expected_picture(build)
    assert all(r.enabled and r.src_enable == "all" for r in reads)
    assert not doc.findall(".//gap")


def test_gaps_and_trailing_sound(case: Case) -> None:
    """With pauses in the narration, V1 has gaps and the master runs past the picture."""
    build = case.with_master
    rate = case.project.rate
    doc = parse(write_fcpxml(build.timeline))
    gaps = doc.findall("library/event/project/sequence/spine/gap")
    starts = [p.start for p in build.placements]
    ends = [p.end for p in build.placements]
    holes = [(e, s) for e, s in zip([0, *ends[:-1]], starts, strict=True) if s > e]
    total = round(build.timeline.duration().value)
    if ends[-1] < total:
        holes.append((ends[-1], total))
    assert [
        (frames(g.get("offset"), rate), frames(g.get("offset"), rate)
         + frames(g.get("duration"), rate))
        for g in gaps
    ] == holes  # fmt: skip
    if case.paused:  # a hole between every two clips, and sound after the last picture
        assert len([h for h in holes if h[0] > 0]) == len(build.placements)


def test_paths_and_names_survive(case: Case) -> None:
    build = case.with_master
    doc = parse(write_fcpxml(build.timeline))
    srcs = [m.get("src") for m in doc.iterfind("resources/asset/media-rep")]
    # one asset per distinct file: the clips and the master
    assert len(srcs) == len(set(srcs)) == len(case.project.clips) + 1
    for src in srcs:
        assert src.startswith("file:///")
        assert not any(c in src for c in " &#'ü"), src  # all percent-encoded
        path = url_to_path(src)
        assert path.exists(), path
        assert path.parent.name == AWKWARD_DIR
    assert {url_to_path(s) for s in srcs} == {*case.project.clips, case.project.master}
    names = [a.get("name") for a in doc.iterfind("resources/asset")]
    assert names == [p.name for p in case.project.clips] + [case.project.master.name]
    event = doc.find("library/event")
    assert event.get("name") == build.timeline.name == "Déjà vu & 'co' #1"
    assert event.find("project").get("name") == build.timeline.name
    # the master's asset is sound only
    master = doc.find("resources/asset[last()]")
    assert master.get("hasVideo") is None and master.get("format") is None
    assert master.get("hasAudio") == "1" and master.get("audioRate") == "48000"


def test_format_names() -> None:
    assert format_name(1920, 1080, Fraction(24000, 1001)) == "FFVideoFormat1080p2398"
    assert format_name(1920, 1080, Fraction(30000, 1001)) == "FFVideoFormat1080p2997"
    assert format_name(1280, 720, Fraction(25)) == "FFVideoFormat720p25"
    assert format_name(3840, 2160, Fraction(24)) == "FFVideoFormat3840x2160p24"
    assert format_name(160, 96, Fraction(24)) is None
    assert format_name(1920, 1080, Fraction(15)) is None


# ---------------------------------------------------------------- independent reader


def read_with_adapter(data: bytes) -> otio.schema.Timeline:
    """The otio-fcpx-xml-adapter returns the <event> as a SerializableCollection holding
    one Timeline per <project>."""
    result = otio.adapters.read_from_string(data.decode("utf-8"), adapter_name="fcpx_xml")
    assert isinstance(result, otio.schema.SerializableCollection)
    timelines = list(result)
    assert len(timelines) == 1
    timeline = timelines[0]
    assert isinstance(timeline, otio.schema.Timeline)
    return timeline


def adapter_lane(timeline: otio.schema.Timeline, lane: str) -> list[tuple[str, int, Any]]:
    """(name, timeline frame, source range) of the clips the adapter put on a lane."""
    tracks = [t for t in timeline.tracks if t.name == lane]
    assert len(tracks) == 1, [t.name for t in timeline.tracks]
    track = tracks[0]
    out = []
    for item in track:
        if isinstance(item, otio.schema.Clip):
            out.append((item.name, round(track.range_of_child(item).start_time.value),
                        item.source_range))  # fmt: skip
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("master", [True, False], ids=["master", "clips-only"])
def test_adapter_reads_it_back(case: Case, version: str, master: bool) -> None:
    """What the adapter can read, compared with what was meant.

    Its limits (adapter 1.0.0), which the lxml tests above cover instead:
    - it takes the rate as ``int(1 / frameDuration)``: 23.976 reads as 23 and 29.97 as
      29, so at NTSC rates its in points and durations (converted at that integer
      rate) are wrong; timeline positions are computed at the true rate, labelled with
      the truncated one, and cut down with int() (so at 29.97 frame 60 can read as 59).
    - it looks for the file in ``src`` on ``<asset>`` only, which 1.9+ forbids (the file
      is in ``<media-rep>``), so every clip gets a MissingReference.
    """
    build = case.build(master)
    rate = case.project.rate
    timeline = read_with_adapter(write_fcpxml(build.timeline, version=version))
    assert timeline.name == build.timeline.name

    names = [p.source.name for p in build.placements]
    starts = [p.start for p in build.placements]
    lanes = {"0": (names, starts)}
    if master:
        assert build.master is not None
        lanes["-1"] = ([build.master.name], [build.master_start])
        lanes["-2"] = (names, starts)
    assert sorted(t.name for t in timeline.tracks) == sorted(lanes)
    for lane, (want_names, want_starts) in lanes.items():
        clips = adapter_lane(timeline, lane)
        assert [c[0] for c in clips] == want_names, lane
        # It converts with int(), not round(): at 29.97, 2.002 s * 29.97002997 fps is
        # 59.999999 -> frame 59. Exact positions are checked with lxml above.
        slack = 0 if rate.denominator == 1 else 1
        for (_, at, _), want in zip(clips, want_starts, strict=True):
            assert want - slack <= at <= want, (lane, at, want)
        for clip in (c for t in timeline.tracks if t.name == lane for c in t.find_clips()):
            assert isinstance(clip.media_reference, otio.schema.MissingReference)
    if master:
        kinds = {t.name: t.kind for t in timeline.tracks}
        assert kinds["0"] == otio.schema.TrackKind.Video
        assert kinds["-1"] == otio.schema.TrackKind.Audio

    if rate.denominator != 1:
        # See the docstring: the adapter truncates NTSC rates; nothing more to compare.
        assert timeline.tracks[0].duration().rate == int(rate)
        return
    for lane in lanes:
        clips = adapter_lane(timeline, lane)
        for (_, _, rng), wanted in zip(clips, _wanted_ranges(build, lane), strict=True):
            assert rng.start_time.rate == rng.duration.rate == float(rate)
            assert (round(rng.start_time.value), round(rng.duration.value)) == wanted


def _wanted_ranges(build: TimelineBuild, lane: str) -> list[tuple[int, int]]:
    if lane == "-1":
        assert build.master is not None
        track = next(t for t in build.timeline.tracks if t.name == "A1")
        clip = next(iter(track.find_clips()))
        return [(0, round(clip.source_range.duration.value))]
    return [(p.source_start, p.duration) for p in build.placements]
