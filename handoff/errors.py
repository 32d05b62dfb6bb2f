"""Exceptions, grouped by what the user has to do about them.

Every exception formats itself as one line a person can act on. Where a builtin
exception means the same thing (a missing file, a bad value), ours subclasses it too,
so callers may catch either -- the pattern PyAV uses for its FFmpeg errors.

The library raises; it never prints or exits. ``handoff.cli`` turns these into one
line on stderr and an exit code.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "EmptyMediaError",
    "HandoffError",
    "InputError",
    "MediaNotFoundError",
    "MediaPermissionError",
    "NoMediaFoundError",
    "NoStreamsError",
    "NotMediaError",
    "SpecError",
    "ToolError",
    "TruncatedMediaError",
    "UnsupportedError",
    "UsageError",
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


class UnsupportedError(HandoffError):
    """The input is valid but asks for something handoff does not do (yet)."""


class ToolError(HandoffError, RuntimeError):
    """An encoder, decoder or external tool failed while working on a valid input."""
