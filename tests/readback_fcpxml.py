"""An FCPXML reader for the tests: where every clip plays, in exact frames.

Written from Apple's FCPXML reference and DTDs, not from the writer: an element's
``offset`` is on its parent's clock, its ``start`` is its own clock at its first frame,
so a child's timeline time is ``parent timeline start + (child offset - parent start)``.
Connected clips (with a ``lane``) are followed at any depth; the contents of a ``<clip>``
play only inside the clip's own range; an ``<audition>`` plays its first (active) child,
the others are returned on track ``audition``. Times are read as Fractions and must be
whole frames at the sequence rate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from lxml import etree

from tests.readback import ReadClip, ReadTimeline

__all__ = ["read_fcpxml", "seconds"]


def seconds(value: str | None) -> Fraction:
    """An FCPXML time ("1001/24000s", "3600/1s", "0s") as exact seconds; absent is 0."""
    if value is None:
        return Fraction(0)
    assert value.endswith("s"), value
    return Fraction(value[:-1])


def _path(src: str) -> Path:
    parts = urlsplit(src)
    assert parts.scheme == "file" and parts.netloc in ("", "localhost"), src
    path = os.fsdecode(unquote_to_bytes(parts.path))
    if len(path) > 2 and path[0] == "/" and path[2] == ":":  # /D:/... -> D:/...
        path = path[1:]
    return Path(path)


@dataclass(frozen=True)
class _Asset:
    path: Path
    name: str
    start: Fraction
    has_video: bool
    has_audio: bool


class _Reader:
    def __init__(self, root: Any) -> None:
        seq = root.find("library/event/project/sequence")
        assert seq is not None, "no sequence"
        formats = {f.get("id"): f for f in root.iterfind("resources/format")}
        fmt = formats[seq.get("format")]
        self.rate = 1 / seconds(fmt.get("frameDuration"))
        self.width = int(fmt.get("width"))
        self.height = int(fmt.get("height"))
        self.assets = {}
        for a in root.iterfind("resources/asset"):
            rep = a.find("media-rep")
            src = rep.get("src") if rep is not None else a.get("src")
            self.assets[a.get("id")] = _Asset(
                _path(src),
                a.get("name"),
                seconds(a.get("start")),
                a.get("hasVideo") == "1",
                a.get("hasAudio") == "1",
            )
        self.tc_start = seconds(seq.get("tcStart"))
        self.seq = seq
        self.clips: list[ReadClip] = []

    def frames(self, t: Fraction) -> int:
        f = t * self.rate
        assert f.denominator == 1, f"{t}s is not a whole number of frames at {self.rate}"
        return f.numerator

    def read(self) -> ReadTimeline:
        spine = self.seq.find("spine")
        # The storyline's clock: tcStart is the sequence's first frame.
        for el in spine:
            self.visit(el, Fraction(0) - self.tc_start, None, "spine", True)
        return ReadTimeline(self.rate, self.frames(self.tc_start), self.width, self.height,
                            tuple(self.clips))  # fmt: skip

    def visit(
        self,
        el: Any,
        parent_base: Fraction,
        window: tuple[Fraction, Fraction] | None,
        track: str,
        enabled: bool,
        offset: Fraction | None = None,
    ) -> None:
        """``parent_base``: timeline time = parent_base + time on the parent's clock;
        ``window``: the timeline range the element may play in (inside a ``<clip>``);
        ``offset``: instead of the element's own (a take in an audition)."""
        tag = el.tag
        if tag in ("transition", "marker", "metadata", "note") or not isinstance(tag, str):
            return
        at = parent_base + (seconds(el.get("offset")) if offset is None else offset)
        base = at - seconds(el.get("start"))
        on = enabled and el.get("enabled", "1") == "1"
        lane = el.get("lane")
        here = track if lane is None or track.startswith("clip ") else f"lane {lane}"
        if tag == "audition":
            children = [c for c in el if isinstance(c.tag, str)]
            self.visit(children[0], at, window, here, on, offset=Fraction(0))
            for alt in children[1:]:
                self.visit(alt, at, window, "audition", False, offset=Fraction(0))
            return
        if tag in ("asset-clip", "video", "audio"):
            span = (at, at + seconds(el.get("duration")))
            if window is not None:
                span = (max(span[0], window[0]), min(span[1], window[1]))
            asset = self.assets[el.get("ref")]
            kinds = {"video": ["video"], "audio": ["audio"]}.get(tag)
            if kinds is None:
                plays = el.get("srcEnable", "all")
                kinds = [k for k, has in (("video", asset.has_video), ("audio", asset.has_audio))
                         if has and plays in ("all", k)]  # fmt: skip
            if span[1] > span[0]:
                name = el.get("name") if tag == "asset-clip" else self.clip_name
                for kind in kinds:
                    self.clips.append(ReadClip(
                        track=str(self.clip_track if tag != "asset-clip" else here),
                        kind=kind, name=str(name or ""), path=asset.path,
                        start=self.frames(span[0]), duration=self.frames(span[1] - span[0]),
                        source_in=self.frames(span[0] - base - asset.start),
                        enabled=on, locked=False, timecode_frames=self.frames(asset.start),
                    ))  # fmt: skip
        if tag == "clip":
            inner = (at, at + seconds(el.get("duration")))
            if window is not None:
                inner = (max(inner[0], window[0]), min(inner[1], window[1]))
            saved = getattr(self, "clip_name", None), getattr(self, "clip_track", None)
            self.clip_name, self.clip_track = el.get("name"), here
            for child in el:
                if child.tag in ("spine", "gap", "clip", "asset-clip", "audition"):
                    raise AssertionError(f"<{child.tag}> inside <clip> is not read here")
                self.visit(child, base, inner, "clip " + here, on)
            self.clip_name, self.clip_track = saved
            return
        if tag not in ("gap", "asset-clip", "video", "audio"):
            raise AssertionError(f"<{tag}> is not read here")
        # Connected clips: on this element's clock; inside a <clip>, still in its range.
        for child in el:
            if isinstance(child.tag, str) and child.get("lane") is not None:
                self.visit(child, base, window, track, on)

    clip_name: str | None = None
    clip_track: str | None = None


def read_fcpxml(data: bytes) -> ReadTimeline:
    """Every clip of an FCPXML file where it plays (see the module docstring)."""
    return _Reader(etree.fromstring(data)).read()
