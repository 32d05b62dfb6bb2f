"""SMPTE timecode for a sequence: read a start timecode, count its frames, print one.

A timecode labels a frame ``HH:MM:SS:FF`` counting the rate's *timebase* frames a
second: the rate rounded up to a whole number (24 for 23.976, 30 for 29.97). At the
NTSC rates the labels then run slower than the clock -- 01:00:00:00 at 29.97 is 3603.6
seconds in -- unless frame *numbers* are dropped: **drop-frame** timecode (SMPTE ST
12-1, section 5.2.2) skips labels 00 and 01 of the first second of every minute except
each tenth minute at 29.97 (00-03 at 59.94), so that its labels keep to the clock.
Drop-frame is defined for 29.97 and 59.94 only; it is written with ``;`` before the
frames (``01:00:00;00``), or ``;`` throughout as Premiere writes it (``01;00;00;00``).

Frame *counts* are what every format stores (xmeml ``<frame>``, FCPXML ``tcStart`` as
frames times the frame duration, OTIO ``global_start_time``); the label is for people.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from handoff.errors import UsageError

__all__ = [
    "DROP_FRAME_RATES",
    "ZERO",
    "Timecode",
    "fps_label",
    "ndf_timecode",
    "parse_timecode",
    "smpte_label",
    "timebase",
    "timecode_at",
]

DROP_FRAME_RATES = {Fraction(30000, 1001): 2, Fraction(60000, 1001): 4}
"""The rates drop-frame timecode is defined for, and the labels it drops a minute."""

_FORM = re.compile(r"(\d\d)([:;])(\d\d)([:;])(\d\d)([:;])(\d\d)")


@dataclass(frozen=True, slots=True)
class Timecode:
    """A timecode label as given, checked against a rate by :meth:`frame_at`."""

    hours: int
    minutes: int
    seconds: int
    frames: int
    drop_frame: bool = False

    def __str__(self) -> str:
        sep = ";" if self.drop_frame else ":"
        return f"{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}{sep}{self.frames:02d}"

    def frame_at(self, rate: Fraction) -> int:
        """The frame count this label names at ``rate``; :class:`UsageError` when the
        label does not exist at that rate (frames past the timebase, drop-frame at a
        rate without it, a label drop-frame skips)."""
        base = timebase(rate)
        label = f"start timecode {self}"
        if self.frames >= base:
            raise UsageError(
                f"{label}: the frames field counts 00-{base - 1:02d} at {fps_label(rate)} fps"
            )
        plain = (self.hours * 3600 + self.minutes * 60 + self.seconds) * base + self.frames
        if not self.drop_frame:
            return plain
        dropped = DROP_FRAME_RATES.get(rate)
        if dropped is None:
            raise UsageError(
                f"{label}: drop-frame timecode (';') exists only at 29.97 and 59.94 fps, "
                f"not {fps_label(rate)}: write it with ':'"
            )
        if self.seconds == 0 and self.frames < dropped and self.minutes % 10:
            raise UsageError(
                f"{label}: drop-frame timecode skips frames 00-{dropped - 1:02d} at the "
                "start of each minute not divisible by 10 (SMPTE ST 12-1): that label "
                "does not exist"
            )
        minutes = self.hours * 60 + self.minutes
        return plain - dropped * (minutes - minutes // 10)


ZERO = Timecode(0, 0, 0, 0)


def parse_timecode(text: str) -> Timecode:
    """``HH:MM:SS:FF`` (non-drop-frame) or ``HH:MM:SS;FF`` / ``HH;MM;SS;FF``
    (drop-frame); :class:`UsageError` in one line for anything else. The frames field
    is checked against the rate by :meth:`Timecode.frame_at`."""
    m = _FORM.fullmatch(text.strip())
    if m is None:
        raise UsageError(
            f"start timecode {text!r}: expected HH:MM:SS:FF (e.g. 01:00:00:00), or "
            "HH:MM:SS;FF for drop-frame at 29.97/59.94 fps"
        )
    hh, s1, mm, s2, ss, s3, ff = m.groups()
    if s3 == ":" and ";" in (s1, s2):
        raise UsageError(
            f"start timecode {text!r}: ';' marks drop-frame before the frames field "
            "(HH:MM:SS;FF); use ':' throughout for non-drop-frame"
        )
    tc = Timecode(int(hh), int(mm), int(ss), int(ff), drop_frame=s3 == ";")
    if tc.hours > 23 or tc.minutes > 59 or tc.seconds > 59:
        raise UsageError(f"start timecode {text!r}: hours run 00-23, minutes and seconds 00-59")
    return tc


def timebase(rate: Fraction) -> int:
    """Frames a second a timecode counts: the rate rounded up (24 at 23.976)."""
    return math.ceil(rate)


def ndf_timecode(frame: int, timebase: int) -> str:
    """Non-drop-frame timecode ``HH:MM:SS:FF`` counting ``timebase`` frames a second."""
    ff = frame % timebase
    s = frame // timebase
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{ff:02d}"


def timecode_at(frame: int, rate: Fraction, *, drop_frame: bool = False) -> str:
    """The label of frame count ``frame`` at ``rate``: ``HH:MM:SS:FF``, or drop-frame
    ``HH;MM;SS;FF`` (Premiere's form) when ``drop_frame`` and the rate has it."""
    base = timebase(rate)
    dropped = DROP_FRAME_RATES.get(rate) if drop_frame else None
    if dropped is None:
        return ndf_timecode(frame, base)
    # Add back the labels skipped before this frame: 9 minutes a ten-minute block drop
    # them, and the minutes of the block so far (its first minute keeps all).
    per_ten = base * 600 - 9 * dropped
    per_minute = base * 60 - dropped
    blocks, rest = divmod(frame, per_ten)
    skipped = 9 * dropped * blocks
    if rest > dropped:
        skipped += dropped * ((rest - dropped) // per_minute)
    return ndf_timecode(frame + skipped, base).replace(":", ";")


def smpte_label(frame: int, rate: Fraction, *, drop_frame: bool = False) -> str:
    """The label of frame count ``frame`` as FFmpeg and MediaInfo print (and FFmpeg's
    muxers read) it: ``HH:MM:SS:FF``, drop-frame ``HH:MM:SS;FF`` (';' before the frames
    only; :func:`timecode_at` writes Premiere's ``HH;MM;SS;FF``)."""
    label = timecode_at(frame, rate, drop_frame=drop_frame)
    return label[:8].replace(";", ":") + label[8:]


def fps_label(rate: Fraction) -> str:
    """24, 23.976, 29.97: a rate as people write it."""
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")
