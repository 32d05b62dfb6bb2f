"""The tutorial's chapter on picking takes is true.

Every command the chapter shows is read out of docs/tutorial.md and run, as written, in
a folder holding what ``handoff demo demo-out`` made (the chapter's media); its exit
code and every line the chapter says it prints must be there. Figures are compared
within a tolerance (they are measurements), everything else exactly (bar the spaces
that align a table). Then the chapter's other claims: what the selects file holds,
what editing it does, what each editor's file carries.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from handoff.sync.selects import load_selects
from tests.conftest import REPO, MakeDir, copy_demo, run_handoff
from tests.docrun import blocks, not_printed

TUTORIAL = REPO / "docs" / "tutorial.md"
CHAPTER = "## 8. Pick the best take and hand it to the editor"
ECHO_EXIT = '; echo "exit $?"'
TAKES = [f"001_scene_take{i}.mp4" for i in (1, 2, 3)]
FORMATS = ("otio", "premiere.xml", "premiere.otio", "resolve.otio", "fcpxml")

# ---------------------------------------------------------------- the chapter


def chapter() -> str:
    text = TUTORIAL.read_text(encoding="utf-8")
    start = text.index(CHAPTER)
    end = text.find("\n## ", start + len(CHAPTER))
    return text[start : end if end != -1 else len(text)]


def commands() -> list[tuple[str, str | None]]:
    """Each command of the chapter, with the output the chapter shows for it (the
    ``text`` block right after its ``sh`` block), or None."""
    found = blocks(chapter())
    out: list[tuple[str, str | None]] = []
    for i, (lang, body) in enumerate(found):
        if lang != "sh":
            continue
        after = found[i + 1] if i + 1 < len(found) else None
        shown = after[1] if after is not None and after[0] == "text" else None
        lines = [line for line in body.splitlines() if line.strip()]
        out += [(line, shown if k == len(lines) - 1 else None) for k, line in enumerate(lines)]
    return out


# ---------------------------------------------------------------- the media


@pytest.fixture(scope="module")
def workdir(module_tmp: MakeDir, demo_tree: Path) -> Path:
    """A folder holding a copy of ``demo-out/`` as ``handoff demo demo-out`` leaves it."""
    root = module_tmp("tutorial")
    copy_demo(demo_tree, root)
    return root


@pytest.fixture
def here(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in the demo's parent folder, as the chapter does (children inherit it)."""
    monkeypatch.chdir(workdir)
    yield workdir


def run(command: str) -> tuple[int, str, str]:
    """A chapter command as a shell would run it: ``handoff ...``, with ``; echo "exit
    $?"`` printing the exit code after the output."""
    echoed = command.endswith(ECHO_EXIT)
    argv = shlex.split(command.removesuffix(ECHO_EXIT))
    assert argv[0] == "handoff", command
    done = run_handoff(*argv[1:])
    out = done.stdout + (f"exit {done.returncode}\n" if echoed else "")
    return done.returncode, out, done.stderr


# ---------------------------------------------------------------- the tests


def test_chapter_shows_what_each_command_prints(here: Path) -> None:
    listed = commands()
    verbs = [shlex.split(c)[1] for c, _ in listed]
    assert verbs == ["sync", "sync", "sync", "sync", "timeline"], listed
    codes, printed = {}, {}
    for command, shown in listed:
        code, out, err = run(command)
        assert "Traceback" not in out + err
        codes[command], printed[command] = code, out
        if shown is not None:
            missing = not_printed(shown, out)
            assert not missing, f"{command}\nshown but not printed: {missing}\nprinted:\n{out}"
    # The exit codes the chapter gives: dry run 0, takes out 1 (selects written or
    # not), timeline written 0.
    assert list(codes.values()) == [0, 1, 1, 1, 0], codes

    # The table's key lines, as the chapter reads them.
    dry, measured, with_selects, retry, timeline = [c for c, _ in listed]
    out = printed[measured]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:4] == "001_"}
    assert [rows[t][-1] for t in TAKES] == ["in", "out", "out"]
    assert "out of tolerance from its first frame: regenerate the whole segment" in out
    assert re.search(r"out of tolerance from \d+\.\d s: regenerate from \d+\.\d s", out)
    assert "3 take(s): 1 in sync, 2 out, 0 could not be measured" in out

    # The selects file the chapter describes.
    picked = load_selects(here / "selects.json")
    (segment,) = picked.segments
    assert segment.segment == 1 and not segment.regenerate and segment.recut_at_s is None
    assert segment.pick.name == TAKES[0]
    assert [a.name for a in segment.alternates] == TAKES[1:]
    assert [t.verdict for t in segment.takes] == ["in", "out", "out"]
    excerpt = next(body for lang, body in blocks(chapter()) if lang == "json")
    text = (here / "selects.json").read_text(encoding="utf-8")
    assert not not_printed(excerpt, text), not_printed(excerpt, text)
    assert shlex.split(with_selects)[-1] == "selects.json"

    # Without the good take: regenerate, from the pick's re-cut point (none: it is out
    # from its first frame).
    (again,) = load_selects(here / "retry.json").segments
    assert again.regenerate and again.recut_at_s is None
    assert again.pick.name == TAKES[1]

    # The timeline: every format, the pick on V1, the alternates beside it.
    for suffix in FORMATS:
        assert (here / "edit" / f"narration.{suffix}").is_file()
    premiere = (here / "edit" / "narration.premiere.xml").read_text(encoding="utf-8")
    assert "<name>001_scene_take1 (pick, score 100.0)</name>" in premiere
    assert re.search(r"<name>001_scene_take2 \(alt 2, score \d+\.\d\)</name>", premiere)
    assert re.search(r"<name>001_scene_take3 \(alt 3, score \d+\.\d\)</name>", premiere)
    fcpxml = (here / "edit" / "narration.fcpxml").read_text(encoding="utf-8")
    audition = fcpxml[fcpxml.index("<audition") : fcpxml.index("</audition>")]
    assert audition.index("001_scene_take1 (pick") < audition.index("001_scene_take2 (alt 2")
    resolve = json.loads((here / "edit" / "narration.resolve.otio").read_text(encoding="utf-8"))
    video = [t for t in resolve["tracks"]["children"] if t["kind"] == "Video"]
    assert [t["enabled"] for t in video] == [True, False, False]
    assert dry.endswith("--dry-run") and retry.split()[-1] == "retry.json"
    assert timeline.split()[-1] == "edit/"


