"""Small synthetic media, made with PyAV: for the demo, the tests and the benchmarks.

Every clip can carry *events*: a white flash frame and a 1 kHz beep placed at known
instants, so a reader can later check that picture and sound still meet. Frame times
may be irregular (variable frame rate), the way phones and screen recorders write them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

__all__ = ["ClipSpec", "speech_like", "vfr_times", "write_clip", "write_wav"]

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """What to synthesise. Times are seconds; rates exact fractions."""

    width: int = 320
    height: int = 240
    fps: Fraction = Fraction(24)
    seconds: float = 2.0
    frame_times: Sequence[Fraction] | None = None
    """Explicit presentation times (VFR); overrides fps/seconds for the picture."""
    video_codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    video_options: dict[str, str] = field(default_factory=dict)
    gop: int | None = None
    profile: str | None = None
    colour_tags: bool = True
    """Tag BT.709 primaries/transfer/matrix; False leaves them unset (as LTX-2 does)."""
    audio_rate: int | None = 48000
    audio_channels: int = 2
    audio_codec: str = "aac"
    audio_bit_rate: int | None = 192000
    audio_seconds: float | None = None
    """Audio length when it should differ from the picture's."""
    events: Sequence[float] = ()
    """Instants with a flash frame and a beep."""
    faststart: bool = True
    time_base: Fraction = Fraction(1, 90000)


def vfr_times(seconds: float, fps: float, jitter: float, seed: int = 1) -> list[Fraction]:
    """Irregular frame times around ``fps`` (each interval varied by +/- ``jitter``)."""
    rng = np.random.default_rng(seed)
    times: list[Fraction] = []
    t = 0.0
    while t < seconds:
        times.append(Fraction(round(t * 90000), 90000))
        t += (1.0 / fps) * (1.0 + float(rng.uniform(-jitter, jitter)))
    return times


