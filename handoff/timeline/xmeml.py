"""Premiere Pro's FCP7 XML (``xmeml`` version 4), written the way Premiere writes it.

The shape follows Premiere's own exports rather than Final Cut Pro 7's: a stereo audio
track is an *exploded pair* of xmeml tracks (``currentExplodedTrackIndex`` 0 and 1,
``premiereTrackType="Stereo"``, one clipitem per channel picking its channel with
``<sourcetrack>``, ``<outputchannelindex>`` 1 and 2); a mono track is one xmeml track
(``premiereTrackType="Mono"``). Every track ends with ``<enabled>`` and ``<locked>``
after its clipitems -- Premiere keeps locked tracks locked on import.

Rates: 23.976 is ``<timebase>24</timebase><ntsc>TRUE</ntsc>``; every element that has a
rate has exactly one ``<rate>``. A file is written in full the first time it is used and
as ``<file id="file-N"/>`` after that. A clip's picture and its own sound are linked
(``<link>``); the master narration is linked to no clip (its two channels, when stereo,
to each other, as Premiere does for any stereo file).

Channel counts: an OTIO audio track becomes as many xmeml tracks as it has channels
(``metadata["handoff"]["channels"]``, widened to the clips' own count so no sound is
dropped): one -> a Mono track, two -> a Stereo pair, more -> that many Mono tracks, one
per channel. A mono clip on a stereo track sits on the pair's first track only
(``premiereChannelType="mono"``), as Premiere exports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import PurePath
from typing import Any

import opentimelineio as otio
from lxml import etree

from handoff.errors import UnsupportedError
from handoff.files.names import xml_text
from handoff.timeline.model import META, PlacedClip, frames_at, placed_clips, rate_of
from handoff.timeline.paths import premiere_pathurl
from handoff.timeline.timecode import DROP_FRAME_RATES, timecode_at

__all__ = ["PPRO_TICKS_PER_SECOND", "write_xmeml", "xmeml_rate"]

PPRO_TICKS_PER_SECOND = 254016000000
"""Premiere's time unit (``pproTicksIn``/``pproTicksOut``)."""

_SubElement = etree.SubElement
_copy: Callable[[etree._Element], etree._Element] = etree._Element.__copy__  # type: ignore[attr-defined]
"""A copy of an element and its subtree (lxml's own, without the copy module's dispatch)."""
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_HEAD = (
    "masterclipid", "name", "enabled", "duration", "rate", "start", "end", "in", "out",
    "pproTicksIn", "pproTicksOut",
)  # fmt: skip
"""A clipitem's first elements, in Premiere's order."""


def xmeml_rate(rate: Fraction) -> tuple[int, bool]:
    """``(timebase, ntsc)`` for an exact frame rate: 24000/1001 -> (24, True), 25 -> (25,
    False). Raises :class:`UnsupportedError` for a rate xmeml cannot say exactly."""
    if rate > 0 and rate.denominator == 1:
        return rate.numerator, False
    if rate > 0 and rate.denominator == 1001 and rate.numerator % 1000 == 0:
        return rate.numerator // 1000, True
    raise UnsupportedError(
        f"frame rate {rate.numerator}/{rate.denominator} cannot be written in FCP7 XML "
        "(it takes whole rates and the NTSC rates 23.976, 29.97, 59.94)"
    )


def _bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _text(parent: etree._Element, tag: str, text: str | int) -> etree._Element:
    el = _SubElement(parent, tag)
    el.text = str(text)
    return el


@dataclass(slots=True)
class _Item:
    """One xmeml clipitem: where it goes and what it links to."""

    placed: PlacedClip
    mediatype: str
    track_index: int
    """1-based among the xmeml tracks of its media type."""
    clip_index: int
    """1-based among the clipitems of its xmeml track."""
    source_track: int | None = None
    channel_type: str | None = None
    id: str = ""
    group: list[_Item] | None = None

    @property
    def meta(self) -> Any:
        return self.placed.meta

    @property
    def path(self) -> str:
        """The media file's absolute path."""
        return self.placed.path


@dataclass(slots=True)
class _XTrack:
    """One xmeml track (a stereo OTIO track makes two)."""

    mediatype: str
    enabled: bool
    locked: bool
    exploded: tuple[int, int] | None = None
    """(currentExplodedTrackIndex, totalExplodedTrackCount) for audio."""
    track_type: str | None = None
    output_channel: int | None = None
    items: list[_Item] = field(default_factory=list)


