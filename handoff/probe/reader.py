"""What a media file is: container, streams, frame timing, keyframes -- without decoding.

One pass over the packets (demux only) gives every timestamp and keyframe flag; the
only payload read is that of H.264 keyframes, to check their NAL unit type. Durations
come from the packets actually present, not from the header, because a truncated file
keeps a header that promises the whole programme (see the ``broken/`` corpus).

For a complete MP4/MOV the same timestamps and flags are read from its sample tables
instead, as arrays (a Python object per packet made an hour of 1080p slower to probe
than MediaInfo's full parse): only when every sample they list lies in the file, and
the tables are of a shape whose packets FFmpeg presents exactly as listed. Anything
else is scanned packet by packet, as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error
import numpy as np

from handoff.errors import (
    NoStreamsError,
    UsageError,
)
from handoff.files.find import check_readable
from handoff.media import h264
from handoff.media.arrays import Int64Array
from handoff.media.audio import open_media
from handoff.media.isobmff import (
    TMCD_COUNTER,
    BoxLayout,
    SampleTables,
    TimecodeTrack,
    TrackSamples,
    read_movie,
    sniff_isobmff,
)
from handoff.media.riff import WavLayout, read_wav_layout
from handoff.probe.timing import FrameRateMode, analyse_frame_times, keyframe_spacing

__all__ = [
    "AudioInfo",
    "MediaInfo",
    "OtherStream",
    "SourceTimecode",
    "VideoInfo",
    "bext_timecode",
    "channels_text",
    "color_codes",
    "display_aspect_ratio",
    "fraction_str",
    "probe",
    "rate_list",
    "rate_text",
    "ratio_str",
    "short_rate",
    "timecode_json",
    "timecode_text",
]

log = logging.getLogger(__name__)

# FFmpeg's AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace / AVColorRange
# values (libavutil/pixfmt.h, the ITU-T H.273 code points), named as ffprobe names them.
_PRIMARIES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}  # fmt: skip
_TRANSFER = {
    1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    11: "iec61966-2-4", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
    16: "smpte2084", 18: "arib-std-b67",
}  # fmt: skip
_MATRIX = {
    0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "ycgco", 9: "bt2020nc", 10: "bt2020c",
}  # fmt: skip
_RANGE = {1: "tv", 2: "pc"}


def color_codes(
    primaries: str, transfer: str, matrix: str, color_range: str
) -> tuple[int, int, int, int]:
    """The H.273 code points of colour tags named as above, for an encoder's context
    (2, "unspecified", for a name not known; range 0, unspecified)."""

    def code(table: dict[int, str], name: str, unknown: int) -> int:
        return next((k for k, v in table.items() if v == name), unknown)

    return (
        code(_PRIMARIES, primaries, 2),
        code(_TRANSFER, transfer, 2),
        code(_MATRIX, matrix, 2),
        code(_RANGE, color_range, 0),
    )


def display_aspect_ratio(width: int, height: int, sample_aspect_ratio: Fraction) -> Fraction:
    """The shape the picture is shown in: width x SAR / height, exact (a 1440x1080
    picture of 4:3 pixels shows 16:9)."""
    return Fraction(width) * sample_aspect_ratio / height


def ratio_str(f: Fraction) -> str:
    """``4:3``: a ratio as FFmpeg and MediaInfo print it."""
    return f"{f.numerator}:{f.denominator}"


# Bits per sample of PCM codecs, read from the codec name (pcm_s24le -> 24).
_PCM_FLOAT = {"pcm_f32le": 32, "pcm_f32be": 32, "pcm_f64le": 64, "pcm_f64be": 64}

# Header duration this much longer than the packets present means the data was cut off.
_TRUNCATION_SLACK_S = Fraction(1, 2)


@dataclass(frozen=True, slots=True)
class VideoInfo:
    index: int
    codec: str
    """FFmpeg's codec name; ``unknown`` for a codec FFmpeg cannot identify (no decoder,
    and the size, pixel format and colour are then missing too)."""
    profile: str | None
    width: int | None
    height: int | None
    sample_aspect_ratio: Fraction
    """Width over height of one pixel (SAR), as the container states it, else the
    bitstream (FFmpeg's guess, as ffprobe reports it); 1 when neither says, which
    players show as square."""
    display_aspect_ratio: Fraction | None
    """Width over height of the picture as shown: width x SAR / height, exact; None
    without a frame size. Of the stored picture, before any display rotation."""
    pix_fmt: str | None
    bit_depth: int | None
    chroma_subsampling: str | None
    color_primaries: str | None
    color_transfer: str | None
    color_matrix: str | None
    color_range: str | None
    rotation: int
    fps: Fraction
    frame_rate_mode: FrameRateMode
    min_frame_interval: Fraction
    median_frame_interval: Fraction
    max_frame_interval: Fraction
    """Seconds between successive frames, exact (timestamps x time base); zero for a
    single frame."""
    irregular_intervals: int
    frames: int
    start: Fraction
    """Presentation time of the first frame, seconds, exact (its pts x the time base)."""
    duration: Fraction
    """From the first frame's start to the last frame's end, seconds, exact."""
    keyframes: int
    max_keyframe_interval: Fraction
    mean_keyframe_interval: Fraction
    """Seconds, exact; the last GOP runs to the end of the stream."""
    all_keyframes_idr: bool | None
    """None when the codec has no IDR concept (anything but H.264)."""
    intra_only: bool
    field_order: str | None
    """``progressive``, or the interlaced field order as FFmpeg names it (``tt``, ``bb``,
    ``tb``, ``bt``); None when the stream does not say."""
    bit_rate: int | None
    time_base: Fraction

    # Float seconds, for display and for the validator's rules (spec facts are floats);
    # plans use the exact values above.
    @property
    def start_s(self) -> float:
        return float(self.start)

    @property
    def duration_s(self) -> float:
        return float(self.duration)

    @property
    def min_frame_interval_s(self) -> float:
        return float(self.min_frame_interval)

    @property
    def median_frame_interval_s(self) -> float:
        return float(self.median_frame_interval)

    @property
    def max_frame_interval_s(self) -> float:
        return float(self.max_frame_interval)

    @property
    def max_keyframe_interval_s(self) -> float:
        return float(self.max_keyframe_interval)

    @property
    def mean_keyframe_interval_s(self) -> float:
        return float(self.mean_keyframe_interval)


@dataclass(frozen=True, slots=True)
class AudioInfo:
    index: int
    codec: str
    """FFmpeg's codec name; ``unknown`` for a codec FFmpeg cannot identify (its rate,
    channels and layout are then missing)."""
    profile: str | None
    sample_rate: int | None
    channels: int | None
    layout: str | None
    bit_rate: int | None
    bit_depth: int | None
    sample_format: str | None
    start: Fraction
    """Time of the first sample heard, seconds, exact: the first packet's pts x the time
    base, plus the priming the edit list hides (skip samples / sample rate)."""
    duration: Fraction
    """From ``start`` to the end of the last packet, seconds, exact."""
    priming_samples: int
    """Samples the container's edit list hides at the start (AAC encoder delay)."""
    declared_max_bit_rate: int | None = None
    """MP4/MOV: maxBitrate of the stream's esds (FFmpeg: the encoder's target rate)."""
    presented_samples: Fraction | None = None
    """MP4/MOV: how many samples the container presents -- its edit list (or, without
    one, the track's duration) in the track's time units, exact. None elsewhere."""

    @property
    def start_s(self) -> float:
        """``start`` as a float, for display and the validator's rules."""
        return float(self.start)

    @property
    def duration_s(self) -> float:
        """``duration`` as a float, for display and the validator's rules."""
        return float(self.duration)


