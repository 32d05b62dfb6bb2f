"""FCPXML writer: valid against Apple's DTDs, exact on re-reading, readable by the
independent ``otio-fcpx-xml-adapter``, with real clips in an awkwardly named folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
import opentimelineio as otio
import pytest
from lxml import etree

from handoff.errors import UsageError
from handoff.files.manifest import load_manifest
from handoff.media.synth import write_wav
from handoff.probe.reader import SourceTimecode, probe
from handoff.timeline import TimelineBuild
from handoff.timeline.fcpxml import format_name, write_fcpxml
from handoff.timeline.model import build_timeline, source_from_info
from handoff.timeline.paths import file_url, path_from_url, premiere_pathurl
from tests.conftest import AWKWARD_DIR, NLE, MakeDir, TimelineProject, make_timeline_project
from tests.readback import ReadClip, from_otio
from tests.readback_cases import READ_FPS, check_intent, timecoded_build
from tests.readback_cases import TIMECODES as SHARED_TIMECODES
from tests.readback_fcpxml import read_fcpxml, seconds

RATES = READ_FPS
VERSIONS = ("1.9", "1.10", "1.11")
TIME_ATTRS = ("offset", "start", "duration", "tcStart", "frameDuration")
# Source timecodes: none, the usual 01:00:00:00, and an odd one (not on a second).
TIMECODES = (None, "01:00:00:00", "00:59:58:13")


def source_timecode(label: str, rate: Fraction, *, bext: bool = False) -> SourceTimecode:
    """A non-drop-frame label as the probe reports it: an MP4 ``tmcd`` frame count at the
    picture rate, or a BWF ``bext`` sample count (48 kHz) for the master."""
    h, m, s, f = (int(x) for x in label.split(":"))
    frame = ((h * 60 + m) * 60 + s) * round(rate) + f
    start = frame / rate
    if bext:
        return SourceTimecode(label, start, "bext", samples=round(start * 48000))
    return SourceTimecode(label, start, "tmcd", frame=frame, rate=rate)


@dataclass
class Case:
    project: TimelineProject
    paused: bool
    builds: dict[tuple[bool, str | None], TimelineBuild]

    def build(self, master: bool, tc: str | None = None) -> TimelineBuild:
        """The model's timeline, the clips (and master) stamped with timecode ``tc``."""
        key = (master, tc)
        if key not in self.builds:
            rate = self.project.rate
            clips = [source_from_info(probe(c)) for c in self.project.clips]
            if tc is not None:
                clips = [replace(c, timecode=source_timecode(tc, rate)) for c in clips]
            if not master:
                self.builds[key] = build_timeline(clips, name="Clips only")
            else:
                m = source_from_info(probe(self.project.master), audio_only=True)
                if tc is not None:
                    m = replace(m, timecode=source_timecode(tc, rate, bext=True))
                self.builds[key] = build_timeline(
                    clips, master=m, manifest=load_manifest(self.project.manifest),
                    name="Déjà vu & 'co' #1",
                )  # fmt: skip
        return self.builds[key]

    @property
    def with_master(self) -> TimelineBuild:
        return self.build(True)

    @property
    def clips_only(self) -> TimelineBuild:
        return self.build(False)


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
def case(request: pytest.FixtureRequest, module_tmp: MakeDir) -> Case:
    label, paused = request.param
    project = make_timeline_project(
        module_tmp("fcpxml"),
        fps=RATES[label],
        clip_seconds=(2.0, 1.5, 1.0),
        master_channels=2 if paused else 1,
    )
    if paused:
        _add_pauses(project, pause_s=0.75, tail_s=1.0)
    return Case(project, paused, {})


# ---------------------------------------------------------------- reading helpers


def parse(data: bytes) -> Any:
    """The root element, typed loosely: the tests read many optional attributes."""
    return etree.fromstring(data)


def frames(value: str, rate: Fraction) -> int:
    f = seconds(value) * rate
    assert f.denominator == 1, f"{value} is not a whole number of frames at {rate}"
    return f.numerator


def placed(clips: list[ReadClip]) -> list[tuple[int, int, int, Path]]:
    return sorted((c.start, c.source_in, c.duration, c.path) for c in clips)


def expected_picture(build: TimelineBuild) -> list[tuple[int, int, int, Path]]:
    return [(p.start, p.source_start, p.duration, p.source.path) for p in build.placements]


# ---------------------------------------------------------------- DTD


