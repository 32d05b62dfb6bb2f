"""Small synthetic media, made with PyAV: for the demo, the tests and the benchmarks.

Every clip can carry *events*: a white flash frame and a 1 kHz beep placed at known
instants, so a reader can later check that picture and sound still meet. Frame times
may be irregular (variable frame rate), the way phones and screen recorders write them.

*Takes* (``write_take``) stand in for what an audio-conditioned video model returns for a
narration segment: a talking mouth driven by the narration, and the narration as sound,
each placed against the narration with a known delay and drift, so that sync measurement
has a ground truth to be checked against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import numpy.typing as npt

from handoff.media.arrays import Float32Array
from handoff.timeline.timecode import parse_timecode

__all__ = [
    "ClipSpec",
    "TakeSpec",
    "babble",
    "mouth_openness",
    "retime",
    "speech_like",
    "takes_demo_set",
    "vfr_times",
    "write_clip",
    "write_take",
    "write_wav",
]


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
    sample_aspect_ratio: Fraction | None = None
    """Pixel shape (SAR) written to the bitstream and container, e.g. 4/3 for anamorphic
    1440x1080; None states none (as LTX-2 does)."""
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
    timecode: str | None = None
    """Start timecode of the first frame (``01:00:00:00``, drop-frame ``00:59:59;28``),
    written as FFmpeg's mov/mp4 muxer writes one: from the video stream's ``timecode``
    tag, as a QuickTime timecode (``tmcd``) track. Checked against ``fps`` first: the
    muxer drops a label it cannot parse without a word."""


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


def _beep_track(rate: int, channels: int, seconds: float, events: Sequence[float]) -> Float32Array:
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
    *,
    time_reference: int | None = None,
) -> Path:
    """Write float samples (channels, n) in [-1, 1] as a WAV with the given PCM codec.

    ``time_reference``: samples since midnight of the first sample, written in a
    Broadcast Wave ``bext`` chunk (EBU Tech 3285) the way FFmpeg's wav muxer writes one:
    its ``write_bext`` option and the ``time_reference`` tag."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[None, :]
    channels = data.shape[0]
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    options: dict[str, str] = {}
    if time_reference is not None:
        if time_reference < 0:
            raise ValueError(f"time_reference {time_reference}: samples since midnight, >= 0")
        options["write_bext"] = "1"
    with av.open(str(path), "w", format="wav", options=options) as out:
        if time_reference is not None:
            out.metadata["time_reference"] = str(time_reference)
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
) -> Float32Array:
    """A voiced, syllabic test signal: harmonics of a gliding 110-220 Hz pitch.

    Not speech, but shaped like it where meters and silence detectors care: energy in
    4-6 Hz syllables, formant-ish harmonics, real pauses (``pauses``: start, length;
    the voice ramps out of and into each over 30 ms),
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
    ramp = max(1, round(0.03 * rate))
    fade = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
    for start, length in pauses:
        a, b = round(start * rate), round((start + length) * rate)
        signal[a:b] = 0.0
        # A voice dies away into a pause and starts again out of it: 30 ms ramps, so the
        # sound never stops dead (which is what a gate does).
        a, b = min(a, n), min(b, n)
        out_of = signal[max(0, a - ramp) : a]
        out_of *= fade[::-1][ramp - out_of.shape[0] :]
        into = signal[b : b + ramp]
        into *= fade[: into.shape[0]]
    lead_n, tail_n = round(lead * rate), round(tail * rate)
    out = np.concatenate([np.zeros(lead_n), signal, np.zeros(tail_n)])
    return out.astype(np.float32)


def babble(seconds: float, rate: int = 48000, *, level: float = 0.2, seed: int = 1) -> Float32Array:
    """A narration stand-in for timing tests: syllables of random length, pitch and gap.

    :func:`speech_like` repeats one 4.5 Hz syllable rhythm, so a copy of it shifted by a
    syllable looks like itself; here nothing repeats: each syllable (80-300 ms) has its
    own pitch (100-220 Hz) and harmonics, about a third are noisy like consonants, gaps
    are 20-250 ms with an occasional 0.4-0.8 s pause (a breath between sentences).
    Everything is computed in continuous time, so the same ``seed`` at two sample rates
    gives the same narration sampled twice.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    out = np.zeros(n)
    t = 0.3
    while t < seconds - 0.5:
        length = rng.uniform(0.08, 0.3)
        f0 = rng.uniform(100.0, 220.0)
        phases = rng.uniform(0.0, 2 * math.pi, 7)
        noisy = rng.random() < 0.3
        a, b = math.ceil(t * rate), min(n, math.ceil((t + length) * rate))
        tt = np.arange(a, b) / rate - t
        envelope = np.sin(math.pi * np.clip(tt / length, 0.0, 1.0)) ** 2
        voice = sum(np.sin(2 * math.pi * k * f0 * tt + phases[k - 1]) / k for k in range(1, 8))
        if noisy:
            hiss = np.random.default_rng(rng.integers(1 << 31)).normal(0.0, 1.0, b - a)
            voice = 0.3 * voice + 0.5 * hiss
        else:
            rng.integers(1 << 31)  # same draws either way: the next syllable does not move
        out[a:b] += level * envelope * voice
        t += length + rng.uniform(0.02, 0.25)
        if rng.random() < 0.08:
            t += rng.uniform(0.4, 0.8)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _tag_bt709(stream: av.VideoStream) -> None:
    """BT.709 primaries, transfer and matrix, limited range (ITU-R BT.709 / H.273 code 1)."""
    stream.codec_context.color_primaries = 1
    stream.codec_context.color_trc = 1
    stream.codec_context.colorspace = 1
    stream.codec_context.color_range = 1


