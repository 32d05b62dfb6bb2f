"""What a timeline file says, read back exactly: one record per clip, whatever the format.

Each format's reader (``tests/readback_fcpxml.py``, ``tests/readback_xmeml.py``, and the
OTIO adapters through :func:`from_otio`) turns a written file into :class:`ReadClip`
records, so that one suite can hold every format to the same intended layout. Times are
whole frames at the sequence rate, computed from the file's own rational values (never
through a float rate: the adapters read 23.976 as 23 in places).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import opentimelineio as otio

__all__ = ["ReadClip", "ReadTimeline", "exact_rate", "from_otio", "path_of_url"]


@dataclass(frozen=True, slots=True)
class ReadClip:
    """One clip as the file places it."""

    track: str
    """Where it sits, as the format names it: ``V1``/``A1``/... (xmeml, OTIO), or
    ``spine``/``lane 1``/``lane -1``/``audition`` (FCPXML)."""
    kind: str
    """``video`` or ``audio``: what of the file this clip plays."""
    name: str
    path: Path
    """The media file, decoded from its URL."""
    start: int
    """Timeline frame of its first frame, counted from the sequence's first frame (the
    start timecode subtracted)."""
    duration: int
    source_in: int
    """First frame used, counted from the file's first frame (timecode subtracted)."""
    enabled: bool
    locked: bool
    timecode_frames: int
    """The frame count the file's first frame's timecode names (0: none)."""


@dataclass(frozen=True, slots=True)
class ReadTimeline:
    rate: Fraction
    start_frames: int
    """The sequence's start timecode as a frame count."""
    width: int
    height: int
    clips: tuple[ReadClip, ...]

    def on(self, track: str) -> list[ReadClip]:
        return [c for c in self.clips if c.track == track]


def exact_rate(rate: float) -> Fraction:
    """A rate OTIO holds as a float (24000/1001 as 23.976023976023978) as the exact
    rate it stands for: NTSC rates have denominator 1001, the others are whole."""
    return Fraction(rate).limit_denominator(1001)


def path_of_url(url: str) -> Path:
    """A media reference's file: a ``file://`` URL (``file:///p``,
    ``file://localhost/p``) decoded to the file system's bytes, or a bare path."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return Path(url)
    assert parts.netloc in ("", "localhost"), url
    return Path(os.fsdecode(unquote_to_bytes(parts.path)))


def _frames(t: otio.opentime.RationalTime, rate: Fraction) -> int:
    """Whole frames at ``rate`` of a time, from its own value and rate (no float rate
    in the arithmetic: the value is counted at the exact rate its float names)."""
    exact = Fraction(t.value) * rate / exact_rate(t.rate)
    frames = round(exact)
    assert abs(exact - frames) < Fraction(1, 1000), (t, rate)
    return frames


def _locked(track: Any) -> bool:
    meta = track.metadata
    if "fcp_xml" in meta and "locked" in meta["fcp_xml"]:
        return bool(meta["fcp_xml"]["locked"] == "TRUE")
    if "Resolve_OTIO" in meta:
        return bool(meta["Resolve_OTIO"]["Locked"])
    return bool(meta.get("handoff", {}).get("locked", False))


def _enabled(item: Any) -> bool:
    fcp = item.metadata.get("fcp_xml", {})
    return bool(item.enabled) and fcp.get("enabled", "TRUE") == "TRUE"


def _size(timeline: Any) -> tuple[int, int]:
    """The sequence's frame size from whichever metadata the file carries."""
    ours = timeline.metadata.get("handoff")
    if ours:
        return int(ours["width"]), int(ours["height"])
    premiere = timeline.tracks.metadata.get("PremierePro_OTIO")
    if premiere:
        res = premiere["VideoResolution"]
        return int(res["width"]), int(res["height"])
    fcp = timeline.metadata.get("fcp_xml", {})  # otio-fcp-adapter: the <sequence>
    sc = fcp.get("media", {}).get("video", {}).get("format", {}).get("samplecharacteristics")
    if sc:
        return int(sc["width"]), int(sc["height"])
    return 0, 0


def from_otio(timeline: Any) -> ReadTimeline:
    """An OTIO timeline -- read by ``otio_json``, or by otio-fcp-adapter from xmeml --
    as a :class:`ReadTimeline`. Tracks are named by kind and order (``V1``, ``V2``,
    ``A1``, ...); a clip's ``source_in`` is its source range's start less its media's
    available range start (the file's timecode), which is ``timecode_frames``."""
    clips = [c for t in timeline.tracks for c in t.find_clips()]
    assert clips, "no clip to take the rate from"
    rate = exact_rate(clips[0].source_range.duration.rate)
    start = timeline.global_start_time
    width, height = _size(timeline)
    read: list[ReadClip] = []
    counts = {"video": 0, "audio": 0}
    for track in timeline.tracks:
        kind = "video" if track.kind == otio.schema.TrackKind.Video else "audio"
        counts[kind] += 1
        name = f"{kind[0].upper()}{counts[kind]}"
        locked = _locked(track)
        for index, item in enumerate(track):
            if not isinstance(item, otio.schema.Clip):
                continue
            placed = track.range_of_child_at_index(index)
            ref = item.media_reference
            avail = ref.available_range
            tc = 0 if avail is None else _frames(avail.start_time, rate)
            read.append(
                ReadClip(
                    track=name,
                    kind=kind,
                    name=item.name,
                    path=path_of_url(ref.target_url),
                    start=_frames(placed.start_time, rate),
                    duration=_frames(placed.duration, rate),
                    source_in=_frames(item.source_range.start_time, rate) - tc,
                    enabled=_enabled(item),
                    locked=locked,
                    timecode_frames=tc,
                )
            )
    return ReadTimeline(
        rate=rate,
        start_frames=0 if start is None else _frames(start, rate),
        width=width,
        height=height,
        clips=tuple(read),
    )
