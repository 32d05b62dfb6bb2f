"""What ``prep-audio`` is asked to make: the options, their checks, and the output names."""

from __future__ import annotations

import math
import os
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Literal

from handoff.errors import Option, Text, UsageError
from handoff.files.names import NAME_MAX, fit_file_name

__all__ = [
    "MANIFEST_NAME",
    "RATE",
    "Channels",
    "CutKind",
    "Kind",
    "PrepOptions",
    "check_name",
    "check_options",
    "default_name",
    "master_file_name",
    "parse_ratio",
    "parse_segment_range",
    "segment_file_name",
]

Kind = Literal["voice", "music"]
Channels = Literal["dual-mono", "mono", "stereo"]
CutKind = Literal["start", "end", "pause", "short-pause", "quietest", "pace-change"]

MANIFEST_NAME = "manifest.json"
RATE = 48000
"""Every output, and every sample position of the plan and the manifest, is at 48 kHz."""

_NAME_FORBIDDEN = frozenset("/\\")
_RATIO_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*1\s*$")
MAX_RATIO = 4.0
MAX_FADE_MS = 500
MAX_GAP_S = 60.0
_RANGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:-|\u2013|\.\.|:)\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True, slots=True)
class PrepOptions:
    """What ``prep_audio`` should make (CLI: ``handoff prep-audio``)."""

    name: str | None = None
    """Base name of the outputs; default: the source file's stem."""
    kind: Kind = "voice"
    channels: Channels | None = None
    """Output channels; default by kind: voice -> dual-mono, music -> stereo."""
    target_lufs: float = -16.0
    true_peak: float = -3.0
    """True-peak ceiling, dBTP."""
    preroll_ms: int = 150
    click: bool = False
    max_seconds: float = 120.0
    """Inputs longer than this are cut; no segment file reaches it."""
    segment_min: float = 60.0
    segment_max: float = 90.0
    bit_depth: Literal[16, 24] = 24
    overwrite: bool = False
    compress: float | None = None
    """Compression ratio (``--compress N:1``, 1 < N <= 4); None: no compression."""
    fill_gaps: bool = False
    """Shorten every silence inside the programme longer than ``max_gap_s`` to it."""
    max_gap_s: float = 1.5
    """The longest silence ``fill_gaps`` keeps (the ltx2-audio internal-silence limit)."""
    fade_tails_ms: int = 0
    """Fade each segment's end over this many ms, keeping at least this much after its
    last sound; 0: the plain 10 ms fade after a 40 ms tail."""
    cut_at_pace_change: bool = False
    """Cut wherever the speech rate changes by more than
    :data:`handoff.analysis.narration.PACE_CHANGE` (a programme that would fit one
    segment too), whatever the segment range says."""

    @property
    def resolved_channels(self) -> Channels:
        if self.channels is not None:
            return self.channels
        return "dual-mono" if self.kind == "voice" else "stereo"


def parse_segment_range(text: str) -> tuple[float, float]:
    """``"60-90"`` -> ``(60.0, 90.0)`` (seconds; ``60..90`` and ``60:90`` work too)."""
    match = _RANGE_RE.match(text)
    if match is None:
        raise UsageError(f"segment range {text!r}: expected MIN-MAX in seconds, e.g. 60-90")
    lo, hi = float(match.group(1)), float(match.group(2))
    if lo <= 0.0 or lo > hi:
        raise UsageError(f"segment range {text!r}: need 0 < MIN <= MAX")
    return lo, hi


def parse_ratio(text: str) -> float:
    """``"2:1"`` -> ``2.0`` (a compression ratio; ``N:1`` with 1 < N <= 4)."""
    match = _RATIO_RE.match(text)
    if match is None:
        raise UsageError(f"compression ratio {text!r}: expected N:1, e.g. 2:1")
    ratio = float(match.group(1))
    _check_ratio(ratio)
    return ratio


def _check_ratio(ratio: float) -> None:
    if not (math.isfinite(ratio) and 1.0 < ratio <= MAX_RATIO):
        raise UsageError(
            f"compression ratio {ratio:g}:1: use more than 1:1 and at most {MAX_RATIO:g}:1 "
            "(LTX-2 wants light compression, 2:1)"
        )