@dataclass(frozen=True, slots=True)
class OtherStream:
    """A stream that is neither picture nor sound (or one with no packets): a timecode
    or other data track, subtitles, an attached picture."""

    index: int
    type: str
    """FFmpeg's media type: ``data``, ``subtitle``, ``attachment``, or ``video``/``audio``
    for a stream with no packets."""
    codec: str
    """FFmpeg's codec name, or the MP4/MOV sample entry (``tmcd``), or ``unknown``."""

    def describe(self) -> str:
        return f"{self.type} #{self.index} ({self.codec})"


@dataclass(frozen=True, slots=True)
class SourceTimecode:
    """The timecode of a file's first frame (picture) or first sample (a BWF WAV)."""

    label: str
    """As people read it: ``01:00:00:00``, drop-frame ``00:59:59;28``."""
    start: Fraction
    """Seconds since midnight the label stands for, exact: the frame count times the
    frame duration of the picture rate (``tmcd``), or ``time_reference`` samples over the
    sample rate (BWF ``bext``)."""
    origin: Literal["tmcd", "metadata", "bext"]
    """Where it was read: an MP4/MOV timecode track's first sample, a ``timecode`` tag
    only (no track), or a WAV's Broadcast Extension chunk."""
    frame: int | None = None
    """The frame count the label names at :attr:`rate` (None for ``bext``, which counts
    samples)."""
    rate: Fraction | None = None
    """The picture rate the timecode counts frames of (None for ``bext``)."""
    drop_frame: bool = False
    samples: int | None = None
    """``bext`` only: ``time_reference``, samples since midnight."""


@dataclass(frozen=True, slots=True)
class MediaInfo:
    path: Path
    container: str
    format_name: str
    size_bytes: int
    duration: Fraction
    """Seconds, exact: from the earliest stream start (or 0, if a stream starts before
    it) to the latest stream end, as the packets present say (not the header)."""
    header_duration: Fraction | None
    """What the header claims (FFmpeg's container duration, in microseconds), seconds."""
    bit_rate: int | None
    videos: tuple[VideoInfo, ...]
    audios: tuple[AudioInfo, ...]
    faststart: bool | None
    """MP4/MOV only: the index comes before the media data. None for other containers."""
    warnings: tuple[str, ...] = field(default=())
    truncated: str | None = None
    """Why the file is incomplete (cut short, or unreadable part-way), or None."""
    others: tuple[OtherStream, ...] = field(default=())
    """Streams that are neither picture nor sound with packets: data, subtitles, ..."""
    read_from: Literal["packets", "sample tables"] = "packets"
    """How the timestamps and keyframes were read: by demuxing every packet, or from an
    MP4/MOV's sample tables (see :func:`probe`)."""
    timecode: SourceTimecode | None = None
    """The timecode of the first frame (or sample), if the file carries one."""

    @property
    def video(self) -> VideoInfo | None:
        return self.videos[0] if self.videos else None

    @property
    def audio(self) -> AudioInfo | None:
        return self.audios[0] if self.audios else None

    @property
    def av_duration_delta(self) -> Fraction | None:
        """Audio minus video duration of the first streams, seconds, exact; None unless
        both exist."""
        if self.video is None or self.audio is None:
            return None
        return self.audio.duration - self.video.duration

    # Float seconds, for display and for the validator's rules.
    @property
    def duration_s(self) -> float:
        return float(self.duration)

    @property
    def header_duration_s(self) -> float | None:
        return None if self.header_duration is None else float(self.header_duration)

    @property
    def av_duration_delta_s(self) -> float | None:
        delta = self.av_duration_delta
        return None if delta is None else float(delta)


def _container_name(fmt: str, path: Path, layout: BoxLayout | None, head: bytes) -> str:
    """A short, stable container name: mp4, mov, matroska, webm, wav, ..."""
    if fmt.startswith("mov,mp4"):
        brand = head[8:12] if len(head) >= 12 and head[4:8] == b"ftyp" else b""
        if brand == b"qt  " or (not brand and layout is not None):
            return "mov"
        if brand in (b"M4A ", b"M4B "):
            return "m4a"
        return "mp4"
    if fmt.startswith("matroska"):
        return "webm" if b"webm" in head[:64] else "matroska"
    return fmt.split(",")[0]


