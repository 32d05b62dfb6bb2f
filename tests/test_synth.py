"""Synthetic takes: checked with an independent reader (PyAV decoding the written files).

The envelopes and correlations here are computed afresh from decoded pixels and samples,
not with ``handoff.media.synth``'s own helpers, so a mistake there cannot confirm itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from handoff.media.synth import TakeSpec, retime, speech_like, takes_demo_set, write_take
from tests.conftest import MakeDir

RATE = 48000
F64 = npt.NDArray[np.float64]


@dataclass
class Decoded:
    fps: Fraction
    frame_pts: list[int]
    time_base: Fraction
    luma: list[npt.NDArray[np.uint8]]
    audio: F64 | None
    """(channels, n) float."""
    audio_rate: int
    audio_codec: str
    audio_declared: int | None
    """The audio stream's duration in samples, as the container states it."""
    audio_first_pts: int | None


def decode(path: Path) -> Decoded:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        assert vs.average_rate is not None and vs.time_base is not None
        fps, tb = Fraction(vs.average_rate), Fraction(vs.time_base)
        pts: list[int] = []
        luma: list[npt.NDArray[np.uint8]] = []
        for picture in c.decode(vs):
            assert picture.pts is not None
            pts.append(picture.pts)
            luma.append(np.asarray(picture.to_ndarray(format="gray"), dtype=np.uint8).copy())
    audio: F64 | None = None
    rate, codec, declared, first = 0, "", None, None
    with av.open(str(path)) as c:
        if c.streams.audio:
            aus = c.streams.audio[0]
            rate, codec, declared = aus.rate, aus.codec_context.name, aus.duration
            to_float = av.AudioResampler(format="fltp", layout=aus.layout.name, rate=rate)
            blocks: list[npt.NDArray[np.generic]] = []
            for sound in c.decode(aus):
                if first is None:
                    first = sound.pts
                blocks.extend(f.to_ndarray() for f in to_float.resample(sound))
            blocks.extend(f.to_ndarray() for f in to_float.resample(None))
            audio = np.concatenate(blocks, axis=1).astype(np.float64)
    return Decoded(fps, pts, tb, luma, audio, rate, codec, declared, first)


def mouth_darkness(d: Decoded, spec: TakeSpec) -> F64:
    top, bottom, left, right = spec.mouth_box
    return np.array([-float(y[top:bottom, left:right].mean()) for y in d.luma])


def envelope(signal: F64, rate: int, times: F64, window_s: float = 0.02) -> F64:
    """RMS over a centred window at each time, by plain slicing."""
    out = np.zeros(times.size)
    for i, t in enumerate(times):
        a = max(round((t - window_s / 2) * rate), 0)
        b = min(round((t + window_s / 2) * rate), signal.size)
        if b > a:
            out[i] = math.sqrt(float(np.mean(signal[a:b] ** 2)))
    return out


def pearson(a: F64, b: F64) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def lagged(a: F64, b: F64, lag: int) -> float:
    """Correlation of a[k] with b[k - lag]."""
    if lag >= 0:
        return pearson(a[lag:], b[: b.size - lag])
    return pearson(a[:lag], b[-lag:])


def best_lag(a: F64, b: F64, reach: int = 4) -> int:
    return max(range(-reach, reach + 1), key=lambda lag: lagged(a, b, lag))


def xcorr_peak(x: F64, ref: F64, max_lag: int) -> tuple[float, float]:
    """(lag in samples, with parabolic refinement; normalised peak) of x against ref."""
    n = x.size + ref.size
    size = 1 << (n - 1).bit_length()
    spec = np.fft.rfft(x, size) * np.conj(np.fft.rfft(ref, size))
    cc = np.fft.irfft(spec, size)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    vals = np.r_[cc[: max_lag + 1], cc[size - max_lag :]]
    i = int(np.argmax(vals))
    peak = float(vals[i] / math.sqrt(float(np.sum(x**2) * np.sum(ref**2))))
    lag = float(lags[i])
    if 0 < i < vals.size - 1 and lags[i - 1] == lags[i] - 1 and lags[i + 1] == lags[i] + 1:
        y0, y1, y2 = vals[i - 1], vals[i], vals[i + 1]
        lag += float(0.5 * (y0 - y2) / (y0 - 2 * y1 + y2))
    return lag, peak


def frame_times(d: Decoded) -> F64:
    return np.array([float(p * d.time_base) for p in d.frame_pts])


