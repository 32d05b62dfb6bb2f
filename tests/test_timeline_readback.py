"""Every format, read back from files ``handoff timeline`` wrote for real media that
carries its own timecode (MOV/MP4 ``tmcd`` tracks, a BWF master): each clip at its
intended frame, the file's timecode carried, the narration fixed, clip sound disabled.

The intent is the build's own layout (``--json``; tested against the manifest in
test_timeline.py) and timecode frame counts worked out here by hand from the labels
written into the files. Each format is read by an exact reader: OTIO's own ``otio_json``
for the OTIO flavours, otio-fcp-adapter and the project's reader for xmeml, the
project's reader for FCPXML (the OTIO fcpx adapter truncates NTSC rates).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest
from click.testing import CliRunner

from handoff.cli import main
from tests.conftest import NLE, MakeDir, TimelineProject, make_timeline_project
from tests.readback import ReadClip, ReadTimeline, from_otio
from tests.readback_cases import READ_FPS, label_frames
from tests.readback_fcpxml import read_fcpxml
from tests.readback_xmeml import read_xmeml

RATES = READ_FPS
# Each clip's label (takes shot one after another), and the sequence's start.
TIMECODES: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "no-tc": (None, "00:00:00:00"),
    "tc-hour": (("01:00:00:00", "01:00:10:00", "01:00:20:00"), "01:00:00:00"),
    "tc-odd": (("13:47:21:19", "13:47:30:03", "14:02:00:11"), "00:59:50:00"),
}
MASTER_TIME_REFERENCE = 3600 * 48000  # the BWF master starts at the hour


by_hand = label_frames  # a non-drop-frame label counted by hand


@pytest.fixture(
    scope="module",
    params=[(r, t) for r in RATES for t in TIMECODES],
    ids=[f"{r}fps-{t}" for r in RATES for t in TIMECODES],
)
def written(
    request: pytest.FixtureRequest, module_tmp: MakeDir
) -> tuple[TimelineProject, str, dict[str, Any], Path]:
    label, tc_case = request.param
    labels, start = TIMECODES[tc_case]
    root = module_tmp("readback")
    project = make_timeline_project(
        root, fps=RATES[label], clip_seconds=(1.5, 1.0, 1.25), timecodes=labels,
        master_time_reference=None if labels is None else MASTER_TIME_REFERENCE,
    )  # fmt: skip
    out = root / "edit" / label
    r = CliRunner().invoke(
        main,
        ["timeline", str(project.folder), "--manifest", str(project.manifest),
         "--master", str(project.master), "--format", "all", "--start-timecode", start,
         "--name", "Déjà vu & #1 'ü' 100%", "--out", f"{out}/", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return project, tc_case, json.loads(r.output), out


def _reads(out: Path) -> dict[str, ReadTimeline]:
    def one(suffix: str) -> Path:
        (path,) = out.glob(f"*{suffix}")
        return path

    plain = [p for p in out.glob("*.otio") if p.name.count(".") == 1]
    assert len(plain) == 1
    return {
        "otio": from_otio(otio.adapters.read_from_file(str(plain[0]))),
        "premiere-otio": from_otio(otio.adapters.read_from_file(str(one(".premiere.otio")))),
        "resolve-otio": from_otio(otio.adapters.read_from_file(str(one(".resolve.otio")))),
        "premiere-xml": read_xmeml(one(".premiere.xml").read_bytes()),
        "premiere-xml via otio-fcp-adapter": from_otio(
            otio.adapters.read_from_file(str(one(".premiere.xml")), adapter_name="fcp_xml")
        ),
        "fcpxml": read_fcpxml(one(".fcpxml").read_bytes()),
    }


def _of(read: ReadTimeline, paths: list[Path], kind: str) -> list[ReadClip]:
    return sorted((c for c in read.clips if c.kind == kind and c.path in paths),
                  key=lambda c: c.start)  # fmt: skip


def test_every_format_carries_the_layout_and_the_timecode(
    written: tuple[TimelineProject, str, dict[str, Any], Path],
) -> None:
    project, tc_case, summary, out = written
    rate = project.rate
    labels, start = TIMECODES[tc_case]
    clips = [Path(c["path"]) for c in summary["clips"]]
    master = Path(summary["master"]["path"])
    tc_of = {p: 0 if labels is None else by_hand(labels[k], rate) for k, p in enumerate(clips)}
    master_tc = 0 if labels is None else round(Fraction(MASTER_TIME_REFERENCE, 48000) * rate)
    pictures = [(Path(c["path"]), c["start"], c["end"] - c["start"], c["source_in"])
                for c in summary["clips"]]  # fmt: skip
    assert summary["start_frame"] == by_hand(start, rate)
    assert [c["timecode"] for c in summary["clips"]] == list(labels or [None] * len(clips))
    assert summary["master"]["timecode"] == (None if labels is None else "01:00:00.000")
    # A head trimmed where neighbours overlap: the in point is past the file's first
    # frame, so timecode + in point is exercised, not the timecode alone.
    assert any(c["source_in"] > 0 for c in summary["clips"])

    for fmt, read in _reads(out).items():
        assert read.rate == rate, fmt
        assert read.start_frames == by_hand(start, rate), fmt
        v = _of(read, clips, "video")
        assert [(c.path, c.start, c.duration, c.source_in) for c in v] == pictures, fmt
        assert [c.timecode_frames for c in v] == [tc_of[p] for p, *_ in pictures], fmt
        assert all(c.enabled for c in v), fmt
        (narration,) = [c for c in read.clips if c.path == master]
        assert (narration.start, narration.source_in) == (summary["master"]["start"], 0), fmt
        assert narration.enabled, fmt
        assert narration.timecode_frames == master_tc, fmt
        # Locked where the format has a lock; FCPXML has none (the narration is the
        # storyline instead).
        assert narration.locked == (fmt != "fcpxml"), fmt
        sound = _of(read, clips, "audio")
        assert [(c.path, c.start, c.source_in) for c in sound] == [
            (p, s, i) for p, s, _, i in pictures
        ], fmt
        assert not any(c.enabled for c in sound), fmt
        assert [c.timecode_frames for c in sound] == [tc_of[c.path] for c in sound], fmt


def test_fcpxml_is_valid_against_its_dtd(
    written: tuple[TimelineProject, str, dict[str, Any], Path],
) -> None:
    from lxml import etree

    dtd_path = NLE / "FCPXMLv1_10.dtd"
    if not dtd_path.is_file():
        pytest.skip(f"Apple's FCPXML DTD is not at {dtd_path}")
    *_, out = written
    (path,) = out.glob("*.fcpxml")
    doc = etree.parse(str(path))
    dtd = etree.DTD(str(dtd_path))
    assert dtd.validate(doc), dtd.error_log
