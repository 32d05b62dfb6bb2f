"""Batches that can be run again: outputs are not read back as inputs, an existing
output is skipped with a note (``--overwrite`` replaces it), and the partial files a
killed run left are cleared at the start of the next one -- never one a running
writer owns."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from handoff.cli import main
from handoff.errors import NoMediaFoundError
from handoff.files.find import find_media
from handoff.files.fsutil import OUTPUT_MARK, clear_stale_parts, mark_output_folder
from handoff.media.synth import ClipSpec, speech_like, write_clip, write_wav
from tests.conftest import review_clip_kwargs


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_clip(path, ClipSpec(**review_clip_kwargs(seconds=1.0)))  # type: ignore[arg-type]


def video_codec(path: Path) -> str:
    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.name


@pytest.fixture
def renders(tmp_path: Path) -> Path:
    folder = tmp_path / "renders"
    folder.mkdir()
    clip(folder / "001_intro.mp4")
    clip(folder / "002_outro.mp4")
    return folder


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The id of a process that runs for the whole test."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child.pid
    child.kill()
    child.wait()


# ---------------------------------------------------------------- outputs are not inputs


def test_export_run_again_into_an_output_folder_inside_its_inputs(renders: Path) -> None:
    masters = renders / "masters"
    args = ("export", renders, "--preset", "prores-master", "--out", masters, "--jobs", "1")
    code, out, err = run(*args, "--json")
    assert code == 0, out + err
    assert json.loads(out)["summary"]["done"] == 2
    assert (masters / OUTPUT_MARK).is_file() and not (renders / OUTPUT_MARK).exists()

    # Again: this run's own output folder is not read; both outputs are skipped, exit 0.
    before = {p.name: p.stat().st_mtime_ns for p in masters.iterdir()}
    code, out, err = run(*args, "--json")
    report = json.loads(out)
    assert code == 0 and report["summary"] == {**report["summary"], "inputs": 2, "skipped": 2}
    assert sorted(Path(f["source"]).name for f in report["files"]) == [
        "001_intro.mp4",
        "002_outro.mp4",
    ]
    assert all("--overwrite" in f["error"] for f in report["files"])
    assert f"not read as input: {masters}/ (this run's output folder)" in err
    assert {p.name: p.stat().st_mtime_ns for p in masters.iterdir()} == before

    # Another preset into a second folder: the masters of the earlier run are not
    # sources -- each review copy is made from its H.264 source.
    review = renders / "review"
    code, out, err = run(
        "export", renders, "--preset", "h264-review", "--out", review, "--jobs", "1", "--json"
    )
    report = json.loads(out)
    assert code == 0, out + err
    assert [Path(f["source"]).parent for f in report["files"]] == [renders, renders]
    assert f"not read as input: {masters}/ (outputs of an earlier handoff run" in err
    assert sorted(p.name for p in review.glob("*.mp4")) == ["001_intro.mp4", "002_outro.mp4"]
    assert {video_codec(p) for p in review.glob("*.mp4")} == {"h264"}

    # Named itself, an output folder is read like any other.
    code, out, err = run("probe", masters, "--json")
    assert code == 0 and "not read as input" not in err
    assert {video_codec(Path(f["path"])) for f in json.loads(out)} == {"prores"}


def test_a_folder_of_sources_that_gets_outputs_is_not_marked(renders: Path) -> None:
    code, out, err = run(
        "export", renders / "001_intro.mp4", "--preset", "prores-master", "--out", renders
    )
    assert code == 0, out + err
    assert (renders / "001_intro.mov").is_file() and not (renders / OUTPUT_MARK).exists()
    assert not mark_output_folder(renders, [renders / "001_intro.mp4"])
    assert not (renders / OUTPUT_MARK).exists()


def test_find_media_says_which_folders_it_left_out(tmp_path: Path) -> None:
    top = tmp_path / "project"
    clip(top / "a" / "001.mp4")
    clip(top / "out" / "001.mov")
    clip(top / "old" / "001.mp4")
    assert mark_output_folder(top / "old")

    found = find_media([top], outputs=[top / "out"])
    assert found.items == (top / "a" / "001.mp4",)
    assert dict(found.left_out).keys() == {top / "out", top / "old"}
    assert "this run's output folder" in dict(found.left_out)[top / "out"]
    assert len(found.notes()) == 2 and all(n.startswith("not read as input") for n in found.notes())

    # Named on the command line, a marked folder is read.
    assert find_media([top / "old"]).items == (top / "old" / "001.mp4",)
    # A folder holding nothing but output folders says so.
    (top / "a" / "001.mp4").unlink()
    (problem,) = find_media([top], outputs=[top / "out"]).items
    assert isinstance(problem, NoMediaFoundError)
    assert "outside the output folders it holds" in problem.message


# ---------------------------------------------------------------- existing outputs


def test_timeline_skips_existing_files_and_writes_the_others(renders: Path) -> None:
    edit = renders.parent / "edit"
    code, out, err = run("timeline", renders, "--format", "otio", "--out", edit)
    assert code == 0, out + err
    (otio,) = edit.iterdir()
    stamp = otio.stat().st_mtime_ns

    code, out, err = run("timeline", renders, "--format", "all", "--out", edit, "--json")
    assert code == 0, out + err
    summary = json.loads(out)
    assert f"skipped {otio}: exists (use --overwrite to replace it)" in summary["notes"]
    assert len(summary["files"]) == 4 and str(otio.resolve()) not in json.dumps(summary["files"])
    assert len(list(edit.iterdir())) == 5 and otio.stat().st_mtime_ns == stamp

    code, out, err = run("timeline", renders, "--format", "all", "--out", edit, "--overwrite")
    assert code == 0 and "skipped" not in out and otio.stat().st_mtime_ns != stamp


def _narration(path: Path) -> Path:
    mono = speech_like(4.0, 48000, lead=0.3, tail=0.3)
    return write_wav(path, np.stack([mono, mono]), 48000)


def test_prep_audio_skips_only_what_it_would_make_again(tmp_path: Path) -> None:
    source = _narration(tmp_path / "vo.wav")
    cond = tmp_path / "cond"
    code, out, err = run("prep-audio", source, "--out", cond)
    assert code == 0, out + err
    assert (cond / OUTPUT_MARK).is_file()
    files = {p: p.stat().st_mtime_ns for p in cond.iterdir()}

    code, out, err = run("prep-audio", source, "--out", cond, "--json")
    assert code == 0, out + err
    assert "skipped" in err and "--overwrite" in err
    document = json.loads(out)
    assert document["skipped"] is True and document["manifest"] == str(cond / "manifest.json")
    assert {p: p.stat().st_mtime_ns for p in cond.iterdir()} == files

    # Other settings, or another version of the input: refused, naming why.
    code, _, err = run("prep-audio", source, "--out", cond, "--target-lufs", "-18")
    assert code == 2 and "target_lufs -16.0 -> -18.0" in err and "--overwrite" in err
    _narration(source).write_bytes(source.read_bytes()[:-4000])
    code, _, err = run("prep-audio", source, "--out", cond)
    assert code == 2 and "SHA-256 differs" in err
    assert {p: p.stat().st_mtime_ns for p in cond.iterdir()} == files
    code, out, err = run("prep-audio", source, "--out", cond, "--overwrite")
    assert code == 0, out + err


# ---------------------------------------------------------------- stale partial files


def _parts(folder: Path, dead: int, live: int) -> tuple[Path, Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    orphan = folder / f".001_intro.{dead}.k2j3x9_a.part.mov"
    running = folder / f".002_outro.{live}.q8w7e6r5.part.mov"
    other = folder / ".notes.part"  # not a name of ours
    for p in (orphan, running, other):
        p.write_bytes(b"half")
    return orphan, running, other


def test_clear_stale_parts_keeps_a_running_writers_file(
    tmp_path: Path, dead_pid: int, live_pid: int
) -> None:
    orphan, running, other = _parts(tmp_path, dead_pid, live_pid)
    no_suffix = tmp_path / f".README.{dead_pid}.abcdefgh.part"
    no_suffix.write_bytes(b"")
    assert sorted(clear_stale_parts([tmp_path, tmp_path / "absent"])) == sorted([orphan, no_suffix])
    assert running.exists() and other.exists() and not orphan.exists()


@pytest.mark.parametrize("command", ["export", "timeline", "prep-audio"])
def test_every_writing_command_clears_stale_parts_first(
    command: str, renders: Path, dead_pid: int, live_pid: int
) -> None:
    out = renders.parent / "out"
    orphan, running, other = _parts(out, dead_pid, live_pid)
    args: dict[str, list[str | Path]] = {
        "export": ["export", renders / "001_intro.mp4", "--preset", "h264-review", "--out", out],
        "timeline": ["timeline", renders, "--format", "otio", "--out", out],
        "prep-audio": ["prep-audio", _narration(renders.parent / "vo.wav"), "--out", out],
    }
    code, stdout, err = run(*args[command])
    assert code == 0, stdout + err
    assert not orphan.exists() and running.exists() and other.exists()
    assert "removed 1 partial file(s) left by an earlier run that was stopped" in err
    assert str(orphan) in err


def test_a_zombie_writers_file_is_cleared(tmp_path: Path) -> None:
    """A writer that has exited but was never collected (a zombie: its parent was killed
    and the orphans' adopter does not reap, as in many containers) runs no more: its
    temporary file is cleared like a dead writer's."""
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        stat = Path(f"/proc/{zombie.pid}/stat")
        while time.monotonic() < deadline and stat.exists():
            if stat.read_text()[stat.read_text().rfind(")") + 2] == "Z":
                break
            time.sleep(0.05)
        else:
            pytest.skip("no /proc state to see a zombie by")
        part = tmp_path / f".001_intro.{zombie.pid}.k2j3x9_a.part.mov"
        part.write_bytes(b"half")
        assert clear_stale_parts([tmp_path]) == [part]
        assert not part.exists()
    finally:
        zombie.wait()
