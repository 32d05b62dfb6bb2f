"""Loudness as a probe fact: the first audio stream of a probed file, decoded and
measured as is (BS.1770-4 integrated loudness, true peak, LRA and edge silence, as
FFmpeg's ebur128 filter would report them).

A file without sound has no loudness; sound whose rate is too low for BS.1770's
K-weighting (under 4 kHz) has none either -- a fact that cannot exist, said as the
reason, not an error. Sound that cannot be decoded raises, as probing a broken file does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handoff.analysis.loudness import ProgrammeLoudness, measure_file
from handoff.errors import UnmeasurableError
from handoff.probe.reader import MediaInfo

__all__ = ["LoudnessProbe", "probe_loudness"]


@dataclass(frozen=True, slots=True)
class LoudnessProbe:
    """The loudness of a file's first audio stream, or why it has none."""

    measured: ProgrammeLoudness | None
    not_measured: str | None = None
    """Why there is no figure: no audio stream, or audio a measurement is not defined for."""

    def to_json(self) -> dict[str, Any] | None:
        """``loudness`` in ``probe --loudness --json`` (docs/reference/json.md); None
        when nothing was measured."""
        return None if self.measured is None else dict(self.measured.to_json())


def probe_loudness(info: MediaInfo) -> LoudnessProbe:
    """Decode and measure the first audio stream of ``info`` (a block at a time: bounded
    memory whatever the length).

    Raises what :func:`handoff.analysis.loudness.measure_file` raises for sound that
    cannot be decoded (the InputError family); never a builtin exception for a fact of
    the media.
    """
    if info.audio is None:
        return LoudnessProbe(None, "no audio stream")
    try:
        return LoudnessProbe(measure_file(info.path, info.audio.index))
    except UnmeasurableError as exc:
        return LoudnessProbe(None, exc.message)
