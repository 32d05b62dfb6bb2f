"""An exact reader of the xmeml (FCP7 XML) handoff writes, to :class:`ReadTimeline`.

Written from the format as Premiere's exports use it, not from handoff's writer: the
rate is ``<timebase>`` with ``<ntsc>`` (TRUE: times 1000/1001) as a Fraction; a stereo
track is an exploded pair (``currentExplodedTrackIndex`` 0 then 1) read as one track,
its clips taken from the pair's first member; ``<file id="...">`` is in full once and
empty after, so files are looked up by id. Positions are the clipitems' own integers:
``<start>`` counts from the sequence's first frame, ``<in>`` from the file's first
frame, and the file's ``<timecode><frame>`` is its timecode's frame count.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from lxml import etree

from tests.readback import ReadClip, ReadTimeline, path_of_url

__all__ = ["read_xmeml"]


def _rate(holder: etree._Element) -> Fraction:
    rate = holder.find("rate")
    assert rate is not None, holder.tag
    timebase = int(rate.findtext("timebase", ""))
    ntsc = rate.findtext("ntsc", "FALSE")
    assert ntsc in ("TRUE", "FALSE"), ntsc
    return Fraction(timebase * 1000, 1001) if ntsc == "TRUE" else Fraction(timebase)


def _flag(el: etree._Element, tag: str) -> bool:
    text = el.findtext(tag)
    assert text in ("TRUE", "FALSE"), (el.tag, tag, text)
    return text == "TRUE"


def _int(el: etree._Element, tag: str) -> int:
    text = el.findtext(tag)
    assert text is not None and text.lstrip("-").isdigit(), (el.get("id"), tag, text)
    return int(text)


def read_xmeml(data: bytes) -> ReadTimeline:
    root = etree.fromstring(data)
    assert root.tag == "xmeml"
    (seq,) = root.findall("sequence")
    rate = _rate(seq)
    files = {f.get("id"): f for f in root.iter("file") if len(f)}
    fmt = seq.find("media/video/format/samplecharacteristics")
    assert fmt is not None
    tc = seq.find("timecode")
    start_frames = 0 if tc is None else _int(tc, "frame")

    clips: list[ReadClip] = []
    for kind in ("video", "audio"):
        number = 0
        for track in seq.findall(f"media/{kind}/track"):
            if track.get("currentExplodedTrackIndex", "0") != "0":
                continue  # the second channel of a stereo pair: the same clips
            number += 1
            locked = _flag(track, "locked")
            for item in track.findall("clipitem"):
                assert _rate(item) == rate, item.get("id")
                ref = item.find("file")
                assert ref is not None, item.get("id")
                file = files[ref.get("id")]
                url = file.findtext("pathurl")
                assert url is not None
                file_tc = file.find("timecode")
                start, end = _int(item, "start"), _int(item, "end")
                cin, cout = _int(item, "in"), _int(item, "out")
                assert end - start == cout - cin, item.get("id")
                clips.append(
                    ReadClip(
                        track=f"{kind[0].upper()}{number}",
                        kind=kind,
                        name=item.findtext("name", ""),
                        path=Path(path_of_url(url)),
                        start=start,
                        duration=end - start,
                        source_in=cin,
                        enabled=_flag(item, "enabled"),
                        locked=locked,
                        timecode_frames=0 if file_tc is None else _int(file_tc, "frame"),
                    )
                )
    return ReadTimeline(
        rate=rate,
        start_frames=start_frames,
        width=_int(fmt, "width"),
        height=_int(fmt, "height"),
        clips=tuple(clips),
    )