@pytest.fixture(scope="module")
def narration() -> npt.NDArray[np.float32]:
    # 4.03 s: the frame count must round down (96.72 -> 96 frames).
    return speech_like(3.78, RATE, pauses=[(0.9, 0.3), (2.2, 0.45)], lead=0.25)


@pytest.fixture(scope="module")
def in_sync(module_tmp: MakeDir, narration: npt.NDArray[np.float32]) -> tuple[TakeSpec, Decoded]:
    spec = TakeSpec()
    path = write_take(module_tmp("take") / "sync.mp4", narration, RATE, spec)
    return spec, decode(path)


def test_take_has_exact_frames_rate_and_sound_length(
    in_sync: tuple[TakeSpec, Decoded], narration: npt.NDArray[np.float32]
) -> None:
    _, d = in_sync
    assert narration.size == round(4.03 * RATE)
    assert len(d.luma) == 96
    assert d.fps == 24
    assert d.luma[0].shape == (240, 320)
    assert [p * d.time_base for p in d.frame_pts] == [Fraction(k, 24) for k in range(96)]
    assert d.audio is not None
    assert (d.audio_codec, d.audio_rate, d.audio.shape[0]) == ("aac", 48000, 2)
    # The edit list states the exact length and hides the encoder's priming (the first
    # decoded sample is at 0); the decoder still returns the last AAC frame's padding.
    assert d.audio_declared == 4 * 48000
    assert d.audio_first_pts == 0
    assert 4 * 48000 <= d.audio.shape[1] < 4 * 48000 + 1024
    # Both channels carry the same content (AAC's joint coding leaves a few ulps apart).
    assert np.max(np.abs(d.audio[0] - d.audio[1])) < 1e-3
    lag, peak = xcorr_peak(d.audio[0, : 4 * RATE], narration[: 4 * RATE].astype(np.float64), 200)
    assert abs(lag) < 0.5 and peak > 0.98


def test_mouth_follows_the_sound_envelope(in_sync: tuple[TakeSpec, Decoded]) -> None:
    spec, d = in_sync
    assert d.audio is not None
    dark = mouth_darkness(d, spec)
    env = envelope(d.audio.mean(axis=0), d.audio_rate, frame_times(d))
    assert pearson(dark, env) > 0.9
    assert best_lag(dark, env) == 0


def test_late_picture_lags_by_its_delay(tmp_path: Path, narration: npt.NDArray[np.float32]) -> None:
    spec = TakeSpec(picture_delay_s=2 / 24)
    d = decode(write_take(tmp_path / "late.mp4", narration, RATE, spec))
    assert d.audio is not None
    dark = mouth_darkness(d, spec)
    env = envelope(d.audio.mean(axis=0), d.audio_rate, frame_times(d))
    assert best_lag(dark, env) == 2
    assert lagged(dark, env, 2) > 0.9


def test_picture_drift_is_the_stretch(tmp_path: Path, narration: npt.NDArray[np.float32]) -> None:
    spec = TakeSpec(picture_stretch=1.02)
    d = decode(write_take(tmp_path / "drift.mp4", narration, RATE, spec))
    dark, t = mouth_darkness(d, spec), frame_times(d)
    mono = narration.astype(np.float64)
    fits = {s: pearson(dark, envelope(mono, RATE, t / s)) for s in (1.0, 1.01, 1.02, 1.03)}
    assert max(fits, key=lambda s: fits[s]) == 1.02
    assert fits[1.02] > 0.95


def test_a_few_milliseconds_change_the_picture(
    tmp_path: Path, narration: npt.NDArray[np.float32]
) -> None:
    a, b = TakeSpec(sound="none"), TakeSpec(sound="none", picture_delay_s=0.004)
    da = decode(write_take(tmp_path / "a.mp4", narration, RATE, a))
    db = decode(write_take(tmp_path / "b.mp4", narration, RATE, b))
    step = np.abs(mouth_darkness(da, a) - mouth_darkness(db, b))
    # Anti-aliased edges: a 4 ms shift moves the mouth a fraction of a pixel, and the mean
    # luma of the mouth region follows on most frames where the mouth is moving.
    assert float(np.mean(step > 0.05)) > 0.5


