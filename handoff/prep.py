"""Condition narration for LTX-2's audio-to-video pipeline: level, trim, pre-roll, segment.

``prep_audio(source, out_dir, PrepOptions(...))`` takes any file with an audio stream (WAV,
FLAC, MP3, AAC/M4A, or the first audio stream of a video) and writes, into ``out_dir``:

* ``001_<name>.wav``, ``002_<name>.wav``, ... -- the conditioning segments, in order;
* ``<name>_master.wav`` -- the whole programme at the same gain through the same limiter,
  untrimmed, for the editor's locked audio track (its timeline is the source's: master
  sample ``i`` is source time ``i / 48000``);
* ``manifest.json`` -- what was written and measured (schema below).

Every file is 48 kHz PCM WAV (24-bit, or 16), written atomically; the manifest is written
last, so its presence means the set is complete.

How the level is reached
    ONE linear gain plus an oversampled look-ahead true-peak limiter (:mod:`handoff.limiter`:
    4x peak detection with the meter's own interpolation kernel, 1.5 ms look-ahead ramp,
    200 dB/s release) where the gain would push a peak over the ceiling -- never dynamic
    loudness normalisation. The limiter aims 0.3 dB under the true-peak target.
    Limiting lowers the loudness, so the gain is iterated: secant steps on a cheap
    *estimate* (each 100 ms BS.1770 step's K-weighted energy scaled by the share of its
    plain energy the limiter removes), then a real BS.1770 measurement of the limited
    programme, whose difference from the estimate corrects the next solve -- usually one
    real measurement, at most three; it stops within 0.05 LU of the target. The gain may
    rise at most 20 dB past the unlimited one (a warning says when the target is missed).
    The true peak is then measured (the limiter's envelope is the meter's where the curve
    is 1; where the limiter acted the candidate blocks are interpolated again from the
    output); if it is not 0.1 dB under the target, the ceiling goes down by the excess
    and everything runs again.
    Voice is mono content: loudness is measured on the mono signal even when it is
    written as dual-mono (two identical channels), the convention of the ``ltx2-audio``
    spec (a stereo meter reads such a file about 3 LU louder). A stereo source's mono
    content is (L+R)/2; ``source.measured_as`` says which signal the source loudness is
    of. When L and R carry different sound (:func:`_compare_channels`: correlation under
    0.5 over the speech, or the louder side swinging by more than 10 dB -- two voices on
    two microphones) mixing them is warned; ``--channels stereo`` keeps them apart.
    Music keeps its stereo and is measured as stereo. Segments are cut from the levelled
    master and keep its gain, so a segment's own loudness can differ a little from the
    master's (warned beyond 0.5 LU).
    The reported true peak of a segment is the master's over the segment's span (its
    fades only lower it) or the click's, whichever is higher.
    Heavy limiting -- more than 6 dB off a peak, or more than 5 % of the programme (first
    to last sound) limited by over 1 dB -- is warned, naming the loudest passage: the
    limited stretches around the deepest reduction, joined across gaps under 0.3 s.

Silence, pauses and cuts
    All decisions use one threshold relative to the conditioned programme's own level
    (:func:`handoff.analysis.silence_threshold_db`: 35 dB under its gated level, on
    1 ms mean-square bins, loudest channel), through :class:`handoff.analysis.SoundMap`.
    The first sound after a point is found as :func:`handoff.loudness.leading_silence_s`
    finds it (first 20 ms window above the threshold, then its first 1 ms bin above it),
    so the leading silence the validator measures on a segment is the pre-roll (+ the
    5 ms lead-in kept before the onset).
    A *pause* is a run of 1 ms positions whose centred 20 ms level is under the
    threshold: >= 0.3 s is a real pause; 0.15-0.3 s a short pause (a cut there carries a
    warning); where no pause fits, the quietest 20 ms in each second of programme is a
    last-resort cut (with a warning). Each cut is at the quietest point of its pause
    (ties: its middle). The cuts are chosen by dynamic programming over all candidates:
    no segment file may reach ``max_seconds`` (pre-roll and click included); then real
    pauses are preferred to anything else; then every second outside the segment range
    costs; then longer pauses are preferred.

Segment file layout
    ``[click][pre-roll silence][audio]``: the optional click (a 4 ms Hann-windowed 2 kHz
    burst, peak 3 dB under the true-peak target) occupies ``click_start .. click_end``;
    digital silence follows up to ``preroll_end``; the audio from ``preroll_end`` on is
    master samples ``source_in .. source_out`` (a 5 ms raised-cosine fade-in over the
    lead-in before the first sound and a 10 ms fade-out at the end, 40 ms after the last
    sound). Mute ``click_start .. click_end`` to remove the click.

Manifest schema (``"schema": "handoff.prep-audio/1"``; file names are relative to the
manifest's folder; sample positions are at 48 kHz)::

    schema      "handoff.prep-audio/1"
    source      {file (absolute path), sha256, sample_rate, channels, samples, duration_s,
                 integrated_lufs, true_peak_dbtp (of the content -- after the channel
                 choice, at 48 kHz -- before gain), measured_as,
                 left_right (null, or {verdict same/one-sided/different, correlation,
                 level_difference_db, level_swing_db}: two-channel sources)}
    settings    {name, kind, channels, target_lufs, true_peak_dbtp, preroll_ms, click,
                 max_seconds, segment_min_s, segment_max_s, bit_depth, sample_rate,
                 limiter {ceiling_dbtp, attack_ms, hold_ms, release_db_per_s, oversample},
                 silence {threshold_dbfs, real_pause_s, short_pause_s, lead_in_s, tail_s}}
    master      {file, samples, duration_s, channels, gain_db, integrated_lufs,
                 true_peak_dbtp, measured_as, limiter_max_reduction_db, limited_s,
                 limited_share, heavy_limiting, loudest_passage (null, or {start, end,
                 start_s, end_s, max_reduction_db, limited_s})}
    segments    [{index, file, samples, duration_s, channels,
                  source_in, source_out (master samples), source_in_s, source_out_s,
                  click_start, click_end (null without --click), preroll_start, preroll_end,
                  integrated_lufs, true_peak_dbtp, measured_as,
                  cut_in {position, position_s, kind, pause_s},
                  cut_out {position, position_s, kind, pause_s}}]
    warnings    [str, ...]

``cut_*.kind`` is ``start``/``end`` (the programme's edges), ``pause``, ``short-pause`` or
``quietest``. The timeline places a generated clip so that segment sample ``preroll_end``
meets master sample ``source_in``.

Nothing is printed; progress goes to the ``handoff.prep`` logger.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import os
import re
import struct
import time
import unicodedata
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt

from handoff import analysis, loudness
from handoff.analysis import SoundMap
from handoff.audio import DecodedAudio, decode_audio, frame_samples
from handoff.errors import InputError, OutputExistsError, UnsupportedError, UsageError
from handoff.files import check_readable
from handoff.fsutil import InputGuard, atomic_output, atomic_write_bytes
from handoff.limiter import (
    GainCurve,
    LimiterSettings,
    gain_curve,
    oversampled_peak,
    oversampled_peak_in,
)
from handoff.manifest import Manifest, load_manifest
from handoff.names import NAME_MAX, fit_file_name
from handoff.riff import read_wav_layout
from handoff.spec import Spec, load_spec
from handoff.validate import FileReport, validate_file

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "Cut",
    "LeftRight",
    "MasterInfo",
    "OutputExistsError",
    "Passage",
    "PrepOptions",
    "PrepResult",
    "SegmentInfo",
    "SourceInfo",
    "made_before",
    "master_file_name",
    "parse_segment_range",
    "prep_audio",
    "segment_file_name",
]

log = logging.getLogger(__name__)

Float32Array = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]
Kind = Literal["voice", "music"]
Channels = Literal["dual-mono", "mono", "stereo"]
CutKind = Literal["start", "end", "pause", "short-pause", "quietest"]

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "handoff.prep-audio/1"
RATE = 48000
_STEP = RATE // 10  # BS.1770 100 ms step

# --- tuning (documented in the module docstring) ---------------------------------------------
_LIMIT_MARGIN_DB = 0.3  # the limiter aims this far under the true-peak target
_TP_SAFETY_DB = 0.1  # the measured true peak must end at least this far under it
_LOUDNESS_TOLERANCE_LU = 0.05  # stop iterating the gain within this of the target
_ESTIMATE_TOLERANCE_LU = 0.01  # solve the estimated loudness to this
_TP_CANDIDATE_DB = 2.0  # true peak: interpolate blocks whose estimate is this close
_LOUDNESS_WARN_LU = 0.5  # warn when a file ends further than this from the target
_MAX_GAIN_ITERATIONS = 10
_MAX_EXTRA_GAIN_DB = 20.0  # never push the gain more than this past the unlimited one
_QUIET_INPUT_LUFS = -60.0  # quieter than this is "silent": refuse, do not amplify noise
_MIN_SOUND_S = 0.5

_BIN = analysis.bin_samples(RATE)  # samples per 1 ms analysis bin (SoundMap's)
_REAL_PAUSE_BINS = 300
_SHORT_PAUSE_BINS = 150
_QUIETEST_BLOCK_BINS = 1000  # one last-resort candidate per second of programme
_LEAD_IN = RATE * 5 // 1000  # kept before the first sound (faded in)
_TAIL = RATE * 40 // 1000  # kept after the last sound
_FADE_OUT = RATE * 10 // 1000
_CLICK = RATE * 4 // 1000
_CLICK_HZ = 2000.0
_CLICK_UNDER_TP_DB = 3.0
_DURATION_SAFETY = RATE // 100  # segments end at least 10 ms under max_seconds

# Dynamic-programming costs: a forced (non-pause) cut outweighs any range miss a real-pause
# solution has; a second outside the range costs 1.
_COST_SHORT_PAUSE = 30.0
_COST_QUIETEST = 300.0
_COST_PER_SECOND_OUT_OF_RANGE = 1.0

# Two channels mixed to mono content must carry one sound (see _compare_channels). Under
# the model L = C + U, R = C + V (C common, U and V independent, equal levels) the
# correlation is the common share of each channel's energy: under 0.5 most of what each
# channel holds is its own. Which side is louder follows the speaker when each channel
# has its own voice (two lavaliers: the other voice only as bleed) and stays put for one
# source on two microphones (measured here: 0.2-2 dB between the 10th and 90th
# percentile of 100 ms steps for a copy delayed by up to 3 ms, 21 dB for two voices
# with 10 dB of bleed, whose correlation is 0.56).
_SAME_MIN_CORRELATION = 0.5
_SAME_MAX_SWING_DB = 10.0
_SWING_CLIP_DB = 40.0  # a step with one channel silent counts as this far to one side
_ONE_SIDED_DB = 20.0  # a channel this far under the other adds little to the mix

# Heavy limiting (issue 11): warned when the limiter takes more than 6 dB off a peak, or
# works on more than 5 % of the programme (its first to its last sound). Limited stretches
# closer than a real pause belong to one passage.
_HEAVY_REDUCTION_DB = 6.0
_HEAVY_SHARE = 0.05
# Limited, for the share and the passages: more than 1 dB off, about the smallest level
# change a listener notices (a reduction of 0.01 dB -- ``limited_s`` -- is inaudible, and
# counted 15 % of a babble narration that peaked at 4 dB of reduction).
_LIMITED_DB = 1.0
_PASSAGE_JOIN = _REAL_PAUSE_BINS * _BIN

_NAME_FORBIDDEN = frozenset("/\\")
_RANGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:-|\u2013|\.\.|:)\s*(\d+(?:\.\d+)?)\s*$")


# --- options -------------------------------------------------------------------------------


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


def _check_options(options: PrepOptions) -> tuple[PrepOptions, list[str]]:
    """Validate option ranges; the options with channels resolved, and warnings."""
    o = options
    warnings: list[str] = []
    if o.kind not in ("voice", "music"):
        raise UsageError(f"kind must be voice or music, not {o.kind!r}")
    if o.channels not in (None, "dual-mono", "mono", "stereo"):
        raise UsageError(f"channels must be dual-mono, mono or stereo, not {o.channels!r}")
    if o.name is not None:
        _check_name(o.name, "name")
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
    return replace(o, channels=o.resolved_channels), warnings


def _unfit(ch: str) -> bool:
    """Control characters (Unicode category Cc) make file names that shells and editors
    mangle; lone surrogates are bytes that were not UTF-8 (Python's surrogateescape)
    and cannot be written to a UTF-8 manifest."""
    return ch in _NAME_FORBIDDEN or unicodedata.category(ch) in ("Cc", "Cs")


# The longest name made from the base name: NAME_master.wav (segments, 001_NAME.wav, are
# shorter up to segment 9999).
_LONGEST_SUFFIX = "_master.wav"


def _default_name(stem: str, warnings: list[str]) -> str:
    """The input's stem as a base name: each character unfit for one replaced by '_',
    cut so that every output's name fits the file system."""
    name = "".join("_" if _unfit(ch) else ch for ch in stem)
    if name != stem:
        warnings.append(
            f"the input's name holds characters a file name should not (control characters "
            f"or bytes that are not UTF-8): outputs are named {name!r} (--name sets another)"
        )
    fitted = fit_file_name(name, _LONGEST_SUFFIX)
    if fitted != name:
        warnings.append(
            f"the input's name is too long for the outputs' file names: cut to "
            f"{len(fitted)} characters (--name sets another)"
        )
    return fitted


def _check_name(name: str, what: str) -> None:
    """Refuse a base name that cannot be a portable file name or be written in the manifest."""
    if fit_file_name(name, _LONGEST_SUFFIX) != name:
        raise UsageError(
            f"{what} is too long for a file name ({len(os.fsencode(name))} bytes; "
            f"{NAME_MAX - len(_LONGEST_SUFFIX)} at most): pass a shorter --name"
        )
    bad = [ch for ch in name if _unfit(ch)]
    if not name or name in (".", "..") or bad:
        why = f" (it holds {', '.join(sorted({repr(ch) for ch in bad}))})" if bad else ""
        raise UsageError(f"{what} {name!r} cannot be used in a file name{why}: pass another --name")


def segment_file_name(index: int, name: str) -> str:
    return f"{index:03d}_{name}.wav"


def master_file_name(name: str) -> str:
    return f"{name}_master.wav"


# --- results -------------------------------------------------------------------------------


def _num(value: float, digits: int = 3) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


LeftRightVerdict = Literal["same", "one-sided", "different"]


@dataclass(frozen=True, slots=True)
class LeftRight:
    """How the two channels of a stereo source compare over its sound (100 ms steps
    whose louder channel is above the silence threshold)."""

    verdict: LeftRightVerdict
    """``same``: one sound on both sides; ``one-sided``: the quieter channel is more than
    20 dB under the louder; ``different``: each channel has a sound of its own
    (correlation under 0.5, or the louder side swings by more than 10 dB)."""
    correlation: float | None
    """Sum of L*R over the sound, normalised: 1 for identical channels, about 0 for
    unrelated ones (None when a channel is digital silence)."""
    level_difference_db: float | None
    """L minus R, energy over the sound (None when a channel is digital silence)."""
    level_swing_db: float
    """Spread (90th minus 10th percentile) of the 100 ms steps' L-minus-R level."""

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "correlation": None if self.correlation is None else round(self.correlation, 3),
            "level_difference_db": None
            if self.level_difference_db is None
            else round(self.level_difference_db, 2),
            "level_swing_db": round(self.level_swing_db, 2),
        }


