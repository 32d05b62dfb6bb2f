"""What a timeline file says, read back exactly: one record per clip, whatever the format.

Each format's reader (``tests/readback_fcpxml.py``, ``tests/readback_xmeml.py``, and the
OTIO adapters through :func:`from_otio`) turns a written file into :class:`ReadClip`
records, so that one suite can hold every format to the same intended layout. Times are
whole frames at the sequence rate, computed from the file's own rational values (never
through a float rate: the adapters read 23.976 as 23 in places).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

__all__ = ["ReadClip", "ReadTimeline"]


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