def dtd_for(version: str) -> etree.DTD:
    path = NLE / f"FCPXMLv{version.replace('.', '_')}.dtd"
    if not path.exists():
        pytest.skip(f"Apple's FCPXML {version} DTD not present: {path}")
    return etree.DTD(str(path))


@pytest.mark.parametrize("tc", TIMECODES, ids=["no-tc", "tc-1h", "tc-odd"])
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("master", [True, False], ids=["master", "clips-only"])
def test_valid_against_apple_dtd(case: Case, version: str, master: bool, tc: str | None) -> None:
    data = write_fcpxml(case.build(master, tc).timeline, version=version)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n')
    doc = parse(data)
    assert doc.tag == "fcpxml" and doc.get("version") == version
    dtd = dtd_for(version)
    assert dtd.validate(doc), str(dtd.error_log)
    # 1.9+: the file is named by <media-rep>, never by src= on the asset.
    assets = doc.findall("resources/asset")
    assert assets and all(a.get("src") is None and a.find("media-rep") is not None for a in assets)
    # Resolve honours srcEnable on ref-clips only: never written.
    assert not [el for el in doc.iter() if el.get("srcEnable") is not None]


def test_other_versions_refused(case: Case) -> None:
    with pytest.raises(UsageError, match=r"1\.8 not supported \(one of: 1\.9, 1\.10, 1\.11\)"):
        write_fcpxml(case.with_master.timeline, version="1.8")


# ---------------------------------------------------------------- exact layout


def _tc_frames(tc: str | None, rate: Fraction) -> int:
    return 0 if tc is None else source_timecode(tc, rate).frame or 0


@pytest.mark.parametrize("tc", TIMECODES, ids=["no-tc", "tc-1h", "tc-odd"])
@pytest.mark.parametrize("version", VERSIONS)
def test_layout_with_master(case: Case, version: str, tc: str | None) -> None:
    """The narration is the storyline at the master's frame; every picture on lane 1
    at its frame, its own sound in it, muted; timecode via the assets' start."""
    build = case.build(True, tc)
    rate = case.project.rate
    data = write_fcpxml(build.timeline, version=version)
    doc = parse(data)
    read = read_fcpxml(data)
    assert read.rate == rate  # exact: 23.976 is 1001/24000 s a frame, not 1/23 or 1/24
    assert (read.width, read.height) == (160, 96) and read.start_frames == 0
    total = round(build.timeline.duration().value)
    seq = doc.find("library/event/project/sequence")
    assert frames(seq.get("duration"), rate) == total
    assert seq.get("audioRate") == "48k" and seq.get("tcStart") == "0s"
    channels = int(build.timeline.metadata["handoff"]["audio_channels"])
    assert seq.get("audioLayout") == ("mono" if channels == 1 else "stereo")
    for el in doc.iter():  # every time in the file is a whole number of frames
        for attr in TIME_ATTRS:
            if el.get(attr) is not None:
                frames(el.get(attr), rate)

    tc_frames = _tc_frames(tc, rate)
    # The storyline: the whole narration at master_start, enabled, nothing else.
    assert build.master is not None
    (narration,) = read.on("spine")
    assert (narration.kind, narration.path, narration.start) == (
        "audio", build.master.path, build.master_start
    )  # fmt: skip
    assert narration.source_in == 0 and narration.enabled
    assert narration.start + narration.duration <= total
    assert narration.timecode_frames == tc_frames
    # Lane 1: the pictures where the model put them, and each one's own sound, muted.
    pictures = [c for c in read.on("lane 1") if c.kind == "video"]
    sound = [c for c in read.on("lane 1") if c.kind == "audio"]
    assert placed(pictures) == expected_picture(build)
    assert placed(sound) == expected_picture(build)
    assert all(c.enabled for c in pictures) and not any(c.enabled for c in sound)
    assert {c.timecode_frames for c in pictures + sound} == {tc_frames}
    assert [c.name for c in sorted(pictures, key=lambda c: c.start)] == [
        p.source.path.name for p in build.placements
    ]
    assert {c.track for c in read.clips} == {"spine", "lane 1"}

    # The form Resolve exports: <clip> holding <video> and the muted <audio lane="-1">.
    spine = seq.find("spine")
    clips = doc.findall(".//clip[@lane='1']")
    assert len(clips) == len(build.placements)
    for clip in clips:
        video, audio = clip.findall("video"), clip.findall("audio")
        assert len(video) == len(audio) == 1
        assert audio[0].get("lane") == "-1" and audio[0].get("enabled") == "0"
        assert audio[0].get("role") == "effects"
        assert clip.getparent().getparent() is spine
    (master_clip,) = spine.findall("asset-clip")
    assert master_clip.get("audioRole") == "dialogue"
    # The spine runs gap-free from 0 to the end of the sequence.
    t = 0
    for item in spine:
        assert frames(item.get("offset"), rate) == t
        t += frames(item.get("duration"), rate)
    assert t == total


