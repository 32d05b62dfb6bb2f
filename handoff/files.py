"""Turning the paths a user typed into the media files to work on."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from handoff.errors import (
    EmptyMediaError,
    MediaNotFoundError,
    MediaPermissionError,
    NoMediaFoundError,
    NotMediaError,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "MEDIA_SUFFIXES",
    "VIDEO_SUFFIXES",
    "check_readable",
    "expand_media",
    "media_sort_key",
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


def media_sort_key(path: Path) -> tuple[int, int, str]:
    """Order by a numeric prefix (``001_``, ``2-``) first, then by name."""
    m = _NUMERIC_PREFIX.match(path.name)
    if m:
        return (0, int(m.group(1)), path.name)
    return (1, 0, path.name)


def expand_media(paths: Iterable[Path | str]) -> list[Path]:
    """Files as given (whatever their name); folders expanded recursively to media files.

    A file named on the command line is kept even without a media suffix, so that it
    gets a proper verdict ("not a media file") instead of vanishing. Hidden files and
    partial outputs (``.*.part``) inside folders are skipped. A folder with no media is
    an error: the user almost certainly pointed at the wrong place.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                (
                    f
                    for f in p.rglob("*")
                    if f.is_file()
                    and f.suffix.lower() in MEDIA_SUFFIXES
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)
                ),
                key=lambda f: (str(f.parent), media_sort_key(f)),
            )
            if not found:
                raise NoMediaFoundError(
                    "folder holds no media files (looked for "
                    + ", ".join(sorted(MEDIA_SUFFIXES))
                    + ")",
                    p,
                )
            candidates = found
        else:
            candidates = [p]
        for f in candidates:
            key = f.resolve() if f.exists() else f
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def check_readable(path: Path) -> int:
    """Raise the error a user can act on when ``path`` cannot be a media file; return its size."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MediaNotFoundError("no such file", path) from None
    except PermissionError:
        raise MediaPermissionError("permission denied", path) from None
    if path.is_dir():
        raise NotMediaError("is a folder, not a media file", path)
    if not os.access(path, os.R_OK):
        raise MediaPermissionError("permission denied (cannot read the file)", path)
    if st.st_size == 0:
        raise EmptyMediaError("empty file (0 bytes)", path)
    return st.st_size
