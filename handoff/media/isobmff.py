"""A small reader for the box (atom) structure of MP4 and QuickTime files.

FFmpeg answers most questions about a file, but three that matter here it does not
expose through PyAV: whether the index (``moov``) precedes the media data
(``faststart``: players and review tools can start before the download ends),
whether an MP4 has an index at all (an interrupted write leaves ``ftyp`` + ``mdat``
and no ``moov``), and each track's display matrix (phones record rotated video).
Reading the box headers answers all three without touching the media data.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from handoff.media.arrays import Int64Array

__all__ = [
    "BoxLayout",
    "Edit",
    "Movie",
    "SampleTables",
    "TimecodeTrack",
    "TrackSamples",
    "presented_sound_samples",
    "read_layout",
    "read_movie",
    "read_sample_tables",
    "sniff_isobmff",
]

# Box types whose payload is itself a list of boxes, on the paths to tkhd, hdlr, mdhd,
# elst and esds.
_CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl", b"edts"}
# The brands of an ISO BMFF file start with ftyp; older QuickTime files may start
# with one of these instead (QTFF, "Overview of QTFF" chapter).
_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


@dataclass(frozen=True, slots=True)
class BoxLayout:
    """What the top-level box structure says about a file."""

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
    timecode: TimecodeTrack | None = None
    """The first QuickTime timecode (``tmcd``) track, if the file has one."""


# Flags of a timecode sample description (QuickTime File Format, "Timecode sample
# description"): labels skip frame numbers (drop-frame), wrap at 24 hours, may be
# negative; or the track counts something other than time (a counter).
TMCD_DROP_FRAME = 0x1
TMCD_24_HOUR_MAX = 0x2
TMCD_NEGATIVE_OK = 0x4
TMCD_COUNTER = 0x8


@dataclass(frozen=True, slots=True)
class TimecodeTrack:
    """A QuickTime timecode track: its sample description and its first sample.

    The sample description (QuickTime File Format, "Timecode sample description") follows
    the common sample entry header (size, type, 6 reserved bytes, data reference index):
    a reserved 32-bit word, 32-bit flags, the time scale, the frame duration in that
    scale, the number of frames a second the labels count (8 bits) and a reserved byte.
    Each sample (QTFF, "Timecode media") is a big-endian 32-bit frame number: the first
    names the first frame of the movie."""

    track_id: int | None
    flags: int
    time_scale: int
    frame_duration: int
    frames_per_second: int
    first_offset: int | None
    """File offset of the first sample (the first chunk's)."""
    first_frame: int | None = None
    """The first sample's frame number; None when it cannot be read (see ``problem``)."""
    problem: str | None = None
    """Why the first sample could not be read (outside the file, no chunk offset)."""

    @property
    def drop_frame(self) -> bool:
        return bool(self.flags & TMCD_DROP_FRAME)

    @property
    def rate(self) -> Fraction | None:
        """Frames a second the track counts, exact (time scale over frame duration)."""
        if not self.time_scale or not self.frame_duration:
            return None
        return Fraction(self.time_scale, self.frame_duration)


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
    movie = read_movie(path)
    return None if movie is None else movie.layout


@dataclass(frozen=True, slots=True)
class Movie:
    """An MP4/MOV file's box layout and its sample tables, read in one pass."""

    layout: BoxLayout
    tables: SampleTables | str
    """The sample tables, or why they cannot be used (see :func:`read_sample_tables`)."""


def read_movie(path: Path) -> Movie | None:
    """Walk an MP4/MOV file's top-level boxes once and read its index (``moov``) once,
    for both the layout and the sample tables; None when the file is not one."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if not sniff_isobmff(f.read(8)):
            return None
        faststart = False
        seen_mdat = False
        truncated: str | None = None
        why_no_tables: str | None = None
        moov: tuple[int, int] | None = None
        media: list[tuple[int, int]] = []
        for kind, payload, length, box_end in _boxes(f, 0, size):
            name = kind.decode("latin-1")
            if box_end > size and truncated is None:
                truncated = name
            if kind in (b"moof", b"mfra") and why_no_tables is None:
                why_no_tables = "a fragmented MP4 (its samples are indexed in 'moof' boxes)"
            if kind == b"mdat":
                seen_mdat = True
                media.append((payload, box_end))
                continue
            if box_end > size and why_no_tables is None:
                why_no_tables = f"the '{name}' box runs past the end of the file"
            if kind == b"moov" and moov is None:
                faststart = not seen_mdat
                moov = (payload, min(payload + length, size))
        index = b""
        if moov is not None:
            f.seek(moov[0])
            index = f.read(moov[1] - moov[0])
    # The whole index in memory: its many small boxes are then read without a system
    # call each (offsets below are within the moov payload).
    with io.BytesIO(index) as m:
        layout = _layout(m, len(index), moov is not None, faststart, truncated)
        if why_no_tables is None:
            why_no_tables = "no 'moov' box" if moov is None else None
        tables = why_no_tables or _sample_tables(m, len(index), tuple(media), size)
    tc = layout.timecode
    if tc is not None and tc.problem is None:
        with path.open("rb") as f:
            layout = replace(layout, timecode=_read_timecode_sample(f, size, tc))
    return Movie(layout, tables)


def _layout(
    m: BinaryIO, end: int, has_moov: bool, faststart: bool, truncated: str | None
) -> BoxLayout:
    tracks: list[_Track] = []
    movie_scale: int | None = None
    for kind, payload, length, _ in _boxes(m, 0, end):
        if kind == b"mvhd":
            movie_scale = _movie_timescale(_full_box(m, payload, length))
        elif kind == b"trak":
            tracks.append(_read_trak(m, payload, min(payload + length, end)))
    by_id = {t.track_id: t for t in tracks if t.track_id is not None}
    presented: dict[int, Fraction] = {}
    for track_id, t in by_id.items():
        amount = t.presented(movie_scale)
        if t.handler == b"soun" and amount is not None:
            presented[track_id] = amount
    timecode = next((t for t in tracks if t.tmcd is not None), None)
    return BoxLayout(
        has_moov=has_moov,
        faststart=faststart,
        rotation_by_track={i: t.rotation for i, t in by_id.items()},
        max_bit_rate_by_track={i: t.max_rate for i, t in by_id.items() if t.max_rate},
        truncated_box=truncated,
        sample_entry_by_track={i: t.entry for i, t in by_id.items() if t.entry is not None},
        presented_sound_by_track=presented,
        timecode=None if timecode is None else _timecode_track(timecode),
    )


def _timecode_track(t: _Track) -> TimecodeTrack:
    """The track's sample description; its first sample is read from the file later."""
    assert t.tmcd is not None
    flags, scale, duration, count = t.tmcd
    problem = None if t.first_chunk is not None else "the timecode track lists no chunk"
    return TimecodeTrack(t.track_id, flags, scale, duration, count, t.first_chunk, None, problem)


def _read_timecode_sample(f: BinaryIO, size: int, tc: TimecodeTrack) -> TimecodeTrack:
    """``tc`` with its first sample, read from the file."""
    at = tc.first_offset
    if at is None:
        return tc
    if at + 4 > size:
        return replace(
            tc,
            problem=f"its first sample lies at byte {at}, past the end of the file ({size} bytes)",
        )
    f.seek(at)
    (frame,) = struct.unpack(">I", f.read(4))
    return replace(tc, first_frame=int(frame))


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
    tmcd: tuple[int, int, int, int] | None = None
    """A timecode track's (flags, time scale, frame duration, frames a second)."""
    first_chunk: int | None = None
    """File offset of the track's first chunk (``stco``/``co64``)."""

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
                if track.entry == "tmcd" and len(stsd) >= 8 + 34:
                    # The entry starts at 8; its fields after the 16-byte sample entry
                    # header (see TimecodeTrack).
                    flags, scale, duration, count = struct.unpack_from(">IIIB", stsd, 8 + 20)
                    track.tmcd = (flags, scale, duration, count)
            elif kind in (b"stco", b"co64"):
                data = _full_box(f, payload, length, 16)
                wide = kind == b"co64"
                if len(data) >= (16 if wide else 12) and struct.unpack_from(">I", data, 4)[0]:
                    (track.first_chunk,) = struct.unpack_from(">Q" if wide else ">I", data, 8)
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


# --- Sample tables --------------------------------------------------------------------
#
# The index of an MP4/MOV lists every sample of every track in the sample table box
# (ISO 14496-12 8.5-8.7): decode-time deltas (stts), composition offsets (ctts), sync
# samples (stss), sizes (stsz), chunk offsets (stco/co64) and which samples each chunk
# holds (stsc). Read as arrays, they give every timestamp and keyframe flag without
# turning each sample into an object.


@dataclass(frozen=True, slots=True)
class Edit:
    """One edit list entry (ISO 14496-12 8.6.6)."""

    duration: int
    """In the movie timescale (``mvhd``)."""
    media_time: int
    """Where in the media the edit starts, in the track's timescale; -1 for an empty edit."""
    rate: Fraction


@dataclass(frozen=True, slots=True)
class TrackSamples:
    """One track's sample tables, one array entry per sample, in decode order."""

    track_id: int
    media_scale: int
    """Ticks per second of the track's times (``mdhd``)."""
    decode_times: Int64Array
    """From 0, the running sum of the ``stts`` deltas."""
    durations: Int64Array
    """The ``stts`` delta of each sample."""
    composition_offsets: Int64Array | None
    """``ctts`` per sample (signed, as FFmpeg reads both versions); None without one."""
    sync: npt.NDArray[np.bool_] | None
    """Sync samples from ``stss``; None without one (every sample is a sync sample)."""
    offsets: Int64Array
    """File offset of each sample."""
    sizes: Int64Array
    constant_size: bool
    """``stsz`` states one size for all samples (PCM sound): FFmpeg then reads whole
    chunks as packets, not samples."""
    edits: tuple[Edit, ...] | None
    """The edit list; None without one."""
    other_boxes: frozenset[str]
    """The other boxes of the sample table (``stps``, ``sbgp``, ``sdtp``, ...)."""


@dataclass(frozen=True, slots=True)
class SampleTables:
    """Every track's sample tables, and where the file keeps its media data."""

    movie_scale: int
    tracks: dict[int, TrackSamples]
    """By track ID, the tracks whose tables could be read."""
    unreadable: dict[int, str]
    """By track ID, why a track's tables could not be read as arrays."""
    media_data: tuple[tuple[int, int], ...]
    """(start, end) of each ``mdat`` payload, as declared (the end may pass the file's)."""
    file_size: int

    def holds_every_sample(self, track: TrackSamples) -> bool:
        """Whether every sample the tables promise lies inside an ``mdat`` payload that
        the file holds in full: a file cut short fails this, whatever its index says."""
        if not track.sizes.size:
            return True
        spans = sorted((s, min(e, self.file_size)) for s, e in self.media_data)
        if not spans:
            return False
        starts = np.array([s for s, _ in spans], dtype=np.int64)
        ends = np.array([e for _, e in spans], dtype=np.int64)
        at = np.searchsorted(starts, track.offsets, side="right") - 1
        if (at < 0).any():
            return False
        return bool((track.offsets + track.sizes <= ends[at]).all())


class _UnreadableError(Exception):
    """A sample table this reader does not take as arrays (the caller falls back)."""


def read_sample_tables(path: Path) -> SampleTables | str:
    """Read the sample tables of an unfragmented MP4/MOV, or say why they cannot be
    used (not MP4/MOV, no index, a fragmented file, a box cut short)."""
    movie = read_movie(path)
    return "not an MP4/MOV file" if movie is None else movie.tables


def _sample_tables(
    m: BinaryIO, end: int, media: tuple[tuple[int, int], ...], size: int
) -> SampleTables | str:
    movie_scale: int | None = None
    tracks: dict[int, TrackSamples] = {}
    unreadable: dict[int, str] = {}
    for kind, payload, length, _ in _boxes(m, 0, end):
        if kind == b"mvex":
            return "a fragmented MP4 (it has an 'mvex' box)"
        if kind == b"mvhd":
            movie_scale = _movie_timescale(_full_box(m, payload, length))
        elif kind == b"trak":
            track_id, found = _read_trak_samples(m, payload, payload + length, size)
            if track_id is None:
                return "a track without a track ID"
            if isinstance(found, str):
                unreadable[track_id] = found
            else:
                tracks[track_id] = found
    if not movie_scale:
        return "no movie timescale ('mvhd')"
    return SampleTables(movie_scale, tracks, unreadable, media, size)


def _read_trak_samples(
    f: BinaryIO, start: int, end: int, file_size: int
) -> tuple[int | None, TrackSamples | str]:
    track_id: int | None = None
    scale: int | None = None
    elst: bytes | None = None
    boxes: dict[bytes, bytes] = {}
    stack = [(start, end)]
    while stack:
        lo, hi = stack.pop()
        for kind, payload, length, _ in _boxes(f, lo, hi):
            if kind in _CONTAINERS:
                stack.append((payload, payload + length))
            elif kind == b"tkhd":
                found = _read_tkhd(f, payload)
                track_id = found[0] if found is not None else None
            elif kind == b"mdhd":
                data = _full_box(f, payload, length)
                at = 20 if data[:1] == b"\x01" else 12
                if len(data) >= at + 4:
                    (scale,) = struct.unpack_from(">I", data, at)
            elif kind == b"elst":
                f.seek(payload)
                elst = f.read(length)
            elif kind in _TABLES or kind in (b"stz2", b"stps", b"sbgp", b"sgpd", b"sdtp", b"stsd"):
                if kind in _TABLES:
                    f.seek(payload)
                    boxes[kind] = f.read(length)
                else:
                    boxes[kind] = b""
    try:
        edits = None if elst is None else _edit_list(elst)
        return track_id, _track_samples(track_id or 0, scale, edits, boxes, file_size)
    except _UnreadableError as why:
        return track_id, str(why)


_TABLES = {b"stts", b"ctts", b"stss", b"stsz", b"stco", b"co64", b"stsc"}


def _edit_list(elst: bytes) -> tuple[Edit, ...]:
    if len(elst) < 8:
        raise _UnreadableError("an edit list cut short")
    version = elst[0]
    (count,) = struct.unpack_from(">I", elst, 4)
    step = 20 if version == 1 else 12
    if 8 + count * step > len(elst):
        raise _UnreadableError("an edit list shorter than its entry count")
    edits = []
    for i in range(count):
        at = 8 + i * step
        fmt = ">Qqhh" if version == 1 else ">Iihh"
        duration, media_time, whole, part = struct.unpack_from(fmt, elst, at)
        edits.append(Edit(duration, media_time, whole + Fraction(part, 65536)))
    return tuple(edits)


def _table(data: bytes, width: int, dtype: str, header: int = 8) -> npt.NDArray[np.int64]:
    """The entries of a full box whose entry count sits just before them."""
    if len(data) < header:
        raise _UnreadableError("a sample table cut short")
    (count,) = struct.unpack_from(">I", data, header - 4)
    need = header + count * width * np.dtype(dtype).itemsize
    if need > len(data):
        raise _UnreadableError("a sample table shorter than its entry count")
    raw = np.frombuffer(data, dtype=dtype, count=count * width, offset=header)
    return raw.astype(np.int64).reshape(count, width) if width > 1 else raw.astype(np.int64)


def _starts(lengths: Int64Array) -> Int64Array:
    """Where each of consecutive runs of these lengths starts, from 0 (int64)."""
    out = np.zeros(lengths.size, np.int64)
    if lengths.size > 1:
        np.cumsum(lengths[:-1], out=out[1:])
    return out


def _track_samples(
    track_id: int,
    scale: int | None,
    edits: tuple[Edit, ...] | None,
    boxes: dict[bytes, bytes],
    file_size: int,
) -> TrackSamples:
    if not scale:
        raise _UnreadableError("no media timescale ('mdhd')")
    for needed in (b"stts", b"stsz", b"stsc"):
        if needed not in boxes:
            raise _UnreadableError(f"no '{needed.decode()}' table")
    if b"stz2" in boxes:
        raise _UnreadableError("compact sample sizes ('stz2')")
    stts = _table(boxes[b"stts"], 2, ">u4")
    count = int(stts[:, 0].sum())
    stsz = boxes[b"stsz"]
    if len(stsz) < 12:
        raise _UnreadableError("a sample size table cut short")
    constant, stated = struct.unpack_from(">II", stsz, 4)
    # Counts are checked before any array of that length is made: a damaged index can
    # claim billions of samples.
    if stated != count:
        raise _UnreadableError("'stsz' and 'stts' count different samples")
    if constant and count > file_size:
        raise _UnreadableError("more samples than the file has bytes")
    durations = np.repeat(stts[:, 1], stts[:, 0])
    sizes = np.full(count, constant, np.int64) if constant else _table(stsz, 1, ">u4", 12)
    if b"co64" in boxes:
        chunks = _table(boxes[b"co64"], 1, ">u8")
    elif b"stco" in boxes:
        chunks = _table(boxes[b"stco"], 1, ">u4")
    else:
        raise _UnreadableError("no chunk offsets ('stco'/'co64')")
    stsc = _table(boxes[b"stsc"], 3, ">u4")
    first = stsc[:, 0]
    if not stsc.size or first[0] != 1 or (np.diff(first) <= 0).any() or first[-1] > chunks.size:
        raise _UnreadableError("an unusual sample-to-chunk table")
    if (stsc[:, 2] != 1).any():
        raise _UnreadableError("more than one sample description")
    runs = np.diff(np.append(first, chunks.size + 1))
    per_chunk = np.repeat(stsc[:, 1], runs)
    if int(per_chunk.sum()) != count:
        raise _UnreadableError("the chunks hold a different number of samples than 'stts' lists")
    # A PCM track lists every sample (5.3 million in 2 minutes at 44.1 kHz): the arrays
    # below are made without temporaries of their length where one can be avoided.
    before = _starts(sizes)
    chunk_first = _starts(per_chunk)
    chunk_of = np.repeat(np.arange(chunks.size), per_chunk)
    # (A chunk of no samples starts at ``count``; no sample looks its start up.)
    chunk_start = before[np.minimum(chunk_first, count - 1)] if count else 0
    offsets = (chunks - chunk_start)[chunk_of]
    del chunk_of
    offsets += before
    del before
    decode = _starts(durations)
    offsets_c: Int64Array | None = None
    if b"ctts" in boxes:
        ctts = boxes[b"ctts"]
        # FFmpeg reads both versions' offsets as signed 32-bit (libavformat/mov.c).
        pairs = _table(ctts, 2, ">i4")
        counts = pairs[:, 0] & 0xFFFFFFFF  # the count is unsigned
        if int(counts.sum()) != count:
            raise _UnreadableError("'ctts' lists a different number of samples")
        offsets_c = np.repeat(pairs[:, 1], counts)
    sync: npt.NDArray[np.bool_] | None = None
    if b"stss" in boxes:
        numbers = _table(boxes[b"stss"], 1, ">u4")
        if not numbers.size or numbers.min() < 1 or numbers.max() > count:
            raise _UnreadableError("an unusual sync sample table")
        sync = np.zeros(count, np.bool_)
        sync[numbers - 1] = True
    others = frozenset(k.decode("latin-1") for k in boxes if k not in _TABLES)
    return TrackSamples(
        track_id=track_id,
        media_scale=scale,
        decode_times=decode,
        durations=durations,
        composition_offsets=offsets_c,
        sync=sync,
        offsets=offsets,
        sizes=sizes,
        constant_size=bool(constant),
        edits=edits,
        other_boxes=others,
    )
