"""The documentation says what the tool does: every command of the tutorial and the
how-to guides is run as written and prints what the page shows (:mod:`tests.docrun`),
and the reference pages name every key, fact and file the code uses."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from handoff.validate.spec import FACTS, builtin_spec_names, builtin_spec_text
from tests.conftest import REPO, copy_demo
from tests.docrun import DOCS, check_page, shell_env, steps

TUTORIAL = DOCS / "tutorial.md"
HOWTOS = sorted((DOCS / "howto").glob("*.md"))
# Chapter 8 (takes, sync, selects) has a test of its own that also checks what the
# files it writes hold: tests/test_tutorial_sync.py.
RUN_ELSEWHERE = ("## 8. ",)


def test_no_command_slips_past_the_runner() -> None:
    """Every line of every ``sh`` block of the tutorial and the how-tos is run, bar the
    blocks marked ``not run`` (the install)."""
    for page in [TUTORIAL, *HOWTOS]:
        text = page.read_text(encoding="utf-8")
        run = steps(page)
        assert run, f"{page}: no commands"
        listed = _command_lines(r"^```sh\n(.*?)```", text)
        marked = _command_lines(r"<!-- not run: [^>]*-->\n```sh\n(.*?)```", text)
        assert len(run) + marked == listed, page


def _command_lines(block_pattern: str, text: str) -> int:
    """The non-blank lines of the blocks ``block_pattern`` finds (its group 1)."""
    return sum(
        len([line for line in block.splitlines() if line.strip()])
        for block in re.findall(block_pattern, text, re.MULTILINE | re.DOTALL)
    )


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    """From ``handoff demo demo-out`` on, in one folder, in order (chapter 8 aside)."""
    problems = check_page(TUTORIAL, tmp_path, shell_env(tmp_path / ".bin"), leave_out=RUN_ELSEWHERE)
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("page", HOWTOS, ids=[p.stem for p in HOWTOS])
def test_each_howto_runs_as_written(page: Path, demo_tree: Path, tmp_path: Path) -> None:
    """Beside a copy of what ``handoff demo demo-out`` made, as each page says."""
    copy_demo(demo_tree, tmp_path)
    problems = check_page(page, tmp_path, shell_env(tmp_path / ".bin"))
    assert not problems, "\n\n".join(problems)


# ---------------------------------------------------------------- reference pages


def test_spec_format_names_every_fact_and_every_key_the_built_in_specs_use() -> None:
    doc = (DOCS / "reference" / "spec-format.md").read_text(encoding="utf-8")
    missing_facts = [f for f in FACTS if f"`{f}`" not in doc]
    assert not missing_facts, missing_facts
    keys: set[str] = set()
    for name in builtin_spec_names():
        data = tomllib.loads(builtin_spec_text(name))
        keys |= set(data) - {"rules", "options", "export"}
        keys |= {k for rule in data.get("rules", []) for k in rule}
        keys |= {k for option in data.get("options", {}).values() for k in option}
        keys |= set(data.get("export", {})) - {"video_options", "format_options"}
    missing = sorted(k for k in keys if not re.search(rf"^{re.escape(k)} =", doc, re.MULTILINE))
    assert not missing, f"keys the built-in specs use but spec-format.md does not show: {missing}"
    for table in ("[export]", "[export.video_options]", "[export.format_options]", "[[rules]]"):
        assert table in doc, table


def test_cli_reference_says_how_partial_files_are_cleared() -> None:
    doc = " ".join((DOCS / "reference" / "cli.md").read_text(encoding="utf-8").split())
    assert ".part" in doc and "At the start of every run, each output folder is cleared" in doc


def test_json_reference_covers_loudness_in_probe() -> None:
    """``probe --json`` has a ``loudness`` object only with --loudness: the reference
    says both."""
    doc = (DOCS / "reference" / "json.md").read_text(encoding="utf-8")
    section = doc[doc.index("## probe") : doc.index("\n## ", doc.index("## probe") + 3)]
    assert "`loudness` | object or null | only with `--loudness`" in section


def test_architecture_names_what_is_there_and_everything_that_is() -> None:
    """docs/architecture.md: every folder and module it names exists, and every folder of
    the package is named, so a newcomer can find where each stage decides."""
    doc = (DOCS / "architecture.md").read_text(encoding="utf-8")
    package = REPO / "handoff"
    named = set(re.findall(r"`handoff/([\w/]+?)/?`", doc))
    assert named, "no folders named"
    for rel in named:
        assert (package / rel).exists() or (package / f"{rel}.py").exists(), rel
    folders = {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    assert folders <= {n.split("/")[0] for n in named}, folders
    # Each table row names files of its folder: `handoff/x/` | ... `name.py` ...
    for row in re.findall(r"^\| `handoff/(\w+)/` \|(.*)$", doc, re.MULTILINE):
        folder, rest = row
        for mod in re.findall(r"`([\w/]+\.py)`|`(specs/|engines/)`", rest):
            name = mod[0] or mod[1]
            assert (package / folder / name).exists(), f"{folder}/{name}"
    for where in re.findall(r"^- \*\*.*?\*\* `(\w+/\w+\.py)`", doc, re.MULTILINE):
        assert (package / where).exists(), where