def _add_sound(
    out: av.container.OutputContainer, codec: str, rate: int, channels: int
) -> av.AudioStream:
    """A mono or stereo sound stream."""
    added = out.add_stream(codec, rate=rate, layout="mono" if channels == 1 else "stereo")
    assert isinstance(added, av.AudioStream)
    return added


def _encode_sound(
    out: av.container.OutputContainer, stream: av.AudioStream, track: Float32Array, rate: int
) -> None:
    """Encode float samples ``(channels, n)`` into ``stream``, in the encoder's own sample
    format and frame size, sample positions as timestamps."""
    formats = stream.codec_context.codec.audio_formats or []
    fmt = formats[0].name if formats else "fltp"
    resampler = av.AudioResampler(format=fmt, layout=stream.layout.name, rate=rate)
    step = stream.codec_context.frame_size or 1024
    for start in range(0, track.shape[1], step):
        block = np.ascontiguousarray(track[:, start : start + step])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=stream.layout.name)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for converted in resampler.resample(frame):
            for packet in stream.encode(converted):
                out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def _checked_timecode(label: str, fps: Fraction) -> str:
    """``label`` as FFmpeg's muxer reads it (``HH:MM:SS:FF`` or ``HH:MM:SS;FF``), or
    UsageError: libavformat's mov muxer writes no timecode track at all for a label
    av_timecode_init_from_string refuses, and says nothing (measured with FFmpeg 8)."""
    tc = parse_timecode(label)
    tc.frame_at(fps)  # the frames field and drop-frame checked against the rate
    return str(tc)


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
            _tag_bt709(vs)
        if spec.sample_aspect_ratio is not None:
            vs.codec_context.sample_aspect_ratio = spec.sample_aspect_ratio
        if spec.timecode is not None:
            vs.metadata["timecode"] = _checked_timecode(spec.timecode, spec.fps)
        aus: av.AudioStream | None = None
        if spec.audio_rate:
            aus = _add_sound(out, spec.audio_codec, spec.audio_rate, spec.audio_channels)
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
            _encode_sound(out, aus, track, spec.audio_rate)
    return path


# --- Takes: a talking mouth and its narration, with known sync truth ------------------------

PictureMotion = Literal["mouth", "static", "random"]
TakeSound = Literal["narration", "other", "none"]


