"""Selects: from a sync result to a file a person edits, and from that file to a timeline
with the picks in sync on V1 and the alternates beside them, in every editor format,
on real media made with PyAV."""

from __future__ import annotations

import copy
import json
import math
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest
from lxml import etree

from handoff.errors import InputError, OutputExistsError, SelectsError, UsageError
from handoff.media.synth import ClipSpec, write_clip
from handoff.sync.selects import load_selects, selects_from_sync, write_selects
from handoff.timeline import render
from handoff.timeline.model import TimelineBuild
from handoff.timeline.project import timeline_from_paths, timeline_from_selects
from tests.conftest import NLE, MakeDir, TimelineProject, make_timeline_project
from tests.readback_fcpxml import read_fcpxml

RATE = Fraction(24000, 1001)
SR = 48000


# ---------------------------------------------------------------- the project


@dataclass(frozen=True)
class Project:
    base: TimelineProject
    renders: Path
    sync: dict[str, Any]
    offsets: dict[str, float | None]
    """Measured sound offset (ms) of every take that has one, by file name."""
    manifest: dict[str, Any]

    def path(self, name: str) -> str:
        return str(self.renders / name)


def _take(
    path: Path,
    segment: int | None,
    score: float | None,
    verdict: str,
    offset_ms: float | None,
    *,
    status: str = "ok",
    error: str | None = None,
    recut_at_s: float | None = None,
    matched: bool = True,
) -> dict[str, Any]:
    """One take of a ``handoff.sync/1`` result, every field as sync writes it."""
    audio = None
    if status == "ok":
        audio = {
            "matched": matched,
            "audio_offset_ms": offset_ms if matched else None,
            "audio_drift_ppm": 1.2,
            "confidence": 0.98 if matched else 0.1,
            "method": "waveform",
            "note": None if matched else "the take's sound is not the narration",
        }
    picture = None
    if status == "ok":
        picture = {
            "picture_offset_ms": 83.1,
            "picture_drift_ms_per_min": 0.4,
            "drift_exceeds_at_s": recut_at_s,
            "confidence": 0.9,
            "method": "motion",
        }
    return {
        "path": str(path),
        "name": path.name,
        "segment": segment,
        "reference": None if segment is None else f"/cond/voice_seg{segment:03d}.wav",
        "status": status,
        "error": error,
        "verdict": "error" if status == "error" else verdict,
        "score": score,
        "tolerance_ms": 41.667,
        "audio": audio,
        "picture": picture,
        "recut_at_s": recut_at_s,
        "notes": [],
    }


# name, seconds, segment, score, verdict, offset_ms, extra
TAKES: list[tuple[str, float, int | None, float | None, str, float | None, dict[str, Any]]] = [
    ("001_intro_take1.mp4", 1.5, 1, 91.0, "in", 37.02, {}),
    ("001_intro_take2.mp4", 1.5, 1, 88.5, "in", -20.0, {}),
    ("002_pointA_take1.mp4", 1.5, 2, 83.1, "out", None, {"matched": False}),
    ("002_pointA_take3.mp4", 1.5, 2, 97.3, "in", 12.5, {}),
    # The same score as take3: the tie goes to the name, and "seed" sorts before "take".
    ("002_pointA_seed1234.mp4", 1.25, 2, 97.3, "in", 60.0, {}),
    ("003_outro_take1.mp4", 1.5, 3, 40.0, "out", 10.0, {"recut_at_s": 0.9}),
    ("003_outro_take2.mp4", 1.5, 3, None, "error", None,
     {"status": "error", "error": "no audio stream"}),
    ("notes_take.mp4", 1.0, None, 70.0, "in", 0.0, {}),
]  # fmt: skip


@pytest.fixture(scope="module")
def project(module_tmp: MakeDir) -> Project:
    root = module_tmp("selects")
    # Three segments of 2 s each (1.85 s of speech after a 150 ms pre-roll), abutting.
    base = make_timeline_project(root, fps=RATE, clip_seconds=(2.0, 2.0, 2.0))
    renders = root / "renders"
    renders.mkdir()
    takes = []
    offsets: dict[str, float | None] = {}
    for name, seconds, segment, score, verdict, offset, extra in TAKES:
        path = write_clip(
            renders / name,
            ClipSpec(fps=RATE, seconds=seconds, width=160, height=96,
                     video_options={"preset": "ultrafast"}),
        )  # fmt: skip
        takes.append(_take(path, segment, score, verdict, offset, **extra))
        offsets[name] = offset
    sync = {
        "schema": "handoff.sync/1",
        "tolerance_ms": 41.667,
        "manifest": str(base.manifest.resolve()),
        "reference": None,
        "takes": takes,
    }
    manifest = json.loads(base.manifest.read_text(encoding="utf-8"))
    return Project(base, renders, sync, offsets, manifest)


