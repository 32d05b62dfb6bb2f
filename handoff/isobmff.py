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
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

__all__ = ["BoxLayout", "presented_sound_samples", "read_layout", "sniff_isobmff"]

# Box types whose payload is itself a list of boxes, on the paths to tkhd, hdlr, mdhd,
# elst and esds.
_CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl", b"edts"}
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
    max_bit_rate_by_track: dict[int, int]
    """maxBitrate of the track's MPEG-4 decoder config (esds), keyed by track ID.

    FFmpeg's muxer writes max(encoder target, average) there, so for its AAC this is
    the rate the encoder was set to, whatever the content let it spend."""
    truncated_box: str | None
    """The type of a top-level box whose declared size runs past the end of the file."""
    sample_entry_by_track: dict[int, str] = field(default_factory=dict)
    """The four-character code of the track's first sample description (``avc1``,
    ``mp4a``, ``apch``): what names the codec, even one FFmpeg does not know."""
    presented_sound_by_track: dict[int, Fraction] = field(default_factory=dict)
    """How much of each sound track the file presents, in the track's own time units
    (its sample rate, for the files handoff writes): see :func:`presented_sound_samples`."""


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
        tracks: list[_Track] = []
        movie_scale: int | None = None
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
                for kind2, payload2, length2, _ in _boxes(f, payload, min(payload + length, size)):
                    if kind2 == b"mvhd":
                        movie_scale = _movie_timescale(_full_box(f, payload2, length2))
                    elif kind2 == b"trak":
                        tracks.append(_read_trak(f, payload2, min(payload2 + length2, size)))
    by_id = {t.track_id: t for t in tracks if t.track_id is not None}
    presented: dict[int, Fraction] = {}
    for track_id, t in by_id.items():
        amount = t.presented(movie_scale)
        if t.handler == b"soun" and amount is not None:
            presented[track_id] = amount
    return BoxLayout(
        top_level=tuple(top),
        has_moov=has_moov,
        faststart=faststart,
        rotation_by_track={i: t.rotation for i, t in by_id.items()},
        max_bit_rate_by_track={i: t.max_rate for i, t in by_id.items() if t.max_rate},
        truncated_box=truncated,
        sample_entry_by_track={i: t.entry for i, t in by_id.items() if t.entry is not None},
        presented_sound_by_track=presented,
    )


def _movie_timescale(mvhd: bytes) -> int | None:
    at = 20 if mvhd[:1] == b"\x01" else 12  # version 1: 64-bit creation/modification times
    if len(mvhd) < at + 4:
        return None
    (scale,) = struct.unpack_from(">I", mvhd, at)
    return int(scale) or None


@dataclass(slots=True)
class _Track:
    """What one ``trak`` says, as far as handoff asks."""

    track_id: int | None = None
    rotation: int = 0
    max_rate: int | None = None
    entry: str | None = None
    handler: bytes | None = None
    media_scale: int | None = None
    media_duration: int | None = None
    edits: list[int] | None = None
    """Durations (movie timescale) of the edit list's non-empty segments."""

    def presented(self, movie_scale: int | None) -> Fraction | None:
        """The edit list's non-empty segments (ISO 14496-12 8.6.6, durations in the
        movie timescale of ``mvhd``) brought to the track's ``mdhd`` timescale; without
        an edit list, the ``mdhd`` duration. Exact: a Fraction when the two timescales
        do not divide."""
        if not self.media_scale:
            return None
        if self.edits is None:
            return None if self.media_duration is None else Fraction(self.media_duration)
        if not movie_scale:
            return None
        return Fraction(sum(self.edits) * self.media_scale, movie_scale)


