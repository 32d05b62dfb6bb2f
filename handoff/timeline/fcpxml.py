"""FCPXML 1.10 / 1.11 for DaVinci Resolve and Final Cut Pro.

Layout (from the model of :mod:`handoff.timeline.model`):

- The **primary storyline** (``<spine>``) is V1: one ``<asset-clip>`` per clip, ``<gap>``
  elements where the picture pauses, and a trailing gap when the sound runs on past the
  last picture, so that every connected clip has something to hang from.
- Audio tracks become **connected clips** below the storyline: the first audio track
  on ``lane="-1"``, the next on ``lane="-2"``. With a master that is the narration on
  lane -1 and the clips' own sound, disabled (``enabled="0"``), on lane -2; the V1
  clips are then picture only (``srcEnable="video"``) so that their sound is not heard
  twice. Without a master the clips' own sound stays inside the V1 asset-clips, linked
  to the picture, which is where both Resolve (A1) and Final Cut expect it.
- A connected clip's ``offset`` is on its parent's clock: parent ``start`` + (timeline
  position - parent ``offset``). Each one hangs from the storyline item under its
  first frame, so a clip's own sound hangs from its picture.

A timeline from selects has alternates tracks (role ``alternate``: V2, V3, ...). FCPXML
carries them as **auditions**, Final Cut's own container for takes: at the pick's place
on the storyline an ``<audition>`` holds the pick first (the active one, as Final Cut
exports it) then the alternates in rank order, children without an ``offset`` (the
audition has it). Each alternate starts at its source frame that is in sync where the
pick starts (an audition starts every take at one timeline frame; an alternate that
should start later than the pick starts at its first frame, early by the difference).
Connected clips hang from the active pick. An alternate whose pick is not on V1 is
connected above the storyline instead, disabled.

Every time is a whole number of frames at the sequence rate, written as exact rational
seconds (``1001/24000s`` for one frame at 23.976). The sequence's ``tcStart`` is its
start timecode as a time (the frame count times the frame duration: 01:00:00:00 at 24
fps is ``3600s``; ``tcFormat="DF"`` for drop-frame), and the storyline's offsets count
from it, as Final Cut and Resolve export them. FCPXML has no track lock: the locked
A1 of the model is written like any other track.

Since 1.9 an ``<asset>`` names its file in a ``<media-rep>`` child (``src`` on the asset
itself is invalid); the URL is ``file:///`` + the percent-encoded absolute path.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from fractions import Fraction
from math import gcd
from pathlib import PurePath
from typing import Any

import opentimelineio as otio
from lxml import etree

from handoff.errors import UsageError
from handoff.files.names import xml_text
from handoff.timeline import FCPXML_VERSIONS
from handoff.timeline.model import META, PlacedClip, frames_at, placed_clips, rate_of
from handoff.timeline.paths import file_url

__all__ = ["VERSIONS", "write_fcpxml"]

VERSIONS = FCPXML_VERSIONS

# Final Cut's names for common formats: frame size part and rate part of
# "FFVideoFormat<size>p<rate>". Other sizes/rates get a format without a name.
_SIZE_NAMES = {
    (1920, 1080): "1080",
    (1280, 720): "720",
    (3840, 2160): "3840x2160",
    (4096, 2160): "4096x2160",
    (2048, 1080): "2048x1080",
}
_RATE_NAMES = {
    Fraction(24000, 1001): "2398",
    Fraction(24): "24",
    Fraction(25): "25",
    Fraction(30000, 1001): "2997",
    Fraction(30): "30",
    Fraction(50): "50",
    Fraction(60000, 1001): "5994",
    Fraction(60): "60",
}
_AUDIO_RATES = {32000: "32k", 44100: "44.1k", 48000: "48k", 88200: "88.2k", 96000: "96k"}


def format_name(width: int, height: int, rate: Fraction) -> str | None:
    """Final Cut's name for a video format (``FFVideoFormat1080p2398``), if it has one."""
    size = _SIZE_NAMES.get((width, height))
    fps = _RATE_NAMES.get(rate)
    if size is None or fps is None:
        return None
    return f"FFVideoFormat{size}p{fps}"