def _selects_file(project: Project, folder: Path, edit: Any = None) -> Path:
    data = selects_from_sync(project.sync)
    if edit is not None:
        edit(data)
    path = folder / "selects.json"
    write_selects(path, data, replace=True)
    return path


def _exact(project: Project, segment: int, offset_ms: float | None) -> Fraction:
    """Where a take of ``segment`` starts on the master's clock (seconds), worked out
    from the manifest's sample positions and the take's measured offset."""
    seg = next(s for s in project.manifest["segments"] if s["index"] == segment)
    late = Fraction(0) if offset_ms is None else Fraction(repr(offset_ms)) / 1000
    return Fraction(seg["source_in"] - seg["preroll_end"], SR) - late


def _master_start(project: Project, takes: list[tuple[int, float | None]]) -> int:
    earliest = min(_exact(project, s, o) for s, o in takes)
    return math.ceil(max(Fraction(0), -earliest) * RATE)


def _frame(project: Project, segment: int, offset_ms: float | None, master_start: int) -> int:
    """The timeline frame where the take's first frame belongs, rounded to the nearest."""
    return round(_exact(project, segment, offset_ms) * RATE + master_start)


# The layout the generated selects ask for: (segment, offset) of every take placed.
PLACED = {
    "001_intro_take1.mp4": (1, 37.02),
    "001_intro_take2.mp4": (1, -20.0),
    "002_pointA_seed1234.mp4": (2, 60.0),
    "002_pointA_take3.mp4": (2, 12.5),
    "002_pointA_take1.mp4": (2, None),
    "003_outro_take1.mp4": (3, 10.0),
}


@pytest.fixture(scope="module")
def built(project: Project, module_tmp: MakeDir) -> TimelineBuild:
    path = _selects_file(project, module_tmp("built"))
    return timeline_from_selects(path)


# ---------------------------------------------------------------- from sync


def test_selects_from_sync_ranks_groups_and_flags(project: Project) -> None:
    data = selects_from_sync(project.sync)
    p = project.path
    assert data["schema"] == "handoff.selects/1"
    assert data["manifest"] == project.sync["manifest"]
    assert data["tolerance_ms"] == 41.667
    assert [s["segment"] for s in data["segments"]] == [1, 2, 3]
    s1, s2, s3 = data["segments"]

    assert s1["pick"] == p("001_intro_take1.mp4")
    assert s1["alternates"] == [p("001_intro_take2.mp4")]
    assert s1["regenerate"] is False and s1["recut_at_s"] is None

    # 97.3 twice: ranked by name; 83.1 last.
    assert s2["pick"] == p("002_pointA_seed1234.mp4")
    assert s2["alternates"] == [p("002_pointA_take3.mp4"), p("002_pointA_take1.mp4")]
    assert [t["path"] for t in s2["takes"]] == [s2["pick"], *s2["alternates"]]
    assert s2["takes"][0] == {
        "path": p("002_pointA_seed1234.mp4"),
        "score": 97.3,
        "verdict": "in",
        "audio_offset_ms": 60.0,
        "picture_offset_ms": 83.1,
        "drift_exceeds_at_s": None,
    }
    # A take whose sound is not the narration has no offset to place it by.
    assert s2["takes"][2]["audio_offset_ms"] is None
    assert s2["regenerate"] is False

    # No take of segment 3 is "in": regenerate, re-cut where the pick drifts out. The
    # take that could not be measured is not among its takes.
    assert s3["pick"] == p("003_outro_take1.mp4")
    assert s3["alternates"] == []
    assert s3["regenerate"] is True and s3["recut_at_s"] == 0.9
    assert [t["path"] for t in s3["takes"]] == [p("003_outro_take1.mp4")]

    unplaced = {u["path"]: u["reason"] for u in data["unplaced"]}
    assert set(unplaced) == {p("003_outro_take2.mp4"), p("notes_take.mp4")}
    assert "no audio stream" in unplaced[p("003_outro_take2.mp4")]
    assert "no segment" in unplaced[p("notes_take.mp4")]
    # Pure: the input is left as it was, and the output is plain JSON.
    assert json.loads(json.dumps(data)) == data


