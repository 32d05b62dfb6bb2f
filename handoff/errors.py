"""Exceptions, grouped by what the user has to do about them.

Every exception formats itself as one line a person can act on. Where a builtin
exception means the same thing (a missing file, a bad value), ours subclasses it too,
so callers may catch either -- the pattern PyAV uses for its FFmpeg errors.

The library raises; it never prints or exits. ``handoff.cli`` turns these into one
line on stderr and an exit code.
"""

from __future__ import annotations

import errno
from pathlib import Path

__all__ = [
    "EmptyMediaError",
    "HandoffError",
    "InputError",
    "ManifestError",
    "MediaNotFoundError",
    "MediaPermissionError",
    "NoMediaFoundError",
    "NoStreamsError",
    "NotMediaError",
    "OutputExistsError",
    "OverwritesInputError",
    "SelectsError",
    "SpecError",
    "ToolError",
    "TruncatedMediaError",
    "UnmeasurableError",
    "UnsupportedError",
    "UsageError",
    "describe",
    "os_reason",
]


class HandoffError(Exception):
    """Base of every error handoff raises on purpose."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.message = message
        self.path = None if path is None else Path(path)
        super().__init__(message)

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        return f"{self.path}: {self.message}"


class InputError(HandoffError):
    """A media input cannot be used as it is: the user must fix or replace the file."""


class MediaNotFoundError(InputError, FileNotFoundError):
    """The path does not exist."""


class MediaPermissionError(InputError, PermissionError):
    """The path exists but cannot be read."""


class EmptyMediaError(InputError, ValueError):
    """The file has zero bytes."""


class NotMediaError(InputError, ValueError):
    """The file is not a media container FFmpeg can read."""


class TruncatedMediaError(InputError, ValueError):
    """The file is a media container whose write was interrupted (e.g. MP4 with no moov)."""


class NoStreamsError(InputError, ValueError):
    """The container holds no audio or video stream."""


class NoMediaFoundError(InputError):
    """A folder was given that holds no media files."""


class SpecError(HandoffError, ValueError):
    """A delivery spec is unknown, unreadable or malformed: fix the spec or its name."""


class UsageError(HandoffError, ValueError):
    """The options given do not fit together."""


class ManifestError(UsageError):
    """A prep-audio manifest is unreadable or does not follow its schema: the message
    names the field (``segments[2].source_in: ...``)."""


class SelectsError(UsageError):
    """A selects file (``handoff.selects/1``) or the sync result it is made from is
    unreadable or does not follow its schema: the message names the field
    (``segments[1].pick: ...``)."""


class UnsupportedError(HandoffError):
    """The input is valid but asks for something handoff does not do (yet)."""


class UnmeasurableError(UnsupportedError, ValueError):
    """Audio that a measurement is not defined for as it is (BS.1770's K-weighting needs a
    sample rate of at least 4 kHz): the fact is missing, the file is not broken."""


class ToolError(HandoffError, RuntimeError):
    """An encoder, decoder or external tool failed while working on a valid input."""


class OutputExistsError(UsageError, FileExistsError):
    """An output file exists and replacing it was not asked for (or another run wrote it
    first: the final rename never replaces a file unless asked)."""


class OverwritesInputError(UsageError):
    """An output would be written over one of the command's own inputs."""


# The longest message a report line carries; FFmpeg and numpy can say a lot.
_MAX_MESSAGE = 300


def os_reason(exc: OSError) -> str:
    """The system's reason for an OS error, in words a person reads ("Too many levels of
    symbolic links" says less than what it means)."""
    if exc.errno == errno.ELOOP:
        return "a loop of symbolic links"
    return exc.strerror or type(exc).__name__


def describe(exc: BaseException) -> str:
    """One line a person can act on, for any exception met while working on one file.

    Errors handoff raises on purpose give their message (without the path: the report
    line names the file). OS errors give the system's reason. Anything else is a bug in
    handoff or in a library under it: it is named as such, in one line, so that one
    file's surprise never costs the rest of a batch its report.
    """
    if isinstance(exc, HandoffError):
        text = exc.message
    elif isinstance(exc, OSError) and exc.strerror:
        reason = os_reason(exc)
        text = f"{reason} ({exc.filename})" if exc.filename else reason
    elif isinstance(exc, MemoryError):
        text = "out of memory"
    else:
        detail = str(exc) or type(exc).__name__
        text = f"unexpected {type(exc).__name__}: {detail} (a bug in handoff: please report it)"
    line = " ".join(text.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."
