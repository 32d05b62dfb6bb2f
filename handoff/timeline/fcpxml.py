"""FCPXML 1.9 / 1.10 / 1.11 for DaVinci Resolve and Final Cut Pro.

Layout (from the model of :mod:`handoff.timeline.model`):

- **With a master narration, the narration is the primary storyline** (``<spine>``): a
  gap before it when it starts after the sequence's first frame, the narration
  ``<asset-clip audioRole="dialogue">``, and a trailing gap while the pictures run on past
  it. The sound is the fixed thing: in Final Cut deleting or trimming a picture leaves the
  narration where it is (connected clips never push the storyline). Every picture is a
  **connected clip on lane 1**, hanging from the storyline item under its first frame.
  What Resolve should make of it -- inferred from its own exports (its FCPXML 1.9 and
  1.11 exports put V1 in the spine; its FCP7 XML puts A1 under V1) and not observed, as
  no Resolve was run here: the spine's sound on A1, the lane-1 pictures on V1 (a spine of
  sound has no picture, so lane 1 is the lowest video track), the clips' own muted sound
  on the audio tracks below the narration.
- **Without a master** the clips keep their sound: V1 is the spine, one ``<asset-clip>``
  per clip (picture and its own sound linked, Resolve's A1), with ``<gap>`` elements
  where the picture pauses.
- A **picture-only clip** (a file with sound whose sound is not to be heard there) is
  written as Resolve itself exports a picture-only clip: a ``<clip>`` holding
  ``<video ref=...>`` over the whole asset (Resolve's FCPXML 1.11 export transcribed on
  FCPCafe's "Immersive" page, kept in CommandPost's repository). ``srcEnable`` is not used
  anywhere: Resolve honours it on ``ref-clip`` only (reports from round trips), so a
  ``srcEnable="video"`` asset-clip could play its sound under the narration. The clip's
  own sound rides inside that ``<clip>``, beside the ``<video>``, as ``<audio lane="-1"
  enabled="0" role="effects">``: there, muted, for the editor to switch on. (Final Cut
  10.4's own exports, published in otio-fcpx-xml-adapter's test data, carry a clip's
  detached sound as ``<audio lane="-1" role="dialogue.dialogue-1">`` on lane -1 inside
  the ``<clip>``, wrapped in a clip and gap of its own; the DTD allows the ``<audio>``
  directly, which is simpler to read.) Sound with no picture on V1 above it is connected
  below the storyline (lanes -1, -2, ...).
- Roles: the narration ``dialogue`` (``audioRole`` on its asset-clip, as Final Cut writes
  it), the clips' own sound ``effects`` (a role every Final Cut library has).
- A connected clip's ``offset`` is on its parent's clock: parent ``start`` + (timeline
  frame - parent ``offset``).

A timeline from selects has alternates tracks (role ``alternate``: V2, V3, ...). FCPXML
carries them as **auditions**, Final Cut's own container for takes: at the pick's place an
``<audition>`` (on lane 1 with a master, in the spine without) holds the pick first (the
active one, as Final Cut exports it) then the alternates in rank order, children without
an ``offset`` (the audition has it). Each alternate starts at its source frame that is in
sync where the pick starts (an audition starts every take at one timeline frame; an
alternate that should start later than the pick starts at its first frame, early by the
difference). An alternate whose pick is not on V1 is connected on a lane of its own above
the pictures, disabled.

**Timecode.** An asset's ``start`` is its file's timecode as a time (``3600s`` for
01:00:00:00), and every ``start`` that points into it is on that clock: an asset-clip's
``start`` is timecode + in point; inside a ``<clip>`` the ``<video>``/``<audio>`` sit at
``offset`` = ``start`` = the timecode, so the clip's own clock is the asset's and its
``start`` is timecode + in point too. (Resolve matches media by timecode on import: an
asset ``start="0s"`` on timecoded footage offsets every trim.) Files without timecode stay
at ``0s``.

Every time is a whole number of frames at the sequence rate, written as exact rational
seconds (``1001/24000s`` for one frame at 23.976). The sequence's ``tcStart`` is its
start timecode as a time (the frame count times the frame duration: 01:00:00:00 at 24
fps is ``3600s``; ``tcFormat="DF"`` for drop-frame, on a clip for a drop-frame source
timecode), and the storyline's offsets count
from it, as Final Cut and Resolve export them. FCPXML has no track lock: the model's
locked A1 is not carried (lock it by hand in Resolve; in Final Cut the storyline holds
the narration).

Since 1.9 an ``<asset>`` names its file in a ``<media-rep>`` child (``src`` on the asset
itself is invalid); the URL is ``file:///`` + the percent-encoded absolute path, a Windows
drive as ``file:///D:/``.

Compared element by element with the editors' exports, what is not written and why:
Resolve's ``<adjust-transform position="0 0" anchor="0 0" scale="1 1"/>`` in every clip
is the identity (the DTD's default); Final Cut's ``uid``/``modDate``, ``colorSpace`` on
formats and ``<metadata>`` come from its library database, which a file written from
outside has not got; Final Cut's ``srcCh`` on ``<audio>`` maps source channels, and every
channel is wanted here (the default); Final Cut's ``audioRole="dialogue"`` on a camera
clip's asset-clip is its default role, written here only where it says something (the
narration), the linked clips of a timeline without master keeping the default.
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

# Final Cut's names for video formats, "FFVideoFormat<size>p<rate>": the progressive
# sizes and the rates each is offered at, from the list of Final Cut's format names in
# reuelk/pipeline (Pipeline/Classes/FCPXMLUtility.swift). Resolve's FCPXML 1.9 export
# uses the same names (``FFVideoFormat720x576p25`` in lossless-cut's test fixtures) and
# writes ``FFVideoFormatRateUndefined`` for a size Final Cut has no name for (its 1.11
# export of 8160x7200 footage).
_ALL_RATES = ("2398", "24", "25", "2997", "30", "50", "5994", "60")
_UP_TO_30 = ("2398", "24", "25", "2997", "30")
_NAMED_BY_SIZE = (
    (2048, 1024), (2048, 1080), (2048, 1152), (2048, 1536), (2048, 1556),
    (3840, 2160), (4096, 2048), (4096, 2160), (4096, 2304), (4096, 3112),
    (5120, 2160), (5120, 2560), (5120, 2700),
)  # fmt: skip
_SIZE_NAMES: dict[tuple[int, int], tuple[str, tuple[str, ...]]] = {
    (640, 360): ("640x360", ("2997",)),
    (640, 480): ("640x480", _UP_TO_30),
    (720, 480): ("DV720x480", ("2398", "2997")),
    (720, 486): ("720x486", ("2398", "2997")),
    (720, 576): ("720x576", ("25",)),
    (960, 540): ("960x540", _UP_TO_30),
    (960, 720): ("960x720", _ALL_RATES),
    (1280, 720): ("720", _ALL_RATES),
    (1280, 1080): ("1280x1080", _ALL_RATES),
    (1440, 1080): ("1440x1080", _ALL_RATES),
    (1920, 1080): ("1080", _ALL_RATES),
    **{(w, h): (f"{w}x{h}", _ALL_RATES) for w, h in _NAMED_BY_SIZE},
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
RATE_UNDEFINED = "FFVideoFormatRateUndefined"
_AUDIO_RATES = {32000: "32k", 44100: "44.1k", 48000: "48k", 88200: "88.2k", 96000: "96k"}


def format_name(width: int, height: int, rate: Fraction) -> str:
    """Final Cut's name for a video format (``FFVideoFormat1080p2398``), or
    ``FFVideoFormatRateUndefined`` where it has none, as Resolve writes it."""
    size = _SIZE_NAMES.get((width, height))
    fps = _RATE_NAMES.get(rate)
    if size is None or fps is None or fps not in size[1]:
        return RATE_UNDEFINED
    return f"FFVideoFormat{size[0]}p{fps}"


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
    tc: int
    """The file's timecode in frames: the asset's ``start``."""
    frames: int
    has_video: bool
    has_audio: bool


@dataclass(slots=True)
class _Anchor:
    """A storyline element, where it sits (``offset``, timeline frame) and its own clock
    there (``start``)."""

    offset: int
    start: int
    element: Any


# What of a clip's file an element plays.
_ALL, _PICTURE, _SOUND = "all", "picture", "sound"


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
            etree.SubElement(self.resources, "format", id=fid,
                             name=format_name(width, height, self.rate),
                             frameDuration=self.t(1), width=str(width),
                             height=str(height))  # fmt: skip
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
        frames = round(float(frames))
        name = item.clip.media_reference.name or PurePath(path).name or item.clip.name
        # A timeline made elsewhere may name things XML cannot hold (handoff.files.names).
        attrs = {"id": aid, "name": xml_text(str(name)), "start": self.t(item.tc),
                 "duration": self.t(frames)}  # fmt: skip
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
        asset = _Asset(aid, format_id, el, item.tc, frames, has_video, has_audio)
        self._assets[path] = asset
        return asset

    # ------------------------------------------------------------ story

    def at(self, frame: int) -> str:
        """A storyline ``offset`` for timeline frame ``frame``: the sequence's clock
        starts at ``tcStart`` (Final Cut and Resolve export a 01:00:00:00 sequence's
        first clip at ``offset="3600s"``). Connected clips are on their parent's clock
        and take :attr:`t` instead."""
        return self.t(self.start + frame)

    def _element(
        self,
        parent: Any,
        item: PlacedClip,
        offset: int | None,
        *,
        lane: int | None = None,
        plays: str = _ALL,
        enabled: bool | None = None,
        sound: bool | None = None,
        role: str | None = None,
    ) -> tuple[Any, int]:
        """The element for ``item`` and its own clock at its first frame (its ``start``).

        ``offset``: a timeline frame in the storyline (``lane`` None), a frame on the
        parent's clock for a connected clip, None for a take in an audition. ``plays``:
        what of the file; ``_PICTURE`` with ``sound`` not None carries the clip's sound,
        muted unless ``sound``, inside the clip. ``enabled``: instead of the clip's own.
        ``role``: the audio role."""
        asset = self._asset(item)
        start = asset.tc + item.source_start
        if plays == _PICTURE and not asset.has_audio:
            plays = _ALL
        if plays == _SOUND and not asset.has_video:
            plays = _ALL
        attrs: dict[str, str] = {}
        if plays == _ALL:
            attrs["ref"] = asset.id
        if lane is not None:
            attrs["lane"] = str(lane)
        if offset is not None:
            attrs["offset"] = self.t(offset) if lane is not None else self.at(offset)
        attrs["name"] = xml_text(str(item.clip.name or asset.element.get("name")))
        attrs["start"] = self.t(start)
        attrs["duration"] = self.t(item.duration)
        attrs["enabled"] = "1" if (item.enabled if enabled is None else enabled) else "0"
        if asset.format_id is not None:
            attrs["format"] = asset.format_id
        # The clip's timecode display: its file's (drop-frame only for a drop-frame tmcd).
        attrs["tcFormat"] = "DF" if item.meta.get("tc_drop_frame") else "NDF"
        if plays == _ALL:
            if role is not None and asset.has_audio:
                attrs["audioRole"] = role
            return etree.SubElement(parent, "asset-clip", attrs), start
        # Resolve's own form for part of a file: a <clip> holding the part over the whole
        # asset, on the asset's clock (see the module docstring).
        clip = etree.SubElement(parent, "clip", attrs)
        whole = {"offset": self.t(asset.tc), "ref": asset.id, "start": self.t(asset.tc),
                 "duration": self.t(asset.frames)}  # fmt: skip
        if plays == _PICTURE:
            etree.SubElement(clip, "video", whole)
            if sound is not None:
                etree.SubElement(clip, "audio", {"lane": "-1", **whole,
                                                 "enabled": "1" if sound else "0",
                                                 "role": "effects"})  # fmt: skip
        else:
            audio = etree.SubElement(clip, "audio", whole)
            if role is not None:
                audio.set("role", role)
        return clip, start

    @staticmethod
    def _alternates_of(
        item: PlacedClip, auditions: dict[object, list[PlacedClip]]
    ) -> list[PlacedClip]:
        segment = item.meta.get("segment")
        return [] if segment is None else auditions.get(segment, [])

    def _picture(
        self,
        parent: Any,
        item: PlacedClip,
        offset: int,
        alts: list[PlacedClip],
        *,
        lane: int | None,
        linked: bool,
        sound: PlacedClip | None,
    ) -> tuple[Any, int]:
        """A V1 clip: whole (``linked``: its sound is the sequence's) or picture only with
        its own sound muted inside when ``sound`` is its A-track twin; in an audition
        with its alternates if it has any."""
        plays = _ALL if linked else _PICTURE
        carried = None if sound is None else sound.enabled
        if not alts:
            return self._element(parent, item, offset, lane=lane, plays=plays, sound=carried)
        attrs = {} if lane is None else {"lane": str(lane)}
        attrs["offset"] = self.at(offset) if lane is None else self.t(offset)
        audition = etree.SubElement(parent, "audition", attrs)
        el = self._element(audition, item, None, plays=plays, sound=carried)
        for alt in alts:
            # Every take enabled (the audition plays one); its sound as the pick's.
            first, duration = _audition_range(alt, item)
            take = replace(alt, source_start=first, duration=duration)
            self._element(audition, take, None, plays=plays, enabled=True,
                          sound=None if carried is None else False)  # fmt: skip
        return el

    def write(self) -> bytes:
        tl = self.timeline
        picture: otio.schema.Track | None = None
        master: otio.schema.Track | None = None
        clip_sound: otio.schema.Track | None = None
        videos: list[otio.schema.Track] = []
        audios: list[otio.schema.Track] = []
        takes: list[otio.schema.Track] = []
        for track in tl.tracks:
            role = track.metadata.get(META, {}).get("role")
            is_video = track.kind == otio.schema.TrackKind.Video
            is_picture = role == "picture" if role else is_video
            if picture is None and is_picture:
                picture = track
            elif role == "alternate":
                takes.append(track)
            elif role == "master" and master is None and not is_video:
                master = track
            elif is_video:
                videos.append(track)
            elif clip_sound is None and role in ("clip-audio", None):
                clip_sound = track
            else:
                audios.append(track)
        rate = self.rate
        v_items = [] if picture is None else list(placed_clips(picture, rate))
        m_items = [] if master is None else list(placed_clips(master, rate))
        s_items = [] if clip_sound is None else list(placed_clips(clip_sound, rate))
        # Alternates by segment, in rank order, for the auditions.
        auditions: dict[object, list[PlacedClip]] = {}
        for track in takes:
            for item in placed_clips(track, rate):
                auditions.setdefault(item.meta.get("segment"), []).append(item)
        for alts in auditions.values():
            alts.sort(key=lambda a: int(a.meta.get("rank") or 0))

        # A clip's own sound, when it is exactly under its picture, goes with it: linked
        # (the sequence's sound, no master) or muted inside the picture-only clip.
        by_start = {v.start: v for v in v_items}
        twins: dict[int, PlacedClip] = {}
        loose: list[PlacedClip] = []
        for a in s_items:
            v = by_start.get(a.start)
            if v is not None and (a.path, a.source_start, a.duration) == (
                v.path, v.source_start, v.duration
            ):  # fmt: skip
                twins[v.start] = a
            else:
                loose.append(a)
        narrated = master is not None
        linked = (
            set()
            if narrated
            else {s for s, a in twins.items() if a.enabled and by_start[s].enabled}
        )

        # Connected lanes: (lane, items, disabled).
        pic_lane = 1 if narrated else 0
        lanes: list[tuple[int, list[PlacedClip], bool]] = []
        up, down = pic_lane, 0
        on_v1 = {v.meta.get("segment") for v in v_items if v.meta.get("segment") is not None}
        leftover = [a for seg, alts in auditions.items() if seg not in on_v1 for a in alts]
        for rank in sorted({int(a.meta.get("rank") or 2) for a in leftover}):
            up += 1
            lanes.append((up, [a for a in leftover if int(a.meta.get("rank") or 2) == rank],
                          True))  # fmt: skip
        for track in videos:
            up += 1
            lanes.append((up, list(placed_clips(track, rate)), False))
        # Sound not carried by a picture (twins are): the clip-sound track's, then others.
        for items in ([loose] if loose else []) + [
            list(placed_clips(track, rate)) for track in audios
        ]:
            down -= 1
            lanes.append((down, items, False))

        story = m_items if narrated else v_items
        end = max(
            [i.start + i.duration for i in [*v_items, *m_items]]
            + [i.start + i.duration for _, items, _ in lanes for i in items]
            + [0]
        )
        width = int(self.meta.get("width") or 1920)
        height = int(self.meta.get("height") or 1080)
        seq_format = self._format(width, height)
        # Assets in the order they are first met on the timeline.
        for item in story:
            self._asset(item)
        for item in v_items:
            self._asset(item)
            for alt in self._alternates_of(item, auditions):
                self._asset(alt)
        for _, items, _ in lanes:
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
        for item in story:
            if item.start > t:
                gap = etree.SubElement(spine, "gap", name="Gap", offset=self.at(t),
                                       duration=self.t(item.start - t))  # fmt: skip
                anchors.append(_Anchor(t, 0, gap))
            if narrated:
                el, local = self._element(spine, item, item.start, plays=_SOUND,
                                          role="dialogue")  # fmt: skip
            else:
                el, local = self._picture(
                    spine, item, item.start, self._alternates_of(item, auditions), lane=None,
                    linked=item.start in linked,
                    sound=None if item.start in linked else twins.get(item.start),
                )  # fmt: skip
            anchors.append(_Anchor(item.start, local, el))
            t = item.start + item.duration
        if end > t or not anchors:
            gap = etree.SubElement(spine, "gap", name="Gap", offset=self.at(t),
                                   duration=self.t(max(end - t, 1)))  # fmt: skip
            anchors.append(_Anchor(t, 0, gap))
            t = max(end, t + 1)
        sequence.set("duration", self.t(t))

        offsets = [a.offset for a in anchors]

        def parent_of(frame: int) -> tuple[Any, int]:
            """The storyline element under timeline ``frame`` and ``frame`` on its clock."""
            parent = anchors[max(bisect_right(offsets, frame) - 1, 0)]
            return parent.element, parent.start + (frame - parent.offset)

        if narrated:
            for item in v_items:
                parent, local = parent_of(item.start)
                self._picture(parent, item, local, self._alternates_of(item, auditions),
                              lane=pic_lane, linked=False,
                              sound=twins.get(item.start))  # fmt: skip
        for lane, items, disabled in lanes:
            for item in items:
                parent, local = parent_of(item.start)
                self._element(
                    parent, item, local, lane=lane,
                    plays=_SOUND if lane < 0 else _PICTURE,
                    enabled=False if disabled else None,
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
