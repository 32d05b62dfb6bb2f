"""Names the formats cannot hold as text: control characters and file names that are
not UTF-8. Display names are made writable (and the build says so); media paths keep
their exact bytes; every format asked for is written, or none; no output is ever
written over an input. Read back by the OTIO adapters and by lxml."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePosixPath
from urllib.parse import unquote_to_bytes, urlsplit

import opentimelineio as otio
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from handoff.cli import main
from handoff.files.names import shown, xml_text
from handoff.media.synth import ClipSpec, write_clip
from handoff.probe.reader import probe
from handoff.timeline import build_timeline, source_from_info
from handoff.timeline.model import META
from handoff.timeline.paths import file_url, path_from_url, premiere_pathurl

# A byte that is not UTF-8 (Latin-1 é) and a BEL; a UTF-8 name with a tab and an ANSI
# escape, which a terminal would obey if it were printed raw.
NOT_UTF8 = b"001_caf\xe9\x07 bell.mp4"
CONTROLS = "002_tab\there\x1b[0m.mp4"


def _timeline(*args: object) -> Result:
    return CliRunner().invoke(main, ["timeline", *map(str, args)])


def _clip(path: Path) -> Path:
    return write_clip(
        path,
        ClipSpec(fps=Fraction(24), seconds=1.0, width=64, height=64,
                 video_options={"preset": "ultrafast"}),
    )  # fmt: skip


@dataclass(frozen=True)
class Awkward:
    folder: Path
    not_utf8: Path
    controls: Path


@pytest.fixture
def awkward(tmp_path: Path) -> Awkward:
    folder = tmp_path / "renders"
    folder.mkdir()
    made = _clip(folder / "plain.mp4")
    not_utf8 = folder / os.fsdecode(NOT_UTF8)
    try:
        made.rename(not_utf8)
    except OSError as exc:  # macOS file systems refuse names that are not UTF-8
        pytest.skip(f"this file system takes UTF-8 names only: {exc}")
    return Awkward(folder, not_utf8, _clip(folder / CONTROLS))


def _url_bytes(url: str) -> bytes:
    """The path bytes a file URL names, decoded independently of handoff."""
    parts = urlsplit(url)
    assert parts.scheme == "file"
    assert url.isascii(), url
    return unquote_to_bytes(parts.path)


def _printable(text: str) -> bool:
    return all(ch.isprintable() for line in text.splitlines() for ch in line)


def _bad_outputs(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


# ---------------------------------------------------------------- written and read back


def test_url_formats_carry_the_exact_bytes(awkward: Awkward, tmp_path: Path) -> None:
    out = tmp_path / "edit"
    r = _timeline(awkward.folder, "--out", out, "--name", "Ep\x07 1",
                  *[a for f in ("otio", "premiere-otio", "premiere-xml", "fcpxml")
                    for a in ("--format", f)])  # fmt: skip
    assert r.exit_code == 0, r.output
    real = {os.fsencode(awkward.not_utf8), os.fsencode(awkward.controls)}
    written = sorted(p.name for p in out.iterdir())
    # The output file names come from the sequence name, without its control character.
    assert written == sorted(
        f"Ep_ 1{s}" for s in (".otio", ".premiere.otio", ".premiere.xml", ".fcpxml")
    )
    # What the terminal is shown: escapes, never the raw controls or bytes.
    assert _printable(r.output), r.output
    assert "001_caf\\xe9\\x07 bell.mp4" in r.output
    assert "U+FFFD" in r.output

    for name in ("Ep_ 1.otio", "Ep_ 1.premiere.otio"):
        tl = otio.adapters.read_from_file(str(out / name))
        assert tl.name == "Ep\ufffd 1"
        for clip in tl.find_clips():
            assert _printable(clip.name) and "\ufffd" in clip.name
            assert _printable(clip.media_reference.name)
        urls = {_url_bytes(c.media_reference.target_url) for c in tl.tracks[0].find_clips()}
        assert urls == real
        # handoff's own reader agrees, and the bytes name the files.
        for c in tl.tracks[0].find_clips():
            assert Path(path_from_url(c.media_reference.target_url)).is_file()

    # Premiere's FCP7 XML: lxml and the fcp_xml adapter.
    xml = etree.parse(str(out / "Ep_ 1.premiere.xml")).getroot()
    assert xml.findtext("sequence/name") == "Ep\ufffd 1"
    assert {_url_bytes(u.text or "") for u in xml.iter("pathurl")} == real
    names = [n.text or "" for n in xml.iterfind(".//clipitem/name")]
    assert names and all(_printable(n) for n in names)
    read = otio.adapters.read_from_file(str(out / "Ep_ 1.premiere.xml"), adapter_name="fcp_xml")
    assert {_url_bytes(c.media_reference.target_url) for c in read.find_clips()} == real

    # FCPXML: lxml and the fcpx_xml adapter (which reads names, not media-rep URLs).
    doc = etree.parse(str(out / "Ep_ 1.fcpxml")).getroot()
    assert {_url_bytes(m.get("src", "")) for m in doc.iter("media-rep")} == real
    event = doc.find("library/event")
    assert event is not None and event.get("name") == "Ep\ufffd 1"
    assert all(_printable(a.get("name", "")) for a in doc.iter("asset", "asset-clip"))
    collection = otio.adapters.read_from_file(str(out / "Ep_ 1.fcpxml"), adapter_name="fcpx_xml")
    (fcpx,) = list(collection)
    assert sorted(c.name for c in fcpx.find_clips()) == sorted(
        xml_text(p.name) for p in (awkward.not_utf8, awkward.controls)
    )


def test_json_output_is_utf8_and_names_the_real_file(awkward: Awkward, tmp_path: Path) -> None:
    r = _timeline(awkward.folder, "--format", "otio", "--out", tmp_path / "t.otio", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout_bytes.decode("utf-8"))  # strict: valid UTF-8 throughout
    paths = {os.fsencode(c["path"]) for c in data["clips"]}
    assert paths == {os.fsencode(awkward.not_utf8.resolve()), os.fsencode(awkward.controls)}
    assert any("U+FFFD" in n for n in data["notes"])


def test_model_keeps_paths_and_cleans_names(awkward: Awkward) -> None:
    build = build_timeline(
        [source_from_info(probe(awkward.not_utf8)), source_from_info(probe(awkward.controls))],
        name=os.fsdecode(b"cut \xff\x00"),
    )
    tl = build.timeline
    assert tl.name == "cut \ufffd\ufffd"
    first, second = tl.tracks[0].find_clips()
    assert first.name == "001_caf\ufffd\ufffd bell.mp4"
    assert second.name == "002_tab\ufffdhere\ufffd[0m.mp4"
    # OTIO cannot store the non-UTF-8 path as text: the URL carries it.
    assert "path" not in first.metadata[META]
    assert os.fsencode(path_from_url(first.media_reference.target_url)) == os.fsencode(
        awkward.not_utf8.resolve()
    )
    assert second.metadata[META]["path"] == str(awkward.controls.resolve())
    (note,) = [n for n in build.notes if "U+FFFD" in n]
    assert "'cut \\xff\\x00' as 'cut \ufffd\ufffd'" in note
    assert _printable(note)


# ---------------------------------------------------------------- all formats or none


def test_resolve_otio_refuses_a_non_utf8_name_before_writing_anything(
    awkward: Awkward, tmp_path: Path
) -> None:
    out = tmp_path / "edit"
    r = _timeline(awkward.folder, "--format", "all", "--out", out, "--name", "cut")
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "file name is not valid UTF-8: rename it" in line and "resolve-otio" in line
    assert _bad_outputs(out) == []  # not even the formats before resolve-otio
    # Renamed, the same command now writes everything -- no "already exists".
    awkward.not_utf8.rename(awkward.folder / "001_cafe.mp4")
    again = _timeline(awkward.folder, "--format", "all", "--out", out, "--name", "cut")
    assert again.exit_code == 0, again.output
    assert len(_bad_outputs(out)) == 5


def test_resolve_otio_writes_controls_in_a_bare_path(awkward: Awkward, tmp_path: Path) -> None:
    awkward.not_utf8.unlink()
    out = tmp_path / "cut.resolve.otio"
    r = _timeline(awkward.folder, "--format", "resolve-otio", "--out", out)
    assert r.exit_code == 0, r.output
    (clip,) = otio.adapters.read_from_file(str(out)).tracks[0].find_clips()
    assert clip.media_reference.target_url == str(awkward.controls.resolve())  # JSON \u001b
    assert clip.name == xml_text(CONTROLS)


def test_a_failed_write_removes_what_the_run_wrote(tmp_path: Path) -> None:
    """The last format's file cannot be written (a folder is in its place): the four
    written before it are removed again."""
    clip = _clip(tmp_path / "001_plain.mp4")
    out = tmp_path / "edit"
    blocker = out / "cut.fcpxml"
    blocker.mkdir(parents=True)
    (blocker / "keep").write_text("x")
    r = _timeline(clip, "--format", "all", "--out", out, "--name", "cut", "--overwrite")
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert [p.name for p in out.iterdir()] == ["cut.fcpxml"]  # hidden .part files too
    assert (blocker / "keep").read_text() == "x"


# ---------------------------------------------------------------- inputs stay inputs


def test_outputs_never_replace_inputs(awkward: Awkward, tmp_path: Path) -> None:
    clip = awkward.controls
    before = clip.read_bytes()
    r = _timeline(clip, "--format", "otio", "--out", clip.with_suffix(".mp4"), "--overwrite")
    assert r.exit_code == 2
    assert "would write over the input" in r.output
    assert clip.read_bytes() == before
    # The same file under another name (a hard link) is still the input.
    link = tmp_path / "cut.otio"
    os.link(clip, link)
    r = _timeline(clip, "--format", "otio", "--out", link, "--overwrite")
    assert r.exit_code == 2 and "would write over the input" in r.output
    assert clip.read_bytes() == before


def test_output_over_the_manifest_or_master_is_refused(tmp_path: Path) -> None:
    from tests.conftest import make_timeline_project

    project = make_timeline_project(tmp_path, clip_seconds=(1.0,))
    for target in (project.manifest, project.master):
        before = target.read_bytes()
        r = _timeline(project.clips[0], "--manifest", project.manifest, "--format", "otio",
                      "--out", target, "--overwrite")  # fmt: skip
        assert r.exit_code == 2, r.output
        assert "would write over the input" in r.output
        assert target.read_bytes() == before


# ---------------------------------------------------------------- units


def test_xml_text_and_shown() -> None:
    assert xml_text("a\x00b\x1f\x7f\x85\ud800\udce9\ufffe\uffff ok\u00e9") == (
        "a\ufffdb" + "\ufffd" * 7 + " ok\u00e9"
    )
    raw = "bell\x07 caf" + os.fsdecode(b"\xe9") + " \x1b[0m"
    assert shown(raw) == "bell\\x07 caf\\xe9 \\x1b[0m"
    assert shown("déjà vu") == "déjà vu"


def test_urls_of_non_utf8_names() -> None:
    path = PurePosixPath(os.fsdecode(b"/media/caf\xe9\x07 #1.mov"))
    assert file_url(path) == "file:///media/caf%E9%07%20%231.mov"
    assert premiere_pathurl(path) == "file://localhost/media/caf%E9%07%20%231.mov"
    assert os.fsencode(path_from_url(file_url(path))) == b"/media/caf\xe9\x07 #1.mov"


_NAME_BYTES = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)


@given(st.lists(_NAME_BYTES, min_size=1, max_size=4))
def test_any_file_name_bytes_round_trip(parts: list[bytes]) -> None:
    """Whatever bytes a POSIX file name holds, the URL is ASCII and names them exactly."""
    # A top-level "D:" folder reads as a Windows drive: file URLs cannot tell them apart.
    raw = b"/" + b"/".join(parts)
    if len(parts) > 1 and len(parts[0]) == 2 and parts[0][1:] == b":":
        return
    path = PurePosixPath(os.fsdecode(raw))
    for url in (file_url(path), premiere_pathurl(path)):
        assert url.isascii()
        assert os.fsencode(path_from_url(url)) == raw
        assert unquote_to_bytes(urlsplit(url).path) == raw