class _Clock:
    """Frames at the sequence rate -> FCPXML rational seconds ("1001/24000s")."""

    __slots__ = ("_den", "_num")

    def __init__(self, rate: Fraction) -> None:
        # One frame lasts rate.denominator / rate.numerator seconds.
        self._num = rate.denominator
        self._den = rate.numerator

    def __call__(self, frames: int) -> str:
        if frames == 0:
            return "0s"
        num = frames * self._num
        g = gcd(num, self._den)
        num //= g
        den = self._den // g
        return f"{num}s" if den == 1 else f"{num}/{den}s"


@dataclass(slots=True)
class _Asset:
    id: str
    format_id: str | None
    element: Any


@dataclass(slots=True)
class _Anchor:
    """A storyline element and where it sits."""

    offset: int
    start: int
    element: Any


class _Writer:
    def __init__(self, timeline: otio.schema.Timeline, version: str) -> None:
        self.timeline = timeline
        self.meta: dict[str, Any] = dict(timeline.metadata.get(META, {}))
        self.rate = rate_of(timeline)
        self.t = _Clock(self.rate)
        start = timeline.global_start_time
        self.start = 0 if start is None else frames_at(start, self.rate)
        """The start timecode's frame count: the storyline's clock begins there."""
        self.root = etree.Element("fcpxml", version=version)
        self.resources = etree.SubElement(self.root, "resources")
        self._ids = 0
        self._formats: dict[tuple[int, int], str] = {}
        self._assets: dict[str, _Asset] = {}

    def _next_id(self) -> str:
        self._ids += 1
        return f"r{self._ids}"

    # ------------------------------------------------------------ resources

    def _format(self, width: int, height: int) -> str:
        key = (width, height)
        fid = self._formats.get(key)
        if fid is None:
            fid = self._next_id()
            attrs = {"id": fid}
            name = format_name(width, height, self.rate)
            if name is not None:
                attrs["name"] = name
            attrs["frameDuration"] = self.t(1)
            attrs["width"] = str(width)
            attrs["height"] = str(height)
            etree.SubElement(self.resources, "format", attrs)
            self._formats[key] = fid
        return fid

    def _asset(self, item: PlacedClip) -> _Asset:
        path = item.path
        asset = self._assets.get(path)
        if asset is not None:
            return asset
        m = item.meta
        has_video = bool(m.get("has_video", True))
        has_audio = bool(m.get("has_audio", False))
        aid = self._next_id()
        format_id = None
        if has_video:
            width = int(m.get("width") or self.meta["width"])
            height = int(m.get("height") or self.meta["height"])
            format_id = self._format(width, height)
        frames = m.get("file_frames")
        if frames is None:
            avail = item.clip.media_reference.available_range
            frames = (
                frames_at(avail.duration, self.rate)
                if avail is not None
                else item.source_start + item.duration
            )
        name = item.clip.media_reference.name or PurePath(path).name or item.clip.name
        # A timeline made elsewhere may name things XML cannot hold (handoff.files.names).
        attrs = {"id": aid, "name": xml_text(str(name)), "start": "0s",
                 "duration": self.t(round(float(frames)))}  # fmt: skip
        if has_video:
            attrs["hasVideo"] = "1"
            assert format_id is not None
            attrs["format"] = format_id
        if has_audio:
            attrs["hasAudio"] = "1"
            attrs["audioSources"] = "1"
            attrs["audioChannels"] = str(int(m.get("audio_channels") or 2))
            if m.get("audio_sample_rate"):
                attrs["audioRate"] = str(int(m["audio_sample_rate"]))
        el = etree.SubElement(self.resources, "asset", attrs)
        src = file_url(PurePath(path))
        etree.SubElement(el, "media-rep", kind="original-media", src=src)
        asset = _Asset(aid, format_id, el)
        self._assets[path] = asset
        return asset

    # ------------------------------------------------------------ story

    def at(self, frame: int) -> str:
        """A storyline ``offset`` for timeline frame ``frame``: the sequence's clock
        starts at ``tcStart`` (Final Cut and Resolve export a 01:00:00:00 sequence's
        first clip at ``offset="3600s"``). Connected clips are on their parent's clock
        and take :attr:`t` instead."""
        return self.t(self.start + frame)

    def _clip_element(
        self,
        parent: Any,
        item: PlacedClip,
        offset: int | None,
        *,
        lane: int | None = None,
        src_enable: str | None = None,
        enabled: bool | None = None,
    ) -> Any:
        """``offset`` None: none written (a take inside an audition); ``enabled``: instead
        of the clip's own."""
        asset = self._asset(item)
        attrs: dict[str, str] = {"ref": asset.id}
        if lane is not None:
            attrs["lane"] = str(lane)
        if offset is not None:
            attrs["offset"] = self.t(offset) if lane is not None else self.at(offset)
        attrs["name"] = xml_text(str(item.clip.name or asset.element.get("name")))
        attrs["start"] = self.t(item.source_start)
        attrs["duration"] = self.t(item.duration)
        attrs["enabled"] = "1" if (item.enabled if enabled is None else enabled) else "0"
        if src_enable is not None:
            attrs["srcEnable"] = src_enable
        if asset.format_id is not None:
            attrs["format"] = asset.format_id
        attrs["tcFormat"] = "NDF"
        return etree.SubElement(parent, "asset-clip", attrs)

    @staticmethod
    def _alternates_of(
        item: PlacedClip, auditions: dict[object, list[PlacedClip]]
    ) -> list[PlacedClip]:
        segment = item.meta.get("segment")
        return [] if segment is None else auditions.get(segment, [])

    def _audition_take(
        self, audition: Any, alt: PlacedClip, pick: PlacedClip, *, linked: bool
    ) -> None:
        """An alternate inside the pick's audition, enabled (the audition plays one take);
        its sound muted like the pick's when the sequence's sound is elsewhere."""
        start, duration = _audition_range(alt, pick)
        take = replace(alt, source_start=start, duration=duration)
        has_audio = bool(alt.meta.get("has_audio", False))
        self._clip_element(audition, take, None,
                           src_enable="video" if has_audio and not linked else None,
                           enabled=True)  # fmt: skip

    def write(self) -> bytes:
        tl = self.timeline
        picture: otio.schema.Track | None = None
        others: list[otio.schema.Track] = []
        takes: list[otio.schema.Track] = []
        for track in tl.tracks:
            role = track.metadata.get(META, {}).get("role")
            is_picture = role == "picture" if role else track.kind == otio.schema.TrackKind.Video
            if picture is None and is_picture:
                picture = track
            elif role == "alternate":
                takes.append(track)
            else:
                others.append(track)
        v_items = [] if picture is None else list(placed_clips(picture, self.rate))
        # Alternates by segment, in rank order, for the auditions.
        auditions: dict[object, list[PlacedClip]] = {}
        for track in takes:
            for item in placed_clips(track, self.rate):
                auditions.setdefault(item.meta.get("segment"), []).append(item)
        for alts in auditions.values():
            alts.sort(key=lambda a: int(a.meta.get("rank") or 0))
        on_v1 = {v.meta.get("segment") for v in v_items if v.meta.get("segment") is not None}
        lanes: list[tuple[int, list[PlacedClip]]] = []
        up = down = 0
        leftover = [a for seg, alts in auditions.items() if seg not in on_v1 for a in alts]
        for rank in sorted({int(a.meta.get("rank") or 2) for a in leftover}):
            up += 1
            lanes.append((up, [a for a in leftover if int(a.meta.get("rank") or 2) == rank]))
        disabled_lanes = set(range(1, up + 1))
        for track in others:
            items = list(placed_clips(track, self.rate))
            if track.kind == otio.schema.TrackKind.Video:
                up += 1
                lanes.append((up, items))
            else:
                down -= 1
                lanes.append((down, items))

        # The clips' own sound can stay inside the V1 asset-clips (linked to the
        # picture) when the first audio track is exactly that sound, enabled.
        linked: set[int] = set()
        first_audio = next((i for i, (lane, _) in enumerate(lanes) if lane == -1), None)
        if first_audio is not None and v_items:
            a_items = lanes[first_audio][1]
            by_start = {v.start: v for v in v_items}
            if a_items and all(
                (v := by_start.get(a.start)) is not None
                and a.enabled and v.enabled
                and (a.path, a.source_start, a.duration) == (v.path, v.source_start, v.duration)
                for a in a_items
            ):  # fmt: skip
                linked = {a.start for a in a_items}
                del lanes[first_audio]
                lanes = [(lane + 1 if lane < 0 else lane, items) for lane, items in lanes]

        end = max(
            [i.start + i.duration for i in v_items]
            + [i.start + i.duration for _, items in lanes for i in items]
            + [0]
        )
        width = int(self.meta.get("width") or 1920)
        height = int(self.meta.get("height") or 1080)
        seq_format = self._format(width, height)
        # Assets in the order they are first met on the timeline.
        for item in v_items:
            self._asset(item)
            for alt in self._alternates_of(item, auditions):
                self._asset(alt)
        for _, items in lanes:
            for item in items:
                self._asset(item)

        library = etree.SubElement(self.root, "library")
        name = xml_text(tl.name or "handoff")
        event = etree.SubElement(library, "event", name=name)
        project = etree.SubElement(event, "project", name=name)
        channels = int(self.meta.get("audio_channels") or 2)
        sample_rate = int(self.meta.get("sample_rate") or 48000)
        sequence = etree.SubElement(
            project,
            "sequence",
            format=seq_format,
            duration=self.t(end),
            tcStart=self.t(self.start),
            tcFormat="DF" if self.meta.get("drop_frame") else "NDF",
            audioLayout="mono" if channels == 1 else "stereo",
            audioRate=_AUDIO_RATES.get(sample_rate, "48k"),
        )
        spine = etree.SubElement(sequence, "spine")

        anchors: list[_Anchor] = []
        t = 0
        for item in v_items:
            if item.start > t:
                gap = etree.SubElement(spine, "gap", name="Gap", offset=self.at(t),
                                       duration=self.t(item.start - t))  # fmt: skip
                anchors.append(_Anchor(t, 0, gap))
            has_audio = bool(item.meta.get("has_audio", False))
            picture_only = has_audio and item.start not in linked
            alts = self._alternates_of(item, auditions)
            if alts:
                audition = etree.SubElement(spine, "audition", offset=self.at(item.start))
                el = self._clip_element(audition, item, None,
                                        src_enable="video" if picture_only else None)  # fmt: skip
                for alt in alts:
                    self._audition_take(audition, alt, item, linked=item.start in linked)
            else:
                el = self._clip_element(
                    spine, item, item.start, src_enable="video" if picture_only else None
                )
            anchors.append(_Anchor(item.start, item.source_start, el))
            t = item.start + item.duration
        if end > t or not anchors:
            gap = etree.SubElement(spine, "gap", name="Gap", offset=self.at(t),
                                   duration=self.t(max(end - t, 1)))  # fmt: skip
            anchors.append(_Anchor(t, 0, gap))
            t = max(end, t + 1)
        sequence.set("duration", self.t(t))

        offsets = [a.offset for a in anchors]
        for lane, items in lanes:
            for item in items:
                parent = anchors[max(bisect_right(offsets, item.start) - 1, 0)]
                local = parent.start + (item.start - parent.offset)
                audio_only = lane < 0 and bool(item.meta.get("has_video", True))
                self._clip_element(
                    parent.element, item, local, lane=lane,
                    src_enable="audio" if audio_only else None,
                    enabled=False if lane in disabled_lanes else None,
                )  # fmt: skip

        body: bytes = etree.tostring(
            self.root, encoding="UTF-8", xml_declaration=False, pretty_print=True,
            doctype="<!DOCTYPE fcpxml>",
        )  # fmt: skip
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _audition_range(alt: PlacedClip, pick: PlacedClip) -> tuple[int, int]:
    """(source start, duration) of an alternate inside the pick's audition: from its
    frame that is in sync at the pick's first timeline frame to its own end on its
    track; from its first frame when it should start later than the pick."""
    in_sync = alt.source_start + (pick.start - alt.start)
    if in_sync < 0:
        return 0, alt.source_start + alt.duration
    duration = alt.start + alt.duration - pick.start
    if duration <= 0:  # ends before the pick begins: the take as placed, out of sync
        return alt.source_start, alt.duration
    return in_sync, duration


def write_fcpxml(timeline: otio.schema.Timeline, *, version: str = "1.10") -> bytes:
    """The FCPXML file (``version`` "1.9", "1.10" or "1.11") for a timeline of the model."""
    if version not in VERSIONS:
        raise UsageError(f"FCPXML version {version} not supported (one of: {', '.join(VERSIONS)})")
    return _Writer(timeline, version).write()