@pytest.mark.parametrize("tc", TIMECODES, ids=["no-tc", "tc-1h", "tc-odd"])
@pytest.mark.parametrize("version", VERSIONS)
def test_layout_clips_only(case: Case, version: str, tc: str | None) -> None:
    build = case.build(False, tc)
    rate = case.project.rate
    data = write_fcpxml(build.timeline, version=version)
    read = read_fcpxml(data)
    # Without a master the clips' sound stays linked in the picture clips (A1).
    assert {c.track for c in read.clips} == {"spine"}
    for kind in ("video", "audio"):
        clips = [c for c in read.clips if c.kind == kind]
        assert placed(clips) == expected_picture(build)
        assert all(c.enabled for c in clips)
        assert {c.timecode_frames for c in clips} == {_tc_frames(tc, rate)}
    doc = parse(data)
    assert not doc.findall(".//gap") and not doc.findall(".//clip")
    assert len(doc.findall(".//spine/asset-clip")) == len(build.placements)


@pytest.mark.parametrize("tc", ["01:00:00:00", "00:59:58:13"])
def test_timecode_is_the_asset_start(case: Case, tc: str) -> None:
    """Asset ``start`` = the file's timecode; clip ``start`` = timecode + in point (on
    the asset's clock), as the model's OTIO clips carry it."""
    build = case.build(True, tc)
    rate = case.project.rate
    doc = parse(write_fcpxml(build.timeline))
    tc_frames = _tc_frames(tc, rate)
    assert tc_frames > 0
    for asset in doc.iterfind("resources/asset"):
        assert seconds(asset.get("start")) == tc_frames / rate
    if rate == 24 and tc == "01:00:00:00":
        assert {a.get("start") for a in doc.iterfind("resources/asset")} == {"3600s"}
    by_name = {p.source.path.name: p for p in build.placements}
    for clip in doc.iterfind(".//clip[@lane='1']"):
        p = by_name[clip.get("name")]
        assert frames(clip.get("start"), rate) == tc_frames + p.source_start
        for part in clip:
            assert frames(part.get("offset"), rate) == frames(part.get("start"), rate)
            assert frames(part.get("start"), rate) == tc_frames
    # The OTIO clips say the same (source range at timecode + in point).
    v1 = build.timeline.tracks[0]
    firsts = [round(c.source_range.start_time.value) for c in v1.find_clips()]
    assert firsts == [tc_frames + p.source_start for p in build.placements]


def _intent(clips: list[ReadClip]) -> list[tuple[str, Path, int, int, int, bool, int]]:
    """What must match between the model and the file (FCPXML has no lock)."""
    return sorted((c.kind, c.path, c.start, c.duration, c.source_in, c.enabled,
                   c.timecode_frames) for c in clips)  # fmt: skip


@pytest.mark.parametrize("master", [True, False], ids=["master", "clips-only"])
@pytest.mark.parametrize("tc_case", list(SHARED_TIMECODES))
def test_one_read_back_suite(case: Case, tc_case: str, master: bool) -> None:
    """The cases every format is held to (tests/readback_cases.py: clips each with its
    own timecode, a BWF master at the hour, a sequence starting before the hour): the
    FCPXML read back exactly is the model. With a master the model's A1 is the
    storyline, V1 lane 1 and A2 the muted sound inside the lane-1 clips; without, V1
    and A1 are the spine's linked clips."""
    build, want_tc = timecoded_build(case.project, tc_case, master)
    meant = from_otio(build.timeline)
    check_intent(build, want_tc, meant)
    for version in VERSIONS:
        read = read_fcpxml(write_fcpxml(build.timeline, version=version))
        assert (read.rate, read.start_frames) == (meant.rate, meant.start_frames)
        assert (read.width, read.height) == (meant.width, meant.height)
        if master:
            assert _intent(read.on("spine")) == _intent(meant.on("A1"))
            assert _intent(read.on("lane 1")) == _intent(meant.on("V1") + meant.on("A2"))
        else:
            assert _intent(read.on("spine")) == _intent(meant.on("V1") + meant.on("A1"))
        assert len(read.clips) == len(meant.clips)


