"""Timeline sense checks: clips much shorter or longer than their segment are warned
about, the sequence size is the clips' most common (a tie: the largest) or ``--size``,
and ``--start-timecode`` reaches every format -- read back by PyAV, lxml and the OTIO
adapters, on real media."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from fractions import Fraction
from pathlib import Path

import av
import opentimelineio as otio
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from handoff.cli import main
from handoff.media.synth import ClipSpec, write_clip
from handoff.timeline.timecode import Timecode, parse_timecode, timecode_at
from tests.conftest import NLE, REPO, MakeDir, TimelineProject, make_timeline_project, run_handoff
from tests.readback_fcpxml import read_fcpxml

SUFFIXES = {
    "otio": ".otio",
    "premiere-xml": ".premiere.xml",
    "premiere-otio": ".premiere.otio",
    "resolve-otio": ".resolve.otio",
    "fcpxml": ".fcpxml",
}


def _timeline(*args: object) -> Result:
    return CliRunner().invoke(main, ["timeline", *map(str, args)])


def _clip(path: Path, fps: Fraction, seconds: float, size: tuple[int, int] = (160, 96)) -> Path:
    return write_clip(
        path,
        ClipSpec(fps=fps, seconds=seconds, width=size[0], height=size[1],
                 video_options={"preset": "ultrafast"}),
    )  # fmt: skip


def _one_line_error(r: Result) -> str:
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line, r.output
    assert line.startswith("handoff: error: ")
    return line


# ---------------------------------------------------------------- clip vs segment length

# Segment lengths (s) and the clip made for each: the first much shorter, the fourth
# much longer; the second a little long (LTX-2's 8k+1 frame grid does that) and the
# third 1.1 s long on a 12 s segment (within a tenth of it): no warning for those.
SEGMENTS = (3.0, 3.0, 12.0, 2.0)
CLIPS = (1.75, 3.5, 13.1, 3.5)


@pytest.fixture(scope="module")
def off(module_tmp: MakeDir) -> TimelineProject:
    project = make_timeline_project(module_tmp("lengths"), fps=Fraction(24), clip_seconds=SEGMENTS)
    for clip, seconds in zip(project.clips, CLIPS, strict=True):
        _clip(clip, Fraction(24), seconds)
    return project


def _length_s(path: Path) -> Fraction:
    """The clip's length as PyAV reads it: whole frames over the frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.demux(stream) if _.size)
        assert stream.average_rate is not None
        return Fraction(frames) / Fraction(stream.average_rate)


def _segment_s(project: TimelineProject) -> list[Fraction]:
    doc = json.loads(project.manifest.read_text(encoding="utf-8"))
    rate = doc["settings"]["sample_rate"]
    return [Fraction(s["samples"], rate) for s in doc["segments"]]


def _much_off(clip_s: Fraction, segment_s: Fraction) -> bool:
    return abs(clip_s - segment_s) > max(Fraction(1), segment_s / 10)


