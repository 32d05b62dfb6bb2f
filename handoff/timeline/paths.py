"""File paths as each editor wants them written, and back.

Every format names media differently: OTIO's own convention is a ``file://`` URL,
Resolve's OTIO export writes the bare absolute path, Premiere's FCP7 XML writes
``file://localhost/`` + the percent-encoded path (``D%3a/`` for a Windows drive), and
FCPXML and OTIO use ``file:///`` URLs with the drive colon as it is (``file:///D:/``: RFC
8089 appendix E.2's form, what Python's ``PurePath.as_uri`` and so OTIO's own
``url_utils.url_from_filepath`` give, and how Resolve's own Windows export writes a drive,
``file://localhost/C:/`` in its FCP7 XML published in lossless-cut's test fixtures).
These functions take a :class:`~pathlib.PurePath` so that Windows paths can be produced
(and tested) on any machine.

A URL carries the path's *bytes*, percent-encoded (RFC 3986 section 2.1; RFC 8089):
``os.fsencode`` gives them back exactly as the file system holds them, including bytes
that are not UTF-8 (which Python reads as lone surrogates, PEP 383) and control
characters, so every URL is plain ASCII and names the real file.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from urllib.parse import quote, unquote_to_bytes, urlsplit

__all__ = [
    "file_url",
    "path_from_url",
    "premiere_pathurl",
    "relative_path",
    "relative_url",
    "url_path",
]

# Left as they are in a URL path: RFC 3986 unreserved characters and '/'.
# Everything else -- space, &, #, ', %, controls, every byte over 0x7f -- is percent-encoded.
_SAFE = "/-._~"


def _quote(text: str) -> str:
    """Percent-encode a path's file-system bytes (not its UTF-8: the two differ for a
    file name that is not UTF-8)."""
    return quote(os.fsencode(text), safe=_SAFE)


def url_path(path: PurePath, *, drive_colon: bool = False) -> str:
    """The absolute path as a percent-encoded URL path, always starting with '/'.

    A Windows drive's colon is encoded (``/D%3A/``) unless ``drive_colon`` (``/D:/``)."""
    if isinstance(path, PureWindowsPath) or (
        not isinstance(path, PurePosixPath) and os.name == "nt"
    ):
        win = PureWindowsPath(path)
        drive = win.drive  # "D:" or "\\\\server\\share"
        rest = "/".join(win.parts[1:])
        if drive.endswith(":"):
            letter = drive if drive_colon else quote(drive, safe="")
            return "/" + letter + "/" + _quote(rest)
        unc = drive.lstrip("\\").replace("\\", "/")
        return "//" + _quote(unc) + "/" + _quote(rest)
    return _quote(PurePosixPath(path).as_posix())


def file_url(path: PurePath) -> str:
    """``file:///abs/path`` with the path percent-encoded (RFC 8089), a Windows drive as
    ``file:///D:/...`` (FCPXML and OTIO; only Premiere's xmeml encodes the colon, see
    :func:`premiere_pathurl`)."""
    p = url_path(path, drive_colon=True)
    return "file://" + p if p.startswith("/") else "file:///" + p


def premiere_pathurl(path: PurePath) -> str:
    """Premiere's FCP7 XML ``pathurl``: ``file://localhost`` + the encoded path.

    A Windows drive colon is written ``%3a`` in lower case, as Premiere itself does.
    """
    p = url_path(path)
    if p.startswith("/") and len(p) > 4 and p[1].isalpha() and p[2:5] == "%3A":
        p = p[:2] + "%3a" + p[5:]
    return "file://localhost" + p


def path_from_url(url: str) -> str:
    """The path a ``file:`` URL (or bare path) names, decoded to the file system's bytes
    (``os.fsdecode``: a byte that is not UTF-8 comes back as the lone surrogate Python
    uses for it); for reading files back."""
    if not url.startswith("file:"):
        return url
    parts = urlsplit(url)
    path = os.fsdecode(unquote_to_bytes(parts.path))
    # /D:/media -> D:/media. (A POSIX top-level folder named like a drive, "/D:/", is
    # read as a drive: file URLs cannot tell the two apart.)
    drive = path[1:3]
    if path[:1] == "/" and path[3:4] == "/" and drive[:1].isascii() and drive[:1].isalpha():
        path = path[1:] if drive[1:] == ":" else path
    return path


def relative_path(path: Path, base_dir: Path) -> str:
    """The path from ``base_dir`` to ``path``, '/'-separated (as Resolve writes paths)."""
    return PurePath(os.path.relpath(path, base_dir)).as_posix()


def relative_url(path: Path, base_dir: Path) -> str:
    """A relative reference from ``base_dir`` to ``path``, '/'-separated, percent-encoded."""
    return _quote(relative_path(path, base_dir))