def test_editing_the_pick_by_hand(here: Path) -> None:
    """What the chapter says of a hand edit: the new pick goes on V1, the former one
    stays on the timeline as an alternate, one in neither is left off with a note, and
    a second run skips the file it would replace unless --overwrite."""
    takes = "demo-out/takes"
    manifest = "demo-out/conditioned/manifest.json"
    code, _, err = run(f"handoff sync {takes} --manifest {manifest} --selects edited.json")
    assert code == 1, err
    document = json.loads((here / "edited.json").read_text(encoding="utf-8"))
    segment = document["segments"][0]
    segment["pick"], segment["alternates"] = f"{takes}/{TAKES[2]}", [f"{takes}/{TAKES[0]}"]
    (here / "edited.json").write_text(json.dumps(document, indent=2), encoding="utf-8")

    command = "handoff timeline --selects edited.json --format premiere-xml --out edited/"
    code, out, err = run(command)
    assert code == 0, err
    assert re.search(r"V1 +1 \S+-\S+ +001_scene_take3\.mp4 +segment 001", out), out
    assert "001_scene_take2.mp4 neither the pick nor an alternate: left off" in out
    xml = (here / "edited" / "narration.premiere.xml").read_text(encoding="utf-8")
    assert "001_scene_take1 (alt 2, score 100.0)" in xml and "001_scene_take2" not in xml

    code, out, err = run(command)
    assert code == 0 and "narration.premiere.xml: exists (use --overwrite to replace it)" in out
    code, out, err = run(command + " --overwrite")
    assert code == 0 and "wrote premiere-xml: edited/narration.premiere.xml" in out, err


def test_demo_sync_step_runs_again_over_its_outputs(workdir: Path) -> None:
    """``handoff demo`` into a folder it filled before replaces its own takes, selects
    and timelines (the rest of the demo already does)."""
    from handoff.demo import _demo_sync

    printed: list[str] = []
    assert _demo_sync(workdir / "demo-out", printed.append), "\n".join(printed)
    shown = "\n".join(printed)
    assert "as expected  001_scene_take1.mp4 IN" in shown
    assert "as expected  selects.json: segment 001 pick 001_scene_take1.mp4" in shown


def test_sync_keeps_an_existing_selects_file_unless_overwrite(here: Path) -> None:
    """A second ``sync --selects`` still measures (its exit code is the takes'), keeps
    the selects file that is there -- perhaps edited by hand -- and says so."""
    command = (
        "handoff sync demo-out/takes/001_scene_take1.mp4 "
        "--manifest demo-out/conditioned/manifest.json --selects kept.json"
    )
    code, out, err = run(command)
    assert code == 0 and (here / "kept.json").is_file(), out + err
    (here / "kept.json").write_text('{"edited": "by hand"}', encoding="utf-8")
    code, out, err = run(command)
    assert code == 0 and "1 in sync" in out, out + err
    assert "skipped kept.json: exists (use --overwrite to replace it)" in err
    assert json.loads((here / "kept.json").read_text(encoding="utf-8")) == {"edited": "by hand"}
    code, out, err = run(command + " --overwrite")
    assert code == 0 and "selects -> kept.json" in out, out + err
    assert json.loads((here / "kept.json").read_text(encoding="utf-8"))["segments"]
