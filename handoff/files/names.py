"""Names as the timeline formats can hold them, and as a terminal can show them.

Used by the timeline writers (:func:`xml_text`, :func:`is_utf8`) and by everything that
prints a file name for people (:func:`shown`).

A file name is bytes (POSIX); Python reads the bytes that are not UTF-8 as lone
surrogates (``\\udcXX``, PEP 383) and keeps control characters as they are. Neither can
go into the formats as *text*:

- XML 1.0 (section 2.2, ``Char``) has no character for U+0000-U+001F other than tab,
  line feed and carriage return, none for a surrogate, U+FFFE or U+FFFF, and
  discourages U+007F-U+009F; lxml refuses them ("All strings must be XML compatible").
- OTIO's JSON holds UTF-8 text only: a lone surrogate cannot be stored at all.

So a *display* name (the sequence, a clip, a media reference) is written with U+FFFD in
place of each such character (:func:`xml_text`), and the build says so. A media *path*
is never changed: the URL forms percent-encode its bytes (:mod:`.paths`).
"""

from __future__ import annotations

import os
import re

__all__ = [
    "NAME_MAX",
    "REPLACEMENT",
    "cut_to_bytes",
    "fit_file_name",
    "is_utf8",
    "shown",
    "shown_lines",
    "xml_text",
]

REPLACEMENT = "\ufffd"

NAME_MAX = 255
"""Bytes in one file name: Linux file systems (NAME_MAX), and about what APFS and NTFS
allow (255 UTF-16 units)."""

# Control characters (C0, DEL, C1), lone surrogates (bytes that are not UTF-8), and the
# two non-characters XML 1.0 excludes. Tab, LF and CR are allowed in XML but mean
# nothing in a name (and an attribute value reader turns them into spaces, section 3.3.3).
_UNWRITABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold (or a name should not) -> U+FFFD."""
    return _UNWRITABLE.sub(REPLACEMENT, text)


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (no byte of a non-UTF-8 file name in it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the byte that was not UTF-8 (PEP 383)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def shown(text: str) -> str:
    """``text`` safe to print on one line: unwritable characters as ``\\x07``-style escapes
    (a non-UTF-8 byte as ``\\xe9``), so a terminal neither misreads nor obeys them."""
    return _UNWRITABLE.sub(_escape, text)


def shown_lines(text: str) -> str:
    """:func:`shown` line by line: text of several lines for a terminal or XML (which
    holds no control character and no lone surrogate either)."""
    return "\n".join(shown(line) for line in text.split("\n"))


def fit_file_name(base: str, longest_suffix: str) -> str:
    """``base`` cut, at a character, so that ``base`` + ``longest_suffix`` fits in
    :data:`NAME_MAX` bytes as the file system stores it (UTF-8; a non-UTF-8 byte as
    itself). Unchanged when it fits."""
    return cut_to_bytes(base, NAME_MAX - len(os.fsencode(longest_suffix))).rstrip()


def cut_to_bytes(text: str, limit: int) -> str:
    """The longest start of ``text`` whose file-system encoding has at most ``limit`` bytes."""
    used = 0
    for i, ch in enumerate(text):
        used += len(os.fsencode(ch))
        if used > limit:
            return text[:i]
    return text