def _frame_image(width: int, height: int, index: int, flash: bool) -> npt.NDArray[np.uint8]:
    if flash:
        return np.full((height, width, 3), 255, dtype=np.uint8)
    img = np.empty((height, width, 3), dtype=np.uint8)
    ramp = (np.arange(width, dtype=np.uint32) * 160 // max(width - 1, 1)).astype(np.uint8)
    img[:] = ramp[None, :, None]
    # A moving bar keeps the encoder honest (real motion, not a still).
    x = (index * 7) % max(width - 16, 1)
    img[:, x : x + 16, :] = (40, 80, 120)
    return img


def _beep_track(rate: int, channels: int, seconds: float, events: Sequence[float]) -> FloatArray:
    n = round(seconds * rate)
    out = np.zeros((channels, n), dtype=np.float32)
    # A quiet bed of pink-ish noise so "silence" is not digital zero.
    rng = np.random.default_rng(7)
    out += (rng.standard_normal((1, n)) * 0.001).astype(np.float32)
    beep_len = round(0.05 * rate)
    t = np.arange(beep_len) / rate
    beep = (0.5 * np.sin(2 * math.pi * 1000.0 * t)).astype(np.float32)
    for e in events:
        start = round(e * rate)
        end = min(start + beep_len, n)
        if 0 <= start < n:
            out[:, start:end] += beep[: end - start]
    return out


def write_wav(
    path: Path,
    samples: npt.NDArray[np.floating],
    rate: int,
    codec: str = "pcm_s24le",
) -> Path:
    """Write float samples (channels, n) in [-1, 1] as a WAV with the given PCM codec."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[None, :]
    channels = data.shape[0]
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        chunk = 4096
        for start in range(0, data.shape[1], chunk):
            block = np.ascontiguousarray(data[:, start : start + chunk])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def speech_like(
    seconds: float,
    rate: int = 48000,
    *,
    level: float = 0.2,
    pauses: Sequence[tuple[float, float]] = (),
    lead: float = 0.0,
    tail: float = 0.0,
    seed: int = 3,
) -> FloatArray:
    """A voiced, syllabic test signal: harmonics of a gliding 110-220 Hz pitch.

    Not speech, but shaped like it where meters and silence detectors care: energy in
    4-6 Hz syllables, formant-ish harmonics, real pauses (``pauses``: start, length),
    and digital silence of ``lead`` and ``tail`` seconds at either end.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    f0 = 150 + 40 * np.sin(2 * math.pi * 0.3 * t) + 20 * np.sin(2 * math.pi * 1.7 * t)
    phase = 2 * math.pi * np.cumsum(f0) / rate
    voice = np.zeros(n)
    for k, amp in enumerate((1.0, 0.6, 0.45, 0.3, 0.2, 0.12, 0.08), start=1):
        voice += amp * np.sin(k * phase)
    syllables = 0.5 * (1 + np.sin(2 * math.pi * 4.5 * t + rng.uniform(0, 6)))
    envelope = syllables**1.5
    signal = level * voice * envelope / 2.8
    for start, length in pauses:
        a, b = round(start * rate), round((start + length) * rate)
        signal[a:b] = 0.0
    lead_n, tail_n = round(lead * rate), round(tail * rate)
    out = np.concatenate([np.zeros(lead_n), signal, np.zeros(tail_n)])
    return out.astype(np.float32)


def write_clip(path: Path, spec: ClipSpec) -> Path:
    """Encode a synthetic clip (picture, and sound unless ``audio_rate`` is None)."""
    path = Path(path)
    if spec.frame_times is not None:
        times = list(spec.frame_times)
    else:
        count = round(spec.seconds * spec.fps)
        times = [Fraction(i) / spec.fps for i in range(count)]
    picture_end = float(times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1 / spec.fps))
    options: dict[str, str] = {}
    if spec.faststart and path.suffix.lower() in (".mp4", ".mov", ".m4v"):
        options["movflags"] = "+faststart"
    with av.open(str(path), "w", options=options) as out:
        rate = spec.fps if spec.frame_times is None else None
        vs = out.add_stream(spec.video_codec, rate=rate)
        assert isinstance(vs, av.VideoStream)
        vs.width, vs.height = spec.width, spec.height
        vs.pix_fmt = spec.pix_fmt
        vs.time_base = spec.time_base
        vs.codec_context.time_base = spec.time_base
        if spec.gop is not None:
            vs.codec_context.gop_size = spec.gop
        opts: dict[str, object] = {**spec.video_options}
        if spec.profile:
            opts["profile"] = spec.profile
        vs.options = opts
        if spec.colour_tags:
            vs.codec_context.color_primaries = 1
            vs.codec_context.color_trc = 1
            vs.codec_context.colorspace = 1
            vs.codec_context.color_range = 1
        aus: av.AudioStream | None = None
        if spec.audio_rate:
            layout = "mono" if spec.audio_channels == 1 else "stereo"
            added = out.add_stream(spec.audio_codec, rate=spec.audio_rate, layout=layout)
            assert isinstance(added, av.AudioStream)
            aus = added
            if spec.audio_bit_rate:
                aus.bit_rate = spec.audio_bit_rate
        event_frames = {
            min(range(len(times)), key=lambda i: abs(times[i] - e)) for e in spec.events
        }
        for i, t in enumerate(times):
            img = _frame_image(spec.width, spec.height, i, i in event_frames)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=spec.pix_fmt)
            frame.pts = round(t / spec.time_base)
            frame.time_base = spec.time_base
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if aus is not None and spec.audio_rate:
            seconds = spec.audio_seconds if spec.audio_seconds is not None else picture_end
            track = _beep_track(spec.audio_rate, spec.audio_channels, seconds, spec.events)
            formats = aus.codec_context.codec.audio_formats or []
            fmt = formats[0].name if formats else "fltp"
            resampler = av.AudioResampler(format=fmt, layout=aus.layout.name, rate=spec.audio_rate)
            step = aus.codec_context.frame_size or 1024
            for start in range(0, track.shape[1], step):
                block = np.ascontiguousarray(track[:, start : start + step])
                af = av.AudioFrame.from_ndarray(block, format="fltp", layout=aus.layout.name)
                af.sample_rate = spec.audio_rate
                af.pts = start
                af.time_base = Fraction(1, spec.audio_rate)
                for conv in resampler.resample(af):
                    for packet in aus.encode(conv):
                        out.mux(packet)
            for packet in aus.encode(None):
                out.mux(packet)
    return path