@dataclass(frozen=True, slots=True)
class TakeSpec:
    """A synthetic take: what an audio-conditioned video model returns for a narration.

    Signs: a positive delay means LATE against the narration. The picture at time ``t``
    shows the narration's envelope at ``(t - picture_delay_s) / picture_stretch``, and the
    sound at time ``t`` is the narration at ``(t - sound_delay_s) / sound_stretch``; so
    ``picture_stretch = 1.005`` is a picture that drifts 0.5 % slow (late by 0.005 t).
    """

    width: int = 320
    height: int = 240
    fps: Fraction = Fraction(24)
    frames: int | None = None
    """Frame count; None: floor(narration duration x fps)."""
    picture_delay_s: float = 0.0
    picture_stretch: float = 1.0
    picture_motion: PictureMotion = "mouth"
    """"mouth": driven by the narration; "static": a mouth held 0.3 open; "random": driven
    by a seeded random envelope unrelated to the narration. The mouth's height goes from 2 %
    (closed) to 40 % (fully open) of the frame's, its edges drawn with sub-pixel accuracy."""
    picture_noise: float = 0.0
    """Standard deviation of Gaussian noise added to every pixel (8-bit units)."""
    envelope_ms: float = 20.0
    """Width of the centred RMS window of the envelope that drives the mouth."""
    slate_at_s: float | None = None
    """Narration time of a slate click: a white frame at the nearest frame to
    ``slate_at_s * picture_stretch + picture_delay_s``. The click itself must already be in
    the narration; nothing is added to the sound."""
    video_codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    video_options: dict[str, str] = field(default_factory=dict)
    """Encoder options, over libx264's defaults here: one thread and no macroblock tree
    (with them, x264 does not give the same bytes twice for a noisy picture)."""
    colour_tags: bool = True
    sound: TakeSound = "narration"
    """"narration": the narration, retimed; "other": an unrelated voice-like signal of the
    same loudness; "none": no audio stream."""
    sound_delay_s: float = 0.0
    sound_stretch: float = 1.0
    audio_rate: int = 48000
    audio_channels: int = 2
    """1 or 2. Two channels carry the same content, as LTX-2's stereo does (a stereo
    narration with ``audio_channels=2`` keeps its own channels)."""
    audio_codec: str = "aac"
    audio_bit_rate: int | None = 192000
    audio_noise_db: float | None = None
    """None, or white noise added at this signal-to-noise ratio (dB) against the sound's
    RMS over the whole take."""
    audio_seconds: float | None = None
    """Sound length; None: as long as the picture (frames / fps)."""
    seed: int = 11
    """Seeds the background texture, the noises, the random mouth and the "other" sound."""
    faststart: bool = True
    time_base: Fraction | None = None
    """None: 1/90000 when a frame lasts a whole number of its ticks, else
    1/lcm(90000, fps numerator) (24000/1001 fps: 1/360000), so every pts is exact."""

    @property
    def mouth_box(self) -> tuple[int, int, int, int]:
        """The region the mouth can cover: (top, bottom, left, right), pixel bounds."""
        top = math.floor(self.height * (0.5 - _MOUTH_MAX / 2))
        bottom = math.ceil(self.height * (0.5 + _MOUTH_MAX / 2))
        left = round(self.width * (0.5 - _MOUTH_WIDTH / 2))
        right = round(self.width * (0.5 + _MOUTH_WIDTH / 2))
        return top, bottom, left, right


_MOUTH_MIN = 0.02
"""Mouth height at rest, as a fraction of the frame height."""
_MOUTH_MAX = 0.40
_MOUTH_WIDTH = 0.40
_MOUTH_RGB = (40.0, 12.0, 16.0)
_RETIME_HALF_TAPS = 32
"""Zero crossings of the windowed sinc on either side (64 taps when no band limit)."""
_RETIME_PHASES = 512


