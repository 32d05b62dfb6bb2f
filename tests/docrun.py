"""Run a documentation page's commands as written and compare what they print with what
the page shows.

A page is read in order. Its ``sh`` blocks are commands, one a line, run by bash in one
folder (so each sees what the ones before it made), with ``handoff`` and ``python`` the
ones under test. A ``text`` block right after an ``sh`` block is what its last command
prints: every line of it must be printed, in order (``...`` stands for lines left out;
figures within 5 % or 0.5, ``…`` for a figure that varies, spaces that align a table
ignored). A command must exit 0
unless it ends ``; echo "exit $?"``, whose shown ``exit N`` is then compared like any
line. A ``toml`` block whose first line is ``# NAME.toml`` is written to that file
before the next command runs. ``<!-- not run: REASON -->`` on the line before a block
leaves it out (the install, which the README's own commands cover).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO

DOCS = REPO / "docs"
ECHO_EXIT = '; echo "exit $?"'

# A figure: a number with a decimal point or a sign (counts, frame numbers, timecodes
# and names are compared as they are); in what a page shows, "…" stands for any figure
# (a time taken, which no two runs share).
_FIGURE = re.compile(r"[+-]?\d+\.\d+|[+-]\d+|…")
_BLOCK = re.compile(r"(<!-- not run: [^>]*-->\n)?```(\w*)\n(.*?)```", re.DOTALL)
_FILE_LINE = re.compile(r"#\s*(\S+\.toml)\s*$")


@dataclass(frozen=True, slots=True)
class Step:
    """One command of a page, where it is, what the page shows it printing, and the
    files the page writes before it."""

    command: str
    section: str
    shown: str | None = None
    files: tuple[tuple[str, str], ...] = field(default=())


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of ``text`` that are run or compared: (language, body)."""
    return [(m[2], m[3]) for m in _BLOCK.finditer(text) if not m[1]]


def section_of(text: str, offset: int) -> str:
    heading = "(top)"
    for m in re.finditer(r"^#{1,3} .*$", text[:offset], re.MULTILINE):
        heading = m[0]
    return heading


def steps(page: Path, *, leave_out: tuple[str, ...] = ()) -> list[Step]:
    """The commands of ``page`` in order, bar those in sections starting with one of
    ``leave_out`` (run by a test of their own)."""
    text = page.read_text(encoding="utf-8")
    found = [m for m in _BLOCK.finditer(text) if not m[1]]
    out: list[Step] = []
    pending: list[tuple[str, str]] = []
    for i, m in enumerate(found):
        lang, body = m[2], m[3]
        section = section_of(text, m.start())
        if lang == "toml":
            first = body.splitlines()[0] if body.strip() else ""
            named = _FILE_LINE.match(first)
            if named:
                pending.append((named[1], body))
            continue
        if lang != "sh" or section.startswith(leave_out):
            continue
        after = found[i + 1] if i + 1 < len(found) else None
        shown = after[3] if after is not None and after[2] == "text" else None
        lines = [line for line in body.splitlines() if line.strip()]
        for k, line in enumerate(lines):
            last = k == len(lines) - 1
            out.append(Step(line, section, shown if last else None, tuple(pending)))
            pending = []
    return out


def _masked(line: str) -> str:
    return " ".join(_FIGURE.sub("#", line).split())


def _close(shown: str, printed: str) -> bool:
    a = _FIGURE.findall(shown)
    b = _FIGURE.findall(printed)
    if len(a) != len(b) or "…" in b:
        return False
    return all(
        x == "…" or abs(float(x) - float(y)) <= max(0.5, 0.05 * abs(float(x)))
        for x, y in zip(a, b, strict=True)
    )


def not_printed(shown: str, printed: str) -> list[str]:
    """Lines of ``shown`` not in ``printed`` in the same order (figures within 5 % or
    0.5; ``...`` stands for lines left out)."""
    have = printed.splitlines()
    at = 0
    missing = []
    for line in shown.splitlines():
        if not line.strip() or line.strip() == "...":
            continue
        for k in range(at, len(have)):
            if _masked(have[k]) == _masked(line) and _close(line, have[k]):
                at = k + 1
                break
        else:
            missing.append(line)
    return missing


def shell_env(bin_dir: Path) -> dict[str, str]:
    """An environment in which ``handoff`` and ``python`` are the ones under test."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "handoff"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m handoff "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    python = bin_dir / "python"
    if not python.exists():
        python.symlink_to(sys.executable)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
    }


def run_step(step: Step, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run one command as bash would; (exit code, what it printed, stdout then stderr)."""
    for name, body in step.files:
        (cwd / name).write_text(body, encoding="utf-8")
    done = subprocess.run(
        ["bash", "-c", step.command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, done.stdout + done.stderr


def check_page(page: Path, cwd: Path, env: dict[str, str], **kwargs: tuple[str, ...]) -> list[str]:
    """Run every command of ``page``; what did not hold, one line each (empty: all did)."""
    problems: list[str] = []
    for step in steps(page, **kwargs):
        code, printed = run_step(step, cwd, env)
        where = f"{page.relative_to(REPO)} {step.section}: {step.command}"
        if "Traceback" in printed:
            problems.append(f"{where}\n  printed a traceback:\n{printed}")
            continue
        if code != 0:
            problems.append(f"{where}\n  exit {code}:\n{printed}")
            continue
        if step.shown is not None:
            missing = not_printed(step.shown, printed)
            if missing:
                problems.append(f"{where}\n  shown but not printed: {missing}\n{printed}")
    return problems
