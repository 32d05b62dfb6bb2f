"""Premiere FCP7 XML (xmeml): written from real media, read back by the independent
``otio-fcp-adapter`` and by lxml, and compared with what the OTIO model meant."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path, PureWindowsPath
from typing import Any
from urllib.parse import unquote, urlsplit

import opentimelineio as otio
import pytest
from lxml import etree
from pymediainfo import MediaInfo

from handoff.errors import UnsupportedError
from handoff.probe.reader import SourceTimecode, probe
from handoff.timeline import TimelineBuild, build_timeline, source_from_info
from handoff.timeline.model import META
from handoff.timeline.paths import premiere_pathurl
from handoff.timeline.xmeml import PPRO_TICKS_PER_SECOND, write_xmeml, xmeml_rate
from tests.conftest import (
    AWKWARD_DIR,
    MakeClip,
    MakeDir,
    TimelineProject,
    make_timeline_project,
    project_timeline,
)
from tests.readback import from_otio
from tests.readback_cases import READ_FPS, TIMECODES, check_intent, timecoded_build
from tests.readback_xmeml import read_xmeml

FPS = {
    "23.976": Fraction(24000, 1001),
    "29.97": Fraction(30000, 1001),
    "25": Fraction(25),
}
CLIP_SECONDS = (1.5, 1.0, 2.0)


@dataclass(frozen=True)
class Written:
    build: TimelineBuild
    data: bytes
    root: etree._Element
    read: Any
    """The timeline as otio-fcp-adapter reads the file back."""


def _write(build: TimelineBuild, folder: Path) -> Written:
    data = write_xmeml(build.timeline)
    path = folder / f"{build.timeline.name}.xml"
    path.write_bytes(data)
    read = otio.adapters.read_from_file(str(path), adapter_name="fcp_xml")
    return Written(build, data, etree.fromstring(data), read)


@pytest.fixture(scope="module", params=list(FPS), ids=list(FPS))
def fps(request: pytest.FixtureRequest) -> Fraction:
    return FPS[request.param]


@pytest.fixture(scope="module", params=[2, 1], ids=["stereo-master", "mono-master"])
def with_master(request: pytest.FixtureRequest, fps: Fraction, module_tmp: MakeDir) -> Written:
    root = module_tmp("xmeml")
    project = make_timeline_project(
        root, fps=fps, clip_seconds=CLIP_SECONDS, master_channels=request.param
    )
    return _write(project_timeline(project, with_master=True), root)


@pytest.fixture(scope="module")
def clips_only(fps: Fraction, module_tmp: MakeDir) -> Written:
    root = module_tmp("xmeml-clips")
    project = make_timeline_project(root, fps=fps, clip_seconds=CLIP_SECONDS)
    return _write(project_timeline(project, with_master=False), root)


# ---------------------------------------------------------------- helpers


def _frames(t: Any) -> int:
    return round(float(t.value))


def _clips(track: Any) -> list[Any]:
    return [c for c in track if isinstance(c, otio.schema.Clip)]


def _path(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file"
    assert parts.netloc == "localhost"
    return Path(unquote(parts.path))


def _xtracks(root: etree._Element, kind: str) -> list[etree._Element]:
    return root.findall(f"./sequence/media/{kind}/track")


def _audio_xtracks_of(w: Written) -> list[list[etree._Element]]:
    """The xmeml audio tracks grouped per OTIO audio track (exploded pairs together)."""
    groups: list[list[etree._Element]] = []
    for xt in _xtracks(w.root, "audio"):
        if xt.get("currentExplodedTrackIndex", "0") == "0":
            groups.append([])
        groups[-1].append(xt)
    return groups


def _assert_same_track(meant: Any, got: Any, rate: Fraction) -> None:
    """Clips in the same order, at the same timeline frames, with the same in/out."""
    want, have = _clips(meant), _clips(got)
    assert [c.name for c in have] == [c.name for c in want]
    for w, h in zip(want, have, strict=True):
        wr, hr = w.range_in_parent(), h.range_in_parent()
        assert h.source_range.start_time.rate == pytest.approx(float(rate))
        assert hr.start_time.rate == pytest.approx(float(rate))
        assert (_frames(hr.start_time), _frames(hr.duration)) == (
            _frames(wr.start_time),
            _frames(wr.duration),
        )
        assert (_frames(h.source_range.start_time), _frames(h.source_range.duration)) == (
            _frames(w.source_range.start_time),
            _frames(w.source_range.duration),
        )
        real = Path(w.metadata[META]["path"])
        assert _path(h.media_reference.target_url) == real
        assert real.exists()
        avail = h.media_reference.available_range
        assert _frames(avail.duration) == w.metadata[META]["file_frames"]
        enabled = h.metadata["fcp_xml"]["enabled"]
        assert enabled == ("TRUE" if w.enabled else "FALSE")


# ---------------------------------------------------------------- round trip


def test_round_trip_with_master(with_master: Written, fps: Fraction) -> None:
    w = with_master
    meant = w.build.timeline
    read = w.read
    assert read.name == meant.name == "Déjà vu & 'co' #1"
    assert [t.kind for t in read.tracks] == [t.kind for t in meant.tracks]
    assert len(read.tracks) == 3  # V1, A1 master, A2 clip audio (stereo pairs folded)
    for m, r in zip(meant.tracks, read.tracks, strict=True):
        _assert_same_track(m, r, fps)
    for clip in read.find_clips():
        assert AWKWARD_DIR in _path(clip.media_reference.target_url).parts
    v1, a1, a2 = read.tracks
    assert v1.metadata["fcp_xml"]["locked"] == "FALSE"
    assert a1.metadata["fcp_xml"]["locked"] == "TRUE"
    assert a2.metadata["fcp_xml"]["locked"] == "FALSE"
    assert [c.metadata["fcp_xml"]["enabled"] for c in _clips(a2)] == ["FALSE"] * 3
    assert [c.metadata["fcp_xml"]["enabled"] for c in _clips(v1)] == ["TRUE"] * 3
    # The placements of the build, frame for frame.
    got = [(_frames(c.range_in_parent().start_time), _frames(c.duration())) for c in _clips(v1)]
    assert got == [(p.start, p.duration) for p in w.build.placements]
    master_start = _frames(_clips(a1)[0].range_in_parent().start_time)
    assert master_start == w.build.master_start
    assert w.root.findtext("./sequence/duration") == str(_frames(meant.duration()))


def test_round_trip_clips_only(clips_only: Written, fps: Fraction) -> None:
    w = clips_only
    meant = w.build.timeline
    assert len(w.read.tracks) == 2
    for m, r in zip(meant.tracks, w.read.tracks, strict=True):
        _assert_same_track(m, r, fps)
    v1, a1 = w.read.tracks
    assert a1.metadata["fcp_xml"]["locked"] == "TRUE"  # the clips' audio, locked
    assert v1.metadata["fcp_xml"]["locked"] == "FALSE"
    assert [c.metadata["fcp_xml"]["enabled"] for c in _clips(a1)] == ["TRUE"] * 3
    # Back to back: no gaps, starts are the running sum.
    starts = [_frames(c.range_in_parent().start_time) for c in _clips(v1)]
    ends = [_frames(c.range_in_parent().end_time_exclusive()) for c in _clips(v1)]
    assert starts == [0, *ends[:-1]]


def test_rate_elements(with_master: Written, fps: Fraction) -> None:
    timebase, ntsc = {
        Fraction(24000, 1001): ("24", "TRUE"),
        Fraction(30000, 1001): ("30", "TRUE"),
        Fraction(25): ("25", "FALSE"),
    }[fps]
    rates = list(with_master.root.iter("rate"))
    assert rates
    for rate in rates:
        assert rate.findtext("timebase") == timebase
        assert rate.findtext("ntsc") == ntsc
        assert len(rate) == 2
    # Exactly one <rate> in every element that has one (the stock adapter doubles them).
    for el in with_master.root.iter():
        assert len(el.findall("rate")) <= 1, el.tag
    seq = with_master.root.find("sequence")
    assert seq is not None
    for path in ("media/video/format/samplecharacteristics", "timecode"):
        holder = seq.find(path)
        assert holder is not None
        assert len(holder.findall("rate")) == 1
    assert len(seq.findall("rate")) == 1
    assert f"<timebase>{timebase}</timebase>" in with_master.data.decode()
    for clip in _clips(with_master.read.tracks[0]):
        assert clip.source_range.duration.rate == pytest.approx(float(fps), abs=1e-9)


# ---------------------------------------------------------------- file shape


def test_header_and_doctype(with_master: Written) -> None:
    text = with_master.data.decode("utf-8")
    lines = text.splitlines()
    assert lines[0] == '<?xml version="1.0" encoding="UTF-8"?>'
    assert lines[1] == "<!DOCTYPE xmeml>"
    assert lines[2] == '<xmeml version="4">'
    docinfo = with_master.root.getroottree().docinfo
    assert docinfo.root_name == "xmeml"
    assert docinfo.encoding == "UTF-8"
    sequences = with_master.root.findall("sequence")
    assert len(sequences) == 1
    assert sequences[0].get("id") == "sequence-1"
    # Names with &, ', #, accents are escaped by lxml and come back intact.
    assert "Déjà vu &amp; 'co' #1" in text
    assert with_master.root.findtext("sequence/name") == "Déjà vu & 'co' #1"


def test_sequence_format_and_timecode(with_master: Written) -> None:
    seq = with_master.root.find("sequence")
    assert seq is not None
    meta = with_master.build.timeline.metadata[META]
    sc = seq.find("media/video/format/samplecharacteristics")
    assert sc is not None
    assert sc.findtext("width") == str(meta["width"]) == "160"
    assert sc.findtext("height") == str(meta["height"]) == "96"
    assert sc.findtext("anamorphic") == "FALSE"
    assert sc.findtext("pixelaspectratio") == "square"
    assert sc.findtext("fielddominance") == "none"
    audio = seq.find("media/audio")
    assert audio is not None
    assert audio.findtext("numOutputChannels") == "2"
    assert audio.findtext("format/samplecharacteristics/depth") == "16"
    assert audio.findtext("format/samplecharacteristics/samplerate") == "48000"
    groups = audio.findall("outputs/group")
    assert [g.findtext("index") for g in groups] == ["1", "2"]
    assert [g.findtext("channel/index") for g in groups] == ["1", "2"]
    tc = seq.find("timecode")
    assert tc is not None
    assert tc.findtext("string") == "00:00:00:00"
    assert tc.findtext("frame") == "0"
    assert tc.findtext("displayformat") == "NDF"
    # Premiere's order inside the sequence.
    assert [c.tag for c in seq] == ["duration", "rate", "name", "media", "timecode"]


def test_tracks_end_with_enabled_and_locked(with_master: Written) -> None:
    for kind in ("video", "audio"):
        for xt in _xtracks(with_master.root, kind):
            tags = [c.tag for c in xt]
            assert "clipitem" in tags
            last_clip = max(i for i, t in enumerate(tags) if t == "clipitem")
            assert tags.index("enabled") == last_clip + 1
            assert tags.index("locked") == last_clip + 2
            assert tags.count("locked") == 1


def test_audio_tracks_exploded_by_channel(with_master: Written) -> None:
    w = with_master
    master_channels = w.build.timeline.tracks[1].metadata[META]["channels"]
    groups = _audio_xtracks_of(w)
    assert [len(g) for g in groups] == [master_channels, 2]
    master, clip_audio = groups
    for xt in master:
        assert xt.findtext("locked") == "TRUE"
        assert xt.findtext("enabled") == "TRUE"
    for xt in clip_audio:
        assert xt.findtext("locked") == "FALSE"
    # Stereo pairs: Premiere's attributes, one clipitem per channel.
    pairs = [g for g in groups if len(g) == 2]
    for pair in pairs:
        for k, xt in enumerate(pair):
            assert xt.get("currentExplodedTrackIndex") == str(k)
            assert xt.get("totalExplodedTrackCount") == "2"
            assert xt.get("premiereTrackType") == "Stereo"
            assert xt.findtext("outputchannelindex") == str(k + 1)
            items = xt.findall("clipitem")
            assert items
            for ci in items:
                assert ci.get("premiereChannelType") == "stereo"
                assert ci.findtext("sourcetrack/mediatype") == "audio"
                assert ci.findtext("sourcetrack/trackindex") == str(k + 1)
        left, right = ([ci.findtext("start") for ci in xt.findall("clipitem")] for xt in pair)
        assert left == right
    if master_channels == 1:
        (xt,) = master
        assert xt.get("premiereTrackType") == "Mono"
        assert xt.get("totalExplodedTrackCount") == "1"
        assert xt.find("outputchannelindex") is None
        (ci,) = xt.findall("clipitem")
        assert ci.get("premiereChannelType") == "mono"
        assert ci.findtext("sourcetrack/trackindex") == "1"


def test_files_written_once_then_referenced(with_master: Written) -> None:
    seen: set[str] = set()
    for f in with_master.root.iter("file"):
        fid = f.get("id")
        assert fid is not None
        if fid in seen:
            assert len(f) == 0  # <file id="file-N"/>
            continue
        seen.add(fid)
        assert f.findtext("name")
        url = f.findtext("pathurl")
        assert url is not None
        assert url.startswith("file://localhost/")
        assert " " not in url and "#" not in url and "&" not in url and "'" not in url
        path = _path(url)
        assert path.exists()
        assert path.name == f.findtext("name")
        assert f.find("timecode/rate") is not None
        assert f.findtext("timecode/string") == "00:00:00:00"
        media = f.find("media")
        assert media is not None
        if path.suffix == ".mp4":
            assert media.findtext("video/samplecharacteristics/width") == "160"
            assert media.findtext("audio/channelcount") == "2"
        else:  # the master: sound only
            assert media.find("video") is None
            master_channels = with_master.build.timeline.tracks[1].metadata[META]["channels"]
            assert media.findtext("audio/channelcount") == str(master_channels)
            assert media.findtext("audio/samplecharacteristics/samplerate") == "48000"
    assert len(seen) == 4  # three clips and the master
    # masterclipid follows the file.
    for ci in with_master.root.iter("clipitem"):
        ref = ci.find("file")
        assert ref is not None
        assert ci.findtext("masterclipid") == "masterclip-" + ref.get("id", "").split("-")[1]


def test_clipitems_ids_ticks_and_links(with_master: Written, fps: Fraction) -> None:
    root = with_master.root
    items = list(root.iter("clipitem"))
    ids = [ci.get("id") for ci in items]
    assert ids == [f"clipitem-{n}" for n in range(1, len(items) + 1)]
    ticks = Fraction(PPRO_TICKS_PER_SECOND) / fps
    for ci in items:
        start, end = int(ci.findtext("start", "")), int(ci.findtext("end", ""))
        cin, cout = int(ci.findtext("in", "")), int(ci.findtext("out", ""))
        assert end - start == cout - cin > 0
        assert int(ci.findtext("duration", "")) >= cout
        assert int(ci.findtext("pproTicksIn", "")) == round(cin * ticks)
        assert int(ci.findtext("pproTicksOut", "")) == round(cout * ticks)
        assert ticks.denominator == 1  # Premiere's ticks divide every rate we write

    video_items = _xtracks(root, "video")[0].findall("clipitem")
    master_group, clip_group = _audio_xtracks_of(with_master)
    # The master is linked to no clip (a stereo master's two channels to each other).
    master_ids = {ci.get("id") for xt in master_group for ci in xt.findall("clipitem")}
    for xt in master_group:
        for ci in xt.findall("clipitem"):
            linked = {link.findtext("linkclipref") for link in ci.findall("link")}
            assert linked == (master_ids if len(master_group) == 2 else set())
    # Each V1 clip is linked to its own sound on the A2 pair, and they to it.
    a2_items = [xt.findall("clipitem") for xt in clip_group]
    for k, v in enumerate(video_items):
        links = v.findall("link")
        refs = [link.findtext("linkclipref") for link in links]
        assert refs == [v.get("id")] + [items_[k].get("id") for items_ in a2_items]
        assert [link.findtext("mediatype") for link in links] == ["video", "audio", "audio"]
        assert [link.findtext("clipindex") for link in links] == [str(k + 1)] * 3
        assert [link.findtext("trackindex") for link in links] == ["1", *(
            str(len(master_group) + j + 1) for j in range(2)
        )]  # fmt: skip
        v_file = v.find("file")
        assert v_file is not None
        for items_ in a2_items:
            a = items_[k]
            assert [link.findtext("linkclipref") for link in a.findall("link")] == refs
            a_file = a.find("file")
            assert a_file is not None
            assert a_file.get("id") == v_file.get("id")
            assert a.findtext("start") == v.findtext("start")
            assert a.findtext("enabled") == "FALSE"


# ---------------------------------------------------------------- channel mixes


def test_mono_clip_on_stereo_track(make_clip: MakeClip, tmp_path: Path) -> None:
    """A mono clip on a stereo track sits on the pair's first track only, as Premiere
    exports it; the stereo clip beside it fills both."""
    common: dict[str, object] = {
        "fps": Fraction(25),
        "seconds": 1.0,
        "width": 160,
        "height": 96,
        "video_options": {"preset": "ultrafast"},
    }
    mono = make_clip("001 mono & co.mp4", audio_channels=1, **common)
    stereo = make_clip("002 stéréo #2.mp4", audio_channels=2, **common)
    build = build_timeline([source_from_info(probe(p)) for p in (mono, stereo)], name="mix")
    w = _write(build, tmp_path)
    (pair,) = _audio_xtracks_of(w)
    first, second = ([ci for ci in xt.findall("clipitem")] for xt in pair)
    assert [ci.findtext("name") for ci in first] == [mono.name, stereo.name]
    assert [ci.findtext("name") for ci in second] == [stereo.name]
    assert first[0].get("premiereChannelType") == "mono"
    assert first[0].findtext("sourcetrack/trackindex") == "1"
    assert first[1].get("premiereChannelType") == "stereo"
    assert second[0].findtext("start") == first[1].findtext("start") == "25"
    # The adapter reads the pair as one track, both clips in place.
    _v1, a1 = w.read.tracks
    _assert_same_track(build.timeline.tracks[1], a1, Fraction(25))
    assert a1.metadata["fcp_xml"]["locked"] == "TRUE"
    # The mono clip's file says one channel.
    files = {f.findtext("name"): f for f in w.root.iter("file") if len(f)}
    assert files[mono.name].findtext("media/audio/channelcount") == "1"
    assert files[stereo.name].findtext("media/audio/channelcount") == "2"


# ---------------------------------------------------------------- rates and paths


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (Fraction(24000, 1001), (24, True)),
        (Fraction(30000, 1001), (30, True)),
        (Fraction(60000, 1001), (60, True)),
        (Fraction(24), (24, False)),
        (Fraction(25), (25, False)),
        (Fraction(50), (50, False)),
    ],
)
def test_xmeml_rate(rate: Fraction, expected: tuple[int, bool]) -> None:
    assert xmeml_rate(rate) == expected


@pytest.mark.parametrize("rate", [Fraction(25, 2), Fraction(2997, 100), Fraction(30000, 1002)])
def test_rate_xmeml_cannot_say_raises(rate: Fraction) -> None:
    with pytest.raises(UnsupportedError):
        xmeml_rate(rate)


def test_unsupported_sequence_rate_raises(clips_only: Written) -> None:
    timeline = clips_only.build.timeline.deepcopy()
    timeline.metadata[META]["rate"] = "2997/100"
    with pytest.raises(UnsupportedError, match="2997/100"):
        write_xmeml(timeline)


def test_windows_pathurl() -> None:
    assert (
        premiere_pathurl(PureWindowsPath("D:\\Media\\a b.mov"))
        == "file://localhost/D%3a/Media/a%20b.mov"
    )
    assert (
        premiere_pathurl(PureWindowsPath("C:\\Users\\Zoë\\Proj & Co #1\\100%.mp4"))
        == "file://localhost/C%3a/Users/Zo%C3%AB/Proj%20%26%20Co%20%231/100%25.mp4"
    )


# ---------------------------------------------------------------- exact read-back


@pytest.fixture(scope="module", params=list(READ_FPS))
def read_project(request: pytest.FixtureRequest, module_tmp: MakeDir) -> TimelineProject:
    root = module_tmp(f"xmeml-read-{request.param}")
    return make_timeline_project(root, fps=READ_FPS[request.param], clip_seconds=CLIP_SECONDS)


@pytest.mark.parametrize("with_master", [True, False], ids=["master", "clips-only"])
@pytest.mark.parametrize("tc_case", list(TIMECODES))
def test_exact_read_back(
    read_project: TimelineProject, tc_case: str, with_master: bool, tmp_path: Path
) -> None:
    """Our xmeml read by an exact reader of the format, and by otio-fcp-adapter, is the
    model frame for frame: positions, durations, in points, enabled, locked, each
    file's timecode and path."""
    build, want_tc = timecoded_build(read_project, tc_case, with_master)
    meant = from_otio(build.timeline)
    check_intent(build, want_tc, meant)
    data = write_xmeml(build.timeline)
    assert read_xmeml(data) == meant
    # otio-fcp-adapter puts a file's <timecode> at the start of the media's available
    # range and the clip's source range at timecode + <in>, as the model does.
    path = tmp_path / "cut.xml"
    path.write_bytes(data)
    adapted = from_otio(otio.adapters.read_from_file(str(path), adapter_name="fcp_xml"))
    assert adapted == meant


