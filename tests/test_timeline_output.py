"""Where ``timeline --out`` puts the files: one file, or a folder the user named."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest
from click.testing import CliRunner, Result

from handoff.cli import main
from tests.conftest import MakeDir, TimelineProject, make_timeline_project


@pytest.fixture(scope="module")
def project(module_tmp: MakeDir) -> TimelineProject:
    return make_timeline_project(module_tmp("out"), clip_seconds=(1.0, 1.0))


def _timeline(project: TimelineProject, *args: object) -> Result:
    argv = ["timeline", str(project.folder), "--manifest", str(project.manifest),
            "--master", str(project.master), *map(str, args)]  # fmt: skip
    return CliRunner().invoke(main, argv)


@pytest.mark.parametrize("slash", ["/", ""], ids=["trailing-slash", "no-slash"])
def test_several_formats_into_a_folder_named_like_a_rate(
    project: TimelineProject, tmp_path: Path, slash: str
) -> None:
    """``--out out/23.976/`` names a folder that does not exist yet; its "suffix" is part
    of a folder name, not a file's (once refused as "needs a folder")."""
    out = tmp_path / "out" / "23.976"
    r = _timeline(project, "--format", "all", "--out", f"{out}{slash}")
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 5, written
    assert any(n.endswith(".fcpxml") for n in written)
    assert otio.adapters.read_from_file(str(next(out.glob("*.resolve.otio")))).tracks


def test_one_format_with_a_trailing_slash_is_a_folder(
    project: TimelineProject, tmp_path: Path
) -> None:
    out = tmp_path / "v1.2"
    r = _timeline(project, "--format", "otio", "--out", f"{out}/")
    assert r.exit_code == 0, r.output
    assert [p.suffix for p in out.iterdir()] == [".otio"]


def test_one_format_and_a_file_name(project: TimelineProject, tmp_path: Path) -> None:
    out = tmp_path / "cut.v2"
    r = _timeline(project, "--format", "otio", "--out", out)
    assert r.exit_code == 0, r.output
    assert out.is_file()


def test_several_formats_and_a_timeline_file_name_refused(
    project: TimelineProject, tmp_path: Path
) -> None:
    out = tmp_path / "cut.otio"
    r = _timeline(project, "--format", "all", "--out", out)
    assert r.exit_code == 2
    assert "several formats need --out to be a folder, not the file" in r.output
    assert "end it with '/'" in r.output
    assert not out.exists()
    assert "Traceback" not in r.output