@dataclass(frozen=True, slots=True)
class Passage:
    """Where the limiter worked hardest: its limited stretches around the deepest
    reduction, joined across gaps shorter than a real pause (master samples)."""

    start: int
    end: int
    max_reduction_db: float
    limited_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "start_s": round(self.start / RATE, 6),
            "end_s": round(self.end / RATE, 6),
            "max_reduction_db": round(self.max_reduction_db, 3),
            "limited_s": round(self.limited_s, 3),
        }

    def describe(self) -> str:
        return f"{_clock(self.start / RATE)}\u2013{_clock(self.end / RATE)}"


def _clock(seconds: float) -> str:
    """``HH:MM:SS.ss``."""
    centis = round(seconds * 100.0)
    s, cs = divmod(centis, 100)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{cs:02d}"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    path: Path
    sha256: str
    sample_rate: int
    channels: int
    samples: int
    integrated_lufs: float
    """The content (after the channel choice, at 48 kHz) before gain."""
    true_peak_dbtp: float
    measured_as: str = "mono"
    """Which signal ``integrated_lufs`` is the loudness of (see :func:`_content`)."""
    left_right: LeftRight | None = None
    """How L and R compare (two-channel sources only)."""

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "sha256": self.sha256,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "samples": self.samples,
            "duration_s": round(self.duration_s, 6),
            "integrated_lufs": _num(self.integrated_lufs),
            "true_peak_dbtp": _num(self.true_peak_dbtp),
            "measured_as": self.measured_as,
            "left_right": None if self.left_right is None else self.left_right.to_json(),
        }