def _mono(samples: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim == 1:
        return data
    if data.ndim == 2:
        return np.asarray(data.mean(axis=0), dtype=np.float64)
    raise ValueError(f"narration must be (n,) or (channels, n), not shape {data.shape}")


def _windowed_sinc(x: npt.NDArray[np.float64], cutoff: float, half: float) -> Float32Array:
    """A low-pass kernel (``cutoff`` a fraction of Nyquist) with a Blackman-Harris window."""
    u = np.clip(x / half, -1.0, 1.0)
    w = np.pi * (u + 1.0)
    window = 0.35875 - 0.48829 * np.cos(w) + 0.14128 * np.cos(2 * w) - 0.01168 * np.cos(3 * w)
    window[np.abs(x) >= half] = 0.0
    return np.asarray(cutoff * np.sinc(cutoff * x) * window, dtype=np.float32)


def retime(
    samples: npt.NDArray[np.floating],
    rate_in: int,
    rate_out: int,
    count: int,
    *,
    delay_s: float = 0.0,
    stretch: float = 1.0,
) -> Float32Array:
    """``count`` samples at ``rate_out`` of ``y(t) = x((t - delay_s) / stretch)``.

    Band-limited interpolation (a windowed sinc of 64 zero crossings, low-passed below the
    lower of the two Nyquist rates when the step shrinks the signal), so fractional delays,
    stretches and rate changes are exact for content below about 0.9 x Nyquist. ``x`` is
    zero outside its samples. ``samples``: (n,) or (channels, n); the result keeps the shape.
    """
    if stretch <= 0:
        raise ValueError(f"stretch must be positive, not {stretch}")
    data = np.asarray(samples, dtype=np.float64)
    flat = data[None, :] if data.ndim == 1 else data
    n_in = flat.shape[1]
    step = rate_in / (rate_out * stretch)
    origin = -delay_s * rate_in / stretch
    cutoff = 1.0 if step <= 1.0 else 0.97 / step
    half = _RETIME_HALF_TAPS / cutoff
    reach = math.ceil(half)
    offsets = np.arange(-reach + 1, reach + 1)
    # The kernel tabulated at _RETIME_PHASES fractional positions, interpolated linearly
    # between them (error near 1e-6 of full scale, far below the window's side lobes).
    phases = np.arange(_RETIME_PHASES + 1, dtype=np.float64) / _RETIME_PHASES
    table = _windowed_sinc(phases[:, None] - offsets[None, :], cutoff, half).astype(np.float64)
    slope = np.diff(table, axis=0)
    pad = 2 * reach + 2
    padded = np.pad(flat, ((0, 0), (pad, pad)))
    windows = [np.lib.stride_tricks.sliding_window_view(row, offsets.size) for row in padded]
    out = np.zeros((flat.shape[0], count), dtype=np.float32)
    chunk = max(1, 2**19 // offsets.size)
    for start in range(0, count, chunk):
        j = np.arange(start, min(start + chunk, count), dtype=np.float64)
        pos = origin + j * step
        base = np.floor(pos)
        inside = (base >= -reach) & (base < n_in + reach)
        if not inside.any():
            continue
        pos, base = pos[inside], base[inside]
        where = (pos - base) * _RETIME_PHASES
        phase = np.minimum(where.astype(np.int64), _RETIME_PHASES - 1)
        kernel = table[phase] + slope[phase] * (where - phase)[:, None]
        first = base.astype(np.int64) + offsets[0] + pad
        rows = np.flatnonzero(inside) + start
        for ch, view in enumerate(windows):
            out[ch, rows] = np.einsum("ij,ij->i", view[first], kernel)
    return out[0] if data.ndim == 1 else out


def _rms_at(
    mono: npt.NDArray[np.float64], rate: int, times: npt.NDArray[np.float64], window_s: float
) -> npt.NDArray[np.float64]:
    """RMS of ``mono`` (zero outside) over a window of ``window_s`` centred on each time.

    The running sum of squares is interpolated linearly, which is exact for the signal held
    constant over each sample period: the envelope varies smoothly with the time.
    """
    energy = np.concatenate([[0.0], np.cumsum(mono * mono)])
    grid = np.arange(energy.size, dtype=np.float64)
    half = window_s * rate / 2

    def area(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        found = np.interp(x, grid, energy, left=0.0, right=float(energy[-1]))
        return np.asarray(found, dtype=np.float64)

    centre = times * rate
    mean = (area(centre + half) - area(centre - half)) / (2 * half)
    return np.asarray(np.sqrt(np.maximum(mean, 0.0)), dtype=np.float64)


def _random_envelope(times: npt.NDArray[np.float64], seed: int) -> npt.NDArray[np.float64]:
    """A smooth syllable-like envelope in [0, 1], unrelated to any narration (zero at t < 0)."""
    step = 0.11
    top = max(float(times.max(initial=0.0)), 0.0)
    knots = np.random.default_rng(seed).uniform(0.0, 1.0, math.ceil(top / step) + 2) ** 1.5
    pos = np.clip(times / step, 0.0, knots.size - 1.0)
    k = np.minimum(np.floor(pos).astype(np.int64), knots.size - 2)
    frac = pos - k
    ease = 0.5 - 0.5 * np.cos(np.pi * frac)
    env = knots[k] * (1 - ease) + knots[k + 1] * ease
    return np.asarray(np.where(times < 0, 0.0, env), dtype=np.float64)


def _frame_count(narration: npt.NDArray[np.floating], rate: int, spec: TakeSpec) -> int:
    if spec.frames is not None:
        return spec.frames
    n = np.asarray(narration).shape[-1]
    return math.floor(Fraction(n, rate) * spec.fps)


def mouth_openness(
    narration: npt.NDArray[np.floating], narration_rate: int, spec: TakeSpec
) -> Float32Array:
    """How open the mouth is on each frame of the take, in [0, 1]: the picture's truth.

    For ``picture_motion="mouth"``: the narration's envelope (RMS over a centred window of
    ``envelope_ms`` of its mono mix, its 99th percentile scaled to 1, clipped to [0, 1]) at
    ``s_k = (k / fps - picture_delay_s) / picture_stretch``.
    """
    count = _frame_count(narration, narration_rate, spec)
    t = np.array([float(Fraction(k) / spec.fps) for k in range(count)], dtype=np.float64)
    s = (t - spec.picture_delay_s) / spec.picture_stretch
    if spec.picture_motion == "static":
        return np.full(count, 0.3, dtype=np.float32)
    if spec.picture_motion == "random":
        return _random_envelope(s, spec.seed + 1).astype(np.float32)
    mono = _mono(narration)
    window = spec.envelope_ms / 1000
    every = _rms_at(mono, narration_rate, np.arange(mono.size) / narration_rate, window)
    scale = float(np.percentile(every, 99)) if every.size else 0.0
    if scale <= 0:
        return np.zeros(count, dtype=np.float32)
    env = _rms_at(mono, narration_rate, s, window) / scale
    return np.clip(env, 0.0, 1.0).astype(np.float32)


def _background(width: int, height: int, seed: int) -> npt.NDArray[np.float32]:
    """A static, mildly textured backdrop: two gradients, a weave and a fixed grain."""
    y = np.arange(height, dtype=np.float32)[:, None] / max(height - 1, 1)
    x = np.arange(width, dtype=np.float32)[None, :] / max(width - 1, 1)
    weave = 6.0 * np.sin(2 * np.pi * 9.0 * x) * np.sin(2 * np.pi * 7.0 * y)
    grain = np.random.default_rng(seed).normal(0.0, 2.5, (height, width)).astype(np.float32)
    img = np.empty((height, width, 3), dtype=np.float32)
    img[..., 0] = 150 + 50 * x + 20 * y + weave + grain
    img[..., 1] = 110 + 30 * y - 10 * x + weave + grain
    img[..., 2] = 95 + 25 * (1 - x) + weave + grain
    return img


def _take_image(
    background: npt.NDArray[np.float32],
    spec: TakeSpec,
    openness: float,
    noise: npt.NDArray[np.float32] | None,
) -> npt.NDArray[np.uint8]:
    """The backdrop with the mouth drawn ``openness`` open, its top and bottom edges
    anti-aliased (each edge row blended by the fraction of it the mouth covers)."""
    img = background.copy()
    height = spec.height * (_MOUTH_MIN + (_MOUTH_MAX - _MOUTH_MIN) * openness)
    top, bottom = spec.height / 2 - height / 2, spec.height / 2 + height / 2
    r0, r1, left, right = spec.mouth_box
    rows = np.arange(r0, r1, dtype=np.float32)
    cover = np.clip(np.minimum(rows + 1, bottom) - np.maximum(rows, top), 0.0, 1.0)
    region = img[r0:r1, left:right]
    mouth = np.asarray(_MOUTH_RGB, dtype=np.float32)
    img[r0:r1, left:right] = region + (mouth - region) * cover[:, None, None]
    if noise is not None:
        img += noise
    return np.asarray(np.clip(img + 0.5, 0, 255), dtype=np.uint8)


def _take_encoder_defaults(codec: str) -> dict[str, str]:
    """Options that keep the bytes the same from run to run (x264 under PyAV 18 / FFmpeg 8
    differs between runs on a noisy picture, single-threaded too, unless its macroblock tree
    is off; one thread also spares the machine)."""
    if codec == "libx264":
        return {"threads": "1", "x264-params": "mbtree=0"}
    return {"threads": "1"}


def _other_voice(count: int, rate: int, level: float, seed: int) -> Float32Array:
    """A voice-like signal unlike the narration: another pitch, random syllables."""
    rng = np.random.default_rng(seed)
    t = np.arange(count) / rate
    f0 = 215 + 35 * np.sin(2 * math.pi * 0.21 * t + rng.uniform(0, 6))
    phase = 2 * math.pi * np.cumsum(f0) / rate
    voice = np.zeros(count)
    for k, amp in enumerate((1.0, 0.5, 0.35, 0.2, 0.1), start=1):
        voice += amp * np.sin(k * phase + rng.uniform(0, 6))
    voice *= _random_envelope(t, seed + 1)
    rms = float(np.sqrt(np.mean(voice**2))) if count else 0.0
    return (voice * (level / rms if rms > 0 else 0.0)).astype(np.float32)


def _take_sound(
    narration: npt.NDArray[np.floating], narration_rate: int, spec: TakeSpec, count: int
) -> Float32Array:
    """The take's sound, (channels, count) at ``audio_rate``."""
    data = np.asarray(narration, dtype=np.float64)
    if spec.sound == "other":
        level = float(np.sqrt(np.mean(_mono(data) ** 2))) if data.size else 0.1
        track = _other_voice(count, spec.audio_rate, level, spec.seed + 2)[None, :]
    elif data.ndim == 2 and data.shape[0] == spec.audio_channels:
        track = retime(
            data,
            narration_rate,
            spec.audio_rate,
            count,
            delay_s=spec.sound_delay_s,
            stretch=spec.sound_stretch,
        )
    else:
        track = retime(
            _mono(data),
            narration_rate,
            spec.audio_rate,
            count,
            delay_s=spec.sound_delay_s,
            stretch=spec.sound_stretch,
        )[None, :]
    if spec.audio_noise_db is not None and count:
        rms = float(np.sqrt(np.mean(np.asarray(track, dtype=np.float64) ** 2)))
        std = rms / 10 ** (spec.audio_noise_db / 20)
        noise = np.random.default_rng(spec.seed + 3).standard_normal((1, count)) * std
        track = (track + noise).astype(np.float32)
    track = np.broadcast_to(track, (spec.audio_channels, count))
    return np.ascontiguousarray(np.clip(track, -1.0, 1.0), dtype=np.float32)


def write_take(path: Path, narration: Float32Array, narration_rate: int, spec: TakeSpec) -> Path:
    """Encode a take of ``narration`` ((n,) mono or (channels, n), float in [-1, 1]).

    The container follows the suffix (.mp4: H.264 and AAC; .mov: also PCM, e.g.
    ``audio_codec="pcm_s16le"``). Frame ``k`` has the exact time ``k / fps``. The output is
    the same for the same inputs and spec (every noise and texture is seeded).
    """
    path = Path(path)
    if spec.audio_channels not in (1, 2):
        raise ValueError(f"audio_channels must be 1 or 2, not {spec.audio_channels}")
    if spec.picture_stretch <= 0 or spec.sound_stretch <= 0:
        raise ValueError("picture_stretch and sound_stretch must be positive")
    openness = mouth_openness(narration, narration_rate, spec)
    count = openness.size
    if count == 0:
        raise ValueError("a take needs at least one frame (narration too short?)")
    slate: int | None = None
    if spec.slate_at_s is not None:
        at = spec.slate_at_s * spec.picture_stretch + spec.picture_delay_s
        slate = round(at * spec.fps)
        if not 0 <= slate < count:
            raise ValueError(f"the slate at {at:.3f} s falls outside the picture's {count} frames")
    options: dict[str, str] = {}
    if spec.faststart and path.suffix.lower() in (".mp4", ".mov", ".m4v"):
        options["movflags"] = "+faststart"
    time_base = spec.time_base
    if time_base is None:
        ticks = Fraction(90000) / spec.fps
        exact = ticks.denominator == 1
        time_base = Fraction(1, 90000 if exact else math.lcm(90000, spec.fps.numerator))
    background = _background(spec.width, spec.height, spec.seed)
    pixel_noise = np.random.default_rng(spec.seed + 4)
    with av.open(str(path), "w", options=options) as out:
        vs = out.add_stream(spec.video_codec, rate=spec.fps)
        assert isinstance(vs, av.VideoStream)
        vs.width, vs.height = spec.width, spec.height
        vs.pix_fmt = spec.pix_fmt
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        vs.options = {**_take_encoder_defaults(spec.video_codec), **spec.video_options}
        if spec.colour_tags:
            _tag_bt709(vs)
        aus: av.AudioStream | None = None
        if spec.sound != "none":
            aus = _add_sound(out, spec.audio_codec, spec.audio_rate, spec.audio_channels)
            if spec.audio_bit_rate and not spec.audio_codec.startswith("pcm_"):
                aus.bit_rate = spec.audio_bit_rate
        for k in range(count):
            if k == slate:
                img = np.full((spec.height, spec.width, 3), 255, dtype=np.uint8)
            else:
                noise = None
                if spec.picture_noise > 0:
                    shape = (spec.height, spec.width, 1)
                    noise = (pixel_noise.standard_normal(shape) * spec.picture_noise).astype(
                        np.float32
                    )
                img = _take_image(background, spec, float(openness[k]), noise)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=spec.pix_fmt)
            frame.pts = round(Fraction(k) / spec.fps / time_base)
            frame.time_base = time_base
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if aus is not None:
            seconds = (
                Fraction(spec.audio_seconds)
                if spec.audio_seconds is not None
                else Fraction(count) / spec.fps
            )
            track = _take_sound(narration, narration_rate, spec, round(seconds * spec.audio_rate))
            _encode_sound(out, aus, track, spec.audio_rate)
    return path


def takes_demo_set(
    folder: Path, narration: Float32Array, rate: int, suffix: str = ".mp4"
) -> dict[str, tuple[Path, TakeSpec]]:
    """One take of each kind a sync check should tell apart, with the spec that made it."""
    specs = {
        "in_sync": TakeSpec(),
        "picture_late_2f": TakeSpec(picture_delay_s=2 / 24),
        "sound_late_37ms": TakeSpec(sound_delay_s=0.037),
        "picture_drift_0.5pc": TakeSpec(picture_stretch=1.005),
        "other_sound": TakeSpec(sound="other"),
        "no_sound": TakeSpec(sound="none"),
        "static_picture": TakeSpec(picture_motion="static"),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        name: (write_take(folder / f"{name}{suffix}", narration, rate, spec), spec)
        for name, spec in specs.items()
    }