def check_options(options: PrepOptions) -> tuple[PrepOptions, list[str]]:
    """Validate option ranges; the options with channels resolved, and warnings."""
    o = options
    warnings: list[str] = []
    if o.kind not in ("voice", "music"):
        raise UsageError(f"kind must be voice or music, not {o.kind!r}")
    if o.channels not in (None, "dual-mono", "mono", "stereo"):
        raise UsageError(f"channels must be dual-mono, mono or stereo, not {o.channels!r}")
    if o.name is not None:
        check_name(o.name, "name")
    if not (math.isfinite(o.target_lufs) and -40.0 <= o.target_lufs <= -5.0):
        raise UsageError(f"target loudness {o.target_lufs} LUFS: use -40 to -5")
    if not (math.isfinite(o.true_peak) and -20.0 <= o.true_peak <= 0.0):
        raise UsageError(f"true-peak ceiling {o.true_peak} dBTP: use -20 to 0")
    if not (0 <= o.preroll_ms <= 1000) or int(o.preroll_ms) != o.preroll_ms:
        raise UsageError(f"pre-roll {o.preroll_ms} ms: use a whole number from 0 to 1000")
    if not 100 <= o.preroll_ms <= 200:
        warnings.append(f"pre-roll {o.preroll_ms} ms is outside the recommended 100-200 ms")
    if not o.click and o.preroll_ms > 240:
        warnings.append(
            f"pre-roll {o.preroll_ms} ms: the ltx2-audio spec allows at most 250 ms of "
            "leading silence"
        )
    if not (math.isfinite(o.segment_min) and math.isfinite(o.segment_max)):
        raise UsageError("segment range must be finite")
    if not 1.0 <= o.segment_min <= o.segment_max:
        raise UsageError(
            f"segment range {o.segment_min:g}-{o.segment_max:g} s: need 1 <= MIN <= MAX"
        )
    if not math.isfinite(o.max_seconds) or o.max_seconds < o.segment_max:
        raise UsageError(
            f"max seconds {o.max_seconds:g} must be at least the segment maximum "
            f"({o.segment_max:g} s)"
        )
    if o.max_seconds * 1000.0 <= o.preroll_ms + 1000.0:
        raise UsageError(f"max seconds {o.max_seconds:g} leaves no room after the pre-roll")
    if o.max_seconds > 120.0:
        warnings.append(
            f"max seconds {o.max_seconds:g}: the ltx2-audio spec wants segments under 120 s"
        )
    if o.bit_depth not in (16, 24):
        raise UsageError(f"bit depth must be 16 or 24, not {o.bit_depth!r}")
    if not isinstance(o.cut_at_pace_change, bool):
        raise UsageError(f"cut at pace change must be true or false, not {o.cut_at_pace_change!r}")
    if o.compress is not None:
        _check_ratio(o.compress)
    if not (math.isfinite(o.max_gap_s) and 0.1 <= o.max_gap_s <= MAX_GAP_S):
        raise UsageError(f"max gap {o.max_gap_s:g} s: use 0.1 to {MAX_GAP_S:g} seconds")
    fade = o.fade_tails_ms
    if isinstance(fade, bool) or int(fade) != fade or not 0 <= fade <= MAX_FADE_MS:
        raise UsageError(
            f"fade tails {fade} ms: use a whole number of milliseconds from 0 to {MAX_FADE_MS}"
        )
    return replace(o, channels=o.resolved_channels), warnings


def _unfit(ch: str) -> bool:
    """Control characters (Unicode category Cc) make file names that shells and editors
    mangle; lone surrogates are bytes that were not UTF-8 (Python's surrogateescape)
    and cannot be written to a UTF-8 manifest."""
    return ch in _NAME_FORBIDDEN or unicodedata.category(ch) in ("Cc", "Cs")


# The longest name made from the base name: NAME_master.wav (segments, 001_NAME.wav, are
# shorter up to segment 9999).
_LONGEST_SUFFIX = "_master.wav"


def default_name(stem: str, warnings: list[str]) -> str:
    """The input's stem as a base name: each character unfit for one replaced by '_',
    cut so that every output's name fits the file system."""
    name = "".join("_" if _unfit(ch) else ch for ch in stem)
    if name != stem:
        warnings.append(
            Text(
                "the input's name holds characters a file name should not (control characters "
                f"or bytes that are not UTF-8): outputs are named {name!r} (",
                Option("name"),
                " sets another)",
            )
        )
    fitted = fit_file_name(name, _LONGEST_SUFFIX)
    if fitted != name:
        warnings.append(
            Text(
                "the input's name is too long for the outputs' file names: cut to "
                f"{len(fitted)} characters (",
                Option("name"),
                " sets another)",
            )
        )
    return fitted


def check_name(name: str, what: str) -> None:
    """Refuse a base name that cannot be a portable file name or be written in the manifest."""
    if fit_file_name(name, _LONGEST_SUFFIX) != name:
        raise UsageError(
            Text(
                f"{what} is too long for a file name ({len(os.fsencode(name))} bytes; "
                f"{NAME_MAX - len(_LONGEST_SUFFIX)} at most): pass a shorter ",
                Option("name"),
            )
        )
    bad = [ch for ch in name if _unfit(ch)]
    if not name or name in (".", "..") or bad:
        why = f" (it holds {', '.join(sorted({repr(ch) for ch in bad}))})" if bad else ""
        raise UsageError(
            Text(
                f"{what} {name!r} cannot be used in a file name{why}: pass another ", Option("name")
            )
        )


def segment_file_name(index: int, name: str) -> str:
    return f"{index:03d}_{name}.wav"


def master_file_name(name: str) -> str:
    return f"{name}_master.wav"
