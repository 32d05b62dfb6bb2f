"""Exceptions, grouped by what the user has to do about them.

Every exception formats itself as one line a person can act on. Where a builtin
exception means the same thing (a missing file, a bad value), ours subclasses it too,
so callers may catch either -- the pattern PyAV uses for its FFmpeg errors.

The library raises; it never prints or exits. ``handoff.cli`` turns these into one
line on stderr and an exit code.

Messages say what is wrong with the media and, where an option would fix it, name that
option as a library caller passes it (``fps=24``, ``replace=True``). The option is an
:class:`Option` inside a :class:`Text`, not words, so that another interface can name it
its own way: the CLI renders ``Option("fps", "24")`` as ``--fps 24``
(:func:`handoff.cli.common.flags`). Result notes and warnings use the same
:class:`Text`.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DeliveryBusyError",
    "EmptyMediaError",
    "HandoffError",
    "InputError",
    "ManifestError",
    "MediaNotFoundError",
    "MediaPermissionError",
    "NoMediaFoundError",
    "NoStreamsError",
    "NotMediaError",
    "Option",
    "OutputExistsError",
    "OverwritesInputError",
    "SelectsError",
    "SpecError",
    "Text",
    "ToolError",
    "TruncatedMediaError",
    "UnmeasurableError",
    "UnsupportedError",
    "UsageError",
    "describe",
    "os_reason",
    "rendered",
]


@dataclass(frozen=True, slots=True)
class Option:
    """A library option named in a message, with the value that would fix the problem.

    ``name`` is the keyword a library caller passes (``fps``, ``replace``, ``out_dir``);
    ``value`` is what to pass (``True`` for a switch, text otherwise, None when the
    message leaves the value open); ``command`` names the step that takes the option
    when it is not the one that raised (``export`` in a timeline's advice).
    """

    name: str
    value: str | bool | None = None
    command: str | None = None

    def __str__(self) -> str:
        said = self.name if self.value is None else f"{self.name}={self.value}"
        return said if self.command is None else f"{self.command} with {said}"


# How an interface names an option: the library's own way is str(option).
Namer = Callable[[Option], str]


class Text(str):
    """Message text whose parts may be :class:`Option` s.

    It *is* the string a library caller reads (options named as keywords), so it goes
    wherever a ``str`` goes -- a result's notes, JSON, another process. An interface
    with its own names for options calls :meth:`render` (or :func:`rendered`, which
    takes any string). Build one from its parts; a :class:`Text` among them keeps its
    options: ``Text("cannot measure loudness: ", describe(exc))``.
    """

    parts: tuple[str | Option, ...]

    def __new__(cls, *parts: str | Option) -> Text:
        flat: list[str | Option] = []
        for part in parts:
            flat.extend(part.parts if isinstance(part, Text) else (part,))
        text = super().__new__(cls, "".join(str(p) for p in flat))
        text.parts = tuple(flat)
        return text

    def render(self, name: Namer) -> str:
        return "".join(name(p) if isinstance(p, Option) else str(p) for p in self.parts)


def rendered(text: str, name: Namer) -> str:
    """``text`` with its options named by ``name`` (a plain string is returned as it is)."""
    return text.render(name) if isinstance(text, Text) else str(text)


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

    def render(self, name: Namer) -> str:
        """The one line, with the options its message names named by ``name``."""
        said = rendered(self.message, name)
        return said if self.path is None else f"{self.path}: {said}"


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


class DeliveryBusyError(UsageError):
    """Another ``handoff deliver`` holds the delivery folder's lock: wait for it to finish,
    or stop it (a process that died holds no lock)."""


# The longest message a report line carries; FFmpeg and numpy can say a lot.
_MAX_MESSAGE = 300


def os_reason(exc: OSError) -> str:
    """The system's reason for an OS error, in words a person reads ("Too many levels of
    symbolic links" says less than what it means)."""
    if exc.errno == errno.ELOOP:
        return "a loop of symbolic links"
    return exc.strerror or type(exc).__name__


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def describe(exc: BaseException) -> str:
    """One line a person can act on, for any exception met while working on one file.

    Errors handoff raises on purpose give their message (without the path: the report
    line names the file). OS errors give the system's reason. Anything else is a bug in
    handoff or in a library under it: it is named as such, in one line, so that one
    file's surprise never costs the rest of a batch its report. A message that names
    options stays a :class:`Text`.
    """
    if isinstance(exc, HandoffError):
        message = exc.message
        if isinstance(message, Text) and len(message.strip()) <= _MAX_MESSAGE:
            parts = [_one_line(p) if isinstance(p, str) else p for p in message.parts]
            if isinstance(parts[0], str):
                parts[0] = parts[0].lstrip()
            if isinstance(parts[-1], str):
                parts[-1] = parts[-1].rstrip()
            return Text(*parts)
        text = message
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
