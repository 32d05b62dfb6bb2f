"""``handoff deliver`` killed (SIGKILL of its whole process group) or interrupted (Ctrl-C)
part way: what it leaves is whole or absent, nothing of it lives on, and the same command
finishes the batch without redoing a step that was done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from handoff.deliver.journal import Journal
from handoff.media.synth import TakeSpec
from tests.conftest import MakeDir, run_handoff
from tests.test_deliver import (
    assert_masters_pass,
    child_env,
    final_names,
    handoff_argv,
    make_batch,
    read_journal,
    record_lines,
    wait_for,
    wait_gone,
)

TAKES = [
    ("001_take1.mp4", TakeSpec()),
    ("001_take2.mp4", TakeSpec(picture_delay_s=1 / 24)),
    ("001_take3.mp4", TakeSpec(picture_delay_s=-1 / 24)),
    ("001_take4.mp4", TakeSpec(picture_stretch=1.01)),
    ("001_take5.mp4", TakeSpec(picture_noise=3.0)),
    ("001_take6.mp4", TakeSpec(picture_delay_s=3 / 24)),
]
MASTERS = [n.replace(".mp4", ".mov") for n, _ in TAKES]
REVIEWS = [n for n, _ in TAKES]


@pytest.fixture(scope="module")
def renders(module_tmp: MakeDir) -> Path:
    root = module_tmp("kill")
    make_batch(root, TAKES, seconds=6.0, size=(160, 120))
    return root


def _argv(out: str) -> list[str]:
    return handoff_argv("deliver", "renders", "--manifest", "cond/manifest.json", "--out", out,
                        "--review", "h264-review", "--jobs", "2")  # fmt: skip


def _start(root: Path, out: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _argv(out),
        cwd=root,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the workers are ours to kill
    )


def _check_whole(out: Path) -> None:
    """Every file with a final name is whole: readable to the last frame, and valid."""
    masters = final_names(out / "masters")
    reviews = final_names(out / "review")
    assert set(masters) <= set(MASTERS) and set(reviews) <= set(REVIEWS)
    if masters:
        assert_masters_pass(out / "masters", masters)
    if reviews:
        assert_masters_pass(out / "review", reviews, spec="h264-review")


@pytest.mark.parametrize("k", [1, 5, 9])
def test_sigkill_part_way_loses_nothing_done_and_leaves_nothing_behind(
    renders: Path, k: int
) -> None:
    name = f"killed-at-{k}"
    out = renders / name
    journal = out / "journal.jsonl"
    proc = _start(renders, name)
    try:
        wait_for(lambda: record_lines(journal) >= k, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not wait_gone(proc.pid), "a process of the killed deliver lives on"

    _check_whole(out)
    before = read_journal(journal)  # every line parses, but a torn last one
    done_before = {r["key"] for r in before.records if r["status"] == "done"}
    assert len(before.records) >= k and done_before
    with Journal.open(out) as opened:  # the project's own reader agrees
        assert {key for key, r in opened.latest.items() if r.status == "done"} == done_before
        assert all("line" in note for note in opened.notes)
    lines = journal.read_bytes().count(b"\n")

    again = subprocess.run(_argv(name), cwd=renders, env=child_env(), capture_output=True,
                           text=True, timeout=600)  # fmt: skip

    assert again.returncode == 0, again.stdout + again.stderr
    assert "Traceback" not in again.stderr
    redone = {r["key"] for r in read_journal(journal, start=lines).records}
    assert not redone & done_before, sorted(redone & done_before)
    assert final_names(out / "masters") == sorted(MASTERS)
    assert final_names(out / "review") == sorted(REVIEWS)
    _check_whole(out)
    selects = json.loads((out / "selects.json").read_text())
    assert selects["segments"][0]["pick"] == "masters/001_take1.mov"
    assert (out / "report.html").exists()


def test_ctrl_c_part_way_says_how_to_resume_and_the_rerun_finishes(renders: Path) -> None:
    name = "interrupted"
    out = renders / name
    proc = _start(renders, name)
    try:
        wait_for(lambda: record_lines(out / "journal.jsonl") >= 3, proc)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, stderr
    said = [line for line in stderr.splitlines() if "run the same command again" in line]
    assert len(said) == 1 and "resume" in said[0], stderr
    assert not wait_gone(proc.pid)
    _check_whole(out)

    again = run_handoff(*_argv(name)[3:], cwd=renders)

    assert again.returncode == 0, again.stdout + again.stderr
    assert final_names(out / "masters") == sorted(MASTERS)
    _check_whole(out)
    # Workers start with SIGINT ignored: one still starting when Ctrl-C came printed a
    # KeyboardInterrupt traceback above the one-line message.
    assert "Traceback" not in stderr, stderr
