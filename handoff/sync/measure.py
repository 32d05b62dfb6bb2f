"""Sync of generated takes: each take's sound against its narration, its picture against
its sound, where it drifts out, and a score to pick the best take of a segment.

The shape of export: :func:`plan_sync` (pure) pairs every take with the narration it
was conditioned on -- one ``--reference`` for all, or the segment of a prep-audio
manifest named by the take's number prefix -- into a frozen :class:`SyncPlan`;
:func:`measure_take` runs one :class:`SyncJob` and always returns a :class:`TakeSync`
(a take that cannot be read is a result with ``status="error"``); :func:`run_sync`
runs a plan on worker processes.

Each take is decoded once, streaming: its sound goes through
:class:`handoff.sync.align.AudioAligner` as it arrives, and only small per-frame and per-ms
figures are kept for the picture (about 5 KB per second of take). The narration is
read streaming too and held at 16 kHz mono (64 KB per second: it is one segment).

What the figures mean, and their signs, are in docs/reference/json.md ("sync").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.video.frame import VideoFrame

from handoff.analysis import dsp
from handoff.errors import (
    HandoffError,
    InputError,
    NoStreamsError,
    NotMediaError,
    UnsupportedError,
    UsageError,
    describe,
)
from handoff.files.find import MediaItem, check_readable, segment_number
from handoff.files.fsutil import resolved
from handoff.files.manifest import Manifest
from handoff.media.arrays import Float32Array, FloatArray
from handoff.media.audio import Damage, decoded_frames, frame_samples, open_media
from handoff.sync.align import (
    ANALYSIS_RATE,
    ENVELOPE_BIN,
    AudioAligner,
    AudioFit,
    Line,
    PictureFit,
    crossing,
    envelope_lag,
    picture_lag,
)

__all__ = [
    "SCHEMA",
    "PictureSync",
    "SlateSync",
    "SoundSync",
    "SyncJob",
    "SyncPlan",
    "TakeSync",
    "measure_take",
    "plan_sync",
    "run_sync",
    "sync_json",
]

SCHEMA = "handoff.sync/1"


# ITU-R BT.1359-1 (1998), Figure 1: viewers detect sound *ahead* of picture from about
# 45 ms and sound *behind* picture from about 125 ms. Errors are weighted by these.
NOTICED_SOUND_EARLY_MS = 45.0
NOTICED_SOUND_LATE_MS = 125.0

MAX_LAG_S = 2.0
"""Largest offset looked for, either way (sound against narration)."""
_ENVELOPE_MATCH = 0.6  # envelope correlation from which a sound is taken as the narration
_ENVELOPE_PROMINENCE = 0.25  # ... standing this far above its best rival lag
_ENVELOPE_MIN_S = 3.0  # ... over at least this much sound
_PICTURE_NONE = 0.15  # below this the picture does not follow the sound at all
_PICTURE_UNSURE = 0.3  # below this the picture barely follows the sound: say so
_SLATE_SEARCH_S = 1.0  # a slate is a click (and a flash or cut) in the first second
_KEEP_NATIVE_S = 1.6  # native-rate sound kept for the slate search
_CLICK_QUIET = 0.05  # around a click the sound stays under 5 % of its peak (-26 dB)
_FLASH_LEVELS = 40.0  # a flash lifts the mean luma this much (of 255) over its neighbours
_CUT_FACTOR = 10.0  # a cut changes the picture this many times more than the median frame
_RECUT_PAUSE_S = 0.25  # shortest pause offered as a re-cut point
_SCORE_POINTS = 64
_EMPTY: Float32Array = np.zeros(0, dtype=np.float32)  # never written to


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class SyncJob:
    """One take and the narration it is measured against."""

    take: Path
    reference: Path | None
    segment: int | None = None
    reference_click: int | None = None
    """Where prep-audio put the sync click in the reference (sample at its rate)."""
    master_offset_s: float | None = None
    """Add to a time in the segment to get the time in the master narration."""
    tolerance_ms: float | None = None
    """None: one frame of the take."""
    problem: str | None = None
    """Why this take cannot be measured (found while planning)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "take": str(self.take),
            "reference": None if self.reference is None else str(self.reference),
            "segment": self.segment,
            "reference_click": self.reference_click,
            "master_offset_s": self.master_offset_s,
            "tolerance_ms": self.tolerance_ms,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class SyncPlan:
    jobs: tuple[SyncJob, ...]
    reference: Path | None
    manifest: Path | None
    tolerance_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "handoff.sync-plan/1",
            "reference": None if self.reference is None else str(self.reference),
            "manifest": None if self.manifest is None else str(self.manifest),
            "tolerance_ms": self.tolerance_ms,
            "jobs": [j.to_json() for j in self.jobs],
        }


