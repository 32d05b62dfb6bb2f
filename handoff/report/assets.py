"""What the page shows of each take's media: thumbnails, waveforms, loudness, plots.

:func:`take_assets` is module-level so :func:`handoff.jobs.processes.run_jobs` can run it
in worker processes, one take a job. A file that cannot be read gives a result with the
reason, never an exception: one broken take costs its own pictures, not the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from handoff.errors import NoStreamsError, NotMediaError, describe
from handoff.report.model import FileFacts, SyncView, probe_rows

__all__ = ["AssetJob", "Envelope", "TakeAssets", "Thumbnail", "envelope", "take_assets"]

THUMB_WIDTH = 240
"""Thumbnail width in pixels: three side by side fit a 1280 px column of takes."""
WAVEFORM_COLUMNS = 480
"""Min/max pairs per waveform: one per pixel of the plot's width."""


@dataclass(frozen=True, slots=True)
class AssetJob:
    """One take's media to read: its file (the master, or the render when there is
    none), its segment's narration, and its sync (for the plot)."""

    key: str
    media: Path
    narration: Path | None = None
    sync: SyncView | None = None
    probe_media: bool = False
    """Also probe ``media`` for the facts table (the master: the journal has only the
    render's probe)."""


@dataclass(frozen=True, slots=True)
class Thumbnail:
    at_s: float
    jpeg: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True, eq=False)
class Envelope:
    """A sound's min/max per column over its length (the peaks a waveform draws)."""

    low: npt.NDArray[np.float32]
    high: npt.NDArray[np.float32]
    duration_s: float


@dataclass(frozen=True, slots=True)
class TakeAssets:
    key: str
    thumbnails: tuple[Thumbnail, ...] = ()
    waveform_png: bytes | None = None
    sync_png: bytes | None = None
    loudness_lufs: float | None = None
    true_peak_dbtp: float | None = None
    sound: str | None = None
    """Why the take's sound is not measured (``no audio stream``), or None."""
    facts: FileFacts | None = None
    problem: str | None = None
    """Why the take's picture could not be read, in one line (then no thumbnails)."""


def take_assets(job: AssetJob) -> TakeAssets:
    """Thumbnails of the first, middle and last frame; the take's sound over its
    narration; its loudness and true peak; the sync plot; the media's probe facts."""
    from handoff.report.plots import sync_png, waveform_png

    try:
        thumbs = thumbnails(job.media)
    except Exception as exc:  # any file, any failure: the reason, for the page
        # A take the page cannot show gets no pictures at all, only the reason.
        return TakeAssets(key=job.key, problem=f"cannot read {job.media.name}: {describe(exc)}")
    sound: str | None = None
    take_env: Envelope | None = None
    lufs = peak = None
    try:
        from handoff.analysis.loudness import measure
        from handoff.media.audio import decode_audio

        decoded = decode_audio(job.media)
        take_env = envelope(decoded.samples, decoded.sample_rate)
        loud = measure(decoded.samples, decoded.sample_rate)
        lufs, peak = _finite(loud.integrated_lufs), _finite(loud.true_peak_dbtp)
    except Exception as exc:
        sound = describe(exc)
    narration_env: Envelope | None = None
    if job.narration is not None:
        narration_env = _quietly(lambda: _read_envelope(job.narration))
    facts = None
    if job.probe_media:
        facts = _quietly(lambda: _facts(job.media))
    waveform = None
    if take_env is not None or narration_env is not None:
        waveform = _quietly(lambda: waveform_png(take_env, narration_env))
    plot = None
    if job.sync is not None:
        plot = _quietly(lambda: sync_png(job.sync))
    return TakeAssets(
        key=job.key,
        thumbnails=thumbs,
        waveform_png=waveform,
        sync_png=plot,
        loudness_lufs=lufs,
        true_peak_dbtp=peak,
        sound=sound,
        facts=facts,
    )


def failed_assets(job: AssetJob, reason: str) -> TakeAssets:
    """The result of a job whose worker died under it (a native crash in a decoder)."""
    return TakeAssets(key=job.key, problem=reason)


