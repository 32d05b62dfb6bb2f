"""One OpenTimelineIO timeline, built once, from which every editor format is written.

Layout (the writers rely on it):

- ``V1`` (video): the clips in order, gaps between them where the narration pauses.
- ``A1`` (audio): the master narration, **locked** -- or, without a master, the clips'
  own audio, locked.
- ``A2`` (audio, only with a master): the clips' own audio at the clips' positions, each
  clip disabled, for reference.

A timeline from selects (:func:`build_selects_timeline`) has each segment's **pick** on
V1 -- where its segment starts, moved earlier by the pick's measured sound offset -- and
its **alternates** on ``V2``, ``V3``, ... (rank 2 on V2), each at its own measured place,
those tracks **disabled**. Clip names carry the rank and score ("002_a_take1 (alt 2,
score 83.1)"); the media reference keeps the file's name.

Every time is a whole number of frames at the sequence rate (``RationalTime`` values are
integers, rates exact: 24000/1001 for 23.976). Placement in seconds is exact
(:class:`~fractions.Fraction`); rounding to frames is reported per clip.

What the writers need and OTIO has no field for lives in ``metadata["handoff"]``:

- timeline: ``rate`` ("24000/1001"), ``width``, ``height``, ``sample_rate`` (48000),
  ``audio_channels``, ``start_timecode`` ("01:00:00:00") and ``drop_frame`` (the
  start's frame count is OTIO's own ``global_start_time``);
- track: ``role`` ("picture" | "master" | "clip-audio" | "alternate"), ``locked``,
  ``channels`` (and ``rank`` on an alternates track);
- clip: ``path`` (absolute; left out when the file name is not UTF-8, which OTIO cannot
  store -- the reference's ``file://`` URL names the file byte for byte), ``role``,
  ``index`` (1-based clip number), ``width``, ``height``, ``rate``, ``audio_channels``,
  ``audio_sample_rate``, ``audio_bit_depth`` (null for compressed sound), ``codec``,
  ``has_video``, ``has_audio``, ``file_frames`` (whole frames the file holds),
  ``timecode`` (the file's own label, or null), ``tc_frames`` (its frame count at the
  sequence rate, 0 without) and ``tc_drop_frame``; from selects also ``segment``,
  ``rank`` (1 = the pick), ``score`` and ``offset_ms`` (the measured sound offset
  applied, or null).

Names: the timeline's and every clip's and media reference's name is written with
U+FFFD in place of characters XML 1.0 cannot hold (:func:`.names.xml_text`: control
characters, bytes of a file name that are not UTF-8), with a note saying which; media
paths are never changed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from handoff.errors import InputError, Option, Text, UnsupportedError, UsageError
from handoff.files.find import segment_number
from handoff.files.manifest import Manifest, Segment
from handoff.files.names import is_utf8, shown, xml_text
from handoff.probe.reader import MediaInfo, SourceTimecode, fraction_str
from handoff.timeline.paths import file_url, path_from_url
from handoff.timeline.timecode import ZERO, Timecode, fps_label

__all__ = [
    "FROM_CLIPS",
    "META",
    "PlacedClip",
    "Placement",
    "SegmentTakes",
    "SequenceSettings",
    "Source",
    "Take",
    "TimelineBuild",
    "build_selects_timeline",
    "build_timeline",
    "clip_path",
    "frames_at",
    "parse_size",
    "placed_clips",
    "rate_of",
    "source_from_info",
    "timecode_frames",
]

META = "handoff"
SEQUENCE_SAMPLE_RATE = 48000

# A clip is "much" shorter or longer than the segment file it was made from past the
# larger of these. Below them lie the differences every clip has: LTX-2's pipelines
# (Lightricks/LTX-2, ltx-pipelines) make 8k+1 frames, so a clip runs up to 8 frames (a
# third of a second at 24 fps) past its conditioning audio, and its audio follows a
# 25-latents-a-second grid, about 20 ms either way. A tenth of a long segment leaves
# room for a generator's coarser length steps without hiding a wrong clip. Past them, a
# short clip leaves narration with no picture of its own, and a long one was likely
# made for another segment (or another cut of the narration).
LENGTH_TOLERANCE_S = Fraction(1)
LENGTH_TOLERANCE_SHARE = Fraction(1, 10)
MAX_SEQUENCE_SIDE = 16384


@dataclass(frozen=True, slots=True)
class SequenceSettings:
    """What the user may set of the sequence (everything else comes from the clips)."""

    size: tuple[int, int] | None = None
    """Frame size; None: the clips' most common (a tie: the largest frame)."""
    start: Timecode = ZERO
    """Timecode of the sequence's first frame (editors often start at 01:00:00:00)."""


