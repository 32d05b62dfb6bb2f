"""Turning the paths a user typed into the media files to work on."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av

from handoff.errors import (
    EmptyMediaError,
    InputError,
    MediaNotFoundError,
    MediaPermissionError,
    NoMediaFoundError,
    NotMediaError,
    os_reason,
)
from handoff.files.fsutil import OUTPUT_MARK, is_output_folder, resolved

__all__ = [
    "AUDIO_SUFFIXES",
    "MEDIA_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FoundMedia",
    "MediaItem",
    "check_readable",
    "expand_media",
    "find_media",
    "is_folder",
    "media_sort_key",
    "open_input",
    "segment_number",
]

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mxf", ".mts", ".m2ts", ".ts"}
)
AUDIO_SUFFIXES = frozenset(
    {
        ".wav", ".wave", ".bwf", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus",
        ".aif", ".aiff", ".caf",
    }
)  # fmt: skip
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES

_NUMERIC_PREFIX = re.compile(r"^(\d+)")


def segment_number(name: str) -> int | None:
    """The number a file name starts with (``002_pointA_take3.mp4`` -> 2), else None:
    how takes and clips name the narration segment they were generated from."""
    m = _NUMERIC_PREFIX.match(name)
    return int(m.group(1)) if m else None


def media_sort_key(path: Path) -> tuple[int, int, str]:
    """Order by a numeric prefix (``001_``, ``2-``) first, then by name."""
    m = _NUMERIC_PREFIX.match(path.name)
    if m:
        return (0, int(m.group(1)), path.name)
    return (1, 0, path.name)


MediaItem = Path | InputError
"""One entry of an expanded command line: a file to work on, or why a path gave none."""


@dataclass(frozen=True, slots=True)
class FoundMedia:
    """What a command line expanded to, and the folders left out on the way."""

    items: tuple[MediaItem, ...]
    left_out: tuple[tuple[Path, str], ...] = ()
    """(folder, why) for each folder inside an input folder that was not read."""

    def notes(self) -> list[str]:
        """One line per folder left out, for the user."""
        return [f"not read as input: {folder}{os.sep} ({why})" for folder, why in self.left_out]


_THIS_RUN = "this run's output folder"
_EARLIER_RUN = f"outputs of an earlier handoff run ({OUTPUT_MARK}); name the folder to read it"


def find_media(paths: Iterable[Path | str], *, outputs: Iterable[Path] = ()) -> FoundMedia:
    """Files as given (whatever their name); folders expanded recursively to media files.

    A file named on the command line is kept even without a media suffix, so that it
    gets a proper verdict ("not a media file") instead of vanishing. Hidden files and
    folders and partial outputs (``.*.part``) inside folders are skipped; symbolic links
    to folders are not followed. Anything with a media suffix that is not a folder is
    kept -- a broken link, a FIFO -- so that it gets its verdict too.

    Outputs are never read back as inputs: a folder met inside an input folder is left
    out when it is one of ``outputs`` (the folders this run writes into) or carries
    the mark of an earlier run's outputs (:func:`handoff.files.fsutil.mark_output_folder`);
    :attr:`FoundMedia.left_out` says which and why. A folder named on the command line
    is always read, marked or not.

    What cannot become a file comes back as an :class:`InputError` in its place, for the
    caller to report beside the others: a folder (or a folder inside it) that cannot be
    listed, and a folder that holds no media at all (the user almost certainly pointed
    at the wrong place). One bad path never hides the rest.
    """
    out: list[MediaItem] = []
    seen: set[Path] = set()
    skip = {r for r in (resolved(Path(o)) for o in outputs) if r is not None}
    left_out: dict[Path, str] = {}
    for raw in paths:
        p = Path(raw)
        candidates: list[MediaItem] = _walk(p, skip, left_out) if is_folder(p) else [p]
        for f in candidates:
            if isinstance(f, InputError):
                out.append(f)
                continue
            key = resolved(f) or f.absolute()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return FoundMedia(tuple(out), tuple(left_out.items()))


def expand_media(paths: Iterable[Path | str], *, outputs: Iterable[Path] = ()) -> list[MediaItem]:
    """:func:`find_media`'s items alone, for a caller with no way to say a note."""
    return list(find_media(paths, outputs=outputs).items)


def is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder; False for anything the system cannot even look up
    (a name too long, a loop of links), which then gets its verdict as a file."""
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return False


def _walk(folder: Path, outputs: set[Path], left_out: dict[Path, str]) -> list[MediaItem]:
    found: list[Path] = []
    problems: list[MediaItem] = []

    def unlistable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror
        problems.append(MediaPermissionError(f"cannot list this folder ({reason})", where))

    def read(sub: Path) -> bool:
        why = (
            _THIS_RUN
            if resolved(sub) in outputs
            else _EARLIER_RUN
            if is_output_folder(sub)
            else None
        )
        if why is not None:
            left_out.setdefault(sub, why)
        return why is None

    for here, dirs, names in os.walk(folder, onerror=unlistable):
        base = Path(here)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and read(base / d))
        for name in names:
            f = base / name
            if name.startswith(".") or f.suffix.lower() not in MEDIA_SUFFIXES:
                continue
            found.append(f)
    found.sort(key=lambda f: (str(f.parent), media_sort_key(f)))
    if not found and not problems:
        mine = [str(sub) for sub in left_out if sub.is_relative_to(folder)]
        outside = f" outside the output folders it holds ({', '.join(mine)})" if mine else ""
        return [
            NoMediaFoundError(
                f"folder holds no media files{outside} (looked for "
                + ", ".join(sorted(MEDIA_SUFFIXES))
                + ")",
                folder,
            )
        ]
    return [*found, *problems]


def open_input(path: Path) -> av.container.InputContainer:
    """Open a media file for reading with FFmpeg (through PyAV).

    Container tags (titles, brands, locations) are text FFmpeg does not check: a damaged
    or odd file may hold bytes that are not UTF-8 there, and PyAV's default strict
    decoding then raised UnicodeDecodeError from av.open itself (seen on a byte-flipped
    MP4 'ftyp'). They are decoded with U+FFFD in place of such bytes: handoff reads no
    decision from them.
    """
    return av.open(str(path), "r", metadata_errors="replace")


def check_readable(path: Path) -> int:
    """Raise the error a user can act on when ``path`` cannot be a media file; return its size.

    Only regular files are media: a folder, a FIFO or a device is refused here, before
    anything opens it (opening a FIFO would wait for a writer forever).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        what = "broken symbolic link" if path.is_symlink() else "no such file"
        raise MediaNotFoundError(what, path) from None
    except PermissionError:
        raise MediaPermissionError("permission denied", path) from None
    except OSError as exc:
        raise NotMediaError(f"cannot be read ({os_reason(exc)})", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise NotMediaError("is a folder, not a media file", path)
    if not stat.S_ISREG(st.st_mode):
        raise NotMediaError("not a regular file (a FIFO, socket or device)", path)
    if not os.access(path, os.R_OK):
        raise MediaPermissionError("permission denied (cannot read the file)", path)
    if st.st_size == 0:
        raise EmptyMediaError("empty file (0 bytes)", path)
    return st.st_size