def _quietly(make: Callable[[], Any]) -> Any:
    """``make()``, or None when it fails: a plot or table missing is not the take's problem."""
    try:
        return make()
    except Exception:
        return None


def _finite(x: float) -> float | None:
    return round(x, 1) if math.isfinite(x) else None


def _facts(path: Path) -> FileFacts:
    from handoff.probe.reader import probe, to_json

    return FileFacts("master", path, probe_rows(to_json(probe(path))))


def _read_envelope(path: Path | None) -> Envelope:
    from handoff.media.audio import decode_audio

    assert path is not None
    decoded = decode_audio(path)
    return envelope(decoded.samples, decoded.sample_rate)


def envelope(samples: npt.ArrayLike, rate: int, columns: int = WAVEFORM_COLUMNS) -> Envelope:
    """The min and max over every channel of each of ``columns`` equal stretches of the
    sound (fewer when it has fewer samples)."""
    arr = np.asarray(samples, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    n = int(arr.shape[1])
    if n == 0:
        empty = np.zeros(0, dtype=np.float32)
        return Envelope(empty, empty, 0.0)
    columns = max(1, min(columns, n))
    edges = np.linspace(0, n, columns + 1).astype(np.int64)
    low = np.minimum.reduceat(arr.min(axis=0), edges[:-1])
    high = np.maximum.reduceat(arr.max(axis=0), edges[:-1])
    return Envelope(low.astype(np.float32), high.astype(np.float32), n / rate)


# ------------------------------------------------------------------------- thumbnails


def thumbnails(path: Path, width: int = THUMB_WIDTH) -> tuple[Thumbnail, ...]:
    """JPEGs of the first, middle and last frame, ``width`` pixels wide.

    The middle and the last frame are found by seeking (to the keyframe before, then
    decoding forward), so a long intra-only master is not decoded whole.
    """
    from handoff.media.audio import open_media

    with open_media(path) as container:
        if not container.streams.video:
            raise NoStreamsError("no picture (no video stream)", path)
        stream = container.streams.video[0]
        first = next(_frames(container, stream), None)
        if first is None:
            raise NotMediaError("not one frame of the picture decodes", path)
        length = _length_s(container, stream)
        chosen = [first]
        for target in (length / 2, None):
            chosen.append(_frame_near(container, stream, target, length) or chosen[-1])
    return tuple(_jpeg(f, width) for f in chosen)


def _frames(container: Any, stream: Any) -> Any:
    for frame in container.decode(stream):
        if frame.pts is not None:
            yield frame


def _length_s(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / av.time_base
    return 0.0


def _frame_near(container: Any, stream: Any, target: float | None, length: float) -> Any:
    """The first frame at or after ``target`` seconds; with None, the last frame."""
    tb: Fraction = stream.time_base
    start = stream.start_time or 0
    at = max(0.0, length - 1.0) if target is None else target
    try:
        container.seek(start + int(at / tb), stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        container.seek(start, stream=stream, backward=True)
    found = None
    for frame in _frames(container, stream):
        found = frame
        if target is not None and float((frame.pts - start) * tb) >= target - 1e-6:
            break
    return found


def _jpeg(frame: Any, width: int) -> Thumbnail:
    """One frame as a baseline JPEG by FFmpeg's ``mjpeg`` encoder (no image library)."""
    aspect = frame.height / frame.width
    sar = frame.sample_aspect_ratio if hasattr(frame, "sample_aspect_ratio") else None
    if sar:
        aspect /= float(sar)
    height = max(2, round(width * aspect / 2) * 2)
    # The "j" formats are full range, as JFIF is (JFIF 1.02, section 7): swscale expands
    # the picture's video range while it scales.
    small = frame.reformat(width=width, height=height, format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    data = b"".join(bytes(p) for p in (*codec.encode(small), *codec.encode(None)))
    at = float(frame.pts * frame.time_base) if frame.time_base is not None else 0.0
    return Thumbnail(at_s=at, jpeg=data, width=width, height=height)
