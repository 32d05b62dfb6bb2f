"""Turning the paths a user typed into the media files to work on."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from handoff.errors import NoMediaFoundError

__all__ = ["MEDIA_SUFFIXES", "expand_media", "media_sort_key"]

MEDIA_SUFFIXES = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mxf", ".mts", ".m2ts", ".ts",
        ".wav", ".wave", ".bwf", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus",
        ".aif", ".aiff", ".caf",
    }
)  # fmt: skip

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