def plan_sync(
    takes: Sequence[MediaItem],
    *,
    reference: Path | None = None,
    manifest: Manifest | None = None,
    tolerance_ms: float | None = None,
) -> SyncPlan:
    """Pair each take with its narration: ``reference`` for all, or the manifest's
    segment whose index the take's name starts with (``002_...`` -> segment 2)."""
    if (reference is None) == (manifest is None):
        raise UsageError("give a reference or a manifest, not both or neither")
    if tolerance_ms is not None and not (0 < tolerance_ms < 10_000):
        raise ValueError(f"tolerance must be between 0 and 10000 ms (got {tolerance_ms})")
    jobs: list[SyncJob] = []
    # The narration itself is not a take (a folder of takes often holds it too).
    narration = None if reference is None else resolved(reference)
    for item in takes:
        if not isinstance(item, InputError) and narration and resolved(item) == narration:
            continue
        if isinstance(item, InputError):
            where = item.path if item.path is not None else Path()
            jobs.append(SyncJob(where, None, problem=str(item), tolerance_ms=tolerance_ms))
            continue
        if manifest is None:
            jobs.append(SyncJob(item, reference, tolerance_ms=tolerance_ms))
            continue
        number = segment_number(item.name)
        segment = next((s for s in manifest.segments if s.index == number), None)
        if segment is None:
            have = ", ".join(f"{s.index:03d}" for s in manifest.segments[:8])
            more = ", ..." if len(manifest.segments) > 8 else ""
            why = (
                "its name does not start with a segment number (002_...)"
                if number is None
                else f"the manifest has no segment {number}"
            )
            jobs.append(
                SyncJob(
                    item,
                    None,
                    segment=number,
                    tolerance_ms=tolerance_ms,
                    problem=f"no segment to measure against: {why} (segments: {have}{more})",
                )
            )
            continue
        rate = manifest.sample_rate
        jobs.append(
            SyncJob(
                item,
                manifest.path.parent / segment.file,
                segment=segment.index,
                reference_click=segment.click_start,
                master_offset_s=(segment.source_in - segment.preroll_end) / rate,
                tolerance_ms=tolerance_ms,
            )
        )
    return SyncPlan(
        tuple(jobs), reference, None if manifest is None else manifest.path, tolerance_ms
    )


# ---------------------------------------------------------------- results


def _r(x: float | None, digits: int = 3) -> float | None:
    """Rounded for the JSON; a figure that rounds to nothing is 0.0, never -0.0."""
    if x is None or not math.isfinite(x):
        return None
    return round(x, digits) + 0.0


@dataclass(frozen=True, slots=True)
class SoundSync:
    """The take's sound against the narration."""

    matched: bool
    method: str
    """``waveform`` (GCC-PHAT windows), ``envelope`` (loudness envelopes), ``none``."""
    offset_ms: float | None
    """Positive: the take's sound is late."""
    drift_ppm: float | None
    """Positive: it falls further behind (a sound stretched longer)."""
    confidence: float
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "audio_offset_ms": _r(self.offset_ms),
            "audio_drift_ppm": _r(self.drift_ppm, 2),
            "confidence": _r(self.confidence),
            "method": self.method,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class PictureSync:
    """The take's picture against its own sound."""

    offset_ms: float
    """Positive: the picture is late (its sound early)."""
    drift_ms_per_min: float | None
    exceeds_at_s: float | None
    """Take time where the error first exceeds the tolerance (sound drift included)."""
    confidence: float
    method: str
    series: tuple[tuple[float, float], ...] = ()
    """(take time s, picture late by ms) per analysis window."""

    def to_json(self) -> dict[str, Any]:
        return {
            "picture_offset_ms": _r(self.offset_ms),
            "picture_drift_ms_per_min": _r(self.drift_ms_per_min),
            "drift_exceeds_at_s": _r(self.exceeds_at_s),
            "confidence": _r(self.confidence),
            "method": self.method,
            "series": [[_r(t), _r(v)] for t, v in self.series],
        }