@dataclass(frozen=True, slots=True)
class MasterInfo:
    path: Path
    samples: int
    channels: int
    gain_db: float
    integrated_lufs: float
    true_peak_dbtp: float
    measured_as: str
    limiter_max_reduction_db: float
    """Deepest limiter gain reduction, dB (0 when the limiter never acted)."""
    limited_s: float
    """Time during which the limiter reduced the gain by more than 0.01 dB."""
    limited_share: float = 0.0
    """``limited_s`` over the programme (the master from its first to its last sound)."""
    loudest_passage: Passage | None = None
    """Where the limiter took most off (None when it never acted)."""

    @property
    def heavy_limiting(self) -> bool:
        """More than 6 dB taken off a peak, or more than 5 % of the programme limited."""
        return (
            self.limiter_max_reduction_db > _HEAVY_REDUCTION_DB or self.limited_share > _HEAVY_SHARE
        )

    @property
    def duration_s(self) -> float:
        return self.samples / RATE

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "samples": self.samples,
            "duration_s": round(self.duration_s, 6),
            "channels": self.channels,
            "gain_db": round(self.gain_db, 3),
            "integrated_lufs": _num(self.integrated_lufs),
            "true_peak_dbtp": _num(self.true_peak_dbtp),
            "measured_as": self.measured_as,
            "limiter_max_reduction_db": round(self.limiter_max_reduction_db, 3),
            "limited_s": round(self.limited_s, 3),
            "limited_share": round(self.limited_share, 4),
            "heavy_limiting": self.heavy_limiting,
            "loudest_passage": None
            if self.loudest_passage is None
            else self.loudest_passage.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Cut:
    """Where a segment's audio was cut out of the master (48 kHz master samples)."""

    position: int
    kind: CutKind
    pause_s: float | None = None
    """Length of the pause the cut is in (None at the programme's edges)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "position_s": round(self.position / RATE, 6),
            "kind": self.kind,
            "pause_s": None if self.pause_s is None else round(self.pause_s, 3),
        }


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    index: int
    path: Path
    samples: int
    channels: int
    source_in: int
    """First master sample of the segment's audio (it starts at ``preroll_end``)."""
    source_out: int
    """Master sample after the segment's last one."""
    click_start: int | None
    click_end: int | None
    preroll_start: int
    preroll_end: int
    integrated_lufs: float
    true_peak_dbtp: float
    measured_as: str
    cut_in: Cut
    cut_out: Cut

    @property
    def duration_s(self) -> float:
        return self.samples / RATE

    @property
    def source_in_s(self) -> float:
        return self.source_in / RATE

    @property
    def source_out_s(self) -> float:
        return self.source_out / RATE

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.path.name,
            "samples": self.samples,
            "duration_s": round(self.duration_s, 6),
            "channels": self.channels,
            "source_in": self.source_in,
            "source_out": self.source_out,
            "source_in_s": round(self.source_in_s, 6),
            "source_out_s": round(self.source_out_s, 6),
            "click_start": self.click_start,
            "click_end": self.click_end,
            "preroll_start": self.preroll_start,
            "preroll_end": self.preroll_end,
            "integrated_lufs": _num(self.integrated_lufs),
            "true_peak_dbtp": _num(self.true_peak_dbtp),
            "measured_as": self.measured_as,
            "cut_in": self.cut_in.to_json(),
            "cut_out": self.cut_out.to_json(),
        }


@dataclass(frozen=True, slots=True)
class PrepResult:
    """Everything ``prep_audio`` wrote and measured."""

    out_dir: Path
    manifest_path: Path
    source: SourceInfo
    master: MasterInfo
    segments: tuple[SegmentInfo, ...]
    options: PrepOptions
    """The options used, channels resolved."""
    settings: dict[str, Any] = field(hash=False)
    warnings: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    checks: tuple[FileReport, ...] = ()
    """Each segment file as written, validated against :func:`self_check_spec`."""

    @property
    def failed(self) -> tuple[FileReport, ...]:
        """The segments that do not pass the spec of what was asked (see ``checks``)."""
        return tuple(r for r in self.checks if r.status != "pass")

    def manifest(self) -> dict[str, Any]:
        """The content of ``manifest.json``."""
        return {
            "schema": MANIFEST_SCHEMA,
            "source": self.source.to_json(),
            "settings": self.settings,
            "master": self.master.to_json(),
            "segments": [s.to_json() for s in self.segments],
            "warnings": list(self.warnings),
        }

    def to_json(self) -> dict[str, Any]:
        """The manifest plus absolute paths (``manifest``, ``master.path``, ``segments[].path``)."""
        out = self.manifest()
        out["manifest"] = str(self.manifest_path)
        out["out_dir"] = str(self.out_dir)
        out["master"]["path"] = str(self.master.path)
        for seg_json, seg in zip(out["segments"], self.segments, strict=True):
            seg_json["path"] = str(seg.path)
        out["elapsed_s"] = round(self.elapsed_s, 3)
        out["checks"] = [r.to_json() for r in self.checks]
        return out


def self_check_spec(options: PrepOptions) -> Spec:
    """The spec every segment must pass: ``ltx2-audio`` with the targets these options ask.

    With the default options it is ``ltx2-audio`` itself. A user's own loudness, true-peak,
    length or pre-roll target replaces the spec's; stereo output (music's default, or
    voice with two different sounds kept apart) is not mono content, so the mono-content
    rule is dropped. An input that cannot reach the target (a DC offset, a
    click train) then fails here, and the command says so, instead of reporting success.
    """
    base = load_spec("ltx2-audio")
    lead_in_s = (options.preroll_ms + _LEAD_IN * 1000 // RATE) / 1000.0 + 0.005
    targets: dict[str, float] = {
        "loudness": options.target_lufs,
        "true-peak": options.true_peak,
        "duration": options.max_seconds,
    }
    rules = []
    for rule in base.rules:
        if rule.id == "mono-content" and options.resolved_channels == "stereo":
            continue
        if rule.id in targets:
            rule = replace(rule, value=targets[rule.id], message="")
        elif rule.id == "leading-silence" and isinstance(rule.value, float):
            rule = replace(rule, value=max(rule.value, lead_in_s))
        rules.append(rule)
    return replace(base, rules=tuple(rules))


# --- decoding to content ---------------------------------------------------------------------


def _resample(x: Float32Array, rate: int) -> Float32Array:
    """Resample (channels <= 2) to 48 kHz with FFmpeg's swr; the first sample stays at 0."""
    if rate == RATE:
        return np.ascontiguousarray(x, dtype=np.float32)
    layout = "mono" if x.shape[0] == 1 else "stereo"
    resampler = av.AudioResampler(format="flt", layout=layout, rate=RATE)
    chunks: list[Float32Array] = []
    step = 1 << 16
    for start in range(0, x.shape[1], step):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(x[:, start : start + step]), format="fltp", layout=layout
        )
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        chunks.extend(frame_samples(f) for f in resampler.resample(frame))
    chunks.extend(frame_samples(f) for f in resampler.resample(None) if f is not None)
    out = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    expected = round(x.shape[1] * RATE / rate)
    if out.shape[1] > expected:
        out = out[:, :expected]
    elif out.shape[1] < expected:
        out = np.pad(out, ((0, 0), (0, expected - out.shape[1])))
    return out


