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

from handoff.errors import HandoffError, Option, describe, rendered
from handoff.files.find import MediaItem, find_media
from handoff.files.fsutil import clear_stale_parts
from handoff.files.names import shown, shown_lines
from handoff.jobs.processes import Terminated

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

# Option values more than one command takes, so each command accepts the same ones.
TOLERANCE_MS = click.FloatRange(min=0, min_open=True, max=10_000)
"""``--tolerance-ms`` (sync, deliver): above nothing, at most ten seconds."""

# The library's options whose flag is not the option's name with dashes.
_FLAG_OF = {
    "out_dir": "--out",
    "replace": "--overwrite",
    "master_path": "--master",
    "manifest_path": "--manifest",
    "selects_path": "--selects",
    "relative_to": "--relative",
    "report": "--junit",
}


def flag(option: Option) -> str:
    """How the CLI names a library option a message advises: ``--fps 24``,
    ``--add-silence``, ``handoff export --fps ...``."""
    said = _FLAG_OF.get(option.name, "--" + option.name.replace("_", "-"))
    if isinstance(option.value, str):
        said += f" {option.value}"
    return said if option.command is None else f"handoff {option.command} {said}"


def flags(text: str) -> str:
    """A library message or note as the CLI says it: the options it names as flags."""
    return rendered(text, flag)


def flagged(data: Any) -> Any:
    """A JSON-ready value with every library message in it rendered by :func:`flags`."""
    if isinstance(data, str):
        return flags(data)
    if isinstance(data, dict):
        return {k: flagged(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [flagged(v) for v in data]
    return data


def die(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"handoff: error: {shown(flags(message))}", err=True)
    sys.exit(code)


def say(text: str) -> None:
    click.echo(shown_lines(flags(text)))


def interrupted(exc: KeyboardInterrupt) -> NoReturn:
    # 128 + the signal's number, as shells report a process a signal stopped.
    if isinstance(exc, Terminated):
        die("terminated: finished outputs are kept; no partial file has a final name", 143)
    die("interrupted: finished outputs are kept; no partial file has a final name", 130)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Library exceptions become one line on stderr and exit code 2, never a traceback;
    one the library did not foresee is named as a bug to report (:func:`describe`)."""
    try:
        yield
    except HandoffError as exc:
        die(exc.render(flag))
    except KeyboardInterrupt as exc:
        interrupted(exc)
    except Exception as exc:  # OSError: the system's reason; anything else: a bug, in one line
        die(describe(exc))


def note(text: str) -> None:
    """A note on stderr: stdout stays the report (and valid JSON with --json)."""
    click.echo(f"handoff: note: {shown(flags(text))}", err=True)


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
    """``data`` as JSON on stdout, library messages in it as the CLI says them."""
    data = flagged(data)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A file name that is not UTF-8 (its bytes kept as surrogates): escape it, so
        # the output stays valid JSON in UTF-8.
        text = json.dumps(data, indent=2)
    click.echo(text)