FROM_CLIPS = SequenceSettings()
"""Nothing set by the user: the sequence as the clips make it, starting at 00:00:00:00."""


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` with even sides: 4:2:2 (ProRes 422) and 4:2:0 (H.264 as
    delivered) halve the chroma across, and 4:2:0 also down, so an odd side cannot be
    encoded from the sequence without padding."""
    w, sep, h = text.strip().lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise UsageError(f"sequence size {text!r}: expected WIDTHxHEIGHT (e.g. 1920x1080)")
    width, height = int(w), int(h)
    if not (2 <= width <= MAX_SEQUENCE_SIDE and 2 <= height <= MAX_SEQUENCE_SIDE):
        raise UsageError(f"sequence size {text}: each side must be 2 to {MAX_SEQUENCE_SIDE} pixels")
    if width % 2 or height % 2:
        raise UsageError(
            f"sequence size {text}: width and height must be even (4:2:2 and 4:2:0 video, which "
            "editors deliver, cannot hold an odd side)"
        )
    return width, height


@dataclass(frozen=True, slots=True)
class Source:
    """What the timeline needs to know about one media file."""

    path: Path
    """Absolute path."""
    name: str
    rate: Fraction | None
    """Picture rate (CFR); None for an audio-only file."""
    frames: int
    """Whole frames of picture (0 for an audio-only file)."""
    width: int | None
    height: int | None
    codec: str | None
    audio_channels: int
    audio_sample_rate: int | None
    audio_duration: Fraction
    """Seconds of sound, exact (as probed); 0 without sound."""
    timecode: SourceTimecode | None = None
    """The timecode of the file's first frame (or sample), if it carries one."""
    audio_bit_depth: int | None = None
    """Bits per sample of uncompressed sound (PCM 16/24/32, FLAC, ALAC); None for a
    compressed codec (AAC), which has no bit depth, or without sound."""

    @property
    def has_video(self) -> bool:
        return self.rate is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_channels > 0


def source_from_info(info: MediaInfo, *, audio_only: bool = False) -> Source:
    """A clip (``audio_only=False``: needs constant-rate picture) or a narration master."""
    path = info.path.resolve()
    audio = info.audio
    video = None if audio_only else info.video
    if not audio_only:
        if video is None:
            raise InputError("has no picture; only video clips go on V1", info.path)
        if video.frame_rate_mode != "CFR":
            raise InputError(
                "variable frame rate; a timeline needs "
                "constant-rate clips -- run `handoff export` on it first",
                info.path,
            )
        if video.width is None or video.height is None:
            raise InputError(
                f"picture codec {video.codec!r} is not one FFmpeg can read: its frame size "
                "is unknown -- export it to a known codec first",
                info.path,
            )
    elif audio is None:
        raise InputError(
            Text("has no audio stream; ", Option("master_path"), " must be the narration"),
            info.path,
        )
    elif audio.channels is None or audio.sample_rate is None:
        raise InputError(
            Text(
                f"audio codec {audio.codec!r} is not one FFmpeg can read; ",
                Option("master_path"),
                " must be a narration it can (condition it with `handoff prep-audio`)",
            ),
            info.path,
        )
    if audio is not None and (audio.channels is None or audio.sample_rate is None):
        audio = None  # a clip's sound no editor could decode either: picture only
    return Source(
        path=path,
        name=info.path.name,
        rate=None if video is None else video.fps,
        frames=0 if video is None else video.frames,
        width=None if video is None else video.width,
        height=None if video is None else video.height,
        codec=None if video is None else video.codec,
        audio_channels=0 if audio is None or audio.channels is None else audio.channels,
        audio_sample_rate=None if audio is None else audio.sample_rate,
        audio_duration=Fraction(0) if audio is None else audio.duration,
        timecode=info.timecode,
        audio_bit_depth=None if audio is None else audio.bit_depth,
    )


def timecode_frames(source: Source, rate: Fraction) -> tuple[int, bool]:
    """The frame count at the sequence ``rate`` of ``source``'s first frame's timecode
    (0 without one), and whether it is exact: a clip's ``tmcd`` at the clip's own rate
    is; a BWF ``time_reference`` (samples since midnight) is a whole frame only when
    the sample count happens to fall on one, and is rounded to the nearest."""
    tc = source.timecode
    if tc is None:
        return 0, True
    if tc.frame is not None and tc.rate == rate:
        return tc.frame, True
    exact = tc.start * rate
    return round(exact), exact.denominator == 1


@dataclass(frozen=True, slots=True)
class Take:
    """One generated take of a segment, as measured by ``handoff sync``."""

    source: Source
    offset_ms: float | None = None
    """The take's sound against the narration, ms; positive = late, so the take is
    placed that much earlier. None: not measured (placed unshifted, with a note)."""
    score: float | None = None


@dataclass(frozen=True, slots=True)
class SegmentTakes:
    """A segment's pick and alternates (from a selects file)."""

    segment: int
    """The manifest segment's ``index``."""
    pick: Take
    alternates: tuple[Take, ...] = ()
    """In rank order: the first goes on V2."""
    regenerate: bool = False
    recut_at_s: float | None = None


# ---------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one clip landed: timeline frames and the frames of the file used."""

    index: int
    source: Source
    segment: Segment | None
    start: int
    """Timeline frame of the clip's first frame."""
    source_start: int
    """First frame of the file used (non-zero when the head was trimmed)."""
    duration: int
    rounding_ms: float
    """Whole-frame start minus the exact start, in milliseconds."""
    trimmed_head: int = 0
    trimmed_tail: int = 0
    rank: int = 1
    """From selects: 1 for the pick (V1), 2 for the first alternate (V2), ..."""
    offset_ms: float | None = None
    """From selects: the measured sound offset the position allows for (None: none)."""
    score: float | None = None
    length_minus_segment_s: float | None = None
    """The file's length minus its segment file's (None: no segment)."""

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class TimelineBuild:
    """What a timeline builder made, built complete (add to it with
    :func:`dataclasses.replace`)."""

    timeline: otio.schema.Timeline
    rate: Fraction
    placements: tuple[Placement, ...]
    master: Source | None
    master_start: int
    notes: tuple[str, ...] = ()
    inputs: tuple[Path, ...] = ()
    """Every file the build read (clips, master, manifest): outputs must never replace one."""
    alternates: tuple[Placement, ...] = ()
    """From selects: the alternates placed on V2, V3, ... (rank 2 on V2)."""
    regenerate: tuple[int, ...] = ()
    """From selects: the segments marked ``regenerate``."""
    from_selects: bool = False
    warnings: tuple[str, ...] = ()
    """What the user should look at before handing the timeline over (a clip much
    shorter or longer than its segment)."""
    start: Timecode = ZERO
    """The sequence's start timecode; every position is counted from it."""

    @property
    def start_frame(self) -> int:
        """The frame count of the start timecode (where the timeline's frame 0 is)."""
        return self.start.frame_at(self.rate)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description of what was built (the CLI prints it with --json)."""
        meta = self.timeline.metadata[META]
        return {
            "name": self.timeline.name,
            "rate": meta["rate"],
            "width": meta["width"],
            "height": meta["height"],
            "sample_rate": meta["sample_rate"],
            "start_timecode": str(self.start),
            "start_frame": self.start_frame,
            "duration_frames": _frames(self.timeline.duration()),
            "master": None
            if self.master is None
            else {
                "path": str(self.master.path),
                "start": self.master_start,
                "timecode": None if self.master.timecode is None else self.master.timecode.label,
            },
            "clips": [self._clip_summary(p) for p in self.placements],
            **(
                {
                    "alternates": [self._clip_summary(p) for p in self.alternates],
                    "regenerate": list(self.regenerate),
                }
                if self.from_selects
                else {}
            ),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }

    def _clip_summary(self, p: Placement) -> dict[str, Any]:
        out = {
            "index": p.index,
            "path": str(p.source.path),
            "segment": None if p.segment is None else p.segment.index,
            "start": p.start,
            "end": p.end,
            "source_in": p.source_start,
            "source_out": p.source_start + p.duration,
            "timecode": None if p.source.timecode is None else p.source.timecode.label,
            "rounding_ms": round(p.rounding_ms, 3),
            "trimmed_head": p.trimmed_head,
            "trimmed_tail": p.trimmed_tail,
            "length_minus_segment_s": None
            if p.length_minus_segment_s is None
            else round(p.length_minus_segment_s, 3),
        }
        if self.from_selects:
            out["rank"] = p.rank
            out["score"] = p.score
            out["offset_ms"] = p.offset_ms
        return out


def rate_of(timeline: otio.schema.Timeline) -> Fraction:
    """The sequence rate exactly, as the build recorded it."""
    return Fraction(str(timeline.metadata[META]["rate"]))


def _frames(t: otio.opentime.RationalTime) -> int:
    return round(float(t.value))


def _rt(frames: int, rate: Fraction) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, float(rate))


def _range(start: int, duration: int, rate: Fraction) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(_rt(start, rate), _rt(duration, rate))


def frames_at(t: otio.opentime.RationalTime, rate: Fraction) -> int:
    """A time as whole frames at ``rate`` (the model's own times are already there)."""
    r = float(rate)
    return round(float(t.value if t.rate == r else t.value_rescaled_to(r)))


@dataclass(frozen=True, slots=True)
class PlacedClip:
    """One clip of a track at its timeline frames: what every writer walks."""

    clip: Any
    start: int
    """Timeline frame of its first frame."""
    source_start: int
    duration: int
    path: str
    """The media file: the build's absolute path, else the reference's URL decoded."""
    meta: Any
    """The clip's ``metadata["handoff"]`` (empty for a clip from elsewhere)."""
    tc: int = 0
    """The frame count of the file's first frame's timecode (its media reference's
    available range starts there); :attr:`source_start` counts from the file's first
    frame, so the OTIO source range starts at ``tc + source_start``."""

    @property
    def enabled(self) -> bool:
        return bool(self.clip.enabled)


def placed_clips(track: otio.schema.Track, rate: Fraction) -> Iterator[PlacedClip]:
    """The clips of a track with their timeline frames (gaps skipped, positions summed).

    Raises :class:`UnsupportedError` for anything but clips and gaps (transitions,
    nested stacks), which no writer here places.
    """
    t = 0
    for child in track:
        if isinstance(child, otio.schema.Gap):
            t += frames_at(child.duration(), rate)
            continue
        if not isinstance(child, otio.schema.Clip):
            raise UnsupportedError(
                f"track {track.name!r} holds a {type(child).__name__}; timelines are "
                "written from clips and gaps only"
            )
        rng = child.source_range or child.available_range()
        duration = frames_at(rng.duration, rate)
        if duration <= 0:
            continue
        meta = child.metadata.get(META) or {}
        avail = getattr(child.media_reference, "available_range", None)
        tc = 0 if avail is None else frames_at(avail.start_time, rate)
        start = frames_at(rng.start_time, rate) - tc
        yield PlacedClip(child, t, start, duration, clip_path(child), meta, tc)
        t += duration


def clip_path(clip: otio.schema.Clip) -> str:
    """The clip's media file: the build's absolute path, else its reference's URL decoded
    (to the file system's bytes: a name that is not UTF-8 is only in the URL)."""
    meta = clip.metadata.get(META) or {}
    path = meta.get("path")
    if path:
        return str(path)
    url = getattr(clip.media_reference, "target_url", None)
    if not url:
        raise UnsupportedError(f"clip {shown(str(clip.name))!r} names no media file")
    return path_from_url(str(url))


def _sequence_rate(clips: Sequence[Source]) -> Fraction:
    rates: dict[Fraction, list[str]] = {}
    for c in clips:
        assert c.rate is not None
        rates.setdefault(c.rate, []).append(shown(c.name))
    if len(rates) > 1:
        parts = []
        for r, names in sorted(rates.items(), key=lambda kv: -len(kv[1])):
            listed = ", ".join(names[:3]) + (
                f" and {len(names) - 3} more" if len(names) > 3 else ""
            )
            parts.append(f"{fps_label(r)} fps ({listed})")
        raise UsageError(
            Text(
                "clips have different frame rates: " + "; ".join(parts) + ". A timeline has "
                "one rate: export them to one (",
                Option("fps", "...", command="export"),
                ")",
            )
        )
    return next(iter(rates))


def _match_segments(clips: Sequence[Source], manifest: Manifest, notes: list[str]) -> list[Segment]:
    """Each clip's segment: by the number its name starts with, else by order."""
    by_index = {s.index: s for s in manifest.segments}
    prefixes = [segment_number(c.name) for c in clips]
    if all(p is not None and p in by_index for p in prefixes) and len(set(prefixes)) == len(
        prefixes
    ):
        return [by_index[p] for p in prefixes if p is not None]
    if len(clips) > len(manifest.segments):
        raise UsageError(
            f"{len(clips)} clips but the manifest has {len(manifest.segments)} segments; "
            "name clips after their segment (001_..., 002_...) or pass one clip per segment",
            manifest.path,
        )
    if len(clips) < len(manifest.segments):
        notes.append(
            f"{len(clips)} clips for {len(manifest.segments)} segments: matched in order, "
            f"segments {len(clips) + 1}-{len(manifest.segments)} have no clip"
        )
    else:
        notes.append("clips matched to segments in order (their names carry no segment number)")
    return list(manifest.segments[: len(clips)])


def _exact_start(segment: Segment, sample_rate: int, shift: Fraction = Fraction(0)) -> Fraction:
    """Where a clip made for ``segment`` starts on the master's clock, in seconds (may be
    negative when a pre-roll reaches back before the master's first sample); ``shift``:
    how late its sound is, in seconds (the clip then starts that much earlier)."""
    return Fraction(segment.source_in - segment.preroll_end, sample_rate) - shift


def _place(
    clips: Sequence[Source],
    segments: Sequence[Segment] | None,
    sample_rate: int,
    rate: Fraction,
    notes: list[str],
    *,
    shifts: Sequence[Fraction] | None = None,
    master_start: int | None = None,
    indices: Sequence[int] | None = None,
) -> tuple[list[Placement], int]:
    """Timeline frames for every clip, and the frame where the master starts.
    ``sample_rate``: the rate the segments' sample positions count at. ``shifts``: each
    clip's measured sound offset in seconds (positive = late: placed earlier);
    ``master_start``: given when it was worked out for more clips than these;
    ``indices``: the clips' numbers (1, 2, ... by default)."""
    numbers = list(indices) if indices is not None else list(range(1, len(clips) + 1))
    if segments is None:
        out: list[Placement] = []
        t = 0
        for i, c in zip(numbers, clips, strict=True):
            out.append(Placement(i, c, None, t, 0, c.frames, 0.0))
            t += c.frames
        return out, 0

    moved = list(shifts) if shifts is not None else [Fraction(0)] * len(segments)
    exact = [_exact_start(s, sample_rate, d) for s, d in zip(segments, moved, strict=True)]
    if master_start is None:
        lead = max(Fraction(0), -min(exact))
        master_start = math.ceil(lead * rate)
        if master_start:
            notes.append(
                f"master starts at frame {master_start} so that the first clip's pre-roll "
                "fits before it"
            )
    placed: list[Placement] = []
    for i, c, s, x in zip(numbers, clips, segments, exact, strict=True):
        ideal = x * rate + master_start
        start = round(ideal)
        placed.append(Placement(i, c, s, start, 0, c.frames, float((start - ideal) / rate * 1000)))

    # Where neighbours overlap (the next clip's pre-roll, the previous clip's tail), cut
    # at the segment boundary in the narration: both trims then fall in silence.
    order = sorted(range(len(placed)), key=lambda k: (placed[k].start, k))
    result: list[Placement] = []
    overlaps: list[tuple[int, int, int, int]] = []
    for k in order:
        p = placed[k]
        if result and p.start < result[-1].end:
            prev = result[-1]
            assert p.segment is not None
            boundary = master_start + round(Fraction(p.segment.source_in, sample_rate) * rate)
            boundary = min(max(boundary, p.start, prev.start + 1), prev.end)
            tail = prev.end - boundary
            head = boundary - p.start
            if head >= p.duration:
                notes.append(
                    f"clip {p.index} ({shown(p.source.name)}) lies wholly under clip "
                    f"{prev.index}; left out of the timeline"
                )
                continue
            if tail:
                result[-1] = replace(
                    prev, duration=prev.duration - tail, trimmed_tail=prev.trimmed_tail + tail
                )
            p = replace(
                p,
                start=boundary,
                source_start=p.source_start + head,
                duration=p.duration - head,
                trimmed_head=head,
            )
            overlaps.append((prev.index, p.index, tail, head))
        result.append(p)
    if len(overlaps) == 1:
        a, b, tail, head = overlaps[0]
        cuts = ([f"clip {a} tail -{tail}"] if tail else []) + (
            [f"clip {b} head -{head}"] if head else []
        )
        notes.append(
            f"clips {a} and {b} overlapped: cut where clip {b}'s segment begins "
            f"({', '.join(cuts)} frames)"
        )
    elif overlaps:
        notes.append(
            f"{len(overlaps)} overlaps between neighbours cut where the next segment begins: "
            f"heads trimmed by up to {max(o[3] for o in overlaps)} frames, tails by up to "
            f"{max(o[2] for o in overlaps)} (per clip: trimmed head / tail)"
        )
    return result, master_start


def _clip(
    source: Source,
    rng: otio.opentime.TimeRange,
    available: otio.opentime.TimeRange,
    role: str,
    index: int,
    *,
    rate: Fraction,
    name: str,
    enabled: bool = True,
    ref_name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> otio.schema.Clip:
    """``rng`` and ``available`` count from the file's first frame; ``rate``: the
    sequence's; ``name``: the display name, already writable (see :class:`_Names`);
    ``ref_name`` the media reference's (default: ``name``); ``extra``: more
    ``metadata["handoff"]``."""
    # OTIO's media times are the file's own: a clip with timecode has its available
    # range start at that timecode and its source range at timecode + in point, as
    # Resolve's OTIO export writes them (Resolve matches media by timecode on import).
    tc, _ = timecode_frames(source, rate)
    if tc:
        available = _range(tc + _frames(available.start_time), _frames(available.duration), rate)
        rng = _range(tc + _frames(rng.start_time), _frames(rng.duration), rate)
    ref = otio.schema.ExternalReference(target_url=file_url(source.path), available_range=available)
    ref.name = name if ref_name is None else ref_name
    clip = otio.schema.Clip(name=name, media_reference=ref, source_range=rng)
    clip.enabled = enabled
    path = str(source.path)
    clip.metadata[META] = {
        **({"path": path} if is_utf8(path) else {}),
        "role": role,
        "index": index,
        "width": source.width,
        "height": source.height,
        "rate": None if source.rate is None else fraction_str(source.rate),
        "codec": source.codec,
        "has_video": source.has_video,
        "has_audio": source.has_audio,
        "audio_channels": source.audio_channels,
        "audio_sample_rate": source.audio_sample_rate,
        "audio_bit_depth": source.audio_bit_depth,
        "file_frames": round(float(available.duration.value)),
        "timecode": None if source.timecode is None else source.timecode.label,
        "tc_frames": tc,
        "tc_drop_frame": source.timecode is not None and source.timecode.drop_frame,
        **(extra or {}),
    }
    return clip


def _track(name: str, kind: str, role: str, *, locked: bool, channels: int) -> otio.schema.Track:
    track = otio.schema.Track(name=name, kind=kind)
    track.metadata[META] = {"role": role, "locked": locked, "channels": channels}
    return track


def _fill(
    track: otio.schema.Track, items: Sequence[tuple[int, otio.schema.Clip]], rate: Fraction
) -> None:
    """Append clips at their timeline frames, with gaps between."""
    t = 0
    for start, clip in items:
        if start > t:
            track.append(otio.schema.Gap(source_range=_range(0, start - t, rate)))
        track.append(clip)
        t = start + _frames(clip.source_range.duration)


class _Names:
    """Display names as every format can hold them (:func:`.names.xml_text`), and the
    ones that had to change, for the build's note."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        self.changed: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        safe = xml_text(text)
        if safe != text:
            self.changed.setdefault(text, safe)
        return safe

    def note(self) -> str | None:
        if not self.changed:
            return None
        pairs = [f"'{shown(old)}' as '{new}'" for old, new in list(self.changed.items())[:3]]
        more = len(self.changed) - len(pairs)
        return (
            f"{len(self.changed)} name(s) held control characters or bytes that are not "
            "UTF-8, which XML 1.0 cannot hold (section 2.2): written with U+FFFD in their "
            f"place: {'; '.join(pairs)}{f' and {more} more' if more else ''} (media paths "
            "are unchanged: their URLs carry the file's exact bytes)"
        )


def build_timeline(
    clips: Sequence[Source],
    *,
    master: Source | None = None,
    manifest: Manifest | None = None,
    name: str = "handoff",
    settings: SequenceSettings = FROM_CLIPS,
) -> TimelineBuild:
    """Lay the clips (and the master narration) out on one OTIO timeline."""
    if not clips:
        raise UsageError("no clips to put on the timeline")
    return _build(clips, master, manifest, name, None, settings)


def build_selects_timeline(
    takes: Sequence[SegmentTakes],
    *,
    manifest: Manifest,
    master: Source | None = None,
    name: str = "handoff",
    settings: SequenceSettings = FROM_CLIPS,
) -> TimelineBuild:
    """The timeline of a selects file: each segment's pick on V1 where its segment
    starts, moved earlier by the pick's measured sound offset (``offset_ms``, positive =
    late) and rounded to the nearest frame; its alternates on V2, V3, ... (disabled
    tracks), each at its own measured place; the master locked on A1 as for clips."""
    if not takes:
        raise UsageError("the selects name no segment with a pick: nothing to put on the timeline")
    return _build([t.pick.source for t in takes], master, manifest, name, takes, settings)


def _ms(value: float | None) -> Fraction:
    """Milliseconds as exact seconds (the decimal written, not its binary float)."""
    return Fraction(0) if value is None else Fraction(repr(value)) / 1000


def _take_name(source: Source, label: str, score: float | None) -> str:
    scored = "not measured" if score is None else f"score {score:.1f}"
    return f"{Path(source.name).stem} ({label}, {scored})"


def _place_takes(
    takes: Sequence[SegmentTakes],
    manifest: Manifest,
    rate: Fraction,
    notes: list[str],
) -> tuple[list[Placement], list[Placement], int]:
    """The picks (V1) and the alternates (by rank) of a selects timeline, and the frame
    where the master starts (early enough for every take's pre-roll and shift)."""
    by_index = {s.index: s for s in manifest.segments}
    missing = [t.segment for t in takes if t.segment not in by_index]
    if missing:
        raise UsageError(
            f"segment(s) {', '.join(map(str, missing))} of the selects are not in the "
            f"manifest (it has {len(by_index)} segments)",
            manifest.path,
        )
    sr = manifest.sample_rate
    segments = [by_index[t.segment] for t in takes]
    every = [
        _exact_start(seg, sr, _ms(take.offset_ms))
        for t, seg in zip(takes, segments, strict=True)
        for take in (t.pick, *t.alternates)
    ]
    master_start = math.ceil(max(Fraction(0), -min(every)) * rate)
    if master_start:
        notes.append(
            f"master starts at frame {master_start} so that the earliest take's pre-roll "
            "fits before it"
        )

    placed, _ = _place(
        [t.pick.source for t in takes], segments, sr, rate, notes,
        shifts=[_ms(t.pick.offset_ms) for t in takes], master_start=master_start,
    )  # fmt: skip
    by_number = {k + 1: t for k, t in enumerate(takes)}
    picks = [
        replace(p, offset_ms=by_number[p.index].pick.offset_ms, score=by_number[p.index].pick.score)
        for p in placed
    ]

    alternates: list[Placement] = []
    number = len(takes)
    for rank in range(2, 2 + max(len(t.alternates) for t in takes)):
        members = [(t, seg) for t, seg in zip(takes, segments, strict=True)
                   if len(t.alternates) >= rank - 1]  # fmt: skip
        chosen = [t.alternates[rank - 2] for t, _ in members]
        indices = list(range(number + 1, number + 1 + len(members)))
        number += len(members)
        scratch: list[str] = []
        placed, _ = _place(
            [a.source for a in chosen], [seg for _, seg in members], sr, rate, scratch,
            shifts=[_ms(a.offset_ms) for a in chosen], master_start=master_start,
            indices=indices,
        )  # fmt: skip
        notes.extend(f"V{rank} (alternates): {n}" for n in scratch)
        of = dict(zip(indices, chosen, strict=True))
        alternates += [
            replace(p, rank=rank, offset_ms=of[p.index].offset_ms, score=of[p.index].score)
            for p in placed
        ]

    # An FCPXML audition starts every take where the pick starts (handoff.timeline.fcpxml):
    # an alternate that belongs later than that starts early there, by this much.
    pick_at = {p.segment.index: p.start for p in picks if p.segment is not None}
    early = [
        -(a.source_start + pick_at[a.segment.index] - a.start)
        for a in alternates
        if a.segment is not None and a.segment.index in pick_at
        and a.source_start + pick_at[a.segment.index] - a.start < 0
    ]  # fmt: skip
    if early:
        notes.append(
            f"FCPXML: an audition starts every take where its pick starts, so {len(early)} "
            f"alternate(s) that belong later start up to {max(early)} frame(s) early in it "
            "(the other formats place every alternate exactly on its track)"
        )

    unmeasured = [t.segment for t in takes if t.pick.offset_ms is None]
    if unmeasured:
        notes.append(
            f"segment(s) {', '.join(map(str, unmeasured))}: the pick's sound offset is not "
            "measured (not matched to the narration, or a file the selects do not measure): "
            "placed where its segment starts, unshifted"
        )
    shifted = [p for p in picks if p.offset_ms]
    if shifted:
        parts = [
            f"{p.segment.index if p.segment else '?'}: {-(p.offset_ms or 0.0):+.1f} ms "
            f"-> frame {p.start - p.source_start} ({p.rounding_ms:+.1f} ms rounding)"
            for p in shifted
        ]
        notes.append(
            "picks moved by their measured sound offset (a late sound lands earlier), "
            "by segment: " + "; ".join(parts)
        )
    regenerate = [t for t in takes if t.regenerate]
    if regenerate:
        notes.append(
            "marked regenerate (no take within tolerance): "
            + "; ".join(
                f"segment {t.segment}"
                + ("" if t.recut_at_s is None else f" (re-cut at {t.recut_at_s:.2f} s)")
                for t in regenerate
            )
        )
    return picks, alternates, master_start


def _build(
    clips: Sequence[Source],
    master: Source | None,
    manifest: Manifest | None,
    name: str,
    takes: Sequence[SegmentTakes] | None,
    settings: SequenceSettings,
) -> TimelineBuild:
    notes: list[str] = []
    others = [a.source for t in takes or () for a in t.alternates]
    rate = _sequence_rate([*clips, *others])
    start_frame = settings.start.frame_at(rate)  # the label must exist at this rate
    width, height = _sequence_size(clips, settings.size, notes)

    alternates: list[Placement] = []
    if takes is not None:
        assert manifest is not None
        placements, alternates, master_start = _place_takes(takes, manifest, rate, notes)
        positioned = True
    else:
        segments = None if manifest is None else _match_segments(clips, manifest, notes)
        sample_rate = SEQUENCE_SAMPLE_RATE if manifest is None else manifest.sample_rate
        placements, master_start = _place(clips, segments, sample_rate, rate, notes)
        positioned = segments is not None
    warnings: list[str] = []
    if manifest is not None:
        checked = _check_lengths([*placements, *alternates], manifest.sample_rate, rate,
                                 warnings)  # fmt: skip
        placements, alternates = checked[: len(placements)], checked[len(placements) :]
    worst = max((abs(p.rounding_ms) for p in placements), default=0.0)
    if positioned:
        notes.append(
            f"positions rounded to whole frames: at most {worst:.1f} ms from exact "
            f"(half a frame is {500 / float(rate):.1f} ms)"
        )

    names = _Names()
    timeline = otio.schema.Timeline(name=names(name))
    # OTIO's own field for the start timecode, as Resolve's OTIO export writes it
    # (01:00:00:00 at 24 fps is {"value": 86400, "rate": 24}).
    timeline.global_start_time = _rt(start_frame, rate)
    channels = (
        master.audio_channels
        if master is not None
        else max((c.audio_channels for c in clips), default=0)
    )
    timeline.metadata[META] = {
        "schema": "handoff.timeline/1",
        "rate": fraction_str(rate),
        "width": width,
        "height": height,
        "sample_rate": SEQUENCE_SAMPLE_RATE,
        "audio_channels": channels,
        "start_timecode": str(settings.start),
        "drop_frame": settings.start.drop_frame,
    }

    def picture_clip(p: Placement, role: str) -> otio.schema.Clip:
        avail = _range(0, p.source.frames, rate)
        rng = _range(p.source_start, p.duration, rate)
        if takes is None:
            return _clip(p.source, rng, avail, role, p.index, rate=rate, name=names(p.source.name))
        label = "pick" if p.rank == 1 else f"alt {p.rank}"
        extra = {
            "segment": None if p.segment is None else p.segment.index,
            "rank": p.rank,
            "score": p.score,
            "offset_ms": p.offset_ms,
        }
        return _clip(p.source, rng, avail, role, p.index, rate=rate,
                     name=names(_take_name(p.source, label, p.score)),
                     ref_name=names(p.source.name), extra=extra)  # fmt: skip

    v1 = _track("V1", otio.schema.TrackKind.Video, "picture", locked=False, channels=0)
    _fill(v1, [(p.start, picture_clip(p, "picture")) for p in placements], rate)
    timeline.tracks.append(v1)
    for rank in sorted({p.rank for p in alternates}):
        vn = _track(f"V{rank}", otio.schema.TrackKind.Video, "alternate", locked=False,
                    channels=0)  # fmt: skip
        vn.metadata[META]["rank"] = rank
        vn.enabled = False
        on_track = sorted((p for p in alternates if p.rank == rank), key=lambda p: p.start)
        _fill(vn, [(p.start, picture_clip(p, "alternate")) for p in on_track], rate)
        timeline.tracks.append(vn)
    if alternates:
        top = max(p.rank for p in alternates)
        notes.append(
            f"alternates on V2{'' if top == 2 else f'-V{top}'} (rank 2 on V2), those tracks "
            "disabled; FCPXML carries them as auditions (the pick active) instead"
        )

    clip_audio = [p for p in placements if p.source.has_audio]
    clip_channels = max((p.source.audio_channels for p in clip_audio), default=0)
    if master is not None:
        if master.audio_sample_rate != SEQUENCE_SAMPLE_RATE:
            notes.append(
                f"master is {master.audio_sample_rate} Hz; the sequence is 48 kHz "
                "(condition it with `handoff prep-audio`)"
            )
        master_frames = math.floor(master.audio_duration * rate)
        a1 = _track("A1", otio.schema.TrackKind.Audio, "master", locked=True,
                    channels=master.audio_channels)  # fmt: skip
        whole = _range(0, master_frames, rate)
        mclip = _clip(master, whole, whole, "master", 0, rate=rate, name=names(master.name))
        master_tc, tc_exact = timecode_frames(master, rate)
        if not tc_exact and master.timecode is not None:
            notes.append(
                f"master's timecode {master.timecode.label} ({master.timecode.samples} samples "
                f"since midnight) falls between frames at {fps_label(rate)} fps: written as "
                f"frame {master_tc}, the nearest"
            )
        _fill(a1, [(master_start, mclip)], rate)
        timeline.tracks.append(a1)
        if clip_audio:
            a2 = _track("A2", otio.schema.TrackKind.Audio, "clip-audio", locked=False,
                        channels=clip_channels)  # fmt: skip
            _fill(a2, _audio_items(clip_audio, rate, names, enabled=False), rate)
            timeline.tracks.append(a2)
        else:
            notes.append("no clip has sound of its own: no A2 track")
    elif clip_audio:
        a1 = _track("A1", otio.schema.TrackKind.Audio, "clip-audio", locked=True,
                    channels=clip_channels)  # fmt: skip
        _fill(a1, _audio_items(clip_audio, rate, names, enabled=True), rate)
        timeline.tracks.append(a1)
    else:
        notes.append("no master and no clip audio: the timeline has picture only")

    renamed = names.note()
    if renamed is not None:
        notes.append(renamed)
    return TimelineBuild(
        timeline,
        rate,
        tuple(placements),
        master,
        master_start,
        notes=tuple(notes),
        alternates=tuple(alternates) if takes is not None else (),
        regenerate=tuple(t.segment for t in takes if t.regenerate) if takes is not None else (),
        from_selects=takes is not None,
        warnings=tuple(warnings),
        start=settings.start,
    )


def _sequence_size(
    clips: Sequence[Source], size: tuple[int, int] | None, notes: list[str]
) -> tuple[int, int]:
    """The given size, else the clips' most common; a tie goes to the largest frame
    (then the wider), which no clip of the tie has to be scaled up to fill."""
    sizes = Counter((c.width or 0, c.height or 0) for c in clips)
    ranked = sorted(sizes.items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1], kv[0][0]))
    (width, height), count = ranked[-1]
    tied = [f"{w}x{h}" for (w, h), n in ranked[:-1] if n == count]
    if size is not None:
        width, height = size
    others = [(wh, n) for wh, n in reversed(ranked) if wh != (width, height)]
    if size is not None:
        how = "as given"
    elif tied:
        how = (
            f"the most common, tied with {', '.join(tied)} ({count} clip(s) each): "
            "the largest frame taken"
        )
    else:
        how = "the most common"
    if others or size is not None:
        listed = ", ".join(f"{w}x{h} ({n})" for (w, h), n in others)
        notes.append(
            f"sequence frame size {width}x{height} ({how})"
            + (f"; clips of other sizes: {listed}" if others else "")
        )
    return width, height


def _check_lengths(
    placed: Sequence[Placement], sample_rate: int, rate: Fraction, warnings: list[str]
) -> list[Placement]:
    """Each clip's length against its segment file's (:data:`LENGTH_TOLERANCE_S`); a
    warning for each direction that has clips much off, the figure on every clip."""
    out: list[Placement] = []
    short: list[str] = []
    long: list[str] = []
    for p in placed:
        if p.segment is None:
            out.append(p)
            continue
        clip_s = Fraction(p.source.frames) / rate
        segment_s = Fraction(p.segment.samples, sample_rate)
        off = clip_s - segment_s
        out.append(replace(p, length_minus_segment_s=float(off)))
        if abs(off) <= max(LENGTH_TOLERANCE_S, LENGTH_TOLERANCE_SHARE * segment_s):
            continue
        role = "" if p.rank == 1 else f" alt {p.rank}"
        (short if off < 0 else long).append(
            f"{shown(p.source.name)}{role} {float(clip_s):.2f} s for segment "
            f"{p.segment.index}'s {float(segment_s):.2f} s ({float(off):+.2f} s)"
        )
    limit = (
        f"off by more than {float(LENGTH_TOLERANCE_S):g} s, or "
        f"{float(LENGTH_TOLERANCE_SHARE):.0%} of a segment over "
        f"{float(LENGTH_TOLERANCE_S / LENGTH_TOLERANCE_SHARE):g} s"
    )
    if short:
        warnings.append(
            f"{len(short)} clip(s) much shorter than their segment ({limit}; the narration "
            f"runs on past the clip): {_listed(short)}"
        )
    if long:
        warnings.append(
            f"{len(long)} clip(s) much longer than their segment ({limit}; made for "
            f"another segment?): {_listed(long)}"
        )
    return out


def _listed(items: Sequence[str], most: int = 4) -> str:
    more = len(items) - most
    return "; ".join(items[:most]) + (f" and {more} more" if more > 0 else "")


def _audio_items(
    placements: Sequence[Placement], rate: Fraction, names: _Names, *, enabled: bool
) -> list[tuple[int, otio.schema.Clip]]:
    """The clips' own sound at the picture's places, no longer than the sound lasts."""
    out = []
    for p in placements:
        sound = min(p.source.frames, round(p.source.audio_duration * rate))
        duration = min(p.duration, sound - p.source_start)
        if duration <= 0:
            continue
        avail = _range(0, p.source.frames, rate)
        rng = _range(p.source_start, duration, rate)
        name = names(p.source.name)
        clip = _clip(p.source, rng, avail, "clip-audio", p.index, rate=rate, name=name,
                     enabled=enabled)  # fmt: skip
        out.append((p.start, clip))
    return out
