"""A small reader for the box (atom) structure of MP4 and QuickTime files.

FFmpeg answers most questions about a file, but three that matter here it does not
expose through PyAV: whether the index (``moov``) precedes the media data
(``faststart``: players and review tools can start before the download ends),
whether an MP4 has an index at all (an interrupted write leaves ``ftyp`` + ``mdat``
and no ``moov``), and each track's display matrix (phones record rotated video).
Reading the box headers answers all three without touching the media data.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["BoxLayout", "read_layout", "sniff_isobmff"]

# Box types whose payload is itself a list of boxes, along the path to tkhd.
_CONTAINERS = {b"moov", b"trak"}
# The brands of an ISO BMFF file start with ftyp; older QuickTime files may start
# with one of these instead (QTFF, "Overview of QTFF" chapter).
_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


@dataclass(frozen=True, slots=True)
class BoxLayout:
    """What the top-level box structure says about a file."""

    top_level: tuple[str, ...]
    has_moov: bool
    faststart: bool
    """``moov`` comes before the first ``mdat``."""
    rotation_by_track: dict[int, int]
    """Display rotation in degrees (0, 90, 180, 270) keyed by track ID."""
    truncated_box: str | None
    """The type of a top-level box whose declared size runs past the end of the file."""


def sniff_isobmff(head: bytes) -> bool:
    """Whether the first bytes of a file look like an MP4/QuickTime box header."""
    return len(head) >= 8 and head[4:8] in _FIRST_BOXES


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """Yield (type, payload offset, payload size, declared end) for boxes in [start, end)."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        payload = pos + 8
        if size == 1:  # 64-bit largesize follows the type
            large = f.read(8)
            if len(large) < 8:
                return
            (size,) = struct.unpack(">Q", large)
            payload += 8
        elif size == 0:  # box extends to the end of the file
            size = end - pos
        if size < payload - pos:
            return  # corrupt header: stop rather than loop
        yield kind, payload, pos + size - payload, pos + size
        pos += size


def _rotation_from_matrix(matrix: tuple[int, ...]) -> int:
    # tkhd matrix {a b u; c d v; x y w}, a..d in 16.16 fixed point (ISO 14496-12 8.3.2).
    a, b = matrix[0] / 65536.0, matrix[1] / 65536.0
    angle = math.degrees(math.atan2(b, a))
    return round(angle / 90.0) % 4 * 90


def _read_tkhd(f: BinaryIO, offset: int) -> tuple[int, int] | None:
    f.seek(offset)
    data = f.read(92)
    if len(data) < 4:
        return None
    version = data[0]
    # version 1 carries 64-bit times: track_ID sits 8 bytes later.
    id_at, matrix_at = (20, 52) if version == 1 else (12, 40)
    if len(data) < matrix_at + 36:
        return None
    (track_id,) = struct.unpack_from(">I", data, id_at)
    matrix = struct.unpack_from(">9i", data, matrix_at)
    return track_id, _rotation_from_matrix(matrix)


def read_layout(path: Path) -> BoxLayout | None:
    """Read the box layout of an MP4/MOV file; None when the file is not one."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if not sniff_isobmff(f.read(8)):
            return None
        top: list[str] = []
        has_moov = False
        faststart = False
        seen_mdat = False
        truncated: str | None = None
        rotations: dict[int, int] = {}
        for kind, payload, length, box_end in _boxes(f, 0, size):
            name = kind.decode("latin-1")
            top.append(name)
            if box_end > size and truncated is None:
                truncated = name
            if kind == b"mdat":
                seen_mdat = True
            elif kind == b"moov":
                has_moov = True
                faststart = not seen_mdat
                _collect_rotations(f, payload, min(payload + length, size), rotations)
    return BoxLayout(
        top_level=tuple(top),
        has_moov=has_moov,
        faststart=faststart,
        rotation_by_track=rotations,
        truncated_box=truncated,
    )


def _collect_rotations(f: BinaryIO, start: int, end: int, out: dict[int, int]) -> None:
    for kind, payload, length, _ in _boxes(f, start, end):
        if kind == b"trak":
            _collect_rotations(f, payload, min(payload + length, end), out)
        elif kind == b"tkhd":
            found = _read_tkhd(f, payload)
            if found is not None:
                out[found[0]] = found[1]