class _Writer:
    def __init__(self, timeline: Any) -> None:
        self.timeline = timeline
        meta = timeline.metadata[META]
        self.rate = rate_of(timeline)
        self.timebase, self.ntsc = xmeml_rate(self.rate)
        self.ticks_per_frame = Fraction(PPRO_TICKS_PER_SECOND) / self.rate
        self.width = int(meta["width"])
        self.height = int(meta["height"])
        self.sample_rate = int(meta.get("sample_rate") or 48000)
        # Copied wherever a rate goes (copying an lxml subtree is cheaper than building it).
        self.rate_element = etree.Element("rate")
        _text(self.rate_element, "timebase", self.timebase)
        _text(self.rate_element, "ntsc", _bool(self.ntsc))
        self.links: dict[int, list[etree._Element]] = {}
        """The ``<link>`` elements of each link group, built once per group."""
        self.files: dict[str, int] = {}
        """File number by path, once its ``<file>`` has been written in full."""
        self.templates = {kind: self.clipitem_template(kind) for kind in ("video", "audio")}
        self.sourcetracks: dict[int, etree._Element] = {}

    # ---------------------------------------------------------------- layout

    def layout(self) -> tuple[list[_XTrack], list[_XTrack]]:
        video: list[_XTrack] = []
        audio: list[_XTrack] = []
        groups: dict[tuple[str, int], list[_Item]] = {}

        def add(xt: _XTrack, item: _Item, link_key: tuple[str, int] | None) -> None:
            xt.items.append(item)
            if link_key is not None:
                item.group = groups.setdefault(link_key, [])
                item.group.append(item)

        for track in self.timeline.video_tracks():
            tmeta = track.metadata.get(META, {})
            xt = _XTrack("video", bool(track.enabled), bool(tmeta.get("locked", False)))
            video.append(xt)
            for p in placed_clips(track, self.rate):
                item = _Item(p, "video", len(video), len(xt.items) + 1)
                add(xt, item, self.link_key(p.meta, p.path))

        for track in self.timeline.audio_tracks():
            tmeta = track.metadata.get(META, {})
            clips = list(placed_clips(track, self.rate))
            width = max([int(tmeta.get("channels") or 1)] + [self.channels(p.meta) for p in clips])
            enabled = bool(track.enabled)
            locked = bool(tmeta.get("locked", False))
            if width == 2:
                xts = [_XTrack("audio", enabled, locked, (k, 2), "Stereo", k + 1) for k in range(2)]
            else:
                xts = [_XTrack("audio", enabled, locked, (0, 1), "Mono") for _ in range(width)]
            first = len(audio) + 1
            audio.extend(xts)
            for p in clips:
                channels = self.channels(p.meta)
                key = self.link_key(p.meta, p.path)
                if key is None and channels > 1:
                    key = ("item", id(p))  # a file's own channels stay together
                stereo = width == 2 and channels >= 2
                for k in range(min(channels, width)):
                    xt = xts[k]
                    item = _Item(
                        p, "audio", first + k, len(xt.items) + 1,
                        source_track=k + 1, channel_type="stereo" if stereo else "mono",
                    )  # fmt: skip
                    add(xt, item, key)
        # Numbered in document order, as Premiere does.
        n = 0
        for xt in video + audio:
            for item in xt.items:
                n += 1
                item.id = f"clipitem-{n}"
        return video, audio

    @staticmethod
    def channels(cmeta: dict[str, Any]) -> int:
        return max(1, int(cmeta.get("audio_channels") or 1))

    @staticmethod
    def link_key(cmeta: dict[str, Any], path: str) -> tuple[str, int] | None:
        """Clips carrying the same file and clip number are linked; the master is not."""
        if cmeta.get("role") == "master" or "index" not in cmeta:
            return None
        return (path, int(cmeta["index"]))

    # ---------------------------------------------------------------- elements

    def add_rate(self, parent: etree._Element) -> None:
        parent.append(_copy(self.rate_element))

    def add_timecode(self, parent: etree._Element, frame: int, *, drop_frame: bool = False) -> None:
        """``frame``: the frame count; Premiere writes a drop-frame label with ``;``
        throughout (``01;00;00;00``) and ``<displayformat>DF``. Premiere's order:
        ``rate``, ``string``, ``frame``, ``displayformat`` (its exports add ``<reel>``
        only for footage that names one)."""
        drop_frame = drop_frame and self.rate in DROP_FRAME_RATES
        tc = _SubElement(parent, "timecode")
        self.add_rate(tc)
        _text(tc, "string", timecode_at(frame, self.rate, drop_frame=drop_frame))
        _text(tc, "frame", frame)
        _text(tc, "displayformat", "DF" if drop_frame else "NDF")

    def video_characteristics(self, parent: etree._Element, width: int, height: int) -> None:
        sc = _SubElement(parent, "samplecharacteristics")
        self.add_rate(sc)
        _text(sc, "width", width)
        _text(sc, "height", height)
        _text(sc, "anamorphic", "FALSE")
        _text(sc, "pixelaspectratio", "square")
        _text(sc, "fielddominance", "none")

    def audio_characteristics(
        self, parent: etree._Element, sample_rate: int, depth: int = 16
    ) -> None:
        sc = _SubElement(parent, "samplecharacteristics")
        _text(sc, "depth", depth)
        _text(sc, "samplerate", sample_rate)

    def add_file(self, parent: etree._Element, item: _Item, number: int) -> None:
        """``<file>`` in full the first time, by reference after."""
        meta = item.meta
        path = item.path
        if path in self.files:
            _SubElement(parent, "file", id=f"file-{number}")
            return
        self.files[path] = number
        f = _SubElement(parent, "file", id=f"file-{number}")
        clip = item.placed.clip
        ref = clip.media_reference
        # Names from a timeline made elsewhere may hold what XML cannot (the model's
        # own are already clean): see handoff.files.names.
        _text(f, "name", xml_text(getattr(ref, "name", None) or clip.name or PurePath(path).name))
        _text(f, "pathurl", premiere_pathurl(PurePath(path)))
        self.add_rate(f)
        _text(f, "duration", self.file_frames(item))
        # The file's own timecode (00:00:00:00 without one, as Premiere writes it); the
        # clipitems' <in>/<out> stay counted from the file's first frame. Premiere's
        # exports do both: in otio-fcp-adapter's premiere_example.xml a file at
        # 00:00:03:09 (<frame>99</frame>) is used from <in>34</in>.
        self.add_timecode(f, item.placed.tc, drop_frame=bool(meta.get("tc_drop_frame")))
        media = _SubElement(f, "media")
        has_video = bool(meta.get("has_video", item.mediatype == "video"))
        has_audio = bool(meta.get("has_audio", item.mediatype == "audio"))
        if has_video:
            v = _SubElement(media, "video")
            self.video_characteristics(
                v, int(meta.get("width") or self.width), int(meta.get("height") or self.height)
            )
        if has_audio:
            a = _SubElement(media, "audio")
            # The file's real bit depth (a 24-bit narration says 24); compressed sound
            # (AAC) has none, and Premiere's exports write 16 for it.
            self.audio_characteristics(
                a,
                int(meta.get("audio_sample_rate") or self.sample_rate),
                int(meta.get("audio_bit_depth") or 16),
            )
            _text(a, "channelcount", self.channels(meta))

    def file_frames(self, item: _Item) -> int:
        frames = item.meta.get("file_frames")
        if frames is not None:
            return round(float(frames))
        avail = item.placed.clip.available_range()
        return frames_at(avail.duration, self.rate)

    def clipitem_template(self, mediatype: str) -> etree._Element:
        """A clipitem's fixed head (:data:`_HEAD` and the rate), copied for each clipitem:
        one copy of a subtree is much cheaper than building its elements one by one."""
        ci = etree.Element("clipitem", {"id": "", "frameBlend": "FALSE"})
        for tag in _HEAD:
            _SubElement(ci, tag)
        ci[_HEAD.index("rate")].extend(_copy(self.rate_element))
        if mediatype == "video":
            _text(ci, "alphatype", "none")
            _text(ci, "pixelaspectratio", "square")
            _text(ci, "anamorphic", "FALSE")
        return ci

    def add_clipitem(self, parent: etree._Element, item: _Item) -> None:
        p = item.placed
        ci = _copy(self.templates[item.mediatype])
        parent.append(ci)
        ci.set("id", item.id)
        if item.channel_type is not None:
            ci.set("premiereChannelType", item.channel_type)
        number = self.files.get(item.path, len(self.files) + 1)
        end = p.source_start + p.duration
        texts = (
            f"masterclip-{number}",
            xml_text(p.clip.name),
            _bool(bool(p.clip.enabled)),
            str(self.file_frames(item)),
            None,  # rate
            str(p.start),
            str(p.start + p.duration),
            str(p.source_start),
            str(end),
            str(round(p.source_start * self.ticks_per_frame)),
            str(round(end * self.ticks_per_frame)),
        )
        for el, text in zip(ci, texts, strict=False):
            if text is not None:
                el.text = text
        self.add_file(ci, item, number)
        if item.source_track is not None:
            st = self.sourcetracks.get(item.source_track)
            if st is None:
                st = self.sourcetracks[item.source_track] = etree.Element("sourcetrack")
                _text(st, "mediatype", "audio")
                _text(st, "trackindex", item.source_track)
            ci.append(_copy(st))
        if item.group is not None and len(item.group) > 1:
            for link in self.group_links(item.group):
                ci.append(_copy(link))

    def group_links(self, group: list[_Item]) -> list[etree._Element]:
        """One ``<link>`` per member of the group (every member lists them all)."""
        links = self.links.get(id(group))
        if links is None:
            links = []
            for other in group:
                link = etree.Element("link")
                _text(link, "linkclipref", other.id)
                _text(link, "mediatype", other.mediatype)
                _text(link, "trackindex", other.track_index)
                _text(link, "clipindex", other.clip_index)
                if other.mediatype == "audio":
                    _text(link, "groupindex", 1)
                links.append(link)
            self.links[id(group)] = links
        return links

    def add_track(self, parent: etree._Element, xt: _XTrack) -> None:
        attrib: dict[str, str] = {}
        if xt.exploded is not None:
            attrib["currentExplodedTrackIndex"] = str(xt.exploded[0])
            attrib["totalExplodedTrackCount"] = str(xt.exploded[1])
        if xt.track_type is not None:
            attrib["premiereTrackType"] = xt.track_type
        t = _SubElement(parent, "track", attrib)
        for item in xt.items:
            self.add_clipitem(t, item)
        _text(t, "enabled", _bool(xt.enabled))
        _text(t, "locked", _bool(xt.locked))
        if xt.output_channel is not None:
            _text(t, "outputchannelindex", xt.output_channel)

    def write(self) -> bytes:
        video, audio = self.layout()
        root = etree.Element("xmeml", version="4")
        seq = _SubElement(root, "sequence", id="sequence-1", explodedTracks="true")
        ends = [i.placed.start + i.placed.duration for t in video + audio for i in t.items]
        _text(seq, "duration", max(ends, default=0))
        self.add_rate(seq)
        _text(seq, "name", xml_text(self.timeline.name or "handoff"))
        media = _SubElement(seq, "media")

        v = _SubElement(media, "video")
        fmt = _SubElement(v, "format")
        self.video_characteristics(fmt, self.width, self.height)
        for xt in video:
            self.add_track(v, xt)

        a = _SubElement(media, "audio")
        _text(a, "numOutputChannels", 2)
        fmt = _SubElement(a, "format")
        self.audio_characteristics(fmt, self.sample_rate)
        outputs = _SubElement(a, "outputs")
        for n in (1, 2):
            g = _SubElement(outputs, "group")
            _text(g, "index", n)
            _text(g, "numchannels", 1)
            _text(g, "downmix", 0)
            _text(_SubElement(g, "channel"), "index", n)
        for xt in audio:
            self.add_track(a, xt)

        # The sequence's start timecode; clipitem <start>/<end> stay counted from the
        # sequence's first frame (Resolve's xmeml export at 01:00:00:00 starts a clip
        # at <start>306</start>, not 216306).
        start = self.timeline.global_start_time
        self.add_timecode(
            seq,
            0 if start is None else frames_at(start, self.rate),
            drop_frame=bool(self.timeline.metadata.get(META, {}).get("drop_frame", False)),
        )
        # lxml's own declaration uses single quotes; Premiere writes double ones.
        return _DECLARATION + etree.tostring(
            root, encoding="UTF-8", pretty_print=True, doctype="<!DOCTYPE xmeml>"
        )


def write_xmeml(timeline: otio.schema.Timeline) -> bytes:
    """The timeline as a Premiere Pro FCP7 XML file (xmeml version 4), UTF-8 bytes."""
    return _Writer(timeline).write()