def test_selects_from_sync_scores_missing_rank_last_and_repeats_unplaced(project: Project) -> None:
    sync = copy.deepcopy(project.sync)
    first = sync["takes"][0]  # 001_intro_take1, score 91
    first["score"] = None
    sync["takes"].append(copy.deepcopy(sync["takes"][1]))
    data = selects_from_sync(sync)
    s1 = data["segments"][0]
    assert s1["pick"] == project.path("001_intro_take2.mp4")
    assert s1["alternates"] == [project.path("001_intro_take1.mp4")]
    assert {"path": project.path("001_intro_take2.mp4"),
            "reason": "listed twice in the sync result"} in data["unplaced"]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("schema"), 'sync result: schema: must be "handoff.sync/1" (got null)'),
        (lambda d: d.update(takes={}), "sync result: takes: must be an array (got an object)"),
        (lambda d: d["takes"][1].update(segment="2"),
         'sync result: takes[1].segment: must be null or a whole number of 1 or more (got "2")'),
        (lambda d: d["takes"][0].update(verdict="maybe"),
         "sync result: takes[0].verdict: must be one of in, out, error"),
        (lambda d: d["takes"][0]["audio"].update(audio_offset_ms="37"),
         "sync result: takes[0].audio.audio_offset_ms: must be null or a finite number"),
    ],
)  # fmt: skip
def test_selects_from_sync_names_the_bad_field(project: Project, change: Any, message: str) -> None:
    sync = copy.deepcopy(project.sync)
    change(sync)
    with pytest.raises(SelectsError) as info:
        selects_from_sync(sync)
    assert str(info.value).startswith(message), str(info.value)


# ---------------------------------------------------------------- the file


def test_write_and_load_round_trip(project: Project, tmp_path: Path) -> None:
    data = selects_from_sync(project.sync)
    path = tmp_path / "selects.json"
    write_selects(path, data, replace=False)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and '\n  "segments": [' in text  # indented, for people
    assert json.loads(text) == data
    with pytest.raises(OutputExistsError):
        write_selects(path, data, replace=False)
    write_selects(path, data, replace=True)

    selects = load_selects(path)
    assert selects.manifest == project.base.manifest.resolve()
    assert selects.tolerance_ms == 41.667
    s2 = selects.segments[1]
    assert s2.segment == 2
    assert s2.pick == Path(project.path("002_pointA_seed1234.mp4"))
    assert s2.alternates == (
        Path(project.path("002_pointA_take3.mp4")),
        Path(project.path("002_pointA_take1.mp4")),
    )
    take = s2.take(Path(project.path("002_pointA_take3.mp4")))
    assert take is not None and take.score == 97.3 and take.audio_offset_ms == 12.5
    assert selects.segments[2].regenerate and selects.segments[2].recut_at_s == 0.9
    assert [u.path.name for u in selects.unplaced] == ["003_outro_take2.mp4", "notes_take.mp4"]


def test_write_refuses_what_load_would_refuse(tmp_path: Path) -> None:
    path = tmp_path / "selects.json"
    bad = {"schema": "handoff.selects/1", "segments": [{"segment": 0, "pick": "a.mp4"}]}
    with pytest.raises(SelectsError, match=r"segments\[0\]\.segment: must be a whole number"):
        write_selects(path, bad, replace=False)
    assert not path.exists()


GOOD: dict[str, Any] = {
    "schema": "handoff.selects/1",
    "segments": [{"segment": 1, "pick": "a.mp4"}],
}


def _get(element: Any, key: str) -> str:
    value = element.get(key)
    assert value is not None, f"{element.tag} has no {key}"
    return str(value)