def test_clips_much_off_their_segment_are_warned_about(
    off: TimelineProject, tmp_path: Path
) -> None:
    r = _timeline(off.folder, "--manifest", off.manifest, "--format", "otio",
                  "--out", tmp_path / "t.otio", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    lengths = [_length_s(c) for c in off.clips]
    segments = _segment_s(off)
    for c, clip_s, seg_s in zip(data["clips"], lengths, segments, strict=True):
        assert c["length_minus_segment_s"] == pytest.approx(float(clip_s - seg_s), abs=1e-3)
    flagged = [(c.name, clip_s < seg_s) for c, clip_s, seg_s
               in zip(off.clips, lengths, segments, strict=True)
               if _much_off(clip_s, seg_s)]  # fmt: skip
    assert [short for _, short in flagged] == [True, False]  # the fixture's design
    warnings = data["warnings"]
    assert len(warnings) == 2
    short, long = warnings
    assert "much shorter than their segment" in short and off.clips[0].name in short
    assert "much longer than their segment" in long and off.clips[3].name in long
    for name in (off.clips[1].name, off.clips[2].name):
        assert all(name not in w for w in warnings)
    assert "(-1.25 s)" in short and "(+1.50 s)" in long
    # The same lines for people, marked "!".
    text = _timeline(off.folder, "--manifest", off.manifest, "--format", "otio",
                     "--out", tmp_path / "t2.otio")  # fmt: skip
    assert text.exit_code == 0, text.output
    assert [line.removeprefix("  ! ") for line in text.output.splitlines()
            if line.startswith("  ! ")] == warnings  # fmt: skip


def test_no_length_check_without_segments(off: TimelineProject, tmp_path: Path) -> None:
    r = _timeline(*off.clips, "--format", "otio", "--out", tmp_path / "t.otio", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["warnings"] == []
    assert [c["length_minus_segment_s"] for c in data["clips"]] == [None] * len(off.clips)


def test_selects_picks_and_alternates_are_checked(off: TimelineProject, tmp_path: Path) -> None:
    """With --selects the pick and every alternate are measured against their segment;
    an alternate is named with its rank."""
    fine = _clip(tmp_path / "001_fine.mp4", Fraction(24), SEGMENTS[0])
    long_alt = _clip(tmp_path / "004_long_alt.mp4", Fraction(24), SEGMENTS[3] + 2.0)
    selects = tmp_path / "selects.json"
    selects.write_text(json.dumps({
        "schema": "handoff.selects/1",
        "manifest": str(off.manifest),
        "segments": [
            {"segment": 1, "pick": str(off.clips[0]), "alternates": [str(fine)]},
            {"segment": 4, "pick": str(fine), "alternates": [str(long_alt)]},
        ],
    }), encoding="utf-8")  # fmt: skip
    r = _timeline("--selects", selects, "--format", "otio", "--out", tmp_path / "s.otio",
                  "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    short, long = data["warnings"]
    assert off.clips[0].name in short and "segment 1's 3.00 s" in short
    assert "004_long_alt.mp4 alt 2 4.00 s for segment 4's 2.00 s (+2.00 s)" in long
    assert "001_fine.mp4" not in long  # a fine pick for segment 4? 3 s for 2 s: within 1 s
    picks = {c["path"]: c["length_minus_segment_s"] for c in data["clips"]}
    alts = {c["path"]: c["length_minus_segment_s"] for c in data["alternates"]}
    assert picks[str(off.clips[0].resolve())] == pytest.approx(-1.25, abs=1e-3)
    assert alts[str(long_alt.resolve())] == pytest.approx(2.0, abs=1e-3)


# ---------------------------------------------------------------- frame size


def _sizes_written(out: Path, stem: str) -> dict[str, tuple[int, int]]:
    """The sequence frame size each format states, read with lxml and OTIO."""
    got: dict[str, tuple[int, int]] = {}
    xml = etree.parse(str(out / f"{stem}.premiere.xml"))
    sc = xml.find("sequence/media/video/format/samplecharacteristics")
    assert sc is not None
    got["premiere-xml"] = (int(sc.findtext("width") or 0), int(sc.findtext("height") or 0))
    fcp = etree.parse(str(out / f"{stem}.fcpxml"))
    seq = fcp.find("library/event/project/sequence")
    assert seq is not None
    fmt = fcp.find(f"resources/format[@id='{seq.get('format')}']")
    assert fmt is not None
    got["fcpxml"] = (int(fmt.get("width") or 0), int(fmt.get("height") or 0))
    premiere = otio.adapters.read_from_file(str(out / f"{stem}.premiere.otio"))
    res = premiere.tracks.metadata["PremierePro_OTIO"]["VideoResolution"]
    got["premiere-otio"] = (int(res["width"]), int(res["height"]))
    for fmt_name in ("otio", "resolve-otio"):
        tl = otio.adapters.read_from_file(str(out / f"{stem}{SUFFIXES[fmt_name]}"))
        got[fmt_name] = (tl.metadata["handoff"]["width"], tl.metadata["handoff"]["height"])
    return got


@pytest.mark.parametrize("small_first", [True, False], ids=["small-first", "large-first"])
def test_size_tie_goes_to_the_largest_frame(tmp_path: Path, small_first: bool) -> None:
    fps = Fraction(25)
    small = [_clip(tmp_path / f"s{i}.mp4", fps, 0.4, (160, 96)) for i in range(2)]
    large = [_clip(tmp_path / f"l{i}.mp4", fps, 0.4, (320, 192)) for i in range(2)]
    wide = [_clip(tmp_path / "w.mp4", fps, 0.4, (352, 96))]  # a lone one: not in the tie
    clips = [*small, *wide, *large] if small_first else [*large, *wide, *small]
    out = tmp_path / "out"
    r = _timeline(*clips, "--format", "all", "--out", out, "--name", "tie", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert (data["width"], data["height"]) == (320, 192)
    assert set(_sizes_written(out, "tie").values()) == {(320, 192)}
    (note,) = [n for n in data["notes"] if n.startswith("sequence frame size")]
    assert "tied with 160x96" in note and "largest" in note
    assert "160x96 (2)" in note and "352x96 (1)" in note


def test_size_option_overrides_in_every_format(tmp_path: Path) -> None:
    clips = [_clip(tmp_path / f"{i:03d}.mp4", Fraction(24), 0.5) for i in (1, 2)]
    out = tmp_path / "out"
    r = _timeline(*clips, "--format", "all", "--out", out, "--name", "sized",
                  "--size", "1920x1080", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert (data["width"], data["height"]) == (1920, 1080)
    assert set(_sizes_written(out, "sized").values()) == {(1920, 1080)}
    assert any("1920x1080 (as given)" in n and "160x96 (2)" in n for n in data["notes"])
    # The clips keep their own size where a format records it.
    fcp = etree.parse(str(out / "sized.fcpxml"))
    formats = {(f.get("width"), f.get("height")) for f in fcp.iterfind("resources/format")}
    assert formats == {("1920", "1080"), ("160", "96")}


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("1921x1080", "must be even"),
        ("1920x1081", "must be even"),
        ("1920", "expected WIDTHxHEIGHT"),
        ("1920x-2", "expected WIDTHxHEIGHT"),
        ("wide", "expected WIDTHxHEIGHT"),
        ("0x0", "2 to 16384"),
        ("20000x1080", "2 to 16384"),
    ],
)
def test_bad_size_is_one_line(tmp_path: Path, size: str, expected: str) -> None:
    clip = _clip(tmp_path / "a.mp4", Fraction(24), 0.3)
    out = tmp_path / "t.otio"
    line = _one_line_error(_timeline(clip, "--format", "otio", "--out", out, "--size", size))
    assert expected in line and size in line
    assert not out.exists()


# ---------------------------------------------------------------- start timecode


RATES = {
    "24": Fraction(24),
    "25": Fraction(25),
    "23.976": Fraction(24000, 1001),
    "29.97": Fraction(30000, 1001),
}
STARTS = [
    ("24", "01:00:00:00"),
    ("25", "00:59:50:12"),
    ("23.976", "01:00:00:00"),
    ("29.97", "01:00:00:00"),
    ("29.97", "01:00:00;00"),
    ("29.97", "00;59;59;28"),
]


@pytest.fixture(scope="module")
def projects(module_tmp: MakeDir) -> dict[str, TimelineProject]:
    return {
        label: make_timeline_project(
            module_tmp(f"tc{label}"), fps=rate, clip_seconds=(1.5, 1.0, 2.0)
        )
        for label, rate in RATES.items()
    }


def _frame_count(tc: str, rate: Fraction) -> int:
    """The timecode's frame count, by OTIO's own timecode reader (';' is drop-frame)."""
    text = tc if ";" not in tc else tc[:8].replace(";", ":") + ";" + tc[9:]
    return round(float(otio.opentime.from_timecode(text, float(rate)).value))


@pytest.mark.parametrize(("label", "tc"), STARTS)
def test_start_timecode_in_every_format(
    projects: dict[str, TimelineProject], tmp_path: Path, label: str, tc: str
) -> None:
    project = projects[label]
    rate = RATES[label]
    drop = ";" in tc
    start = _frame_count(tc, rate)
    out = tmp_path / "out"
    r = _timeline(project.folder, "--manifest", project.manifest, "--format", "all",
                  "--out", out, "--name", "tc", "--start-timecode", tc, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["start_frame"] == start
    assert data["start_timecode"] == str(parse_timecode(tc))
    clips = [(c["start"], c["end"] - c["start"]) for c in data["clips"]]

    # OTIO flavours: global_start_time, positions still from the timeline's first frame.
    for fmt in ("otio", "premiere-otio", "resolve-otio"):
        tl = otio.adapters.read_from_file(str(out / f"tc{SUFFIXES[fmt]}"))
        assert tl.global_start_time.rate == pytest.approx(float(rate))
        assert round(tl.global_start_time.value) == start
        v1 = tl.video_tracks()[0]
        placed = [(round(v1.range_of_child(c).start_time.value),
                   round(c.source_range.duration.value)) for c in v1.find_clips()]  # fmt: skip
        assert placed == clips, fmt
        if drop:
            assert tl.metadata["handoff"]["drop_frame"] is True

    # FCP7 XML: the sequence <timecode> as Premiere writes it; clipitems from frame 0.
    xml = etree.parse(str(out / "tc.premiere.xml"))
    seq_tc = xml.find("sequence/timecode")
    assert seq_tc is not None
    assert seq_tc.findtext("frame") == str(start)
    assert seq_tc.findtext("displayformat") == ("DF" if drop else "NDF")
    shown = seq_tc.findtext("string") or ""
    assert shown.replace(";", ":") == tc.replace(";", ":")
    assert (";" in shown) == drop
    items = xml.findall("sequence/media/video/track/clipitem")
    assert [(int(i.findtext("start") or -1), int(i.findtext("end") or -1) - int(
        i.findtext("start") or -1)) for i in items] == clips  # fmt: skip
    read = otio.adapters.read_from_file(str(out / "tc.premiere.xml"), adapter_name="fcp_xml")
    assert round(read.global_start_time.value) == start
    assert otio.opentime.to_timecode(read.global_start_time, float(rate), drop).replace(
        ";", ":"
    ) == tc.replace(";", ":")

    # FCPXML: tcStart is the start as a time; the storyline's offsets count from it.
    fcp = etree.parse(str(out / "tc.fcpxml"))
    seq = fcp.find("library/event/project/sequence")
    assert seq is not None
    assert Fraction(seq.get("tcStart", "")[:-1]) == start / rate
    assert seq.get("tcFormat") == ("DF" if drop else "NDF")
    # The pictures hang above the narration's storyline; read exactly, their places
    # count from the sequence's first frame (tcStart subtracted).
    fcp_read = read_fcpxml((out / "tc.fcpxml").read_bytes())
    assert fcp_read.start_frames == start
    pictures = sorted((c.start, c.duration) for c in fcp_read.clips if c.kind == "video")
    assert pictures == clips
    for version in ("1.10", "1.11"):
        dtd = NLE / f"FCPXMLv{version.replace('.', '_')}.dtd"
        if not dtd.exists():
            continue  # the DTD test in test_timeline_fcpxml.py says it is missing
        again = _timeline(project.folder, "--manifest", project.manifest, "--format",
                          "fcpxml", "--fcpxml-version", version, "--start-timecode", tc,
                          "--out", tmp_path / f"v{version}.fcpxml")  # fmt: skip
        assert again.exit_code == 0, again.output
        doc = etree.parse(str(tmp_path / f"v{version}.fcpxml"))
        validator = etree.DTD(str(dtd))
        assert validator.validate(doc), str(validator.error_log)
    if rate.denominator == 1:
        # The fcpx adapter (1.0.0) reads no tcStart: it places each storyline item at its
        # offset, so the narration (the storyline, lane 0) lands start frames later than
        # on our timeline. (At NTSC rates it truncates the rate, and it misreads the
        # connected pictures; test_timeline_fcpxml.py covers both.)
        result = otio.adapters.read_from_file(str(out / "tc.fcpxml"), adapter_name="fcpx_xml")
        (timeline,) = list(result)
        lane0 = next(t for t in timeline.tracks if t.name == "0")
        at = [round(lane0.range_of_child(c).start_time.value) for c in lane0.find_clips()]
        assert at == [start + data["master"]["start"]]

    # For people: positions as the editor shows them.
    text = _timeline(project.folder, "--manifest", project.manifest, "--format", "otio",
                     "--out", tmp_path / "p.otio", "--start-timecode", tc)  # fmt: skip
    assert text.exit_code == 0, text.output
    first_v1 = next(line for line in text.output.splitlines() if line.startswith("  V1"))
    assert timecode_at(start + clips[0][0], rate, drop_frame=drop) in first_v1
    assert f"from {timecode_at(start, rate, drop_frame=drop)}" in text.output.splitlines()[0]


@pytest.mark.parametrize(
    ("label", "tc", "expected"),
    [
        ("24", "01:00:00:24", "counts 00-23 at 24 fps"),
        ("29.97", "01:00:00:30", "counts 00-29 at 29.97 fps"),
        ("24", "01:00:00;00", "drop-frame timecode (';') exists only at 29.97 and 59.94"),
        ("23.976", "01:00:00;00", "not 23.976"),
        ("29.97", "01:01:00;01", "that label does not exist"),
        ("24", "24:00:00:00", "hours run 00-23"),
        ("24", "00:60:00:00", "minutes and seconds 00-59"),
        ("24", "1:00:00:00", "expected HH:MM:SS:FF"),
        ("24", "01:00:00:00:00", "expected HH:MM:SS:FF"),
        ("24", "01;00:00:00", "';' marks drop-frame before the frames field"),
        ("24", "", "expected HH:MM:SS:FF"),
    ],
)
def test_bad_start_timecode_is_one_line(
    projects: dict[str, TimelineProject], tmp_path: Path, label: str, tc: str, expected: str
) -> None:
    project = projects[label]
    out = tmp_path / "t.otio"
    line = _one_line_error(_timeline(project.folder, "--format", "otio", "--out", out,
                                     "--start-timecode", tc))  # fmt: skip
    assert expected in line
    assert not out.exists()


def test_drop_frame_accepted_at_59_94(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "a.mp4", Fraction(60000, 1001), 0.3)
    r = _timeline(clip, "--format", "premiere-xml", "--out", tmp_path / "a.xml",
                  "--start-timecode", "01:00:00;00", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    # 60 minutes at 59.94 drop 4 labels in 54 of them.
    assert json.loads(r.output)["start_frame"] == 3600 * 60 - 4 * 54
    read = otio.adapters.read_from_file(str(tmp_path / "a.xml"), adapter_name="fcp_xml")
    assert round(read.global_start_time.value) == 3600 * 60 - 4 * 54


# ---------------------------------------------------------------- timecode arithmetic


@given(st.integers(min_value=0, max_value=24 * 3600 * 60 - 1),
       st.sampled_from([Fraction(30000, 1001), Fraction(60000, 1001), Fraction(24),
                        Fraction(25), Fraction(24000, 1001)]),
       st.booleans())  # fmt: skip
def test_labels_agree_with_otio_and_read_back(frame: int, rate: Fraction, drop: bool) -> None:
    drop = drop and rate.denominator == 1001 and rate.numerator != 24000
    frame %= round(24 * 3600 * rate)  # within one day of labels
    label = timecode_at(frame, rate, drop_frame=drop)
    theirs = otio.opentime.to_timecode(otio.opentime.RationalTime(frame, float(rate)),
                                       float(rate), drop)  # fmt: skip
    assert label.replace(";", ":") == theirs.replace(";", ":")
    tc = parse_timecode(label)
    assert tc.drop_frame == drop
    assert tc.frame_at(rate) == frame
    assert parse_timecode(str(tc)) == tc


def test_timecode_str_forms() -> None:
    assert str(parse_timecode("01;00;00;00")) == "01:00:00;00"
    assert parse_timecode(" 10:00:00:00 ") == Timecode(10, 0, 0, 0)


# ---------------------------------------------------------------- the how-to


HOWTO = REPO / "docs" / "howto" / "editor-handoff.md"


def _howto_timeline_commands() -> list[str]:
    text = HOWTO.read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    return [line.strip() for b in blocks for line in b.splitlines()
            if line.strip().startswith("handoff timeline ")]  # fmt: skip


def test_howto_timeline_commands_run_as_written(tmp_path: Path) -> None:
    """Every ``handoff timeline`` command of docs/howto/editor-handoff.md, run as shown
    in a folder holding ``masters/`` (24 fps clips, as the how-to exports them) and
    ``demo-out/conditioned/`` (the manifest and its master), and what its files hold.
    (tests/test_docs.py runs the whole page on the demo's media.)"""
    project = make_timeline_project(tmp_path / "made", fps=Fraction(24))
    (tmp_path / "masters").mkdir()
    conditioned = tmp_path / "demo-out" / "conditioned"
    conditioned.mkdir(parents=True)
    for clip in project.clips:
        shutil.move(clip, tmp_path / "masters" / clip.name)
    for f in (project.manifest, project.master):
        shutil.move(f, conditioned / f.name)
    commands = _howto_timeline_commands()
    assert len(commands) == 3, commands
    for command in commands:
        done = run_handoff(*shlex.split(command)[1:], cwd=tmp_path)
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr
    # What the start-timecode example promises, in the files it wrote.
    stem = project.master.stem
    xml = etree.parse(str(tmp_path / "edit-hour" / f"{stem}.premiere.xml"))
    assert xml.findtext("sequence/timecode/string") == "01:00:00:00"
    assert xml.findtext("sequence/timecode/frame") == str(3600 * 24)
    assert xml.findtext("sequence/media/video/format/samplecharacteristics/width") == "1920"
    fcp = etree.parse(str(tmp_path / "edit-hour" / f"{stem}.fcpxml"))
    assert fcp.find("library/event/project/sequence").get("tcStart") == "3600s"  # type: ignore[union-attr]
    tl = otio.adapters.read_from_file(str(tmp_path / "edit-hour" / f"{stem}.resolve.otio"))
    assert tl.global_start_time == otio.opentime.RationalTime(86400, 24)