@dataclass(frozen=True, slots=True)
class SlateSync:
    """Figures taken from a slate: a click (and a flash or cut) in the first second."""

    click_s: float
    """Where the click starts in the take (seconds, to its sample)."""
    reference_click_s: float | None
    flash_s: float | None
    audio_offset_ms: float | None
    """Take click minus reference click: sample-exact sound offset."""
    picture_offset_ms: float | None
    """Flash (or cut) minus take click: picture late by, to the frame."""

    def to_json(self) -> dict[str, Any]:
        return {
            "click_s": _r(self.click_s, 6),
            "reference_click_s": _r(self.reference_click_s, 6),
            "flash_s": _r(self.flash_s, 6),
            "audio_offset_ms": _r(self.audio_offset_ms),
            "picture_offset_ms": _r(self.picture_offset_ms),
        }


@dataclass(frozen=True, slots=True)
class TakeSync:
    """Everything measured of one take (or why it could not be)."""

    path: Path
    segment: int | None
    reference: Path | None
    status: str
    """``ok`` or ``error``."""
    verdict: str
    """``in`` (within the tolerance throughout), ``out``, or ``error``."""
    tolerance_ms: float | None
    error: str | None = None
    score: float | None = None
    """0-100, higher is better: 100 / (1 + noticeability), see :func:`score_of`."""
    rate: str | None = None
    duration_s: float | None = None
    audio: SoundSync | None = None
    picture: PictureSync | None = None
    slate: SlateSync | None = None
    recut_at_s: float | None = None
    """Suggested re-cut point: a pause in the narration before the drift exceeds."""
    recut_master_s: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.path.name

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "segment": self.segment,
            "reference": None if self.reference is None else str(self.reference),
            "status": self.status,
            "error": self.error,
            "verdict": self.verdict,
            "score": _r(self.score, 1),
            "tolerance_ms": _r(self.tolerance_ms),
            "rate": self.rate,
            "duration_s": _r(self.duration_s),
            "audio": None if self.audio is None else self.audio.to_json(),
            "picture": None if self.picture is None else self.picture.to_json(),
            "slate": None if self.slate is None else self.slate.to_json(),
            "recut_at_s": _r(self.recut_at_s),
            "recut_master_s": _r(self.recut_master_s),
            "notes": list(self.notes),
        }


def sync_json(plan: SyncPlan, results: Sequence[TakeSync]) -> dict[str, Any]:
    """The document ``handoff sync --json`` prints (schema :data:`SCHEMA`)."""
    return {
        "schema": SCHEMA,
        "reference": None if plan.reference is None else str(plan.reference.absolute()),
        "manifest": None if plan.manifest is None else str(plan.manifest.absolute()),
        "tolerance_ms": plan.tolerance_ms,
        "takes": [r.to_json() for r in results],
    }


# ---------------------------------------------------------------- reading