def test_sound_delay_is_exact(tmp_path: Path, narration: npt.NDArray[np.float32]) -> None:
    spec = TakeSpec(sound_delay_s=0.037, audio_codec="pcm_s16le")
    d = decode(write_take(tmp_path / "late.mov", narration, RATE, spec))
    assert d.audio is not None and d.audio_codec == "pcm_s16le"
    assert d.audio.shape == (2, 4 * RATE)
    lag, peak = xcorr_peak(d.audio[0], narration.astype(np.float64), RATE // 10)
    assert abs(lag / RATE - 0.037) < 0.0005 and peak > 0.99
    # 37 ms is 1776 samples at 48 kHz: the take is the narration moved, to 16-bit precision.
    shift = 1776
    assert np.max(np.abs(d.audio[0, :shift])) == 0.0
    moved = narration[: 4 * RATE - shift].astype(np.float64)
    assert np.max(np.abs(d.audio[0, shift:] - moved)) < 2 / 32768


def test_fractional_delay_stretch_and_24k_match_the_analytic_signal(tmp_path: Path) -> None:
    def tones(t: F64) -> F64:
        return 0.3 * np.sin(2 * np.pi * 441.3 * t + 0.2) + 0.2 * np.sin(2 * np.pi * 2345.6 * t)

    narration = tones(np.arange(3 * RATE) / RATE).astype(np.float32)
    delay, stretch = 0.0123456, 1.0002
    spec = TakeSpec(
        sound_delay_s=delay,
        sound_stretch=stretch,
        audio_rate=24000,
        audio_codec="pcm_s16le",
        picture_motion="static",
    )
    d = decode(write_take(tmp_path / "tones.mov", narration, RATE, spec))
    assert d.audio is not None and d.audio_rate == 24000
    assert d.audio.shape == (2, 3 * 24000)
    t = np.arange(d.audio.shape[1]) / 24000
    inner = slice(4800, 3 * 24000 - 4800)
    want = tones((t - delay) / stretch)[inner]
    assert np.max(np.abs(d.audio[0, inner] - want)) < 3 / 32768
    # A delay 0.01 ms off would already miss by far more than that.
    off = tones((t - delay - 0.00001) / stretch)[inner]
    assert np.max(np.abs(off - want)) > 20 / 32768


def test_retime_is_band_limited_and_exact() -> None:
    def tones(t: F64) -> F64:
        return 0.4 * np.sin(2 * np.pi * 300.0 * t) + 0.3 * np.sin(2 * np.pi * 4321.0 * t + 1)

    x = tones(np.arange(2 * RATE) / RATE).astype(np.float32)
    for rate_out, delay, stretch in ((48000, 0.00731, 1.0), (44100, -0.02, 0.9995)):
        y = retime(x, RATE, rate_out, rate_out * 2, delay_s=delay, stretch=stretch)
        t = np.arange(y.size) / rate_out
        inner = slice(rate_out // 5, rate_out * 2 - rate_out // 5)
        assert np.max(np.abs(y[inner] - tones((t - delay) / stretch)[inner])) < 1e-5
    late = retime(x, RATE, RATE, RATE, delay_s=0.1)
    assert not late[: 4800 - 64].any()


def test_ntsc_rate_gets_exact_frame_times(tmp_path: Path) -> None:
    short = speech_like(1.0, 24000)
    spec = TakeSpec(fps=Fraction(24000, 1001), audio_rate=24000, audio_codec="pcm_s16le")
    d = decode(write_take(tmp_path / "ntsc.mov", short, 24000, spec))
    assert d.fps == Fraction(24000, 1001)
    assert len(d.luma) == 23  # floor(1.0 s x 23.976)
    assert [p * d.time_base for p in d.frame_pts] == [k * Fraction(1001, 24000) for k in range(23)]
    assert d.audio is not None and d.audio.shape == (2, 23023)


def test_no_sound_has_no_audio_stream(tmp_path: Path, narration: npt.NDArray[np.float32]) -> None:
    path = write_take(tmp_path / "mute.mp4", narration, RATE, TakeSpec(sound="none"))
    with av.open(str(path)) as c:
        assert not c.streams.audio
        assert len(c.streams.video) == 1


def test_other_sound_is_not_the_narration(
    tmp_path: Path, narration: npt.NDArray[np.float32], in_sync: tuple[TakeSpec, Decoded]
) -> None:
    spec = TakeSpec(sound="other", audio_codec="pcm_s16le")
    d = decode(write_take(tmp_path / "other.mov", narration, RATE, spec))
    assert d.audio is not None and d.audio.shape == (2, 4 * RATE)
    ref = narration[: 4 * RATE].astype(np.float64)
    _, peak = xcorr_peak(d.audio[0], ref, RATE // 2)
    assert peak < 0.2
    rms = math.sqrt(float(np.mean(d.audio[0] ** 2)))
    assert 0.7 < rms / math.sqrt(float(np.mean(ref**2))) < 1.4
    # Nor does its envelope follow the picture, which is still the narration's.
    env = envelope(d.audio[0], RATE, frame_times(d))
    assert abs(pearson(mouth_darkness(d, spec), env)) < 0.4


def test_static_and_random_mouths(tmp_path: Path, narration: npt.NDArray[np.float32]) -> None:
    env = envelope(narration.astype(np.float64), RATE, np.arange(96) / 24)
    static = TakeSpec(picture_motion="static", sound="none")
    d = decode(write_take(tmp_path / "static.mp4", narration, RATE, static))
    assert np.ptp(mouth_darkness(d, static)) < 1.0
    rand = TakeSpec(picture_motion="random", sound="none")
    d = decode(write_take(tmp_path / "random.mp4", narration, RATE, rand))
    dark = mouth_darkness(d, rand)
    assert np.std(dark) > 3.0
    assert max(abs(lagged(dark, env, lag)) for lag in range(-4, 5)) < 0.4


def test_slate_flash_lands_on_the_delayed_frame(
    tmp_path: Path, narration: npt.NDArray[np.float32]
) -> None:
    spec = TakeSpec(slate_at_s=1.0, picture_delay_s=2 / 24, sound="none")
    d = decode(write_take(tmp_path / "slate.mp4", narration, RATE, spec))
    white = [k for k, y in enumerate(d.luma) if y.mean() > 230]
    assert white == [26]


def test_audio_seconds_noise_and_stereo_narration(
    tmp_path: Path, narration: npt.NDArray[np.float32]
) -> None:
    clean = TakeSpec(audio_codec="pcm_s16le", audio_seconds=2.5, frames=24)
    d = decode(write_take(tmp_path / "clean.mov", narration, RATE, clean))
    assert len(d.luma) == 24
    assert d.audio is not None and d.audio.shape == (2, 120000)
    noisy = TakeSpec(audio_codec="pcm_s16le", audio_seconds=2.5, frames=24, audio_noise_db=20.0)
    dn = decode(write_take(tmp_path / "noisy.mov", narration, RATE, noisy))
    assert dn.audio is not None
    snr = 10 * math.log10(float(np.mean(d.audio**2) / np.mean((dn.audio - d.audio) ** 2)))
    assert abs(snr - 20.0) < 0.3
    stereo = np.stack([narration, -0.5 * narration])
    mono_out = TakeSpec(audio_codec="pcm_s16le", audio_channels=1, frames=24)
    dm = decode(write_take(tmp_path / "mono.mov", stereo, RATE, mono_out))
    assert dm.audio is not None and dm.audio.shape == (1, 48000)
    assert np.max(np.abs(dm.audio[0] - 0.25 * narration[:48000])) < 2 / 32768
    both = TakeSpec(audio_codec="pcm_s16le", frames=24)
    ds = decode(write_take(tmp_path / "stereo.mov", stereo, RATE, both))
    assert ds.audio is not None
    assert np.max(np.abs(ds.audio[1] + 0.5 * ds.audio[0])) < 2 / 32768


def test_same_spec_same_bytes(tmp_path: Path, narration: npt.NDArray[np.float32]) -> None:
    spec = TakeSpec(frames=36, picture_noise=4.0, audio_noise_db=30.0, picture_motion="random")
    a = write_take(tmp_path / "a.mp4", narration, RATE, spec)
    b = write_take(tmp_path / "b.mp4", narration, RATE, spec)
    assert a.read_bytes() == b.read_bytes()


def test_bad_specs_are_refused(tmp_path: Path, narration: npt.NDArray[np.float32]) -> None:
    with pytest.raises(ValueError, match="slate"):
        write_take(tmp_path / "x.mp4", narration, RATE, TakeSpec(slate_at_s=9.0))
    with pytest.raises(ValueError, match="audio_channels"):
        write_take(tmp_path / "x.mp4", narration, RATE, TakeSpec(audio_channels=6))


def test_demo_set(tmp_path: Path) -> None:
    short = speech_like(1.0, RATE)
    made = takes_demo_set(tmp_path, short, RATE)
    assert {"in_sync", "picture_late_2f", "sound_late_37ms", "no_sound"} <= made.keys()
    for path, _ in made.values():
        assert path.stat().st_size > 0
