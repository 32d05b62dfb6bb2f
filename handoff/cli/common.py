"""What every command shares: library errors to one line and an exit code, notes on
stderr, JSON on stdout, text for a terminal."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from handoff.errors import HandoffError, describe
from handoff.files.find import MediaItem, find_media
from handoff.files.fsutil import clear_stale_parts
from handoff.files.names import shown
from handoff.jobs.processes import Terminated

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def die(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"handoff: error: {shown(message)}", err=True)
    sys.exit(code)


def escaped(text: str) -> str:
    """Text for people and XML: a file name's control characters and non-UTF-8 bytes as
    escapes (``\\x07``), line by line, so a terminal neither obeys nor mangles them and
    XML can hold them."""
    return "\n".join(shown(line) for line in text.split("\n"))


def say(text: str) -> None:
    click.echo(escaped(text))


def interrupted(exc: KeyboardInterrupt) -> NoReturn:
    # 128 + the signal's number, as shells report a process a signal stopped.
    if isinstance(exc, Terminated):
        die("terminated: finished outputs are kept; no partial file has a final name", 143)
    die("interrupted: finished outputs are kept; no partial file has a final name", 130)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Library exceptions become one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except HandoffError as exc:
        die(str(exc))
    except KeyboardInterrupt as exc:
        interrupted(exc)
    except OSError as exc:
        die(describe(exc))


def note(text: str) -> None:
    """A note on stderr: stdout stays the report (and valid JSON with --json)."""
    click.echo(f"handoff: note: {shown(text)}", err=True)


def media(paths: Sequence[Path], outputs: Sequence[Path] = ()) -> list[MediaItem]:
    """The media files the paths name; a note for each output folder left out
    (docs/reference/cli.md, "Re-runs")."""
    found = find_media(paths, outputs=outputs)
    for line in found.notes():
        note(line)
    return list(found.items)


def clear_parts(folders: Sequence[Path]) -> None:
    """Before writing: remove the partial files an earlier run that was killed left in
    the output folders (never one a running writer owns), and say so."""
    removed = clear_stale_parts(folders)
    if removed:
        note(
            f"removed {len(removed)} partial file(s) left by an earlier run that was stopped: "
            + ", ".join(str(p) for p in removed)
        )


OVERWRITE_HELP = (
    "Replace outputs that already exist. Without it an existing output is kept and "
    "skipped with a note, and the run still exits 0 (see docs/reference/cli.md, Re-runs)."
)


def skipped(path: Path) -> str:
    return f"skipped {path}: exists (use --overwrite to replace it)"


def write_json(data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A file name that is not UTF-8 (its bytes kept as surrogates): escape it, so
        # the output stays valid JSON in UTF-8.
        text = json.dumps(data, indent=2)
    click.echo(text)
