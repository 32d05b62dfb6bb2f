"""The documentation says what the tool does: every command of the tutorial and the
how-to guides is run as written and prints what the page shows (:mod:`tests.docrun`),
and the reference pages name every key, fact and file the code uses."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from handoff.validate.spec import FACTS, builtin_spec_names, builtin_spec_text
from tests.conftest import REPO, copy_demo, run_handoff
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
    # Pages that work on real recordings read them from the source folder's fixtures/.
    (tmp_path / "fixtures").symlink_to(REPO / "fixtures", target_is_directory=True)
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


# Keys whose values are not the schema's: a preset's encoder and muxer options (inside
# an export's plan). deliver's own ``options`` (which has ``out``) is the schema's.
_NOT_KEYS = frozenset({"options", "format_options"})


def _schema_keys(doc: object) -> set[str]:
    """The keys of ``doc`` at any depth, but not those inside a preset's encoder
    options (as tests/test_exact_time.py leaves them out of a plan's keys)."""
    if isinstance(doc, dict):
        out = set(doc)
        for key, value in doc.items():
            opaque = key in _NOT_KEYS and isinstance(value, dict) and "out" not in value
            if not opaque:
                out |= _schema_keys(value)
        return out
    if isinstance(doc, list):
        return set().union(*(_schema_keys(v) for v in doc))
    return set()


def test_json_reference_names_every_key_deliver_writes(demo_tree: Path, tmp_path: Path) -> None:
    """docs/reference/json.md names every key ``handoff deliver`` writes: its --json
    events and the ``finished`` document, the dry-run plan, report.json and the
    journal's records and events -- read from what the demo delivered and from a small
    batch with a render that cannot be read (started, progress, done, failed, blocked)."""
    from handoff.media.synth import ClipSpec, write_clip

    doc = (DOCS / "reference" / "json.md").read_text(encoding="utf-8")
    delivery = demo_tree / "delivery"
    keys: set[str] = set()
    lines = (delivery / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    journal = [json.loads(line) for line in lines]
    assert {d.get("schema") for d in journal if "record" in d} == {"handoff.journal/1"}
    assert {"run-started", "run-finished"} <= {d.get("event") for d in journal}
    for line in journal:
        keys |= _schema_keys(line)
    report = json.loads((delivery / "report.json").read_text(encoding="utf-8"))
    assert report["schema"] == "handoff.delivery-report/1"
    keys |= _schema_keys(report)
    # The plan: a dry run takes no lock and writes nothing, so the demo's folder serves.
    dry = run_handoff(
        "deliver", str(demo_tree / "takes"), "--manifest",
        str(demo_tree / "conditioned" / "manifest.json"), "--out", str(delivery),
        "--dry-run", "--json",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["schema"] == "handoff.deliver-plan/1"
    keys |= _schema_keys(plan)
    renders = tmp_path / "renders"
    renders.mkdir()
    write_clip(renders / "001_a.mp4", ClipSpec(width=160, height=120, seconds=1.0))
    (renders / "002_b.mp4").write_bytes(b"\0" * 48)
    done = run_handoff("deliver", str(renders), "--out", str(tmp_path / "d"), "--json",
                       "--jobs", "1")  # fmt: skip
    assert done.returncode == 1, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"plan", "started", "progress", "done", "failed", "blocked", "finished"} <= kinds
    for event in events:
        keys |= _schema_keys(event)
    missing = sorted(k for k in keys if not re.search(rf"\b{re.escape(k)}\b", doc))
    assert not missing, f"keys deliver writes that json.md does not name: {missing}"