def _read_trak(f: BinaryIO, start: int, end: int) -> _Track:
    track = _Track()
    stack = [(b"trak", start, end)]
    while stack:
        parent, lo, hi = stack.pop()
        for kind, payload, length, _ in _boxes(f, lo, hi):
            box_end = min(payload + length, hi)
            if kind in _CONTAINERS:
                stack.append((kind, payload, box_end))
            elif kind == b"tkhd":
                found = _read_tkhd(f, payload)
                if found is not None:
                    track.track_id, track.rotation = found
            elif kind == b"hdlr" and parent == b"mdia":
                # The media's handler; QuickTime also puts a data handler ('alis',
                # 'url ') in minf (QTFF, "Handler reference atoms").
                data = _full_box(f, payload, length)
                track.handler = data[8:12] if len(data) >= 12 else None
            elif kind == b"mdhd":
                data = _full_box(f, payload, length)
                if data[:1] == b"\x01" and len(data) >= 32:
                    track.media_scale, track.media_duration = struct.unpack_from(">IQ", data, 20)
                elif len(data) >= 20:
                    track.media_scale, track.media_duration = struct.unpack_from(">II", data, 12)
            elif kind == b"elst":
                track.edits = _shown_edits(_full_box(f, payload, length, 1 << 16))
            elif kind == b"stsd":
                f.seek(payload)
                stsd = f.read(min(length, 4096))
                track.max_rate = _esds_max_bit_rate(stsd)
                # version/flags (4), entry_count (4), then the first entry's size and
                # type (ISO 14496-12 8.5.2): the type is the codec's four-character code.
                if len(stsd) >= 16:
                    track.entry = stsd[12:16].decode("latin-1")
    return track


def _shown_edits(elst: bytes) -> list[int] | None:
    """Durations of an edit list's entries that show media (ISO 14496-12 8.6.6)."""
    if len(elst) < 8:
        return None
    version = elst[0]
    (count,) = struct.unpack_from(">I", elst, 4)
    step = 20 if version == 1 else 12
    shown: list[int] = []
    for i in range(count):
        at = 8 + i * step
        if at + step > len(elst):
            break
        if version == 1:
            duration, media_time = struct.unpack_from(">Qq", elst, at)
        else:
            duration, media_time = struct.unpack_from(">Ii", elst, at)
        if media_time != -1:  # -1: an empty edit, time with nothing shown
            shown.append(duration)
    return shown


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, payload offset, payload length) of an MPEG-4 descriptor (ISO 14496-1 8.3.3)."""
    if pos >= len(data):
        return None
    tag = data[pos]
    pos += 1
    length = 0
    for _ in range(4):  # the size is 1-4 bytes, 7 bits each, high bit = more follows
        if pos >= len(data):
            return None
        b = data[pos]
        pos += 1
        length = (length << 7) | (b & 0x7F)
        if not b & 0x80:
            break
    return tag, pos, length


def _esds_max_bit_rate(stsd: bytes) -> int | None:
    """maxBitrate from the first esds inside a sample description, if any."""
    at = stsd.find(b"esds")
    if at < 4:
        return None
    pos = at + 4 + 4  # box type, then version and flags of the full box
    es = _descriptor(stsd, pos)
    if es is None or es[0] != 0x03:  # ES_Descriptor
        return None
    pos = es[1] + 2  # ES_ID
    if pos >= len(stsd):
        return None
    flags = stsd[pos]
    pos += 1
    if flags & 0x80:  # streamDependenceFlag
        pos += 2
    if flags & 0x40 and pos < len(stsd):  # URL_Flag
        pos += 1 + stsd[pos]
    if flags & 0x20:  # OCRstreamFlag
        pos += 2
    dc = _descriptor(stsd, pos)
    if dc is None or dc[0] != 0x04 or dc[1] + 13 > len(stsd):  # DecoderConfigDescriptor
        return None
    # objectTypeIndication(1) streamType(1) bufferSizeDB(3) maxBitrate(4) avgBitrate(4)
    (max_rate,) = struct.unpack_from(">I", stsd, dc[1] + 5)
    return int(max_rate) or None


def _full_box(f: BinaryIO, payload: int, length: int, limit: int = 4096) -> bytes:
    f.seek(payload)
    return f.read(min(length, limit))


def presented_sound_samples(path: Path) -> Fraction | None:
    """How much sound an MP4/MOV presents, in its first sound track's own time units
    (its sample rate, for the files handoff writes): what its edit list shows, or its
    ``mdhd`` duration without one. None when the file is not MP4/MOV or has no sound
    track."""
    layout = read_layout(path)
    if layout is None or not layout.presented_sound_by_track:
        return None
    return next(iter(layout.presented_sound_by_track.values()))