def test_drop_frame_clips_say_so(tmp_path: Path) -> None:
    """A clip whose file's timecode is drop-frame (a real ``tmcd`` track at 29.97, its
    drop-frame flag set) shows it so (``tcFormat="DF"``); the others ``NDF``."""
    rate = Fraction(30000, 1001)
    project = make_timeline_project(tmp_path, fps=rate, clip_seconds=(1.0, 1.0, 1.0),
                                    timecodes=("01:00:00;00", None, None))  # fmt: skip
    clips = [source_from_info(probe(c)) for c in project.clips]
    assert clips[0].timecode is not None and clips[0].timecode.drop_frame
    doc = parse(write_fcpxml(build_timeline(clips, name="DF").timeline))
    formats = [c.get("tcFormat") for c in doc.iterfind(".//spine/asset-clip")]
    assert formats == ["DF"] + ["NDF"] * (len(clips) - 1)
    assert seconds(doc.find("resources/asset").get("start")) == 107892 / rate


def test_gaps_and_trailing_sound(case: Case) -> None:
    """With a master the storyline is the narration: a gap before it (the first clip's
    pre-roll) and a trailing gap while the pictures run on past it, none in between."""
    build = case.with_master
    rate = case.project.rate
    doc = parse(write_fcpxml(build.timeline))
    spine = doc.find("library/event/project/sequence/spine")
    total = round(build.timeline.duration().value)
    narration = next(c for c in build.timeline.tracks if c.name == "A1").find_clips()
    n = round(next(iter(narration)).source_range.duration.value)
    want = []
    if build.master_start > 0:
        want.append(("gap", 0, build.master_start))
    want.append(("asset-clip", build.master_start, n))
    if build.master_start + n < total:
        want.append(("gap", build.master_start + n, total - build.master_start - n))
    got = [(el.tag, frames(el.get("offset"), rate), frames(el.get("duration"), rate))
           for el in spine]  # fmt: skip
    assert got == want
    # Every picture hangs from the storyline element under its first frame.
    for clip in doc.iterfind(".//clip[@lane='1']"):
        parent = clip.getparent()
        at = frames(parent.get("offset"), rate)
        p = next(p for p in build.placements if p.source.path.name == clip.get("name"))
        assert at <= p.start < at + frames(parent.get("duration"), rate)


def test_paths_and_names_survive(case: Case) -> None:
    build = case.with_master
    doc = parse(write_fcpxml(build.timeline))
    srcs = [m.get("src") for m in doc.iterfind("resources/asset/media-rep")]
    # one asset per distinct file: the master and the clips
    assert len(srcs) == len(set(srcs)) == len(case.project.clips) + 1
    read = read_fcpxml(write_fcpxml(build.timeline))
    for src in srcs:
        assert src.startswith("file:///")
        assert not any(c in src for c in " &#'ü"), src  # all percent-encoded
    paths = {c.path for c in read.clips}
    assert paths == {*case.project.clips, case.project.master}
    assert all(p.exists() and p.parent.name == AWKWARD_DIR for p in paths)
    names = [a.get("name") for a in doc.iterfind("resources/asset")]
    # in the order first met: the narration (the storyline), then the pictures
    assert names == [case.project.master.name] + [p.name for p in case.project.clips]
    event = doc.find("library/event")
    assert event.get("name") == build.timeline.name == "Déjà vu & 'co' #1"
    assert event.find("project").get("name") == build.timeline.name
    # the master's asset is sound only
    master = doc.find("resources/asset")
    assert master.get("hasVideo") is None and master.get("format") is None
    assert master.get("hasAudio") == "1" and master.get("audioRate") == "48000"


def test_windows_drive_keeps_its_colon() -> None:
    """FCPXML and OTIO write a Windows drive as file:///D:/ (xmeml alone wants D%3a)."""
    path = PureWindowsPath("D:\\Media\\Proj & Co #1\\a b ü%.mov")
    url = file_url(path)
    assert url == "file:///D:/Media/Proj%20%26%20Co%20%231/a%20b%20%C3%BC%25.mov"
    assert url == path.as_uri()  # what pathlib, and so OTIO's url_utils, write
    assert path_from_url(url) == "D:/Media/Proj & Co #1/a b ü%.mov"
    assert premiere_pathurl(path).startswith("file://localhost/D%3a/")