def _power_bins(x: Float32Array) -> FloatArray:
    """Mean square per 1 ms bin of a signal at :data:`ANALYSIS_RATE` (whole bins)."""
    return dsp.bin_power(x[: x.shape[0] // ENVELOPE_BIN * ENVELOPE_BIN], ANALYSIS_RATE)[0]


@dataclass(frozen=True, slots=True)
class _Reference:
    """The narration as the measurements need it (one streaming decode; the narration at
    its own rate is kept only for its first seconds, where a click may be)."""

    head: Float32Array  # mono at ``rate``, the first _KEEP_NATIVE_S seconds
    rate: int
    analysis: Float32Array  # mono at ANALYSIS_RATE, the whole narration
    power: FloatArray  # 1 ms bins of ``analysis``


class _MonoSound:
    """One sound stream as mono float, through FFmpeg's resampler (the same for takes and
    narrations, so its filter delay cancels): at :data:`ANALYSIS_RATE` throughout, and at
    the stream's own rate for its first seconds only (where a slate's click may be)."""

    def __init__(self) -> None:
        self._low = AudioResampler(format="flt", layout="mono", rate=ANALYSIS_RATE)
        self._native: AudioResampler | None = None
        self.rate = 0
        self._converted = 0

    def add(self, frame: AudioFrame) -> tuple[Float32Array, Float32Array]:
        """(the frame at the analysis rate, at its own rate -- empty past the head)."""
        if self._native is None:
            self.rate = frame.sample_rate
            self._native = AudioResampler(format="flt", layout="mono", rate=self.rate)
        native = _EMPTY
        if self._converted < _KEEP_NATIVE_S * self.rate:
            native = _joined(self._native.resample(frame))
            self._converted += native.shape[0]
        return _joined(self._low.resample(frame)), native

    def flush(self) -> Float32Array:
        """What the analysis-rate resampler still holds."""
        return _joined(self._low.resample(None))


def _load_reference(path: Path) -> _Reference:
    check_readable(path)
    with open_media(path) as container:
        if not container.streams.audio:
            raise NoStreamsError("no sound in it", path)
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            raise UnsupportedError("its sound has a codec FFmpeg cannot identify", path)
        sound = _MonoSound()
        low: list[Float32Array] = []
        head: list[Float32Array] = []
        for frame in decoded_frames(container, [stream], path, Damage()):
            if isinstance(frame, AudioFrame):
                part, native = sound.add(frame)
                low.append(part)
                head.append(native)
        low.append(sound.flush())
    analysis_rate_samples = np.concatenate(low) if low else _EMPTY
    if analysis_rate_samples.shape[0] == 0:
        raise NotMediaError("it holds no sound", path)
    return _Reference(
        head=np.concatenate(head) if head else _EMPTY,
        rate=sound.rate,
        analysis=analysis_rate_samples,
        power=_power_bins(analysis_rate_samples),
    )


class _Take:
    """What one streaming decode of a take keeps: per-frame picture figures, the sound's
    1 ms power, its first seconds at the native rate; the sound itself is fed to the
    aligner as it is decoded and not kept.

    Times count from the take's start: the earlier of its first picture frame and its
    first sound sample as decoded (after the codec's priming is dropped, as a player
    drops it), which is where FFmpeg and the editors start the clip. Sound that starts
    later than that is preceded by silence. Until both starts are known (the picture
    decoder holds a few frames back), the sound waits in a short queue."""

    def __init__(self, aligner: AudioAligner | None, *, has_picture: bool) -> None:
        self.aligner = aligner
        self.origin: float | None = None
        self.raw_times: list[float] = []
        self.motion: list[float] = []
        self.luma: list[float] = []
        self.power: list[FloatArray] = []
        self.native: list[Float32Array] = []
        self.native_rate = 0
        self.native_kept = 0
        self.analysis_samples = 0
        self.skipped = 0
        self.rate: Fraction | None = None
        self._has_picture = has_picture
        self._prev: FloatArray | None = None
        self._rest = np.zeros(0, dtype=np.float32)
        self._sound_start: float | None = None
        self._waiting: list[tuple[Float32Array, Float32Array]] = []

    @property
    def times(self) -> list[float]:
        origin = self.origin or 0.0
        return [t - origin for t in self.raw_times]

    # -- picture

    def add_picture(self, frame: VideoFrame, t: float) -> None:
        y = _luma(frame)
        self.raw_times.append(t)
        self.luma.append(float(y.mean()))
        self.motion.append(0.0 if self._prev is None else float(np.mean(np.abs(y - self._prev))))
        self._prev = y
        if self.origin is None and len(self.raw_times) == 1:
            self._settle()

    # -- sound

    def add_sound(self, t: float | None, low: Float32Array, native: Float32Array) -> None:
        if low.shape[0] == 0 and native.shape[0] == 0:
            return
        if self._sound_start is None:
            self._sound_start = t if t is not None else 0.0
            self._settle()
        if self.origin is None:
            self._waiting.append((low, native))
            return
        self._feed_low(low)
        self._keep_native(native)

    def finish(self) -> None:
        """The decode is over: settle the start even if one stream never came."""
        if self.origin is None:
            self._settle(final=True)

    def _settle(self, final: bool = False) -> None:
        """Fix the start once both first instants are known (or the decode is over),
        then pass on the sound that waited for it."""
        picture = self.raw_times[0] if self.raw_times else None
        sound = self._sound_start
        if not final and ((self._has_picture and picture is None) or sound is None):
            return
        known = [t for t in (picture, sound) if t is not None]
        self.origin = min(known) if known else 0.0
        if sound is not None:
            lead = sound - self.origin
            self._feed_low(np.zeros(round(lead * ANALYSIS_RATE), dtype=np.float32))
            self._keep_native(np.zeros(round(lead * self.native_rate), dtype=np.float32))
        waiting, self._waiting = self._waiting, []
        for low, native in waiting:
            self._feed_low(low)
            self._keep_native(native)

    def _feed_low(self, low: Float32Array) -> None:
        if low.shape[0] == 0:
            return
        self.analysis_samples += low.shape[0]
        if self.aligner is not None:
            self.aligner.feed(low)
        joined = np.concatenate((self._rest, low))
        whole = joined.shape[0] // ENVELOPE_BIN
        if whole:
            self.power.append(_power_bins(joined[: whole * ENVELOPE_BIN]))
        self._rest = joined[whole * ENVELOPE_BIN :]

    def _keep_native(self, native: Float32Array) -> None:
        room = round(_KEEP_NATIVE_S * self.native_rate) - self.native_kept
        if room > 0 and native.shape[0]:
            part = native[:room]
            self.native.append(part)
            self.native_kept += part.shape[0]

    # -- results

    def power_bins(self) -> FloatArray:
        return np.concatenate(self.power) if self.power else np.zeros(0)

    def native_head(self) -> Float32Array:
        return np.concatenate(self.native) if self.native else _EMPTY


def _luma(frame: VideoFrame) -> FloatArray:
    """The frame's luma, about 160 pixels wide (every n-th pixel), on a 0-255 scale.

    Planar YUV and grey frames give their first plane as it is (no conversion: this runs
    on every frame of a 1080p take); anything else is converted to grey by FFmpeg."""
    fmt = frame.format
    step = max(1, frame.width // 160)
    bits = fmt.components[0].bits if fmt.components else 8
    if fmt.name.startswith(("yuv", "yuvj", "gray")) and fmt.is_planar and bits <= 16:
        plane = frame.planes[0]
        dtype = np.dtype(np.uint8) if bits <= 8 else np.dtype("<u2")
        items = plane.line_size // dtype.itemsize
        raw = np.frombuffer(memoryview(plane), dtype=dtype)
        y = raw[: plane.height * items].reshape(plane.height, items)[::step, : frame.width : step]
        return y.astype(np.float64) / float(1 << max(0, bits - 8))
    small = frame.reformat(
        format="gray", width=max(1, frame.width // step), height=max(1, frame.height // step)
    )
    return np.asarray(small.to_ndarray(), dtype=np.float64)


def _read_take(path: Path, aligner: AudioAligner | None) -> _Take:
    check_readable(path)
    with open_media(path) as container:
        pictures = [
            s
            for s in container.streams.video
            if not s.disposition & av.stream.Disposition.attached_pic
        ]
        video = pictures[0] if pictures else None
        if not container.streams.audio:
            raise NoStreamsError("has no sound: nothing to measure its sync with", path)
        audio = container.streams.audio[0]
        if audio.codec_context is None:
            raise UnsupportedError("its sound has a codec FFmpeg cannot identify", path)
        take = _Take(aligner, has_picture=video is not None)
        if video is not None:
            video.thread_type = "AUTO"
            take.rate = video.average_rate
        sound = _MonoSound()
        streams = [audio] if video is None else [video, audio]
        damage = Damage()
        for frame in decoded_frames(container, streams, path, damage):
            if isinstance(frame, VideoFrame):
                # PyAV types frame.time as float; it is None without a pts.
                t: float | None = frame.time
                if t is not None:
                    take.add_picture(frame, float(t))
                continue
            low, native = sound.add(frame)
            take.native_rate = sound.rate
            take.add_sound(frame.time, low, native)
        take.skipped = damage.skipped
        take.add_sound(None, sound.flush(), _EMPTY)
        take.finish()
    if take.analysis_samples == 0:
        raise NotMediaError("its sound could not be decoded", path)
    return take


def _joined(frames: Sequence[AudioFrame | None]) -> Float32Array:
    parts = [frame_samples(f)[0] for f in frames if f is not None and f.samples]
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# ---------------------------------------------------------------- slate


def find_click(x: Float32Array, rate: int, search_s: float = _SLATE_SEARCH_S) -> int | None:
    """The sample where a click starts in the first ``search_s`` seconds, or None.

    A click is the loudest thing there, short, with quiet on both sides: under 5 % of its
    peak for 20 ms before it and from 10 ms to 50 ms after it (prep-audio's is a 4 ms
    burst followed by the pre-roll's silence). It starts at the first sample reaching
    half its peak -- the same rule on both sides of a comparison, so a codec's softening
    of the edge moves both alike.
    """
    head = np.abs(np.asarray(x[: round(search_s * rate)], dtype=np.float64))
    if head.shape[0] == 0:
        return None
    peak = float(head.max())
    if peak <= 1e-3:
        return None
    start = int(np.flatnonzero(head >= 0.5 * peak)[0])
    quiet = _CLICK_QUIET * peak
    before = np.abs(np.asarray(x[max(0, start - rate // 50) : max(0, start - rate // 500)]))
    after = np.abs(np.asarray(x[start + rate // 100 : start + rate // 20]))
    if after.shape[0] < rate // 25:
        return None
    if (before.shape[0] and float(before.max()) > quiet) or float(after.max()) > quiet:
        return None
    return start


def _find_flash(times: FloatArray, luma: FloatArray, motion: FloatArray, upto: float) -> int | None:
    """The first frame before ``upto`` s that is a flash (mean luma well above both
    neighbours) or a cut (a change ten times the take's median change)."""
    n = times.shape[0]
    median = float(np.median(motion[1:])) if n > 1 else 0.0
    for k in range(n):
        if times[k] > upto:
            break
        lifted = [luma[k] - luma[j] for j in (k - 1, k + 1) if 0 <= j < n]
        if lifted and min(lifted) >= _FLASH_LEVELS:
            return k
        if k and motion[k] >= max(_CUT_FACTOR * median, _FLASH_LEVELS / 2):
            return k
    return None


def _slate(take: _Take, reference: _Reference, job: SyncJob, times: FloatArray) -> SlateSync | None:
    if not take.native_rate:
        return None
    click = find_click(take.native_head(), take.native_rate)
    if click is None:
        return None
    click_s = click / take.native_rate
    # The reference's click is found by the same rule as the take's (the manifest's
    # click_start is where its fade-in begins, not where the rule lands).
    ref_click = find_click(reference.head, reference.rate)
    if ref_click is None:
        ref_click = job.reference_click
    ref_s = None if ref_click is None else ref_click / reference.rate
    flash = _find_flash(
        times, np.asarray(take.luma), np.asarray(take.motion), click_s + _SLATE_SEARCH_S
    )
    flash_s = None if flash is None else float(times[flash])
    return SlateSync(
        click_s=click_s,
        reference_click_s=ref_s,
        flash_s=flash_s,
        audio_offset_ms=None if ref_s is None else (click_s - ref_s) * 1000,
        picture_offset_ms=None if flash_s is None else (flash_s - click_s) * 1000,
    )


# ---------------------------------------------------------------- measuring


def _weighted(error_s: FloatArray) -> FloatArray:
    """Error in units of what viewers notice (BT.1359): picture late = sound early."""
    ms = error_s * 1000.0
    return np.where(ms > 0, ms / NOTICED_SOUND_EARLY_MS, -ms / NOTICED_SOUND_LATE_MS)


def score_of(
    picture: Line | None,
    sound: Line | None,
    placed_shift_s: float,
    duration_s: float,
    *,
    unknowns: int = 0,
) -> float:
    """0-100, higher is better: ``100 / (1 + N)``, N the root-mean-square over the take of
    the picture's error against the narration as the timeline will place it (picture
    against its own sound, plus the sound against the narration less the whole-frame
    shift the timeline applies), in units of the BT.1359 thresholds. A take whose sound
    is not the narration cannot be placed, a picture that does not follow its sound is
    not lip-synced: each of those adds 1 to N (such a take scores at most 50)."""
    t = np.linspace(0.0, max(duration_s, 0.0), _SCORE_POINTS)
    error = np.zeros_like(t)
    if picture is not None:
        error += picture.at_zero + picture.slope * t
    if sound is not None:
        error += sound.at_zero + sound.slope * t - placed_shift_s
    noticed = float(np.sqrt(np.mean(np.square(_weighted(error)))))
    noticed += unknowns
    return 100.0 / (1.0 + noticed)


def _failed(job: SyncJob, reason: str) -> TakeSync:
    return TakeSync(
        path=job.take,
        segment=job.segment,
        reference=job.reference,
        status="error",
        verdict="error",
        tolerance_ms=job.tolerance_ms,
        error=reason,
    )


def measure_take(job: SyncJob, progress: Callable[[int, int], None] | None = None) -> TakeSync:
    """Measure one take. Never raises for what is wrong with the media: that is a result."""
    if job.problem is not None:
        return _failed(job, job.problem)
    if job.reference is None:
        return _failed(job, "no reference to measure against")
    try:
        try:
            reference = _load_reference(job.reference)
        except HandoffError as exc:
            raise type(exc)(f"reference: {exc.message}", exc.path) from exc
        take = _read_take(job.take, AudioAligner(reference.analysis, max_lag_s=MAX_LAG_S))
        return _measure(job, take, reference)
    except (HandoffError, OSError, ValueError, av.error.FFmpegError) as exc:
        return _failed(job, describe(exc))


def _measure(job: SyncJob, take: _Take, reference: _Reference) -> TakeSync:
    notes: list[str] = []
    times = np.asarray(take.times, dtype=np.float64)
    power = take.power_bins()
    frame_s = _frame_seconds(take, times)
    sound_s = take.analysis_samples / ANALYSIS_RATE
    duration = float(times[-1] + frame_s) if times.shape[0] else sound_s
    tolerance_ms = (
        job.tolerance_ms
        if job.tolerance_ms is not None
        else (1000.0 * frame_s if frame_s else 1000.0 / 24)
    )
    tol = tolerance_ms / 1000.0
    if take.skipped:
        notes.append(f"{take.skipped} damaged packet(s) skipped; measured what decodes")
    if sound_s + 0.5 < duration:
        notes.append(f"its sound ends {duration - sound_s:.2f} s before its picture")

    # Sound against the narration.
    assert take.aligner is not None
    fit = take.aligner.finish()
    sound = _sound(fit, power, reference, notes)
    sound_line = (
        Line(sound.offset_ms / 1000.0, (sound.drift_ppm or 0.0) / 1e6, 1, 1)
        if sound.matched and sound.offset_ms is not None
        else None
    )

    # Picture against its sound.
    picture: PictureSync | None = None
    picture_unknown = False
    picture_line: Line | None = None
    exceeds: float | None = None
    if times.shape[0] >= 3 and frame_s:
        pfit = picture_lag(times, np.asarray(take.motion), power, frame_s)
        if pfit is None or pfit.confidence < _PICTURE_NONE:
            lost = "" if pfit is None else f" (correlation {pfit.confidence:.2f})"
            notes.append(
                f"the picture does not follow the sound{lost}: no picture figure, and out "
                "(a lip-synced take moves with its sound)"
            )
            picture_unknown = True
        else:
            picture_line = Line(pfit.offset_s, pfit.drift or 0.0, 1, 1)
            if pfit.confidence < _PICTURE_UNSURE:
                notes.append(
                    f"the picture barely follows the sound (correlation {pfit.confidence:.2f}): "
                    "its offset is uncertain"
                )
            exceeds = _first_exceed(picture_line, sound_line, tol, duration)
            picture = _picture(pfit, exceeds)
    elif times.shape[0] == 0:
        notes.append("no picture: sound figures only")
        if sound_line is not None:
            exceeds = _first_exceed(None, sound_line, tol, duration)

    slate = _slate(take, reference, job, times)

    # Verdict and score.
    # Where the timeline will put it: moved by its sound offset, in whole frames (a take
    # with no picture can be moved by any amount).
    shift = 0.0
    if sound_line is not None:
        shift = (
            round(sound_line.at_zero / frame_s) * frame_s
            if frame_s and times.shape[0]
            else sound_line.at_zero
        )
    score = score_of(
        picture_line,
        sound_line,
        shift,
        duration,
        unknowns=int(not sound.matched) + int(picture_unknown),
    )
    inside = sound.matched and exceeds is None and not picture_unknown
    recut, recut_master = _recut(
        exceeds, sound_line, reference, job, notes, _slip(picture_line, tol, duration, frame_s)
    )
    return TakeSync(
        path=job.take,
        segment=job.segment,
        reference=job.reference,
        status="ok",
        verdict="in" if inside else "out",
        tolerance_ms=tolerance_ms,
        score=score,
        rate=None if take.rate is None else _rate_text(take.rate),
        duration_s=duration,
        audio=sound,
        picture=picture,
        slate=slate,
        recut_at_s=recut,
        recut_master_s=recut_master,
        notes=tuple(notes),
    )


def _rate_text(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def _frame_seconds(take: _Take, times: FloatArray) -> float:
    if take.rate:
        return float(1 / take.rate)
    if times.shape[0] >= 2:
        return float(np.median(np.diff(times)))
    return 0.0


def _sound(fit: AudioFit, power: FloatArray, reference: _Reference, notes: list[str]) -> SoundSync:
    if fit.matched and fit.offset_s is not None:
        return SoundSync(True, "waveform", fit.offset_s * 1000.0, fit.drift_ppm, fit.confidence)
    if fit.windows == 0:
        return SoundSync(False, "none", None, None, 0.0, "the take's sound is silent")
    lag, corr, prominence = envelope_lag(power, reference.power, MAX_LAG_S)
    long_enough = power.shape[0] >= _ENVELOPE_MIN_S * 1000
    if corr >= _ENVELOPE_MATCH and prominence >= _ENVELOPE_PROMINENCE and long_enough:
        notes.append(
            "the waveforms do not match (re-synthesised sound?): offset from the loudness "
            f"envelopes, to about a millisecond (correlation {corr:.2f})"
        )
        return SoundSync(True, "envelope", lag * 1000.0, None, corr)
    return SoundSync(
        False,
        "none",
        None,
        None,
        max(fit.confidence, corr),
        "the take's sound is not the narration: no stretch of it lines up with the "
        f"reference (envelope correlation {corr:.2f})",
    )


def _picture(fit: PictureFit, exceeds: float | None) -> PictureSync:
    return PictureSync(
        offset_ms=fit.offset_s * 1000.0,
        drift_ms_per_min=None if fit.drift is None else fit.drift * 60_000.0,
        exceeds_at_s=exceeds,
        confidence=fit.confidence,
        method="motion",
        series=tuple((t, v * 1000.0) for t, v in fit.series),
    )


def _first_exceed(
    picture: Line | None, sound: Line | None, tol: float, duration: float
) -> float | None:
    """When the picture's error against its sound, or the sound's drift against the
    narration (its constant offset the timeline removes), first exceeds ``tol``."""
    found = []
    if picture is not None:
        found.append(crossing(picture, tol, duration))
    if sound is not None:
        found.append(crossing(Line(0.0, sound.slope, 1, 1), tol, duration))
    hits = [t for t in found if t is not None]
    return min(hits) if hits else None


def _slip(picture: Line | None, tol: float, duration: float, frame_s: float) -> str | None:
    """For a picture out by a steady amount: the whole frames that bring it within the
    tolerance for the whole take (the editor can slip it), or None."""
    if picture is None or not frame_s:
        return None
    frames = round(picture.value(duration / 2) / frame_s)
    if frames == 0:
        return None
    moved = Line(picture.at_zero - frames * frame_s, picture.slope, 1, 1)
    if crossing(moved, tol, duration) is not None:
        return None
    way = "earlier" if frames > 0 else "later"
    return f"slip its picture {abs(frames)} frame(s) {way} against the narration"


def _recut(
    exceeds: float | None,
    sound: Line | None,
    reference: _Reference,
    job: SyncJob,
    notes: list[str],
    slip: str | None = None,
) -> tuple[float | None, float | None]:
    """The last pause in the narration before the take goes out of tolerance.
    ``slip``: how moving the picture would bring a take that is out throughout back in."""
    if exceeds is None:
        return None, None
    if exceeds <= 0.0:
        notes.append(
            "out of tolerance from its first frame: regenerate the whole segment"
            + ("" if slip is None else f" (or {slip})")
        )
        return None, None
    # Take time -> narration time: the take's sound runs `sound` behind the narration.
    at = exceeds - (sound.value(exceeds) if sound is not None else 0.0)
    pauses = dsp.find_pauses(reference.analysis, ANALYSIS_RATE, min_pause_s=_RECUT_PAUSE_S)
    before = [p for p in pauses if p.middle / ANALYSIS_RATE < at]
    if not before:
        notes.append(
            f"out of tolerance from {exceeds:.1f} s, with no pause before it in the "
            "narration: regenerate the whole segment"
        )
        return None, None
    recut = before[-1].middle / ANALYSIS_RATE
    notes.append(f"out of tolerance from {exceeds:.1f} s: regenerate from {recut:.1f} s")
    master = None if job.master_offset_s is None else recut + job.master_offset_s
    return recut, master


# ---------------------------------------------------------------- running


def run_sync(
    plan: SyncPlan,
    *,
    jobs: int = 1,
    on_result: Callable[[SyncJob, TakeSync], None] | None = None,
) -> list[TakeSync]:
    """Measure every take of the plan, ``jobs`` at a time (worker processes: a take that
    crashes the decoder fails alone)."""
    if jobs <= 1 or len(plan.jobs) <= 1:
        out = []
        for job in plan.jobs:
            result = measure_take(job)
            if on_result is not None:
                on_result(job, result)
            out.append(result)
        return out
    from handoff.jobs.processes import run_jobs

    return run_jobs(list(plan.jobs), measure_take, jobs, failed=_failed, on_result=on_result)


def exit_code(results: Sequence[TakeSync]) -> int:
    """0 every take inside the tolerance, 1 any outside, 2 any could not be measured."""
    if any(r.status == "error" for r in results):
        return 2
    return 1 if any(r.verdict != "in" for r in results) else 0