_PCM_GUID = bytes.fromhex("0100000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_PCM
_GUID_TAIL = _PCM_GUID[2:]  # every KSDATAFORMAT_SUBTYPE: the format tag, then this


def _read_pcm_wav(path: Path) -> DecodedAudio | None:
    """Plain PCM or float WAV, at most two channels, read straight into numpy.

    Narration usually arrives as WAV, and decoding it frame by frame through FFmpeg
    costs more than everything else here but the measuring (0.5 s of 3 for 5 minutes).
    The result equals :func:`handoff.audio.decode_audio`'s (planar float32, full scale
    1.0). The chunks are read by :func:`handoff.riff.read_wav_layout`. Anything unusual
    -- another codec, more channels, a data chunk that runs past the end of the file or
    declares no size -- returns None, and decode_audio reads it.
    """
    try:
        layout = read_wav_layout(path)
    except OSError:
        return None
    if layout is None or layout.truncated or layout.data_offset is None:
        return None
    fmt, pos, length = layout.fmt, layout.data_offset, layout.data_size
    if fmt is None or len(fmt) < 16 or length is None:
        return None  # no format, or a placeholder data size: FFmpeg reads to the end
    tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == 0xFFFE:
        if len(fmt) < 40 or fmt[26:40] != _GUID_TAIL:
            return None
        tag = struct.unpack("<H", fmt[24:26])[0]
    kinds = {(1, 16): "<i2", (1, 24): "i24", (1, 32): "<i4", (3, 32): "<f4", (3, 64): "<f8"}
    kind = kinds.get((tag, bits))
    if kind is None or channels not in (1, 2) or rate < 1 or align != channels * bits // 8:
        return None
    frames = length // align
    try:
        return _read_pcm_data(path, pos, frames, channels, bits, kind, rate)
    except OSError:
        return None


def _read_pcm_data(
    path: Path, pos: int, frames: int, channels: int, bits: int, kind: str, rate: int
) -> DecodedAudio | None:
    align = channels * bits // 8
    samples = np.empty((channels, frames), dtype=np.float32)
    step = 1 << 18  # frames per read: no full-length temporaries besides the result
    with path.open("rb") as f:
        f.seek(pos)
        for start in range(0, frames, step):
            count = min(step, frames - start)
            raw = np.frombuffer(f.read(count * align), dtype=np.uint8)
            if raw.shape[0] != count * align:
                return None  # the file changed under us: let FFmpeg read it
            if kind == "i24":
                wide = np.zeros((count * channels, 4), dtype=np.uint8)
                wide[:, 1:] = raw.reshape(-1, 3)
                values = wide.reshape(-1).view("<i4").astype(np.float32)
                values *= np.float32(2.0**-31)
            elif kind[1] == "i":
                values = raw.view(kind).astype(np.float32)
                values *= np.float32(1.0 / (1 << (bits - 1)))
            else:
                values = raw.view(kind).astype(np.float32)
            samples[:, start : start + count] = values.reshape(count, channels).T
    layout = "mono" if channels == 1 else "stereo"
    return DecodedAudio(samples=samples, sample_rate=int(rate), layout=layout)


# BS.1770-4 Annex 1, eq. (2): the channels' weighted mean squares are summed, so two
# identical channels read 10*log10(2) = 3.01 dB over one of them.
_STEREO_SUM = "stereo: BS.1770 sum of L and R"
_DUAL_MONO_AS_MONO = "mono content of dual-mono: one channel (a stereo meter reads 3.01 dB more)"


def _compare_channels(x: Float32Array, rate: int) -> LeftRight | None:
    """How the two channels of ``x`` compare over its sound; None when it has none.

    On 100 ms steps (BS.1770's) whose louder channel is above the programme's silence
    threshold (:func:`handoff.analysis.silence_threshold_db`): the correlation and level
    difference of their sums, and the spread of the steps' own level differences. The
    thresholds and why are by ``_SAME_MIN_CORRELATION`` above.
    """
    if not np.all(np.isfinite(x)):
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # as the content will be
    step = max(1, rate // 10)
    steps = x.shape[1] // step
    if steps == 0:
        return None
    ll, rr, lr = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    chunk = max(1, (1 << 18) // step)  # steps per block: float64 copies of one block only
    for a in range(0, steps, chunk):
        b = min(steps, a + chunk)
        left = x[0, a * step : b * step].astype(np.float64).reshape(b - a, step)
        right = x[1, a * step : b * step].astype(np.float64).reshape(b - a, step)
        ll[a:b] = np.einsum("sk,sk->s", left, left)
        rr[a:b] = np.einsum("sk,sk->s", right, right)
        lr[a:b] = np.einsum("sk,sk->s", left, right)
    bins, _ = analysis.bin_power(x, rate)
    limit = 10.0 ** (analysis.silence_threshold_db(bins) / 10.0)
    sound = np.maximum(ll, rr) / step > limit
    if not sound.any():
        return None
    el, er, elr = float(ll[sound].sum()), float(rr[sound].sum()), float(lr[sound].sum())
    floor = 10.0 ** (-_SWING_CLIP_DB / 10.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(rr[sound] > 0.0, ll[sound] / rr[sound], np.inf)
        per_step = 10.0 * np.log10(np.clip(ratio, floor, 1.0 / floor))
    swing = float(np.percentile(per_step, 90) - np.percentile(per_step, 10))
    if el == 0.0 or er == 0.0:
        return LeftRight("one-sided", None, None, swing)
    correlation = elr / math.sqrt(el * er)
    difference = 10.0 * math.log10(el / er)
    verdict: LeftRightVerdict
    if abs(difference) > _ONE_SIDED_DB:
        verdict = "one-sided"
    elif correlation < _SAME_MIN_CORRELATION or swing > _SAME_MAX_SWING_DB:
        verdict = "different"
    else:
        verdict = "same"
    return LeftRight(verdict, correlation, difference, swing)


def _content(decoded: DecodedAudio, stereo: bool, warnings: list[str]) -> tuple[Float32Array, str]:
    """The programme as 1 (mono content) or 2 channels at 48 kHz, float32; and which
    signal that is, as its loudness is measured (``SourceInfo.measured_as``)."""
    x = decoded.samples
    names = decoded.channel_names
    keep = [i for i, n in enumerate(names) if not n.upper().startswith("LFE")] if names else []
    if not keep:
        keep = list(range(x.shape[0]))
    if not stereo:
        if x.shape[0] == 1:
            mixed, how = x, "mono"
        elif len(keep) == 2:
            mixed = ((x[keep[0]] + x[keep[1]]) * np.float32(0.5))[np.newaxis, :]
            how = "mono content: L+R averaged"
        else:
            mixed = np.mean(x[keep], axis=0, keepdims=True)
            how = f"mono content: {len(keep)} channels averaged"
            if len(keep) < x.shape[0]:
                how += ", LFE left out"
    elif x.shape[0] <= 2:
        mixed = x
        how = "mono" if x.shape[0] == 1 else _STEREO_SUM
    else:
        # Front left/right when the layout names them, else the first two channels.
        order = {n.upper(): i for i, n in enumerate(names)}
        pair = [order.get("FL", 0), order.get("FR", 1)]
        mixed = x[pair]
        how = f"{_STEREO_SUM} (front left/right of {x.shape[0]} channels)"
        warnings.append(f"{x.shape[0]}-channel input: kept front left/right only for stereo")
    out = _resample(np.asarray(mixed, dtype=np.float32), decoded.sample_rate)
    if stereo and out.shape[0] == 1:
        out = np.vstack([out, out])
    return out, how


# --- measuring -------------------------------------------------------------------------------


class _Meter:
    """Loudness the ltx2-audio way: the mono content of dual-mono is measured as mono.

    Besides measuring files, it keeps the programme's K-weighted energy per 100 ms step
    (BS.1770-4's gating grid), from which the loudness after any gain and limiter curve is
    *estimated* without filtering the whole signal again (see :meth:`estimate`).
    """

    def __init__(self, content: Float32Array) -> None:
        self.as_mono = content.shape[0] == 1 or loudness.is_dual_mono(content)
        measured = content[:1] if self.as_mono else content
        self.weights = loudness.channel_weights(measured.shape[0])
        # The step energies handoff.loudness builds its integrated loudness from (so
        # estimates and measurements share one definition).
        self.energy, self.lengths = loudness.weighted_segment_energy(measured, RATE, self.weights)
        self._measured = measured
        self._plain: FloatArray | None = None
        self.lufs0 = self._gated(self.energy)

    def _gated(self, energy: FloatArray) -> float:
        blocks = loudness.window_loudness(energy, self.lengths, loudness.SEGMENTS_PER_BLOCK)
        return loudness.gated_integrated(blocks)

    def estimate(self, gain_db: float, curve: GainCurve) -> float:
        """Loudness after ``gain_db`` and ``curve``: each 100 ms step's K-weighted energy
        scaled by how much the curve lowers its plain energy (exact without limiting)."""
        energy = self.energy * 10.0 ** (gain_db / 10.0)
        if not curve.empty:
            steps = self.energy.shape[0]
            if self._plain is None:  # plain (unweighted) energy per step, once
                plain = np.zeros(steps)
                for ch, w in enumerate(self.weights):
                    xr = self._measured[ch, : steps * _STEP].reshape(steps, _STEP)
                    plain += w * np.einsum("sk,sk->s", xr, xr, dtype=np.float64)
                self._plain = plain
            inside = curve.index < steps * _STEP
            idx = curve.index[inside]
            v = curve.values[inside].astype(np.float64)
            sq = np.zeros(idx.shape[0])
            for ch, w in enumerate(self.weights):
                xs = self._measured[ch, idx].astype(np.float64)
                sq += w * xs * xs
            loss = np.bincount(idx // _STEP, weights=sq * (1.0 - v * v), minlength=steps)
            with np.errstate(divide="ignore", invalid="ignore"):
                kept = np.where(self._plain > 0.0, 1.0 - loss / self._plain, 1.0)
            energy = energy * np.clip(kept, 0.0, 1.0)
        return self._gated(energy)

    def lufs(self, x: Float32Array) -> float:
        return loudness.integrated_loudness(x[:1] if self.as_mono else x, RATE)

    def measured_as(self, channels_out: Channels) -> str:
        if channels_out == "mono":
            return loudness.MEASURED_AS_IS
        return loudness.MEASURED_AS_MONO if self.as_mono else loudness.MEASURED_AS_IS


def _true_peaks(
    y: Float32Array,
    estimate: Float32Array,
    curve: GainCurve,
    spans: list[tuple[int, int]],
    oversample: int,
) -> list[float]:
    """True peak (dBTP) of ``y`` over each ``[a, b)`` span, with the meter's interpolation.

    ``estimate`` is the unit-gain envelope times the gain and the limiter curve. Where the
    curve is 1 that *is* the envelope of ``y`` (interpolation is linear); where the limiter
    acts it is close (the gain moves a little within the kernel's +/- 16 samples). So
    only 4096-sample blocks whose estimate comes within 2 dB of their span's largest and
    that the limiter touches are interpolated again from ``y`` itself, and written into
    ``estimate`` (which is consumed).
    """
    n = y.shape[1]
    block = 4096
    count = -(-n // block)
    whole = n // block
    per_block = np.zeros(count, dtype=np.float32)
    per_block[:whole] = estimate[: whole * block].reshape(whole, block).max(axis=1)
    if count > whole:
        per_block[whole] = estimate[whole * block :].max()
    candidate = np.zeros(count, dtype=bool)
    for a, b in spans:
        if b > a:
            top = float(estimate[a:b].max())
            ba, bb = a // block, -(-b // block)
            candidate[ba:bb] |= per_block[ba:bb] >= top * 10.0 ** (-_TP_CANDIDATE_DB / 20.0)
    touched = np.zeros(count, dtype=bool)
    if not curve.empty:
        reach = 2 * 16  # the interpolation kernel's reach, with room to spare
        touched[curve.index // block] = True
        touched[np.maximum(curve.index - reach, 0) // block] = True
        touched[np.minimum(curve.index + reach, n - 1) // block] = True
    marked = candidate & touched
    edges = np.diff(np.concatenate(([0], marked.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1) * block
    stops = np.minimum(np.flatnonzero(edges == -1) * block, n)
    env = estimate  # updated in place: the caller's estimate becomes the measurement
    if starts.shape[0]:
        real = oversampled_peak_in(y, starts, stops, oversample)
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            env[a:b] = real[a:b]
    if n:  # the meter reads nothing between the last sample and beyond
        env[n - 1] = float(np.abs(y[:, n - 1]).max())
    out = []
    for a, b in spans:
        peak = float(env[a:b].max()) if b > a else 0.0
        out.append(20.0 * math.log10(peak) if peak > 0.0 else float("-inf"))
    return out


@dataclass(frozen=True, slots=True, eq=False)
class _Levelled:
    samples: Float32Array
    estimate: Float32Array
    """Per-sample peak envelope estimate of ``samples`` (for :func:`_true_peaks`)."""
    gain_db: float
    lufs: float
    ceiling_db: float
    curve: GainCurve


def _solve_gain(
    meter: _Meter,
    peak: Float32Array,
    ceiling_db: float,
    goal: float,
    start_db: float,
    cap_db: float,
    settings: LimiterSettings,
) -> tuple[float, GainCurve, float]:
    """The gain whose *estimated* loudness after the limiter is ``goal`` (secant steps)."""
    ceiling = 10.0 ** (ceiling_db / 20.0)
    history: list[tuple[float, float]] = []
    gain_db = start_db
    curve = GainCurve(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    est = float("nan")
    for _ in range(_MAX_GAIN_ITERATIONS):
        curve = gain_curve(peak, ceiling / 10.0 ** (gain_db / 20.0), RATE, settings)
        est = meter.estimate(gain_db, curve)
        history.append((gain_db, est))
        miss = goal - est
        if abs(miss) <= _ESTIMATE_TOLERANCE_LU:
            break
        slope = 1.0
        if len(history) >= 2:
            (g0, l0), (g1, l1) = history[-2], history[-1]
            if g1 != g0:
                slope = min(1.0, max(0.05, (l1 - l0) / (g1 - g0)))
        step = min(cap_db, gain_db + miss / slope)
        if step == gain_db:
            break  # at the cap: more gain is not allowed
        gain_db = step
    return gain_db, curve, est


def _level(
    content: Float32Array,
    meter: _Meter,
    peak: Float32Array,
    target: float,
    ceiling_db: float,
    settings: LimiterSettings,
) -> _Levelled:
    """One linear gain plus the limiter; the gain iterated until the loudness is on target.

    ``peak`` is the content's unit-gain envelope (:func:`oversampled_peak`). The gain is
    solved on the loudness estimate (cheap), the result measured for real, and the
    estimate's bias corrected -- usually one real measurement, at most three.
    """
    base = target - meter.lufs0
    cap = base + _MAX_EXTRA_GAIN_DB
    gain_db = base
    bias = 0.0
    for _ in range(3):
        gain_db, curve, est = _solve_gain(
            meter, peak, ceiling_db, target - bias, gain_db, cap, settings
        )
        y = curve.apply(content, 10.0 ** (gain_db / 20.0))
        # Without limiting the estimate is the measurement (a gain scales every step's
        # energy alike); with it, measure the limited programme for real.
        lufs = est if curve.empty else meter.lufs(y)
        log.debug(
            "gain %.3f dB, %d limiter regions: %.3f LUFS (estimated %.3f)",
            gain_db,
            curve.regions,
            lufs,
            est,
        )
        if abs(lufs - target) <= _LOUDNESS_TOLERANCE_LU or gain_db >= cap:
            break
        bias = lufs - est
    estimate = np.multiply(peak, np.float32(10.0 ** (gain_db / 20.0)))
    if not curve.empty:
        estimate[curve.index] *= curve.values
    return _Levelled(y, estimate, gain_db, lufs, ceiling_db, curve)


# --- cuts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    cut: Cut
    start: int  # where a segment after this cut starts (master sample)
    end: int  # where a segment before this cut ends (master sample)
    cost: float


def _node(
    sound: SoundMap, cut_bin: int, kind: CutKind, pause_bins: int | None, total: int
) -> _Node | None:
    position = cut_bin * _BIN + _BIN // 2
    onset = sound.onset_after(cut_bin)
    end = sound.end_before(cut_bin)
    if onset is None or end is None:
        return None
    start = max(position, onset * _BIN - _LEAD_IN)
    stop = min(position, end * _BIN + _TAIL, total)
    pause_s = None if pause_bins is None else pause_bins / 1000.0
    if kind == "pause":
        assert pause_s is not None
        cost = 0.5 / min(pause_s, 2.5)
    elif kind == "short-pause":
        cost = _COST_SHORT_PAUSE
    else:
        level_db = 10.0 * math.log10(max(float(sound.centred[cut_bin]), 1e-30))
        cost = _COST_QUIETEST + max(0.0, level_db - sound.threshold_db)
    return _Node(Cut(position, kind, pause_s), start, stop, cost)


def _plan(
    sound: SoundMap, total: int, head: int, options: PrepOptions, warnings: list[str]
) -> list[tuple[_Node, _Node]]:
    """The segments as (cut before, cut after) pairs."""
    first = sound.onset_after(0)
    last = sound.end_before(sound.bins.shape[0])
    assert first is not None and last is not None
    begin = _Node(Cut(0, "start"), max(0, first * _BIN - _LEAD_IN), 0, 0.0)
    finish = _Node(Cut(total, "end"), total, min(total, last * _BIN + _TAIL), 0.0)
    hard = round(options.max_seconds * RATE) - _DURATION_SAFETY
    if head + finish.end - begin.start <= hard:
        return [(begin, finish)]

    nodes: dict[int, _Node] = {}
    covered = np.zeros(sound.bins.shape[0], dtype=bool)
    for a, b in sound.pauses(first, last, _SHORT_PAUSE_BINS):
        kind: CutKind = "pause" if b - a >= _REAL_PAUSE_BINS else "short-pause"
        cut = sound.quietest(a, b)
        node = _node(sound, cut, kind, b - a, total)
        if node is not None:
            nodes[cut] = node
            covered[a:b] = True
    for a in range(first, last, _QUIETEST_BLOCK_BINS):
        b = min(last, a + _QUIETEST_BLOCK_BINS)
        cut = sound.quietest(a, b)
        if not covered[cut] and cut not in nodes:
            node = _node(sound, cut, "quietest", None, total)
            if node is not None:
                nodes[cut] = node
    chain = [begin, *(nodes[k] for k in sorted(nodes)), finish]
    starts = np.array([n.start for n in chain], dtype=np.int64)
    ends = np.array([n.end for n in chain], dtype=np.int64)
    positions = np.array([n.cut.position for n in chain], dtype=np.int64)
    costs = np.array([n.cost for n in chain])
    lo_s, hi_s = options.segment_min, options.segment_max
    best = np.full(len(chain), np.inf)
    back = np.full(len(chain), -1, dtype=np.int64)
    best[0] = 0.0
    for k in range(1, len(chain)):
        j0 = int(np.searchsorted(positions, positions[k] - 2 * hard))
        js = np.arange(j0, k)
        length = head + ends[k] - starts[js]
        ok = (length <= hard) & (ends[k] > starts[js]) & np.isfinite(best[js])
        if not ok.any():
            continue
        seconds = length / RATE
        out_of_range = np.maximum(lo_s - seconds, 0.0) + np.maximum(seconds - hi_s, 0.0)
        total_cost = np.where(ok, best[js] + _COST_PER_SECOND_OUT_OF_RANGE * out_of_range, np.inf)
        i = int(np.argmin(total_cost))
        best[k] = total_cost[i] + costs[k]
        back[k] = js[i]
    if not math.isfinite(best[-1]):
        raise UnsupportedError(
            f"cannot cut the programme into segments under {options.max_seconds:g} s"
        )
    path = [len(chain) - 1]
    while path[-1] != 0:
        path.append(int(back[path[-1]]))
    path.reverse()
    pairs = [(chain[a], chain[b]) for a, b in itertools.pairwise(path)]
    for index, (_, after) in enumerate(pairs[:-1], start=1):
        at = after.cut.position / RATE
        if after.cut.kind == "short-pause":
            warnings.append(
                f"segment {index} ends at {at:.2f} s in a short pause "
                f"({after.cut.pause_s:.2f} s): no longer pause fits the segment limits"
            )
        elif after.cut.kind == "quietest":
            warnings.append(
                f"segment {index} ends at {at:.2f} s at the quietest point, not in a pause: "
                "no pause fits the segment limits"
            )
    return pairs


# --- writing ---------------------------------------------------------------------------------


def _wav_header(frames: int, channels: int, bits: int) -> bytes:
    """RIFF/WAVE header: plain PCM for 16-bit, WAVE_FORMAT_EXTENSIBLE for 24-bit (as FFmpeg)."""
    block = channels * bits // 8
    data = frames * block
    if 36 + 24 + data >= 1 << 32:
        raise UnsupportedError("output over 4 GB: too long for a WAV file")
    if bits == 16:
        fmt = struct.pack("<HHIIHH", 1, channels, RATE, RATE * block, block, bits)
    else:
        mask = 0x4 if channels == 1 else 0x3
        fmt = struct.pack(
            "<HHIIHHHHI16s",
            0xFFFE,
            channels,
            RATE,
            RATE * block,
            block,
            bits,
            22,
            bits,
            mask,
            _PCM_GUID,
        )
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data)
    return b"RIFF" + struct.pack("<I", len(body) - 4 + 4 + data) + body


def _pack24(q: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    """Little-endian 24-bit PCM bytes of ``q``: every 4 samples packed into 3 32-bit words."""
    n = q.shape[0]
    pad = (-n) % 4
    u = np.concatenate((q, np.zeros(pad, dtype=np.int32))).view(np.uint32) & np.uint32(0xFFFFFF)
    u = u.reshape(-1, 4)
    words = np.empty((u.shape[0], 3), dtype="<u4")
    words[:, 0] = u[:, 0] | (u[:, 1] << 24)
    words[:, 1] = (u[:, 1] >> 8) | (u[:, 2] << 16)
    words[:, 2] = (u[:, 2] >> 16) | (u[:, 3] << 8)
    return words.reshape(-1).view(np.uint8)[: n * 3]


def _write_wav(
    dest: Path,
    content: Float32Array,
    channels_out: Channels,
    bits: int,
    *,
    replace: bool,
    guard: InputGuard,
) -> None:
    """Write content (1 or 2 channels) as PCM, duplicating mono for dual-mono."""
    duplicate = channels_out == "dual-mono" and content.shape[0] == 1
    src = content[:1] if channels_out == "mono" else content
    ch = 2 if duplicate else src.shape[0]
    n = src.shape[1]
    scale = np.float32(1 << (bits - 1))
    with atomic_output(dest, replace=replace, guard=guard) as tmp, tmp.open("wb") as f:
        f.write(_wav_header(n, ch, bits))
        step = 1 << 18  # small blocks: temporaries are reused, not re-mapped
        for start in range(0, n, step):
            block = src[:, start : start + step] * scale
            np.rint(block, out=block)
            np.clip(block, -scale, scale - 1.0, out=block)
            q = block.astype(np.int32)
            if duplicate:
                inter = np.repeat(q[0], 2)
            elif q.shape[0] == 1:
                inter = q[0]
            else:
                inter = np.ascontiguousarray(q.T).reshape(-1)
            if bits == 16:
                f.write(inter.astype("<i2").data)
            else:
                f.write(_pack24(inter).data)


class _Writer:
    """Writes WAV files on one background thread while the caller measures the next one
    (numpy and file writes release the GIL). At most two files wait in memory."""

    def __init__(self, channels_out: Channels, bits: int, replace: bool, guard: InputGuard) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: list[Future[None]] = []
        self._channels = channels_out
        self._bits = bits
        self._replace = replace
        self._guard = guard

    def submit(self, dest: Path, content: Float32Array) -> None:
        while len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(
            self._pool.submit(
                _write_wav,
                dest,
                content,
                self._channels,
                self._bits,
                replace=self._replace,
                guard=self._guard,
            )
        )

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                for job in self._pending:
                    job.result()
        finally:
            self._pool.shutdown(wait=True)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _click(channels: int, tp_target: float) -> Float32Array:
    t = np.arange(_CLICK) / RATE
    window = np.sin(np.pi * (np.arange(_CLICK) + 0.5) / _CLICK) ** 2
    amp = 10.0 ** ((tp_target - _CLICK_UNDER_TP_DB) / 20.0)
    burst = (amp * window * np.sin(2.0 * np.pi * _CLICK_HZ * t)).astype(np.float32)
    return np.tile(burst, (channels, 1))


def _segment_audio(
    y: Float32Array, start: int, stop: int, click: Float32Array | None, preroll: int
) -> Float32Array:
    body = np.array(y[:, start:stop], dtype=np.float32)
    n = body.shape[1]
    fade_in = min(_LEAD_IN, n // 2)
    if fade_in:
        body[:, :fade_in] *= (
            np.sin(0.5 * np.pi * (np.arange(fade_in) + 0.5) / fade_in) ** 2
        ).astype(np.float32)
    fade_out = min(_FADE_OUT, n // 2)
    if fade_out:
        body[:, n - fade_out :] *= (
            np.cos(0.5 * np.pi * (np.arange(fade_out) + 0.5) / fade_out) ** 2
        ).astype(np.float32)
    head = (0 if click is None else click.shape[1]) + preroll
    out = np.zeros((y.shape[0], head + n), dtype=np.float32)
    if click is not None:
        out[:, : click.shape[1]] = click
    out[:, head:] = body
    return out


def _check_free(paths: list[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for p in paths:
        if p.exists() or p.is_symlink():
            raise OutputExistsError(f"output exists: {p} (use --overwrite to replace it)", p)


def made_before(source: Path, out_dir: Path, options: PrepOptions) -> Manifest | None:
    """The manifest of an earlier run in ``out_dir`` that made exactly what these options
    would make again -- the same source (path and SHA-256), base name and settings, every
    file it lists still there -- so the run can be skipped; None when ``out_dir`` holds
    no manifest.

    Raises :class:`OutputExistsError` when a manifest is there but was made otherwise:
    skipping would leave the user with outputs they did not ask for, and replacing them
    needs ``--overwrite``.
    """
    manifest_path = Path(out_dir) / MANIFEST_NAME
    if not (manifest_path.exists() or manifest_path.is_symlink()):
        return None
    opts, warnings = _check_options(options)
    name = opts.name if opts.name is not None else _default_name(Path(source).stem, warnings)

    def other(why: str) -> OutputExistsError:
        return OutputExistsError(
            f"{manifest_path} exists, made {why}: use --overwrite to replace it, or another --out",
            manifest_path,
        )

    try:
        old = load_manifest(manifest_path)
    except UsageError:
        raise other("by something else (it is not a valid manifest)") from None
    real = Path(source).resolve()
    if old.source.file != str(real):
        raise other(f"from {old.source.file}")
    s = old.settings
    asked: dict[str, object] = {
        "name": name, "kind": opts.kind, "channels": opts.resolved_channels,
        "target_lufs": opts.target_lufs, "true_peak_dbtp": opts.true_peak,
        "preroll_ms": opts.preroll_ms, "click": opts.click, "max_seconds": opts.max_seconds,
        "segment_min_s": opts.segment_min, "segment_max_s": opts.segment_max,
        "bit_depth": opts.bit_depth,
    }  # fmt: skip
    changed = [f"{k} {getattr(s, k)} -> {v}" for k, v in asked.items() if getattr(s, k) != v]
    if changed:
        raise other("with other settings (" + ", ".join(changed) + ")")
    missing = [
        p.name
        for p in (old.master_path, *(old.segment_path(seg) for seg in old.segments))
        if not p.is_file()
    ]
    if missing:
        raise other(f"but {', '.join(missing)} is gone")
    check_readable(real)
    if _sha256(real) != old.source.sha256:
        raise other(f"from an earlier version of {real.name} (its SHA-256 differs)")
    return old


def _stale_segments(out_dir: Path, name: str, keep: set[str], guard: InputGuard) -> list[Path]:
    """Segment files of a previous run (listed in its manifest) that this run does not
    write -- never one of this run's inputs, and nothing when that manifest is not a
    valid one (its list cannot be trusted)."""
    try:
        old = load_manifest(out_dir / MANIFEST_NAME)
    except UsageError:
        return []
    pattern = re.compile(r"^\d{3}_" + re.escape(name) + r"\.wav$")
    stale = (old.segment_path(s) for s in old.segments if pattern.match(s.file))
    return [p for p in stale if p.name not in keep and p.is_file() and guard.input_at(p) is None]


# --- what to tell ---------------------------------------------------------------------------


def _different_channels_warning(lr: LeftRight) -> str:
    correlation = "-" if lr.correlation is None else f"{lr.correlation:.2f}"
    return (
        f"L and R carry different sound (correlation {correlation}, the louder side swings "
        f"{lr.level_swing_db:.0f} dB over the speech: two voices or two "
        "microphones?): mixed into one mono channel as (L+R)/2; listen to the master, "
        "or keep them apart with --channels stereo"
    )


def _loudest_passage(curve: GainCurve) -> Passage | None:
    """The passage (:meth:`GainCurve.passages`) holding the limiter's deepest reduction."""
    if curve.empty:
        return None
    deepest = int(curve.index[int(np.argmin(curve.values))])
    limit = np.float32(10.0 ** (-_LIMITED_DB / 20.0))
    for a, b in curve.passages(_LIMITED_DB, _PASSAGE_JOIN):
        if a <= deepest < b:
            lo, hi = np.searchsorted(curve.index, [a, b])
            values = curve.values[lo:hi]
            return Passage(
                start=a,
                end=b,
                max_reduction_db=float(-20.0 * np.log10(np.min(values))),
                limited_s=int(np.count_nonzero(values < limit)) / RATE,
            )
    return None


def _heavy_limiting_warning(master: MasterInfo, passage: Passage) -> str:
    return (
        f"heavy limiting: up to {master.limiter_max_reduction_db:.1f} dB taken off the peaks, "
        f"{master.limited_share:.1%} of the programme limited by over {_LIMITED_DB:g} dB "
        f"(warned over {_HEAVY_REDUCTION_DB:g} dB or {_HEAVY_SHARE:.0%}); loudest passage "
        f"{passage.describe()}, limited by up to {passage.max_reduction_db:.1f} dB: listen "
        "there (a lower --target-lufs needs less limiting)"
    )


# --- the whole job ---------------------------------------------------------------------------


def prep_audio(source: Path, out_dir: Path, options: PrepOptions) -> PrepResult:
    """Condition ``source`` for LTX-2 and write the segments, master and manifest.

    Raises UsageError for bad options, OutputExistsError (a UsageError) when an output
    exists and ``options.overwrite`` is false, the InputError family for unreadable,
    silent or too short inputs, UnsupportedError for a codec FFmpeg cannot decode.
    """
    t0 = time.perf_counter()
    source = Path(source)
    out_dir = Path(out_dir)
    opts, warnings = _check_options(options)
    channels_out: Channels = opts.resolved_channels
    name = opts.name if opts.name is not None else _default_name(source.stem, warnings)
    _check_name(name, "name" if opts.name is not None else "the input's name")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output folder is a file: {out_dir}", out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    master_path = out_dir / master_file_name(name)
    # The source is never written over nor removed, with or without --overwrite.
    guard = InputGuard([source])
    for output in (manifest_path, master_path):
        guard.check(output)
    _check_free([manifest_path, master_path], opts.overwrite)

    check_readable(source)  # before anything opens it: a FIFO would block the read
    decoded = _read_pcm_wav(source) or decode_audio(source)
    if decoded.samples.shape[1] == 0:
        raise InputError("the audio stream holds no samples", source)
    stereo = channels_out == "stereo"
    left_right = (
        _compare_channels(decoded.samples, decoded.sample_rate) if decoded.channels == 2 else None
    )
    content, measured_how = _content(decoded, stereo, warnings)
    if left_right is not None and left_right.verdict == "different" and not stereo:
        warnings.append(_different_channels_warning(left_right))
    source_rate, source_channels = decoded.sample_rate, decoded.channels
    source_samples = int(decoded.samples.shape[1])
    if decoded.skipped_packets:
        warnings.append(
            f"{decoded.skipped_packets} damaged packet(s) skipped while decoding: "
            "their audio is missing"
        )
    del decoded  # only the 48 kHz content is needed from here on
    if not np.all(np.isfinite(content)):
        content = np.nan_to_num(content, nan=0.0, posinf=0.0, neginf=0.0)
        warnings.append("the decoded audio held NaN/infinite samples: set to silence")
    if content.shape[1] < _MIN_SOUND_S * RATE:
        raise InputError(
            f"too short: {content.shape[1] / RATE:.2f} s of audio, at least "
            f"{_MIN_SOUND_S:g} s of sound needed",
            source,
        )
    meter = _Meter(content)
    if stereo and meter.as_mono and measured_how != "mono":
        measured_how = _DUAL_MONO_AS_MONO
    start_lufs = meter.lufs0
    if not math.isfinite(start_lufs) or start_lufs < _QUIET_INPUT_LUFS:
        level = "no measurable sound" if not math.isfinite(start_lufs) else f"{start_lufs:.1f} LUFS"
        raise InputError(f"silent or nearly silent ({level}): nothing to condition", source)
    log.info("decoded %s: %.1f s, %.2f LUFS", source, content.shape[1] / RATE, start_lufs)

    limiter = LimiterSettings()
    peak = oversampled_peak(content, limiter.oversample)
    top = float(peak.max())
    source_peak_db = 20.0 * math.log10(top) if top > 0.0 else float("-inf")
    click = _click(content.shape[0], opts.true_peak) if opts.click else None
    click_n = 0 if click is None else click.shape[1]
    click_tp = float("-inf") if click is None else loudness.true_peak(click[:1], RATE)
    preroll = round(opts.preroll_ms * RATE / 1000)
    head = click_n + preroll
    total = content.shape[1]
    ceiling_db = opts.true_peak - _LIMIT_MARGIN_DB
    for _attempt in range(4):
        levelled = _level(content, meter, peak, opts.target_lufs, ceiling_db, limiter)
        y = levelled.samples
        sound = SoundMap(y, RATE)
        heard = sound.sound_seconds()
        if heard < _MIN_SOUND_S:
            raise InputError(
                f"too short: {heard:.2f} s of sound, at least {_MIN_SOUND_S:g} s needed", source
            )
        plan_warnings: list[str] = []
        pairs = _plan(sound, total, head, opts, plan_warnings)
        spans = [(0, total)] + [(a.start, b.end) for a, b in pairs]
        master_tp, *seg_tps = _true_peaks(
            y, levelled.estimate, levelled.curve, spans, limiter.oversample
        )
        if master_tp <= opts.true_peak - _TP_SAFETY_DB:
            break
        # The meter read an over the limiter's detector missed: aim lower and redo.
        ceiling_db -= master_tp - (opts.true_peak - _LIMIT_MARGIN_DB)
        log.info("true peak %.3f dBTP: limiter ceiling lowered to %.3f", master_tp, ceiling_db)
    warnings.extend(plan_warnings)
    if master_tp > opts.true_peak:
        warnings.append(f"true peak {master_tp:.2f} dBTP is over the {opts.true_peak:g} target")
    if abs(levelled.lufs - opts.target_lufs) > _LOUDNESS_WARN_LU:
        warnings.append(
            f"master loudness {levelled.lufs:.2f} LUFS misses the {opts.target_lufs:g} LUFS "
            "target: the limiter cannot reach it without reshaping the programme"
        )
    span = sound.programme()
    programme = (span[1] - span[0]) * _BIN if span is not None else total
    limited_share = levelled.curve.seconds_below(_LIMITED_DB, RATE) * RATE / max(1, programme)
    passage = _loudest_passage(levelled.curve)
    log.info(
        "gain %.2f dB, limiter %.2f dB max: %.2f LUFS, %.2f dBTP",
        levelled.gain_db,
        levelled.curve.max_reduction_db(),
        levelled.lufs,
        master_tp,
    )

    seg_paths = [out_dir / segment_file_name(i, name) for i in range(1, len(pairs) + 1)]
    for output in seg_paths:
        guard.check(output)
    _check_free(seg_paths, opts.overwrite)
    stale = (
        _stale_segments(out_dir, name, {p.name for p in seg_paths}, guard) if opts.overwrite else []
    )

    segments: list[SegmentInfo] = []
    with _Writer(channels_out, opts.bit_depth, opts.overwrite, guard) as writer:
        for index, ((before, after), path) in enumerate(
            zip(pairs, seg_paths, strict=True), start=1
        ):
            start, stop = before.start, after.end
            seg = _segment_audio(y, start, stop, click, preroll)
            lufs = meter.lufs(seg)
            tp = max(seg_tps[index - 1], click_tp)
            if abs(lufs - opts.target_lufs) > _LOUDNESS_WARN_LU:
                warnings.append(
                    f"segment {index}: {lufs:.2f} LUFS, more than {_LOUDNESS_WARN_LU:g} LU from "
                    f"the target (the same gain as the whole programme)"
                )
            length_s = seg.shape[1] / RATE
            if len(pairs) > 1 and not opts.segment_min <= length_s <= opts.segment_max:
                warnings.append(
                    f"segment {index} is {length_s:.1f} s, outside {opts.segment_min:g}-"
                    f"{opts.segment_max:g} s: no pause allowed better"
                )
            segments.append(
                SegmentInfo(
                    index=index,
                    path=path,
                    samples=seg.shape[1],
                    channels=2 if channels_out != "mono" else 1,
                    source_in=start,
                    source_out=stop,
                    click_start=0 if click is not None else None,
                    click_end=click_n if click is not None else None,
                    preroll_start=click_n,
                    preroll_end=head,
                    integrated_lufs=lufs,
                    true_peak_dbtp=tp,
                    measured_as=meter.measured_as(channels_out),
                    cut_in=before.cut,
                    cut_out=after.cut,
                )
            )
            writer.submit(path, seg)
            del seg
        writer.submit(master_path, y)
        source_sha256 = _sha256(source)  # while the files are written

    master = MasterInfo(
        path=master_path,
        samples=total,
        channels=2 if channels_out != "mono" else 1,
        gain_db=levelled.gain_db,
        integrated_lufs=levelled.lufs,
        true_peak_dbtp=master_tp,
        measured_as=meter.measured_as(channels_out),
        limiter_max_reduction_db=levelled.curve.max_reduction_db(),
        limited_s=levelled.curve.seconds_below(0.01, RATE),
        limited_share=limited_share,
        loudest_passage=passage,
    )
    if master.heavy_limiting and passage is not None:
        warnings.append(_heavy_limiting_warning(master, passage))
    settings: dict[str, Any] = {
        "name": name,
        "kind": opts.kind,
        "channels": channels_out,
        "target_lufs": opts.target_lufs,
        "true_peak_dbtp": opts.true_peak,
        "preroll_ms": opts.preroll_ms,
        "click": opts.click,
        "max_seconds": opts.max_seconds,
        "segment_min_s": opts.segment_min,
        "segment_max_s": opts.segment_max,
        "bit_depth": opts.bit_depth,
        "sample_rate": RATE,
        "limiter": {"ceiling_dbtp": round(levelled.ceiling_db, 3), **limiter.to_json()},
        "silence": {
            "threshold_dbfs": round(sound.threshold_db, 2),
            "real_pause_s": _REAL_PAUSE_BINS / 1000.0,
            "short_pause_s": _SHORT_PAUSE_BINS / 1000.0,
            "lead_in_s": _LEAD_IN / RATE,
            "tail_s": _TAIL / RATE,
        },
    }
    source_info = SourceInfo(
        path=source.resolve(),
        sha256=source_sha256,
        sample_rate=source_rate,
        channels=source_channels,
        samples=source_samples,
        integrated_lufs=start_lufs,
        true_peak_dbtp=source_peak_db,
        measured_as=measured_how,
        left_right=left_right,
    )

    for old in stale:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
        warnings.append(f"removed {old.name}, a segment of the previous run in this folder")
    result = PrepResult(
        out_dir=out_dir,
        manifest_path=manifest_path,
        source=source_info,
        master=master,
        segments=tuple(segments),
        options=opts,
        settings=settings,
        warnings=tuple(warnings),
        elapsed_s=time.perf_counter() - t0,
    )
    text = json.dumps(result.manifest(), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(manifest_path, text.encode("utf-8"), replace=opts.overwrite, guard=guard)
    # Checked as written, by the reader every user has: done only when it passes.
    spec = self_check_spec(opts)
    result = replace(result, checks=tuple(validate_file(s.path, spec) for s in segments))
    log.info("wrote %d segments and the master in %.2f s", len(segments), result.elapsed_s)
    for w in warnings:
        log.warning("%s", w)
    return result