def test_file_timecode_and_bit_depth_as_premiere_writes_them(read_project: TimelineProject) -> None:
    """Each <file> carries its timecode in Premiere's element order, and its sound's
    real bit depth: 24 for the 24-bit narration (as MediaInfo reads the WAV), 16 for
    AAC, which has none (Premiere's own exports write 16 for it)."""
    build, want_tc = timecoded_build(read_project, "tc-odd", with_master=True)
    root = etree.fromstring(write_xmeml(build.timeline))
    full = [f for f in root.iter("file") if len(f)]
    assert len(full) == 4
    for f in full:
        assert [c.tag for c in f] == ["name", "pathurl", "rate", "duration", "timecode", "media"]
        tc = f.find("timecode")
        assert tc is not None
        assert [c.tag for c in tc] == ["rate", "string", "frame", "displayformat"]
        path = _path(f.findtext("pathurl", ""))
        frame = int(tc.findtext("frame", ""))
        assert frame == want_tc[path]
        timebase = int(tc.findtext("rate/timebase", ""))
        hh, mm, ss, ff = (int(x) for x in tc.findtext("string", "").split(":"))
        assert ((hh * 60 + mm) * 60 + ss) * timebase + ff == frame
        assert tc.findtext("displayformat") == "NDF"
        (audio,) = (t for t in MediaInfo.parse(path).tracks if t.track_type == "Audio")
        depth = f.findtext("media/audio/samplecharacteristics/depth")
        assert depth == str(audio.bit_depth if audio.bit_depth is not None else 16)
        assert depth == ("24" if path.suffix == ".wav" else "16")


def test_drop_frame_file_timecode(make_clip: MakeClip, tmp_path: Path) -> None:
    """A 29.97 clip whose timecode is drop-frame: Premiere's ';' label and DF."""
    rate = Fraction(30000, 1001)
    clip = make_clip("df & co.mp4", fps=rate, seconds=0.5, width=160, height=96,
                     video_options={"preset": "ultrafast"})  # fmt: skip
    source = source_from_info(probe(clip))
    # 01:00:00;00 drop-frame is frame 107892 (108000 less 2 labels in 54 minutes).
    tc = SourceTimecode(label="01:00:00;00", start=107892 / rate, origin="tmcd",
                        frame=107892, rate=rate, drop_frame=True)  # fmt: skip
    build = build_timeline([replace(source, timecode=tc)], name="df")
    root = etree.fromstring(write_xmeml(build.timeline))
    f = next(f for f in root.iter("file") if len(f))
    assert f.findtext("timecode/string") == "01;00;00;00"
    assert f.findtext("timecode/frame") == "107892"
    assert f.findtext("timecode/displayformat") == "DF"
    assert read_xmeml(write_xmeml(build.timeline)).clips[0].timecode_frames == 107892