def _bit_depth_from_pix_fmt(pix_fmt: str | None) -> tuple[int | None, str | None]:
    if not pix_fmt:
        return None, None
    try:
        desc = av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        return None, None
    depth = max((c.bits for c in desc.components), default=None)
    if desc.is_rgb:
        return depth, "4:4:4"
    chroma = None
    if len(desc.components) >= 3:
        sub_w, sub_h = _chroma_shift(pix_fmt)
        chroma = {(0, 0): "4:4:4", (1, 0): "4:2:2", (1, 1): "4:2:0", (2, 0): "4:1:1"}.get(
            (sub_w, sub_h)
        )
    return depth, chroma


def _chroma_shift(pix_fmt: str) -> tuple[int, int]:
    # The pixel-format name encodes the subsampling for every format handoff meets.
    for token, shift in (("420", (1, 1)), ("422", (1, 0)), ("444", (0, 0)), ("411", (2, 0))):
        if token in pix_fmt:
            return shift
    if pix_fmt.startswith(("nv12", "nv21", "p010", "p016")):
        return (1, 1)
    if pix_fmt.startswith(("nv16", "p210", "p216", "yuyv", "uyvy")):
        return (1, 0)
    return (0, 0)


def _audio_bit_depth(codec: str, sample_format: str | None) -> int | None:
    if codec in _PCM_FLOAT:
        return _PCM_FLOAT[codec]
    if codec.startswith("pcm_"):
        digits = "".join(ch for ch in codec.split("_")[1] if ch.isdigit())
        return int(digits) if digits else None
    if codec in ("flac", "alac") and sample_format:
        return {"s16": 16, "s16p": 16, "s32": 24, "s32p": 24}.get(sample_format)
    return None


class _StreamScan:
    """Per-stream accumulator for one demux pass."""

    __slots__ = (
        "end_ticks",
        "first_any",
        "idr_flags",
        "key_pts",
        "last_duration",
        "length_size",
        "pts",
        "skip_samples",
    )

    def __init__(self, length_size: int | None) -> None:
        self.pts: list[int] = []
        self.key_pts: list[int] = []
        self.idr_flags: list[bool | None] = []
        self.last_duration = 0
        self.end_ticks: int | None = None
        self.length_size = length_size
        self.skip_samples = 0
        self.first_any: int | None = None


def _scan(
    container: av.container.InputContainer, check_idr: set[int]
) -> tuple[dict[int, _StreamScan], str | None]:
    scans: dict[int, _StreamScan] = {}
    for s in container.streams:
        if s.type in ("video", "audio"):
            length_size = None
            if s.index in check_idr:
                extradata = s.codec_context.extradata
                length_size = h264.avcc_length_size(bytes(extradata) if extradata else None)
            scans[s.index] = _StreamScan(length_size)
    wanted = [s for s in container.streams if s.index in scans]
    error: str | None = None
    try:
        for packet in container.demux(wanted):
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                continue
            scan = scans[packet.stream_index]
            if scan.first_any is None:
                # Encoder delay (AAC priming) rides on the very first packet, which the
                # edit list may mark as discarded: its skip count says where sound starts.
                scan.first_any = ts
                if packet.has_sidedata("skip_samples"):
                    raw = bytes(packet.get_sidedata("skip_samples"))
                    scan.skip_samples = int.from_bytes(raw[:4], "little")
            if packet.is_discard:
                continue
            scan.pts.append(ts)
            dur = packet.duration or 0
            end = ts + dur
            if scan.end_ticks is None or end > scan.end_ticks:
                scan.end_ticks = end
                scan.last_duration = dur
            if packet.is_keyframe:
                scan.key_pts.append(ts)
                if packet.stream_index in check_idr:
                    scan.idr_flags.append(h264.packet_is_idr(bytes(packet), scan.length_size))
    except (av.error.FFmpegError, OSError) as exc:
        # A damaged tail: keep what was read and say where reading stopped.
        error = str(exc)
    return scans, error


# Codecs whose MP4/MOV packets FFmpeg passes on exactly as the sample tables list them:
# for others (MP3, MP2, VC-1, AV1, ...) its mov demuxer runs a parser that may split,
# merge or re-flag packets (libavformat/mov.c, mov_finalize_stsd_codec).
_TABLE_VIDEO_CODECS = {"h264", "hevc", "prores"}
_TABLE_AUDIO_CODECS = {"aac", "alac"}


def _table_scans(
    path: Path,
    tables: SampleTables | str,
    container: av.container.InputContainer,
    check_idr: set[int],
) -> dict[int, _StreamScan] | str:
    """The packet scan's facts read from an MP4/MOV's sample tables, or why they cannot
    be (then the packets are scanned). Every sample the tables promise must be in the
    file, so a file cut short is left to the packet scan, which finds where it ends."""
    if isinstance(tables, str):
        return tables
    scans: dict[int, _StreamScan] = {}
    for s in container.streams:
        if s.type not in ("video", "audio"):
            continue
        cc = s.codec_context
        name = cc.name if cc is not None else ""
        known = _TABLE_VIDEO_CODECS if s.type == "video" else _TABLE_AUDIO_CODECS
        if name not in known and not (s.type == "audio" and name.startswith("pcm_")):
            return f"stream #{s.index}: codec {name or 'unknown'} is read through a parser"
        track = tables.tracks.get(s.id)
        if track is None:
            return f"stream #{s.index}: " + tables.unreadable.get(s.id, "no sample table")
        if s.time_base != Fraction(1, track.media_scale):
            return f"stream #{s.index}: a time base other than the track's timescale"
        if not tables.holds_every_sample(track):
            return f"stream #{s.index}: the file does not hold every sample its index lists"
        found = _presented(track, tables.movie_scale, audio=s.type == "audio")
        if isinstance(found, str):
            return f"stream #{s.index}: {found}"
        scan, keys = found
        if s.index in check_idr:
            extradata = cc.extradata if cc is not None else None
            scan.length_size = h264.avcc_length_size(bytes(extradata) if extradata else None)
            scan.idr_flags = _idr_flags(path, track, keys, scan.length_size)
        scans[s.index] = scan
    return scans