def _doc(**segment: Any) -> bytes:
    doc = copy.deepcopy(GOOD)
    doc["segments"][0].update(segment)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"schema": "handoff.selects/1", "segments": [', "not valid JSON (Expecting value"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
        (json.dumps({"schema": "handoff.sync/1", "takes": []}).encode(),
         'not a selects file (expected "schema": "handoff.selects/1", got "handoff.sync/1")'),
        (json.dumps({**GOOD, "schema": "handoff.selects/2"}).encode(),
         'schema: "handoff.selects/2" is a version this handoff does not read'),
        (b"[1, 2]", "the document: must be an object (got an array)"),
        (_doc(recut_at_s=float("nan")),
         "segments[0].recut_at_s: must be null or a finite number (got NaN)"),
        (_doc(recut_at_s=1e999), "segments[0].recut_at_s: must be null or a finite number"),
        (json.dumps({**GOOD, "segments": [*GOOD["segments"], {"segment": 2, "pick": 3}]})
         .encode(),
         "segments[1].pick: must be a file path (got 3)"),
        (json.dumps({**GOOD, "segments": [GOOD["segments"][0]] * 2}).encode(),
         "segments[1].segment: 1 is also the segment of segments[0]: one entry per segment"),
        (_doc(pick=""), 'segments[0].pick: must be a file path (got "")'),
        (_doc(alternates=["b.mp4", "./b.mp4"]), 'segments[0].alternates[1]: "./b.mp4" is also '
                                                "alternates[0]"),
        (_doc(alternates="b.mp4"), 'segments[0].alternates: must be an array (got "b.mp4")'),
        (_doc(regenerate="yes"), 'segments[0].regenerate: must be true or false (got "yes")'),
        (_doc(takes=[{"path": "a.mp4", "verdict": "good"}]),
         'segments[0].takes[0].verdict: must be one of in, out, error (got "good")'),
        (_doc(takes=[{"path": "a.mp4", "audio_offset_ms": "37 ms"}]),
         'segments[0].takes[0].audio_offset_ms: must be null or a finite number (got "37 ms")'),
        (json.dumps({"schema": "handoff.selects/1"}).encode(), "segments: missing"),
        (json.dumps({**GOOD, "segments": [{"pick": "a.mp4"}]}).encode(),
         "segments[0].segment: missing"),
    ],
)  # fmt: skip
def test_load_selects_names_the_bad_field(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "selects.json"
    path.write_bytes(content)
    with pytest.raises(SelectsError) as info:
        load_selects(path)
    text = str(info.value)
    assert text == f"{path}: {info.value.message}"
    assert "\n" not in text
    assert info.value.message.startswith(message), text


def test_load_selects_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(SelectsError, match="selects file not found"):
        load_selects(tmp_path / "nope.json")
    with pytest.raises(SelectsError, match="is a folder"):
        load_selects(tmp_path)


def test_hand_edits_are_read(tmp_path: Path) -> None:
    """What a person is likely to write: relative paths, the optional keys left out, the
    pick also listed among the alternates."""
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "selects.json"
    path.write_text(json.dumps({
        "schema": "handoff.selects/1",
        "manifest": "../cond/manifest.json",
        "segments": [{"segment": 4, "pick": "b.mp4", "alternates": ["a.mp4", "b.mp4"],
                      "takes": [{"path": "a.mp4", "score": 80}]}],
    }), encoding="utf-8")  # fmt: skip
    selects = load_selects(path)
    seg = selects.segments[0]
    assert selects.manifest == tmp_path / "sub" / ".." / "cond" / "manifest.json"
    assert seg.pick == tmp_path / "sub" / "b.mp4"
    assert seg.shown_alternates == (tmp_path / "sub" / "a.mp4",)
    assert seg.regenerate is False and seg.recut_at_s is None
    take = seg.take(tmp_path / "sub" / "a.mp4")
    assert take is not None and take.score == 80.0 and take.verdict == "out"
    assert take.audio_offset_ms is None
    assert seg.take(seg.pick) is None
    assert selects.unplaced == () and selects.tolerance_ms is None


# ---------------------------------------------------------------- the timeline


def _clips(track: otio.schema.Track) -> list[tuple[int, int, otio.schema.Clip]]:
    """(timeline frame, source frame, clip) of every clip, as OTIO computes them."""
    out = []
    for i, item in enumerate(track):
        if isinstance(item, otio.schema.Clip):
            at = track.range_of_child_at_index(i).start_time
            out.append((round(at.value), round(item.source_range.start_time.value), item))
    return out


def _file(clip: otio.schema.Clip) -> str:
    return Path(clip.metadata["handoff"]["path"]).name


def test_layout_picks_in_sync_on_v1(project: Project, built: TimelineBuild) -> None:
    tl = built.timeline
    assert [t.name for t in tl.tracks] == ["V1", "V2", "V3", "A1", "A2"]
    m0 = _master_start(project, list(PLACED.values()))
    assert m0 == 5  # segment 1's take1: 150 ms of pre-roll + 37.02 ms late = 4.48 frames
    assert built.master_start == m0

    v1 = _clips(tl.tracks[0])
    assert [_file(c) for _, _, c in v1] == [
        "001_intro_take1.mp4", "002_pointA_seed1234.mp4", "003_outro_take1.mp4"
    ]  # fmt: skip
    for start, source_in, clip in v1:
        segment, offset = PLACED[_file(clip)]
        assert (start, source_in) == (_frame(project, segment, offset, m0), 0)
    # By hand: segment 2's pre-roll starts at 88800 - 7200 samples = 1.7 s; 60 ms late,
    # the take starts at 1.64 s = 39.32 frames, + 5 for the master: frame 44 (44.32);
    # unshifted it would be 45.76 -> 46.
    assert v1[1][0] == 44
    assert _frame(project, 2, None, m0) == 46
    assert [c.name for _, _, c in v1] == [
        "001_intro_take1 (pick, score 91.0)",
        "002_pointA_seed1234 (pick, score 97.3)",
        "003_outro_take1 (pick, score 40.0)",
    ]
    assert [c.media_reference.name for _, _, c in v1] == [_file(c) for _, _, c in v1]
    assert tl.tracks[0].enabled

    # Rounding to the frame is reported per clip and in the notes.
    for p in built.placements:
        segment, offset = PLACED[p.source.path.name]
        ideal = _exact(project, segment, offset) * RATE + m0
        assert p.rounding_ms == pytest.approx(float((p.start - ideal) / RATE * 1000))
        assert abs(p.rounding_ms) <= 500 / float(RATE)
        assert p.offset_ms == offset
    assert any(n.startswith("picks moved by their measured sound offset") for n in built.notes)

    # The master is locked on A1; the picks' own sound under them on A2, disabled.
    a1, a2 = tl.tracks[3], tl.tracks[4]
    assert a1.metadata["handoff"]["role"] == "master" and a1.metadata["handoff"]["locked"]
    assert [(s, _file(c)) for s, _, c in _clips(a1)] == [(m0, project.base.master.name)]
    assert [(s, _file(c), c.enabled) for s, _, c in _clips(a2)] == [
        (s, _file(c), False) for s, _, c in v1
    ]


def test_layout_alternates_on_disabled_tracks(project: Project, built: TimelineBuild) -> None:
    tl = built.timeline
    m0 = built.master_start
    v2, v3 = tl.tracks[1], tl.tracks[2]
    assert not v2.enabled and not v3.enabled
    assert v2.metadata["handoff"] == {"role": "alternate", "locked": False, "channels": 0,
                                      "rank": 2}  # fmt: skip
    on_v2 = _clips(v2)
    on_v3 = _clips(v3)
    assert [(c.name, _file(c)) for _, _, c in on_v2] == [
        ("001_intro_take2 (alt 2, score 88.5)", "001_intro_take2.mp4"),
        ("002_pointA_take3 (alt 2, score 97.3)", "002_pointA_take3.mp4"),
    ]
    assert [c.name for _, _, c in on_v3] == ["002_pointA_take1 (alt 3, score 83.1)"]
    for start, source_in, clip in on_v2 + on_v3:
        segment, offset = PLACED[_file(clip)]
        assert (start, source_in) == (_frame(project, segment, offset, m0), 0)
        assert clip.metadata["handoff"]["segment"] == segment
    # The take whose sound did not match sits where its segment starts, unshifted.
    assert on_v3[0][0] == _frame(project, 2, None, m0)

    summary = built.summary()
    assert summary["regenerate"] == [3]
    assert [(a["path"], a["rank"], a["score"]) for a in summary["alternates"]] == [
        (project.path("001_intro_take2.mp4"), 2, 88.5),
        (project.path("002_pointA_take3.mp4"), 2, 97.3),
        (project.path("002_pointA_take1.mp4"), 3, 83.1),
    ]
    assert [c["offset_ms"] for c in summary["clips"]] == [37.02, 60.0, 10.0]
    assert "marked regenerate (no take within tolerance): segment 3 (re-cut at 0.90 s)" in (
        built.notes
    )
    assert any("take(s) listed as unplaced" in n for n in built.notes)
    assert {project.base.manifest, project.renders / "002_pointA_take1.mp4"} <= {
        Path(p) for p in built.inputs
    }


def _otio_read(built: TimelineBuild, fmt: str, folder: Path) -> otio.schema.Timeline:
    path = folder / f"cut.{fmt}.otio"
    path.write_bytes(render(built.timeline, fmt))
    read = otio.adapters.read_from_file(str(path))
    assert isinstance(read, otio.schema.Timeline)
    return read


@pytest.mark.parametrize("fmt", ["otio", "premiere-otio", "resolve-otio"])
def test_otio_flavours_read_back(
    project: Project, built: TimelineBuild, fmt: str, tmp_path: Path
) -> None:
    read = _otio_read(built, fmt, tmp_path)
    m0 = built.master_start
    assert [(t.name, t.enabled) for t in read.tracks] == [
        ("V1", True), ("V2", False), ("V3", False), ("A1", True), ("A2", True)
    ]  # fmt: skip
    for track in read.tracks[:3]:
        for start, source_in, clip in _clips(track):
            segment, offset = PLACED[_file(clip)]
            assert (start, source_in) == (_frame(project, segment, offset, m0), 0)
            assert ("(pick, " in clip.name) == (track.name == "V1")
    names = [c.name for _, _, c in _clips(read.tracks[1]) + _clips(read.tracks[2])]
    assert names == [
        "001_intro_take2 (alt 2, score 88.5)",
        "002_pointA_take3 (alt 2, score 97.3)",
        "002_pointA_take1 (alt 3, score 83.1)",
    ]
    if fmt == "resolve-otio":
        assert read.tracks[3].metadata["Resolve_OTIO"]["Locked"] is True
        assert read.tracks[1].metadata["Resolve_OTIO"]["Locked"] is False
    if fmt == "premiere-otio":
        # Each alternate has its own link id: none is tied to a pick or its sound.
        ids = [c.metadata["PremierePro_OTIO"]["LinkID"] for c in read.find_clips()
               if c.metadata["handoff"]["role"] != "master"]  # fmt: skip
        alt_ids = [c.metadata["PremierePro_OTIO"]["LinkID"]
                   for t in read.tracks[1:3] for c in t.find_clips()]  # fmt: skip
        assert all(ids.count(i) == 1 for i in alt_ids)


def test_premiere_xml_read_back(project: Project, built: TimelineBuild, tmp_path: Path) -> None:
    data = render(built.timeline, "premiere-xml")
    path = tmp_path / "cut.premiere.xml"
    path.write_bytes(data)
    read = otio.adapters.read_from_file(str(path), adapter_name="fcp_xml")
    video = [t for t in read.tracks if t.kind == otio.schema.TrackKind.Video]
    assert [t.metadata["fcp_xml"]["enabled"] for t in video] == ["TRUE", "FALSE", "FALSE"]
    assert video[0].metadata["fcp_xml"]["locked"] == "FALSE"
    m0 = built.master_start
    files = {}
    for k, track in enumerate(video):
        for start, source_in, clip in _clips(track):
            name = clip.name
            file = next(f for f in PLACED if f.removesuffix(".mp4") == name.split(" (")[0])
            segment, offset = PLACED[file]
            assert (start, source_in) == (_frame(project, segment, offset, m0), 0), name
            files[name] = k + 1
    assert files == {
        "001_intro_take1 (pick, score 91.0)": 1,
        "002_pointA_seed1234 (pick, score 97.3)": 1,
        "003_outro_take1 (pick, score 40.0)": 1,
        "001_intro_take2 (alt 2, score 88.5)": 2,
        "002_pointA_take3 (alt 2, score 97.3)": 2,
        "002_pointA_take1 (alt 3, score 83.1)": 3,
    }
    root = etree.fromstring(data)
    tracks = root.findall("./sequence/media/video/track")
    assert [t.findtext("enabled") for t in tracks] == ["TRUE", "FALSE", "FALSE"]
    # The master stays locked; the file of a take keeps the file's own name.
    audio = root.findall("./sequence/media/audio/track")
    assert audio[0].findtext("locked") == "TRUE"
    alt = tracks[1].find("clipitem")
    assert alt is not None and alt.findtext("file/name") == "001_intro_take2.mp4"


# ---------------------------------------------------------------- FCPXML


def _secs(value: str) -> Fraction:
    assert value.endswith("s"), value
    return Fraction(value[:-1])


def _frames(value: str) -> int:
    f = _secs(value) * RATE
    assert f.denominator == 1, value
    return f.numerator


def _dtd(version: str) -> etree.DTD:
    path = NLE / f"FCPXMLv{version.replace('.', '_')}.dtd"
    if not path.exists():
        pytest.skip(f"Apple's FCPXML {version} DTD not present: {path}")
    return etree.DTD(str(path))


@pytest.mark.parametrize("version", ["1.9", "1.10", "1.11"])
def test_fcpxml_auditions(project: Project, built: TimelineBuild, version: str) -> None:
    data = render(built.timeline, "fcpxml", fcpxml_version=version)
    doc = etree.fromstring(data)
    dtd = _dtd(version)
    assert dtd.validate(doc), str(dtd.error_log)

    m0 = built.master_start
    spine = doc.find("library/event/project/sequence/spine")
    assert spine is not None
    # The narration is the storyline; the picks are connected above it on lane 1.
    assert [el.tag for el in spine] == ["gap", "asset-clip"]
    assert _frames(_get(spine[1], "offset")) == m0 and spine[1].get("audioRole") == "dialogue"
    read = read_fcpxml(data)
    picks = {p.segment.index: p for p in built.placements if p.segment is not None}
    lane1 = [c for c in read.on("lane 1") if c.kind == "video"]
    assert sorted((c.start, c.source_in, c.duration, c.name) for c in lane1) == [
        (p.start, p.source_start, p.duration, f"{p.source.path.stem} (pick, score {p.score:.1f})")
        for p in built.placements
    ]
    assert all(c.enabled for c in lane1)
    assert not any(c.enabled for c in read.on("lane 1") if c.kind == "audio")
    auditions = doc.findall(".//audition")
    assert len(auditions) == 2  # segments 1 and 2; segment 3 has no alternate
    early: list[int] = []
    for audition, segment, alternates in zip(
        auditions, (1, 2), (["001_intro_take2"], ["002_pointA_take3", "002_pointA_take1"]),
        strict=True,
    ):  # fmt: skip
        pick = picks[segment]
        parent = audition.getparent()
        assert audition.get("lane") == "1" and parent is not None and parent.getparent() is spine
        children = list(audition)
        assert all(c.tag == "clip" and c.get("offset") is None for c in children)
        assert children[0].get("name") == f"{pick.source.path.stem} (pick, score {pick.score:.1f})"
        assert [_get(c, "name").split(" (")[0] for c in children[1:]] == alternates
        assert all(" (alt " in _get(c, "name") for c in children[1:])
        # Each alternate starts at its frame that is in sync where the pick starts (its
        # first when it belongs later: the build says how many, and by how much).
        for child in children[1:]:
            file = _get(child, "name").split(" (")[0] + ".mp4"
            alt_start = _frame(project, *PLACED[file], m0)
            in_sync = pick.start - alt_start
            assert _frames(_get(child, "start")) == max(in_sync, 0), file
            early.append(-in_sync)
            assert child.get("enabled") == "1"
            # picture only, its own sound muted inside (Resolve's form, no srcEnable)
            assert child.find("video") is not None
            assert _get(child.find("audio"), "enabled") == "0"
    alts = [c for c in read.on("audition") if c.kind == "video"]
    assert len(alts) == 3 and not any(c.enabled for c in alts)
    late = [e for e in early if e > 0]
    assert late, "the project has alternates that belong later than their pick"
    assert (
        f"FCPXML: an audition starts every take where its pick starts, so {len(late)} "
        f"alternate(s) that belong later start up to {max(late)} frame(s) early in it"
    ) in "\n".join(built.notes)
    # Segment 3's pick is a plain picture clip on lane 1; nothing above lane 1.
    plain = doc.findall(".//clip[@lane='1']")
    assert [c.get("name") for c in plain] == ["003_outro_take1 (pick, score 40.0)"]
    assert {c.track for c in read.clips} == {"spine", "lane 1", "audition"}


def test_fcpxml_adapter_reads_the_auditions(built: TimelineBuild) -> None:
    """otio-fcpx-xml-adapter 1.0.0 knows no ``<audition>`` and misreads a ``<clip>``
    holding ``<video>`` and ``<audio>``: it lays every take of an audition, each twice
    (picture and muted sound), one after the other on the audition's parent's track --
    here the storyline's, the narration pushed behind them. What can be checked is that
    the file reads, with the first pick first at its place; the exact layout is read
    with tests/readback_fcpxml.py above."""
    data = render(built.timeline, "fcpxml")
    result = otio.adapters.read_from_string(data.decode("utf-8"), adapter_name="fcpx_xml")
    (timeline,) = list(result)
    lane0 = next(t for t in timeline.tracks if t.name == "0")
    names = [c.name for c in lane0.find_clips()]
    assert names[:4] == [
        "001_intro_take1 (pick, score 91.0)",
        "001_intro_take1 (pick, score 91.0)",
        "001_intro_take2 (alt 2, score 88.5)",
        "001_intro_take2 (alt 2, score 88.5)",
    ]
    assert "narration master's.wav" in names
    first = next(iter(lane0.find_clips()))
    assert round(lane0.range_of_child(first).start_time.value) == built.placements[0].start


# ---------------------------------------------------------------- hand edits, problems


def test_hand_swapped_pick_is_honoured(project: Project, tmp_path: Path) -> None:
    manual = project.renders / "001_intro_by_hand.mp4"
    shutil.copyfile(project.renders / "001_intro_take2.mp4", manual)

    def edit(data: dict[str, Any]) -> None:
        # Segment 1: a file no sync measured. Segment 2: the third-ranked take, left in
        # alternates as well (the former pick is then in neither list).
        data["segments"][0]["pick"] = str(manual)
        data["segments"][1]["pick"] = project.path("002_pointA_take3.mp4")

    build = timeline_from_selects(_selects_file(project, tmp_path, edit))
    m0 = build.master_start
    v1 = _clips(build.timeline.tracks[0])
    assert [(_file(c), c.name) for _, _, c in v1] == [
        ("001_intro_by_hand.mp4", "001_intro_by_hand (pick, not measured)"),
        ("002_pointA_take3.mp4", "002_pointA_take3 (pick, score 97.3)"),
        ("003_outro_take1.mp4", "003_outro_take1 (pick, score 40.0)"),
    ]
    # Offset unknown: where its segment starts. The swapped pick: by its own offset.
    assert v1[0][0] == _frame(project, 1, None, m0)
    assert v1[1][0] == _frame(project, 2, 12.5, m0)
    v2 = _clips(build.timeline.tracks[1])
    # What is left in alternates, less the pick, in its order: V2 only.
    assert [c.name for _, _, c in v2] == [
        "001_intro_take2 (alt 2, score 88.5)",
        "002_pointA_take1 (alt 2, score 83.1)",
    ]
    assert [t.name for t in build.timeline.tracks] == ["V1", "V2", "A1", "A2"]
    notes = "\n".join(build.notes)
    assert "the pick 001_intro_by_hand.mp4 is not among the measured takes" in notes
    assert "002_pointA_seed1234.mp4 neither the pick nor an alternate" in notes
    assert "001_intro_take1.mp4 neither the pick nor an alternate" in notes


def test_missing_take_is_reported_with_the_others(project: Project, tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["segments"][0]["alternates"].append(str(tmp_path / "001_gone.mp4"))
        data["segments"][2]["pick"] = str(tmp_path / "003_gone.mp4")

    with pytest.raises(InputError) as info:
        timeline_from_selects(_selects_file(project, tmp_path, edit))
    text = str(info.value)
    assert text.startswith("2 of 7 takes cannot go on a timeline: ")
    assert "001_gone.mp4" in text and "003_gone.mp4" in text


def test_manifest_problems(project: Project, tmp_path: Path) -> None:
    path = _selects_file(project, tmp_path, lambda d: d.update(manifest=None))
    with pytest.raises(SelectsError, match=r"manifest: null; .* \(manifest_path\)"):
        timeline_from_selects(path)
    # Given on the command line instead, it is used.
    build = timeline_from_selects(path, manifest_path=project.base.manifest)
    assert len(build.placements) == 3

    def seven(d: dict[str, Any]) -> None:
        d["segments"][2]["segment"] = 7

    path = _selects_file(project, tmp_path, seven)
    with pytest.raises(SelectsError) as info:
        timeline_from_selects(path)
    assert info.value.message.startswith("segments[2].segment: 7 is not a segment of ")
    assert info.value.message.endswith("(it has 1-3)")


def test_timeline_from_paths_takes_selects(project: Project, tmp_path: Path) -> None:
    path = _selects_file(project, tmp_path)
    build = timeline_from_paths([], selects_path=path, name="Selects cut")
    assert build.timeline.name == "Selects cut"
    assert [p.source.path.name for p in build.placements] == [
        "001_intro_take1.mp4", "002_pointA_seed1234.mp4", "003_outro_take1.mp4"
    ]  # fmt: skip
    with pytest.raises(UsageError, match="pass no clips with it"):
        timeline_from_paths([project.renders], selects_path=path)