def test_format_names() -> None:
    assert format_name(1920, 1080, Fraction(24000, 1001)) == "FFVideoFormat1080p2398"
    assert format_name(1920, 1080, Fraction(30000, 1001)) == "FFVideoFormat1080p2997"
    assert format_name(1280, 720, Fraction(25)) == "FFVideoFormat720p25"
    assert format_name(3840, 2160, Fraction(24)) == "FFVideoFormat3840x2160p24"
    # as Resolve's FCPXML 1.9 export names PAL (lossless-cut's test fixture)
    assert format_name(720, 576, Fraction(25)) == "FFVideoFormat720x576p25"
    assert format_name(720, 480, Fraction(30000, 1001)) == "FFVideoFormatDV720x480p2997"
    # no name: as Resolve writes it (its 1.11 export of 8160x7200 footage)
    assert format_name(160, 96, Fraction(24)) == "FFVideoFormatRateUndefined"
    assert format_name(1920, 1080, Fraction(15)) == "FFVideoFormatRateUndefined"
    assert format_name(720, 576, Fraction(30)) == "FFVideoFormatRateUndefined"
    assert format_name(1920, 1088, Fraction(24)) == "FFVideoFormatRateUndefined"


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

    Its limits (adapter 1.0.0), which :mod:`tests.readback_fcpxml` covers instead:
    - it takes the rate as ``int(1 / frameDuration)``: 23.976 reads as 23 and 29.97 as
      29, so at NTSC rates its in points and durations (converted at that integer
      rate) are wrong; timeline positions are computed at the true rate, labelled with
      the truncated one, and cut down with int() (so at 29.97 frame 60 can read as 59).
    - it looks for the file in ``src`` on ``<asset>`` only, which 1.9+ forbids (the file
      is in ``<media-rep>``), so every clip gets a MissingReference.
    - it misreads a ``<clip>`` holding ``<video>`` and ``<audio lane="-1">``: it lays
      both one after the other on the clip's lane, as two clips of the clip's length,
      enabled, so lane 1 of a narrated timeline holds every picture twice and each
      after the first too late. Only the storyline (the narration) is compared then.
    """
    build = case.build(master)
    rate = case.project.rate
    timeline = read_with_adapter(write_fcpxml(build.timeline, version=version))
    assert timeline.name == build.timeline.name

    names = [p.source.name for p in build.placements]
    starts = [p.start for p in build.placements]
    if master:
        assert build.master is not None
        lanes = {"0": ([build.master.name], [build.master_start])}
        assert sorted(t.name for t in timeline.tracks) == ["0", "1"]
        kinds = {t.name: t.kind for t in timeline.tracks}
        assert kinds == {"0": otio.schema.TrackKind.Audio, "1": otio.schema.TrackKind.Video}
        # The misreading described above, so that a fixed adapter is noticed.
        assert [c[0] for c in adapter_lane(timeline, "1")] == [n for n in names for _ in "va"]
    else:
        lanes = {"0": (names, starts)}
        assert [t.name for t in timeline.tracks] == ["0"]
    for lane, (want_names, want_starts) in lanes.items():
        clips = adapter_lane(timeline, lane)
        assert [c[0] for c in clips] == want_names, lane
        # It converts with int(), not round(): at 29.97, 2.002 s * 29.97002997 fps is
        # 59.999999 -> frame 59. Exact positions are checked with the own reader above.
        slack = 0 if rate.denominator == 1 else 1
        for (_, at, _), want in zip(clips, want_starts, strict=True):
            assert want - slack <= at <= want, (lane, at, want)
        for clip in (c for t in timeline.tracks if t.name == lane for c in t.find_clips()):
            assert isinstance(clip.media_reference, otio.schema.MissingReference)

    if rate.denominator != 1:
        # See the docstring: the adapter truncates NTSC rates; nothing more to compare.
        assert timeline.tracks[0].duration().rate == int(rate)
        return
    for lane in lanes:
        clips = adapter_lane(timeline, lane)
        for (_, _, rng), wanted in zip(clips, _wanted_ranges(build, master), strict=True):
            assert rng.start_time.rate == rng.duration.rate == float(rate)
            assert (round(rng.start_time.value), round(rng.duration.value)) == wanted


def _wanted_ranges(build: TimelineBuild, master: bool) -> list[tuple[int, int]]:
    if master:
        track = next(t for t in build.timeline.tracks if t.name == "A1")
        clip = next(iter(track.find_clips()))
        return [(0, round(clip.source_range.duration.value))]
    return [(p.source_start, p.duration) for p in build.placements]