def _presented(
    track: TrackSamples, movie_scale: int, *, audio: bool
) -> tuple[_StreamScan, Int64Array] | str:
    """What FFmpeg's mov demuxer presents for a track: the timestamps, keyframe flags and
    durations of the packets it does not mark discarded, for a track with no edit list
    or one edit at normal speed that starts at the track's first keyframe. This follows
    libavformat/mov.c (mov_build_index, mov_fix_index): the samples before the edit's
    media time and after its end are discarded; the first sound sample that straddles
    the start is kept, its hidden part given as skip samples; the index stops at the
    first keyframe (for video with composition offsets, the second) whose end reaches
    the edit's end; timestamps count from the first sample in the edit, and a picture's
    earliest time is moved to 0."""
    if "stps" in track.other_boxes or ("sbgp" in track.other_boxes and not audio):
        return "partial sync samples or sample groups"
    dts = track.decode_times
    n = dts.size
    if not n:
        return "no samples"
    ctts = track.composition_offsets
    if ctts is not None and (audio or (ctts < 0).any()):
        return "negative or sound composition offsets"
    cts = dts + ctts if ctts is not None else dts
    key = track.sync if track.sync is not None else np.ones(n, np.bool_)
    keep = np.ones(n, np.bool_)
    discard = np.zeros(n, np.bool_)
    skip = 0
    pts = cts
    edits = track.edits
    if edits is not None and len(edits) == 0:
        edits = None
    if edits is not None:
        if len(edits) != 1 or edits[0].media_time < 0 or edits[0].rate != 1:
            return "an edit list of an unusual shape"
        start = edits[0].media_time
        # get_edit_list_entry: the edit's duration brought to the track's timescale,
        # rounded to nearest (av_rescale).
        length = (edits[0].duration * track.media_scale + movie_scale // 2) // movie_scale
        if track.constant_size and (start != 0 or length < int(track.durations.sum())):
            return "an edit list that cuts sound FFmpeg reads by chunks"
        # The index is rebuilt from the keyframe at or before the edit's start (for
        # sound, one second before it): handled here only when that is the first sample.
        search = max(start - track.media_scale, int(dts[0])) if audio else start
        if not key[0] or (key[1:] & (dts[1:] <= search)).any():
            return "an edit that starts after the first keyframe"
        step = np.append(np.diff(dts), length)
        end = start + length
        inside = (cts >= start) & (cts < end)
        straddles = (cts < start) & (cts + step > start) if audio else np.zeros(n, np.bool_)
        stop = np.flatnonzero((cts + step >= end) & (key | audio))
        nth = 1 if ctts is not None and not audio else 0
        if stop.size > nth:
            keep[stop[nth] + 1 :] = False
        discard = ~inside & ~straddles
        anchors = np.flatnonzero((inside | straddles) & keep)
        if not anchors.size:
            return "no sample inside the edit"
        first = int(anchors[0])
        if audio:
            if straddles[first + 1 :].any() or (discard[:first] & (cts[:first] >= start)).any():
                return "an unusual sound edit"
            skip = int(step[:first].sum())
            base = int(cts[first]) - start if straddles[first] else 0
            pts = dts - dts[first] + base
        else:
            pts = np.maximum(dts - dts[first], 0) + (ctts if ctts is not None else 0)
            shift = int(pts[inside & keep].min()) if (inside & keep).any() else 0
            if shift > 0:
                pts = pts - shift
        if straddles[first]:
            skip += start - int(cts[first])
    scan = _StreamScan(None)
    scan.first_any = int(pts[0])
    scan.skip_samples = skip
    shown = keep & ~discard
    if not shown.any():
        return "no sample shown"
    shown_pts = pts[shown]
    ends = shown_pts + track.durations[shown]
    last = int(np.argmax(ends))  # the first of the latest ends, as the packet scan keeps
    scan.end_ticks = int(ends[last])
    scan.last_duration = int(track.durations[shown][last])
    if audio:
        # Sound is read for its earliest timestamp and its end alone (_audio_info), and a
        # MOV's PCM track lists every sample (5.3 million in 2 minutes at 44.1 kHz): as
        # Python lists of ints they cost about 0.4 GB, so they are not made.
        scan.pts = [int(shown_pts.min())]
        return scan, np.zeros(0, np.int64)
    scan.pts = shown_pts.tolist()
    scan.key_pts = pts[shown & key].tolist()
    return scan, np.flatnonzero(shown & key)


def _idr_flags(
    path: Path, track: TrackSamples, samples: Int64Array, length_size: int | None
) -> list[bool | None]:
    """Whether each of these samples is an IDR picture, reading only their payloads."""
    flags: list[bool | None] = []
    with path.open("rb") as f:
        for offset, size in zip(
            track.offsets[samples].tolist(), track.sizes[samples].tolist(), strict=True
        ):
            f.seek(offset)
            flags.append(h264.packet_is_idr(f.read(size), length_size))
    return flags


UNKNOWN_CODEC = "unknown"


def _codec_name(cc: av.CodecContext | None) -> str:
    # The codec, not the decoder chosen for it: "mp3", not "mp3float". A stream FFmpeg
    # cannot identify (an MP4 sample entry or Matroska CodecID it does not know) has no
    # codec context at all in PyAV.
    if cc is None:
        return UNKNOWN_CODEC
    codec = cc.codec
    return str(getattr(codec, "canonical_name", None) or codec.name)


def _video_info(stream: av.VideoStream, scan: _StreamScan) -> VideoInfo | None:
    if not scan.pts:
        return None
    tb = stream.time_base or Fraction(1, 90000)
    # None for a codec FFmpeg cannot identify (PyAV's stubs do not say so).
    cc: av.VideoCodecContext | None = stream.codec_context
    hint = stream.average_rate or stream.guessed_rate or None
    timing = analyse_frame_times(
        scan.pts, tb, last_duration=scan.last_duration or None, rate_hint=hint
    )
    end = timing.end
    last = max(scan.pts) * tb
    if stream.duration is not None and stream.start_time is not None:
        # The edit list can cut the last frame short. It never ends the picture before
        # the last frame starts: with B-frames FFmpeg's muxer derives the header
        # duration from decode timestamps, which can end early on a VFR stream.
        header_end = (stream.start_time + stream.duration) * tb
        if last < header_end < end:
            end = header_end
    keys = keyframe_spacing([p * tb for p in scan.key_pts], end)
    pix_fmt = cc.pix_fmt if cc is not None else None
    depth, chroma = _bit_depth_from_pix_fmt(pix_fmt)
    idr: bool | None = None
    if scan.idr_flags:
        known = [f for f in scan.idr_flags if f is not None]
        idr = all(known) if known else None
    codec_desc = av.Codec(cc.name, "r") if cc is not None and cc.name else None
    intra = bool(codec_desc is not None and codec_desc.intra_only) or (
        len(scan.key_pts) == len(scan.pts) and len(scan.pts) > 1
    )
    width = cc.width if cc is not None else None
    height = cc.height if cc is not None else None
    # A SAR of 0/1 (or none) means "not stated": av_guess_sample_aspect_ratio gives None.
    sar = _stated_sar(stream) or Fraction(1)
    return VideoInfo(
        index=stream.index,
        codec=_codec_name(cc),
        profile=cc.profile if cc is not None else None,
        width=width,
        height=height,
        sample_aspect_ratio=sar,
        display_aspect_ratio=display_aspect_ratio(width, height, sar) if width and height else None,
        pix_fmt=pix_fmt,
        bit_depth=depth,
        chroma_subsampling=chroma,
        color_primaries=_PRIMARIES.get(cc.color_primaries) if cc is not None else None,
        color_transfer=_TRANSFER.get(cc.color_trc) if cc is not None else None,
        color_matrix=_MATRIX.get(cc.colorspace) if cc is not None and cc.colorspace != 2 else None,
        color_range=_RANGE.get(cc.color_range) if cc is not None else None,
        rotation=0,
        fps=timing.fps,
        frame_rate_mode=timing.mode,
        min_frame_interval=timing.min_interval,
        median_frame_interval=timing.median_interval,
        max_frame_interval=timing.max_interval,
        irregular_intervals=timing.irregular_intervals,
        frames=timing.frames,
        start=timing.first,
        duration=end - timing.first,
        keyframes=keys.count,
        max_keyframe_interval=keys.max_interval,
        mean_keyframe_interval=keys.mean_interval,
        all_keyframes_idr=idr,
        intra_only=intra,
        field_order=_FIELD_ORDER.get(cc.field_order) if cc is not None else None,
        bit_rate=(cc.bit_rate or None) if cc is not None else None,
        time_base=tb,
    )


# AVFieldOrder (libavcodec/defs.h): 0 unknown, 1 progressive, 2 tt, 3 bb, 4 tb, 5 bt; the
# demuxer sets it from the container (MOV 'fiel') or the decoder from the bitstream.
_FIELD_ORDER = {1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}


def _stated_sar(stream: av.VideoStream) -> Fraction | None:
    # The container's (MP4/MOV pasp, Matroska display size) before the bitstream's
    # (H.264 VUI), as FFmpeg's av_guess_sample_aspect_ratio decides it.
    sar = stream.sample_aspect_ratio
    return sar if sar is not None and sar > 0 else None


def _audio_info(stream: av.AudioStream, scan: _StreamScan) -> AudioInfo | None:
    if not scan.pts or scan.end_ticks is None:
        return None
    # None for a codec FFmpeg cannot identify (PyAV's stubs do not say so).
    cc: av.AudioCodecContext | None = stream.codec_context
    rate = (cc.sample_rate or None) if cc is not None else None
    tb = stream.time_base or Fraction(1, rate or 48000)
    start = min(scan.pts) * tb
    if scan.skip_samples and rate and scan.first_any is not None:
        start = max(start, scan.first_any * tb + Fraction(scan.skip_samples, rate))
    end = scan.end_ticks * tb
    if stream.duration is not None and stream.start_time is not None:
        header_end = (stream.start_time + stream.duration) * tb
        if start < header_end < end:
            end = header_end
    # What only a decoder knows is missing for a codec FFmpeg cannot identify.
    channels = (cc.channels or None) if cc is not None else None
    sample_format = cc.format.name if cc is not None and cc.format is not None else None
    return AudioInfo(
        index=stream.index,
        codec=_codec_name(cc),
        profile=cc.profile if cc is not None else None,
        sample_rate=rate,
        channels=channels,
        layout=cc.layout.name if cc is not None and channels else None,
        bit_rate=(cc.bit_rate or None) if cc is not None else None,
        bit_depth=_audio_bit_depth(cc.name, sample_format) if cc is not None else None,
        sample_format=sample_format,
        start=start,
        duration=end - start,
        priming_samples=scan.skip_samples,
    )


def probe(path: Path | str, *, method: Literal["auto", "packets"] = "auto") -> MediaInfo:
    """Describe a media file. Raises an :class:`~handoff.errors.InputError` when it is unusable.

    ``method="auto"`` reads an MP4/MOV's sample tables when they are complete and of a
    shape whose packets FFmpeg presents as listed, and otherwise scans the packets;
    ``"packets"`` always scans them. Both give the same facts (``MediaInfo.read_from``
    says which was used)."""
    path = Path(path)
    size = check_readable(path)
    with path.open("rb") as f:
        head = f.read(64)
    container = open_media(path)
    with container:
        movie = read_movie(path) if sniff_isobmff(head) else None
        layout = None if movie is None else movie.layout
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        if not streams:
            raise NoStreamsError("no audio or video stream in the file", path)
        check_idr = {
            s.index
            for s in streams
            if s.type == "video" and s.codec_context is not None and s.codec_context.name == "h264"
        }
        found: dict[int, _StreamScan] | str = "not MP4/MOV, or the packet scan was asked for"
        if movie is not None and method == "auto":
            found = _table_scans(path, movie.tables, container, check_idr)
            if isinstance(found, str):
                log.debug("%s: scanning packets: %s", path, found)
        if isinstance(found, str):
            scans, read_error = _scan(container, check_idr)
        else:
            scans, read_error = found, None
        videos: list[VideoInfo] = []
        audios: list[AudioInfo] = []
        for s in streams:
            if isinstance(s, av.VideoStream):
                v = _video_info(s, scans[s.index])
                if v is not None and layout is not None:
                    rot = layout.rotation_by_track.get(s.id, 0)
                    v = _replace_rotation(v, rot)
                if v is not None:
                    videos.append(v)
            elif isinstance(s, av.AudioStream):
                a = _audio_info(s, scans[s.index])
                if a is not None and layout is not None:
                    a = replace(
                        a,
                        declared_max_bit_rate=layout.max_bit_rate_by_track.get(s.id),
                        presented_samples=layout.presented_sound_by_track.get(s.id),
                    )
                if a is not None:
                    audios.append(a)
        carried = {x.index for x in videos} | {x.index for x in audios}
        others = tuple(
            _other_stream(s, layout) for s in container.streams if s.index not in carried
        )
        fmt = container.format.name
        # MP4 track IDs by stream index, read while the container is open (PyAV's stream
        # objects must not be used after it is closed).
        track_ids = {s.index: s.id for s in streams}
        header_duration = (
            Fraction(container.duration, av.time_base) if container.duration is not None else None
        )
        bit_rate = container.bit_rate or None
        # A timecode tag: the container's, else the first stream's that has one; by any
        # case, as FFmpeg's av_dict_get matches keys (its Matroska demuxer says TIMECODE).
        tags = [container.metadata] + [s.metadata for s in container.streams]
        tagged = next(
            (v for t in tags for k, v in t.items() if k.lower() == "timecode" and v), None
        )

    if not videos and not audios:
        raise NoStreamsError("the streams hold no packets (no media data)", path)
    ends = [v.start + v.duration for v in videos] + [a.start + a.duration for a in audios]
    starts = [v.start for v in videos] + [a.start for a in audios]
    duration = max(ends) - max(Fraction(0), min(starts))

    warnings: list[str] = []
    unknown = [v.index for v in videos if v.codec == UNKNOWN_CODEC]
    unknown += [a.index for a in audios if a.codec == UNKNOWN_CODEC]
    warnings += [_unknown_codec_warning(index, track_ids, layout) for index in unknown]
    # Every way a file can be incomplete, the most telling first.
    truncation: list[str] = []
    if layout is not None and layout.truncated_box:
        truncation.append(
            f"truncated: the file ends inside its '{layout.truncated_box}' box "
            f"({size} bytes on disk)"
        )
    wav = read_wav_layout(path) if head[8:12] == b"WAVE" else None
    if wav is not None and wav.truncated:
        truncation.append(f"truncated: {wav.truncated}")
    elif wav is not None and wav.data_offset is not None and wav.data_size is None:
        warnings.append(
            "the WAV header does not give the audio's length (a placeholder size, as a "
            "streamed write leaves): whether the file is complete cannot be checked"
        )
    if header_duration is not None and header_duration > duration + _TRUNCATION_SLACK_S:
        truncation.append(
            f"truncated: the header promises {float(header_duration):.3f} s but the media data "
            f"ends at {float(duration):.3f} s"
        )
    if read_error:
        truncation.append(f"reading stopped early: {read_error}")
    warnings += truncation
    timecode = _timecode(layout, wav, tagged, videos, audios, warnings)
    return MediaInfo(
        path=path,
        container=_container_name(fmt, path, layout, head),
        format_name=fmt,
        size_bytes=size,
        duration=duration,
        header_duration=header_duration,
        bit_rate=bit_rate,
        videos=tuple(videos),
        audios=tuple(audios),
        faststart=layout.faststart if layout is not None else None,
        warnings=tuple(warnings),
        truncated=truncation[0] if truncation else None,
        others=others,
        read_from="packets" if isinstance(found, str) else "sample tables",
        timecode=timecode,
    )


def _timecode(
    layout: BoxLayout | None,
    wav: WavLayout | None,
    tagged: str | None,
    videos: list[VideoInfo],
    audios: list[AudioInfo],
    warnings: list[str],
) -> SourceTimecode | None:
    """The first frame's (or sample's) timecode: an MP4/MOV timecode track first, then
    a ``timecode`` tag, then a WAV's ``bext`` chunk. What cannot be read is a warning,
    and no timecode."""
    fps = videos[0].fps if videos else None
    if layout is not None and layout.timecode is not None:
        return _tmcd_timecode(layout.timecode, fps, warnings)
    if tagged is not None:
        return _tagged_timecode(tagged, fps, warnings)
    if wav is not None and wav.bext_problem is not None:
        warnings.append(f"no timecode read: {wav.bext_problem}")
    if wav is not None and wav.time_reference is not None:
        rate = audios[0].sample_rate if audios else None
        if not rate:
            warnings.append("no timecode read: a 'bext' time reference but no sample rate")
            return None
        return bext_timecode(wav.time_reference, rate)
    return None


# A timecode past this many seconds (a day) labels no time of day: damage, not a start.
_DAY = 24 * 3600


def _tmcd_timecode(
    track: TimecodeTrack, fps: Fraction | None, warnings: list[str]
) -> SourceTimecode | None:
    """The label of a QuickTime timecode track's first sample (QuickTime File Format,
    "Timecode sample description" and "Timecode media"): a frame number counted at
    the picture's rate (the track's own time scale / frame duration without a picture,
    or when the two disagree), labelled drop-frame when its flag says so."""
    # Imported here: handoff.timeline's package imports this module (its model reads
    # MediaInfo), so a module-level import would be circular.
    from handoff.timeline.timecode import DROP_FRAME_RATES, smpte_label, timebase

    where = "the timecode track"
    if track.problem is not None or track.first_frame is None:
        warnings.append(f"no timecode read: {where}: {track.problem or 'no first sample'}")
        return None
    if track.flags & TMCD_COUNTER:
        warnings.append(f"no timecode read: {where} is a counter, not a time of day")
        return None
    # The label counts the picture's frames, at its exact rate: the track's own time
    # scale / frame duration may only approximate it (FFmpeg's mov muxer wrote 45000/1877
    # for a 23.976 fps stream in a 1/90000 time base, measured with FFmpeg 8).
    rate = fps
    own = track.rate
    if rate is None or (own is not None and abs(own / rate - 1) > Fraction(1, 100)):
        if rate is not None and own is not None:
            warnings.append(
                f"{where} counts at {short_rate(own)} fps, the picture runs at "
                f"{short_rate(rate)} fps: the label counts the timecode track's frames"
            )
        rate = own
    if rate is None:
        warnings.append(f"no timecode read: {where} states no rate and there is no picture")
        return None
    frame = track.first_frame
    if frame / rate >= _DAY:
        warnings.append(
            f"no timecode read: {where}'s first frame number {frame} is past 24 hours at "
            f"{short_rate(rate)} fps (a damaged sample?)"
        )
        return None
    if track.frames_per_second and track.frames_per_second != timebase(rate):
        warnings.append(
            f"{where} says {track.frames_per_second} frames a second at "
            f"{short_rate(rate)} fps: its label counts {timebase(rate)}"
        )
    drop = track.drop_frame
    if drop and rate not in DROP_FRAME_RATES:
        warnings.append(
            f"{where} is flagged drop-frame at {short_rate(rate)} fps, which has none: "
            "read as non-drop-frame"
        )
        drop = False
    return SourceTimecode(
        label=smpte_label(frame, rate, drop_frame=drop),
        start=frame / rate,
        origin="tmcd",
        frame=frame,
        rate=rate,
        drop_frame=drop,
    )


def _tagged_timecode(text: str, fps: Fraction | None, warnings: list[str]) -> SourceTimecode | None:
    """A ``timecode`` tag (Matroska, MXF, an MP4 without its track), read against the
    picture's rate."""
    from handoff.timeline.timecode import parse_timecode  # here: see _tmcd_timecode

    if fps is None:
        warnings.append(f"no timecode read: a timecode tag {text!r} but no picture to count")
        return None
    try:
        tc = parse_timecode(text)
        frame = tc.frame_at(fps)
    except UsageError as exc:
        warnings.append(f"no timecode read: the timecode tag: {exc}")
        return None
    return SourceTimecode(
        label=str(tc),
        start=frame / fps,
        origin="metadata",
        frame=frame,
        rate=fps,
        drop_frame=tc.drop_frame,
    )


def bext_timecode(samples: int, rate: int) -> SourceTimecode:
    """A Broadcast Wave time reference as a timecode. A WAV has no frame rate, so its
    label is a clock time to the millisecond (rounded down), ``01:00:00.000``: the exact
    start is ``samples / rate``, and a timeline counts it at its own rate."""
    start = Fraction(samples, rate)
    ms = math.floor(start * 1000)
    s, ms = divmod(ms, 1000)
    label = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{ms:03d}"
    return SourceTimecode(label=label, start=start, origin="bext", samples=samples)


def _other_stream(stream: av.stream.Stream, layout: BoxLayout | None) -> OtherStream:
    cc = stream.codec_context if stream.type in ("video", "audio", "subtitle") else None
    codec = _codec_name(cc) if cc is not None else UNKNOWN_CODEC
    if codec == UNKNOWN_CODEC:
        # A data stream has no codec context in PyAV; FFmpeg names a QuickTime timecode
        # track's codec in its parameters only, so the sample entry names it here.
        named = getattr(stream, "codec_tag", None) or (
            layout.sample_entry_by_track.get(stream.id) if layout is not None else None
        )
        codec = str(named).strip() or UNKNOWN_CODEC if named else UNKNOWN_CODEC
    return OtherStream(index=stream.index, type=str(stream.type), codec=codec)


def _unknown_codec_warning(index: int, track_ids: dict[int, int], layout: BoxLayout | None) -> str:
    fourcc = None
    if layout is not None and index in track_ids:
        fourcc = layout.sample_entry_by_track.get(track_ids[index])
    named = f" ({fourcc!r} in the MP4/MOV sample description)" if fourcc else ""
    return f"stream #{index}: a codec FFmpeg cannot identify{named}: it cannot be decoded"


def _replace_rotation(v: VideoInfo, rotation: int) -> VideoInfo:
    return replace(v, rotation=rotation)


def is_truncated(info: MediaInfo) -> bool:
    """Whether the file is incomplete: cut short, or unreadable part-way."""
    return info.truncated is not None


def to_json(info: MediaInfo) -> dict[str, Any]:
    """The ``probe --json`` object for one readable file (schema in docs/reference/json.md)."""
    v = info.video
    a = info.audio
    delta = info.av_duration_delta_s
    return {
        "path": str(info.path),
        "ok": True,
        "error": None,
        "container": info.container,
        "format_name": info.format_name,
        "size_bytes": info.size_bytes,
        "duration_s": _r(info.duration_s),
        "duration_s_exact": fraction_str(info.duration),
        "header_duration_s": _r(info.header_duration_s),
        "bit_rate": info.bit_rate,
        "faststart": info.faststart,
        "video": _video_json(v) if v else None,
        "audio": _audio_json(a) if a else None,
        "streams": [_video_json(x) for x in info.videos]
        + [_audio_json(x) for x in info.audios]
        + [{"type": x.type, "index": x.index, "codec": x.codec} for x in info.others],
        "av_duration_delta_s": _r(delta),
        "timecode": None if info.timecode is None else timecode_json(info.timecode),
        "truncated": info.truncated,
        "warnings": list(info.warnings),
    }


def timecode_json(tc: SourceTimecode) -> dict[str, Any]:
    """The ``timecode`` object of ``probe --json``."""
    return {
        "label": tc.label,
        "start_s": _r(float(tc.start)),
        "start_s_exact": fraction_str(tc.start),
        "origin": tc.origin,
        "frame": tc.frame,
        "rate": None if tc.rate is None else fraction_str(tc.rate),
        "drop_frame": tc.drop_frame,
        "samples": tc.samples,
    }


def timecode_text(tc: SourceTimecode) -> str:
    """``01:00:00:00 (tmcd track, frame 86400 at 23.976 fps)``: a timecode for people."""
    if tc.origin == "bext":
        return f"{tc.label} (bext time reference, {tc.samples} samples)"
    where = "tmcd track" if tc.origin == "tmcd" else "timecode tag"
    rate = "" if tc.rate is None else f" at {short_rate(tc.rate)} fps"
    df = ", drop-frame" if tc.drop_frame else ""
    return f"{tc.label} ({where}, frame {tc.frame}{rate}{df})"


def error_json(path: Path | str, message: str) -> dict[str, Any]:
    """The ``probe --json`` object for a file that could not be read."""
    return {
        "path": str(path),
        "ok": False,
        "error": message,
        "container": None,
        "format_name": None,
        "size_bytes": None,
        "duration_s": None,
        "duration_s_exact": None,
        "header_duration_s": None,
        "bit_rate": None,
        "faststart": None,
        "video": None,
        "audio": None,
        "streams": [],
        "av_duration_delta_s": None,
        "timecode": None,
        "truncated": None,
        "warnings": [],
    }


def _r(x: float | None, digits: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, digits)


def fraction_str(f: Fraction) -> str:
    return f"{f.numerator}/{f.denominator}"


def rate_text(rate: Fraction, mode: str | None = None) -> str:
    """A frame rate as people read it: ``24 fps``, ``23.976 fps (24000/1001)``, and for
    a variable rate (or any other average) ``~10.53 fps (variable)``."""
    if mode == "VFR":
        return f"~{float(rate):.2f} fps (variable)"
    if rate.denominator == 1:
        return f"{rate.numerator} fps"
    if rate.denominator == 1001:
        return f"{float(rate):.3f} fps ({rate.numerator}/1001)"
    return f"~{float(rate):.2f} fps"


def rate_list(rates: Iterable[Fraction]) -> str:
    """``23.976, 24, 25 or 30``: rates as people write them, slowest first."""
    names = [short_rate(r) for r in sorted(rates)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def short_rate(rate: Fraction) -> str:
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{math.floor(float(rate) * 1000) / 1000:g}" if rate.denominator == 1001 else str(rate)


def channels_text(channels: int | None, layout: str | None) -> str:
    """``2 ch (stereo)``, ``6 ch (5.1(side))``; ``1 ch`` when FFmpeg names no layout
    (it calls an unnamed one "1 channels")."""
    if not channels:
        return "? ch"
    named = layout and not layout.endswith(("channels", "channel"))
    return f"{channels} ch ({layout})" if named else f"{channels} ch"


def _video_json(v: VideoInfo) -> dict[str, Any]:
    return {
        "type": "video",
        "index": v.index,
        "codec": v.codec,
        "profile": v.profile,
        "width": v.width,
        "height": v.height,
        "sample_aspect_ratio": fraction_str(v.sample_aspect_ratio),
        "display_aspect_ratio": None
        if v.display_aspect_ratio is None
        else fraction_str(v.display_aspect_ratio),
        "pix_fmt": v.pix_fmt,
        "bit_depth": v.bit_depth,
        "chroma_subsampling": v.chroma_subsampling,
        "color_primaries": v.color_primaries,
        "color_transfer": v.color_transfer,
        "color_matrix": v.color_matrix,
        "color_range": v.color_range,
        "rotation": v.rotation,
        "fps": fraction_str(v.fps),
        "fps_float": _r(float(v.fps)),
        "frame_rate_mode": v.frame_rate_mode,
        "frame_interval_s": {
            "min": _r(v.min_frame_interval_s),
            "median": _r(v.median_frame_interval_s),
            "max": _r(v.max_frame_interval_s),
        },
        "irregular_intervals": v.irregular_intervals,
        "frames": v.frames,
        "start_s": _r(v.start_s),
        "duration_s": _r(v.duration_s),
        "start_s_exact": fraction_str(v.start),
        "duration_s_exact": fraction_str(v.duration),
        "keyframes": v.keyframes,
        "max_keyframe_interval_s": _r(v.max_keyframe_interval_s),
        "mean_keyframe_interval_s": _r(v.mean_keyframe_interval_s),
        "all_keyframes_idr": v.all_keyframes_idr,
        "intra_only": v.intra_only,
        "field_order": v.field_order,
        "bit_rate": v.bit_rate,
        "time_base": fraction_str(v.time_base),
    }


def _audio_json(a: AudioInfo) -> dict[str, Any]:
    return {
        "type": "audio",
        "index": a.index,
        "codec": a.codec,
        "profile": a.profile,
        "sample_rate": a.sample_rate,
        "channels": a.channels,
        "layout": a.layout,
        "bit_rate": a.bit_rate,
        "bit_depth": a.bit_depth,
        "sample_format": a.sample_format,
        "start_s": _r(a.start_s),
        "duration_s": _r(a.duration_s),
        "start_s_exact": fraction_str(a.start),
        "duration_s_exact": fraction_str(a.duration),
        "priming_samples": a.priming_samples,
        "declared_max_bit_rate": a.declared_max_bit_rate,
    }
