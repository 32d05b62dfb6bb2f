"""Tests for handoff.media.audio (decoding) and handoff.analysis.loudness (BS.1770-4 / EBU R128).

The independent reference is FFmpeg's ``ebur128`` filter, run through the ffmpeg binary of
the ``imageio-ffmpeg`` wheel, on real speech files (shared/reference/media, beside the
repository) and on signals generated here. Signals with a known answer (sines, inter-sample
peaks, gating cases, exact silence lengths) are checked against that answer as well.
"""

from __future__ import annotations

import math
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from av.audio.stream import AudioStream

from handoff.analysis import loudness
from handoff.errors import (
    EmptyMediaError,
    MediaNotFoundError,
    NoStreamsError,
    NotMediaError,
)
from handoff.media.audio import DecodedAudio, decode_audio

FloatArray = npt.NDArray[np.float64]

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "media"
SPEECH = MEDIA / "speech"

SPEECH_FILES = [
    "silero-vad_aepyx_8k_voxconverse.wav",  # 8 kHz mono, 169 s
    "silero-vad_test_16k_mono_60s.wav",  # 16 kHz mono, 60 s
    "faster-whisper_stereo_diarization_16k.wav",  # 16 kHz stereo, one speaker per channel
    "speech_recognition_english_44k1_mono.wav",  # 44.1 kHz mono, 2.7 s
]

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


# --- helpers ---------------------------------------------------------------------------------


def write_audio(
    path: Path,
    samples: npt.ArrayLike,
    sample_rate: int,
    codec: str = "pcm_f32le",
    layout: str | None = None,
) -> Path:
    """Write ``(channels, samples)`` float audio with PyAV; the encoder converts the format."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    layout = layout or LAYOUTS[x.shape[0]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        assert isinstance(stream, AudioStream)
        if codec == "vorbis":  # FFmpeg's own Vorbis encoder is marked experimental
            stream.codec_context.options = {"strict": "experimental"}
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = 0
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def sine(
    freq: float, seconds: float, sample_rate: int, dbfs: float = 0.0, phase: float = 0.0
) -> FloatArray:
    """A sine whose peak is ``dbfs``."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return np.asarray(10.0 ** (dbfs / 20.0) * np.sin(2.0 * np.pi * freq * t + phase))


def faded(x: FloatArray, sample_rate: int, seconds: float = 0.05) -> FloatArray:
    """Raised-cosine fade in and out, so that a cut-off sine does not ring at its ends."""
    n = round(seconds * sample_rate)
    ramp = np.sin(np.linspace(0.0, np.pi / 2.0, n)) ** 2
    out = x.copy()
    out[..., :n] *= ramp
    out[..., -n:] *= ramp[::-1]
    return out


def noise(seconds: float, sample_rate: int, dbfs_rms: float, seed: int = 0) -> FloatArray:
    rng = np.random.default_rng(seed)
    return np.asarray(10.0 ** (dbfs_rms / 20.0) * rng.standard_normal(round(seconds * sample_rate)))


def ffmpeg_exe() -> str:
    """The ffmpeg handoff's engine would run (``$HANDOFF_FFMPEG``, the imageio-ffmpeg
    wheel's, or PATH's), as the reference meter and to make inputs."""
    from handoff.export.engines.ffmpeg_engine import find_ffmpeg

    return find_ffmpeg()


def ffmpeg_ebur128(path: Path) -> tuple[float, float, float]:
    """(integrated LUFS, true peak dBTP, LRA LU) from FFmpeg's ebur128 filter.

    The summary prints one decimal; the frame metadata carries three (true peak as a
    linear value), so the last frame's metadata is used, with the summary as a check.
    """
    proc = subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostats",
            "-i",
            str(path),
            "-map",
            "0:a:0",
            "-af",
            "ebur128=peak=true:metadata=1,ametadata=mode=print",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    log = proc.stderr
    summary = log[log.rindex("Summary:") :]
    summary_i = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    summary_tp_text = re.search(r"True peak:\s+Peak:\s+(\S+) dBFS", summary).group(1)  # type: ignore[union-attr]
    summary_tp = float(summary_tp_text)
    integrated = float(re.findall(r"lavfi\.r128\.I=(-?[\d.]+)", log)[-1])
    tp_linear = float(re.findall(r"lavfi\.r128\.true_peak=(-?[\d.]+)", log)[-1])
    lra = float(re.findall(r"lavfi\.r128\.LRA=(-?[\d.]+)", log)[-1])
    assert abs(integrated - summary_i) <= 0.051
    # Three decimals of a linear peak are only precise for loud peaks.
    tp = 20.0 * math.log10(tp_linear) if tp_linear >= 0.1 else summary_tp
    return integrated, tp, lra


def speech_file(name: str) -> Path:
    path = SPEECH / name
    if not path.is_file():
        pytest.skip(f"reference media not present: {path} (shared/ is not beside the repo)")
    return path


def reference_iir_loudness(x: FloatArray, sample_rate: int) -> float:
    """A deliberately plain BS.1770-4 meter: direct-form biquads sample by sample, then the
    gating exactly as written in Annex 1. Mono only; slow; used as an oracle."""
    shelf, highpass = loudness.k_weighting(sample_rate)

    def biquad(signal: list[float], b: tuple[float, ...], a: tuple[float, ...]) -> list[float]:
        out = [0.0] * len(signal)
        x1 = x2 = y1 = y2 = 0.0
        for i, v in enumerate(signal):
            y = b[0] * v + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
            x2, x1, y2, y1 = x1, v, y1, y
            out[i] = y
        return out

    z = np.array(biquad(biquad(list(x), shelf.b, shelf.a), highpass.b, highpass.a))
    step = sample_rate // 10
    blocks = [
        float(np.mean(z[j * step : j * step + 4 * step] ** 2))
        for j in range((len(z) - 4 * step) // step + 1)
    ]
    levels = [-0.691 + 10 * math.log10(p) if p > 0 else -math.inf for p in blocks]
    gated = [p for p, lv in zip(blocks, levels, strict=True) if lv > -70.0]
    if not gated:
        return -math.inf
    rel = -0.691 + 10 * math.log10(float(np.mean(gated))) - 10.0
    kept = [p for p, lv in zip(blocks, levels, strict=True) if lv > -70.0 and lv > rel]
    return -0.691 + 10 * math.log10(float(np.mean(kept)))


# --- K-weighting -----------------------------------------------------------------------------


def test_k_weighting_reproduces_bs1770_tables_at_48k() -> None:
    shelf, highpass = loudness.k_weighting(48000)
    # BS.1770-4 Annex 1, Table 1 (pre-filter) and Table 2 (RLB filter).
    np.testing.assert_allclose(
        shelf.b, (1.53512485958697, -2.69169618940638, 1.19839281085285), atol=1e-9
    )
    np.testing.assert_allclose(shelf.a, (1.0, -1.69065929318241, 0.73248077421585), atol=1e-9)
    np.testing.assert_allclose(highpass.b, (1.0, -2.0, 1.0), atol=0)
    np.testing.assert_allclose(highpass.a, (1.0, -1.99004745483398, 0.99007225036621), atol=1e-9)


@pytest.mark.parametrize("rate", [8000, 44100, 96000])
def test_k_weighting_other_rates_keep_the_curve(rate: int) -> None:
    """Pre-warping keeps the curve: up to the shelf's corner the gain is that at 48 kHz.

    What differs is the bilinear warping towards Nyquist and the high-pass's unnormalised
    (1, -2, 1) numerator, whose gain grows as the rate drops (+0.2 dB at 8 kHz, as in
    FFmpeg's meter)."""

    def gain_db(fs: int, f: float) -> float:
        z1 = np.exp(-2j * np.pi * f / fs)
        h = 1.0 + 0j
        for s in loudness.k_weighting(fs):
            h *= (s.b[0] + s.b[1] * z1 + s.b[2] * z1**2) / (s.a[0] + s.a[1] * z1 + s.a[2] * z1**2)
        return 20 * math.log10(abs(h))

    for f in (20.0, 100.0, 1000.0, 1681.97):
        assert gain_db(rate, f) == pytest.approx(gain_db(48000, f), abs=0.25)
    assert gain_db(rate, 10.0) < gain_db(rate, 1000.0) - 10.0  # the high-pass is there


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_fast_meter_equals_direct_form_iir(rate: int) -> None:
    """The FFT/FIR K-weighting and the block arithmetic equal a plain sample-by-sample
    IIR meter (bursts of noise and a low tone, so both gates act)."""
    x = np.concatenate(
        [
            noise(0.7, rate, -20, seed=1),
            np.zeros(rate // 2),
            noise(0.6, rate, -45, seed=2),
            sine(50.0, 0.8, rate, -12) + 0.3,  # low tone on a DC offset: tests the high-pass
            noise(0.5, rate, -85, seed=3),
        ]
    )
    expected = reference_iir_loudness(x, rate)
    assert loudness.integrated_loudness(x, rate) == pytest.approx(expected, abs=1e-6)


# --- integrated loudness -----------------------------------------------------------------------


@pytest.mark.parametrize("rate", [48000, 44100, 16000, 8000])
def test_full_scale_sine_in_one_channel_reads_minus_3_01(rate: int) -> None:
    # BS.1770-4 Annex 1: a 0 dBFS 997 Hz sine in one front channel reads -3.01 LKFS. The
    # curve is defined at 48 kHz; at other rates the bilinear design moves 997 Hz by up
    # to 0.04 dB (16 kHz).
    x = sine(997.0, 5.0, rate)
    tolerance = 0.002 if rate == 48000 else 0.05
    assert loudness.integrated_loudness(x, rate) == pytest.approx(-3.01, abs=tolerance)


def test_minus_20_dbfs_sine_and_stereo_adds_3_db() -> None:
    rate = 48000
    x = sine(997.0, 5.0, rate, -20.0)
    mono = loudness.integrated_loudness(x, rate)
    assert mono == pytest.approx(-23.01, abs=0.02)
    stereo = loudness.integrated_loudness(np.vstack([x, x]), rate)
    assert stereo - mono == pytest.approx(10 * math.log10(2), abs=0.005)


def test_integer_input_is_scaled_to_full_scale() -> None:
    rate = 48000
    x = sine(997.0, 3.0, rate, -6.0)
    as_int16 = np.round(x * 32767).astype(np.int16)
    assert loudness.integrated_loudness(as_int16, rate) == pytest.approx(
        loudness.integrated_loudness(x, rate), abs=0.01
    )
    assert loudness.sample_peak(as_int16) == pytest.approx(-6.0, abs=0.01)


def test_absolute_gate_ignores_digital_silence() -> None:
    rate = 48000
    tone = sine(997.0, 10.0, rate, -20.0)

    def padded(seconds: float) -> FloatArray:
        return np.concatenate(
            [np.zeros(round(seconds * rate)), tone, np.zeros(round(seconds * rate))]
        )

    # Blocks wholly in silence fall under the -70 LKFS gate: 1 s or 20 s of silence on each
    # side read the same. (Blocks that straddle the tone's ends are not silent and count,
    # which is why both read a little under the tone alone.)
    short, long = (loudness.integrated_loudness(padded(s), rate) for s in (1.0, 20.0))
    assert long == pytest.approx(short, abs=1e-3)
    assert long == pytest.approx(loudness.integrated_loudness(tone, rate), abs=0.2)
    # Without the gate the 40 s of silence would pull the reading down by 6.5 dB.
    assert long > -23.01 - 1.0


def test_relative_gate_drops_passages_10_lu_down() -> None:
    rate = 48000
    loud = sine(997.0, 10.0, rate, -20.0)
    quiet = sine(997.0, 10.0, rate, -40.0)
    both = np.concatenate([loud, quiet])
    # Energy mean of the two halves would be about -26 LUFS; the relative gate (about
    # -33 LUFS here) drops the -43 LUFS half, so the reading stays at the loud half's level.
    # (The blocks that straddle the change are kept and pull it down a little.)
    assert loudness.integrated_loudness(both, rate) == pytest.approx(-23.01, abs=0.1)
    # A half only 5 LU down is kept, and pulls the reading down.
    closer = np.concatenate([loud, sine(997.0, 10.0, rate, -25.0)])
    assert loudness.integrated_loudness(closer, rate) < -24.0


def test_silence_and_too_short_read_minus_infinity() -> None:
    rate = 48000
    assert loudness.integrated_loudness(np.zeros((2, 5 * rate)), rate) == -math.inf
    assert loudness.integrated_loudness(sine(997.0, 0.3, rate), rate) == -math.inf
    assert loudness.integrated_loudness(noise(3.0, rate, -80.0), rate) == -math.inf
    report = loudness.measure(np.zeros((2, rate)), rate)
    assert report.integrated_lufs == -math.inf
    assert report.true_peak_dbtp == -math.inf
    assert report.sample_peak_dbfs == -math.inf


def test_surround_weights_and_lfe() -> None:
    rate = 48000
    x = sine(997.0, 4.0, rate, -20.0)
    front = np.zeros((6, x.shape[0]))
    front[0] = x
    back = np.zeros((6, x.shape[0]))
    back[4] = x
    lfe = np.zeros((6, x.shape[0]))
    lfe[3] = x
    l_front = loudness.integrated_loudness(front, rate)
    assert loudness.integrated_loudness(back, rate) - l_front == pytest.approx(
        10 * math.log10(1.41), abs=0.01
    )
    assert loudness.integrated_loudness(lfe, rate) == -math.inf
    assert loudness.channel_weights(2, ()) == (1.0, 1.0)  # unlabelled: by count
    assert loudness.channel_weights(6, ["FL", "FR", "FC", "LFE", "SL", "SR"]) == (
        1.0,
        1.0,
        1.0,
        0.0,
        1.41,
        1.41,
    )


def test_rejects_samples_by_channels_orientation() -> None:
    with pytest.raises(ValueError, match="transpose"):
        loudness.integrated_loudness(np.zeros((48000, 2)), 48000)
    with pytest.raises(ValueError, match="sample rate"):
        loudness.integrated_loudness(np.zeros(1000), 1000)


# --- true peak -------------------------------------------------------------------------------


def test_oversampling_factor_reaches_192k() -> None:
    assert loudness.true_peak_oversampling(48000) == 4
    assert loudness.true_peak_oversampling(96000) == 4
    assert loudness.true_peak_oversampling(44100) == 5
    assert loudness.true_peak_oversampling(16000) == 12
    assert loudness.true_peak_oversampling(8000) == 24


@pytest.mark.parametrize("rate", [48000, 44100, 16000, 8000])
def test_inter_sample_peak_of_quarter_rate_sine(rate: int) -> None:
    """A sine at fs/4 with 45 degree phase has every sample at 1/sqrt(2) of its peak: the
    sample peak is 3.01 dB under the true peak, which lies halfway between samples."""
    x = faded(sine(rate / 4.0, 3.0, rate, -1.0, phase=math.pi / 4.0), rate)
    assert loudness.sample_peak(x) == pytest.approx(-1.0 - 3.0103, abs=0.01)
    assert loudness.true_peak(x, rate) == pytest.approx(-1.0, abs=0.3)
    # 4x oversampling at 48 kHz lands exactly on the peaks.
    if rate == 48000:
        assert loudness.true_peak(x, rate) == pytest.approx(-1.0, abs=0.01)
    # Without oversampling the meter sees only the samples.
    assert loudness.true_peak(x, rate, oversample=1) == pytest.approx(-4.01, abs=0.01)


def test_true_peak_never_below_sample_peak_and_bounded() -> None:
    rate = 48000
    x = noise(2.0, rate, -12.0, seed=7)
    sp = loudness.sample_peak(x)
    tp = loudness.true_peak(x, rate)
    assert sp <= tp <= sp + 3.0
    # A constant reads its value (unity DC gain in every phase). It is faded in and out:
    # a step from zero really does overshoot between samples (Gibbs).
    level = faded(np.full(rate, 0.5), rate)
    assert loudness.true_peak(level, rate) == pytest.approx(20 * math.log10(0.5), abs=1e-3)


# --- dual mono -------------------------------------------------------------------------------


def test_dual_mono_detection() -> None:
    rate = 48000
    x = noise(1.0, rate, -20.0)
    assert loudness.is_dual_mono(np.vstack([x, x]))
    assert loudness.is_dual_mono(np.vstack([x, x + 5e-5]))
    assert not loudness.is_dual_mono(np.vstack([x, x + 1e-3]))
    assert not loudness.is_dual_mono(np.vstack([x, 0.5 * x]))
    assert not loudness.is_dual_mono(x)
    assert not loudness.is_dual_mono(np.vstack([x, x, x]))


def test_dual_mono_measured_as_its_mono_content() -> None:
    rate = 48000
    voice = faded(noise(8.0, rate, -19.0, seed=4), rate)
    mono = loudness.measure(voice, rate)
    dual = loudness.measure(np.vstack([voice, voice]), rate)
    as_stereo = loudness.measure(np.vstack([voice, voice]), rate, dual_mono_as_mono=False)

    assert not mono.dual_mono
    assert mono.measured_as == "as is"
    assert dual.dual_mono and as_stereo.dual_mono
    assert dual.measured_as == "mono content of dual-mono"
    assert dual.channels_measured == 1
    assert as_stereo.measured_as == "as is"
    assert as_stereo.channels_measured == 2
    assert dual.integrated_lufs == pytest.approx(mono.integrated_lufs, abs=1e-9)
    # BS.1770-4 sums the channels' powers: identical L/R read 3 LU louder than the mono.
    assert as_stereo.integrated_lufs - dual.integrated_lufs == pytest.approx(3.01, abs=0.01)
    assert dual.true_peak_dbtp == pytest.approx(mono.true_peak_dbtp, abs=1e-9)


# --- loudness range --------------------------------------------------------------------------


def test_loudness_range_of_two_levels() -> None:
    rate = 16000
    # 20 s at -20 dBFS then 20 s at -30 dBFS: the short-term distribution spans 10 LU.
    x = np.concatenate([sine(997.0, 20.0, rate, -20.0), sine(997.0, 20.0, rate, -30.0)])
    lra = loudness.loudness_range(x, rate)
    assert lra is not None
    assert lra == pytest.approx(10.0, abs=0.2)
    steady = loudness.loudness_range(sine(997.0, 20.0, rate, -20.0), rate)
    assert steady is not None and steady < 0.05
    assert loudness.loudness_range(sine(997.0, 2.0, rate, -20.0), rate) is None


# --- edge silence ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [48000, 44100, 16000])
@pytest.mark.parametrize("level", [-10.0, -30.0, -50.0])
def test_leading_silence_before_a_tone(rate: int, level: float) -> None:
    x = np.concatenate([np.zeros(round(0.3 * rate)), sine(440.0, 2.0, rate, level)])
    assert loudness.leading_silence_s(x, rate) == pytest.approx(0.30, abs=0.02)
    assert loudness.trailing_silence_s(x, rate) == pytest.approx(0.0, abs=0.02)


def test_trailing_silence_after_a_tone() -> None:
    rate = 48000
    x = np.concatenate([sine(440.0, 2.0, rate, -30.0), np.zeros(round(0.8 * rate))])
    stereo = np.vstack([x, x])
    assert loudness.trailing_silence_s(stereo, rate) == pytest.approx(0.80, abs=0.02)
    assert loudness.leading_silence_s(stereo, rate) == pytest.approx(0.0, abs=0.02)


def test_low_noise_before_speech_level_counts_as_silence() -> None:
    rate = 48000
    room = noise(0.5, rate, -65.0, seed=11)
    speech = sine(300.0, 2.0, rate, -20.0) + noise(2.0, rate, -65.0, seed=12)
    x = np.concatenate([room, speech, noise(0.4, rate, -65.0, seed=13)])
    # Threshold: 35 dB under the -23 dB programme level, far above the -65 dB noise.
    assert loudness.silence_threshold_dbfs(x, rate) == pytest.approx(-23.0 - 35.0, abs=1.0)
    assert loudness.leading_silence_s(x, rate) == pytest.approx(0.5, abs=0.02)
    assert loudness.trailing_silence_s(x, rate) == pytest.approx(0.4, abs=0.02)


def test_noise_is_sound_when_the_programme_is_quiet() -> None:
    """The threshold never goes under -70 dBFS, and follows a quiet programme down to it:
    -65 dB noise before a -50 dB tone is part of the programme, not silence."""
    rate = 48000
    x = np.concatenate(
        [np.zeros(rate // 5), noise(0.5, rate, -65.0, seed=5), sine(300.0, 2.0, rate, -50.0)]
    )
    assert loudness.silence_threshold_dbfs(x, rate) == -70.0
    assert loudness.leading_silence_s(x, rate) == pytest.approx(0.2, abs=0.02)


def test_clicks_and_glitches_before_the_sound() -> None:
    rate = 48000
    tone = sine(440.0, 2.0, rate, -20.0)
    # One stray sample 40 dB under the programme: its 20 ms level is under the threshold.
    glitch = np.concatenate([np.zeros(rate), tone])
    glitch[rate // 2] = 0.01
    assert loudness.leading_silence_s(glitch, rate) == pytest.approx(1.0, abs=0.02)
    # An audible 5 ms click at -26 dBFS is sound: the silence ends there.
    click = np.concatenate([np.zeros(rate), tone])
    click[rate // 2 : rate // 2 + 240] = 0.05
    assert loudness.leading_silence_s(click, rate) == pytest.approx(0.5, abs=0.002)


def test_all_silent_signal_is_all_silence() -> None:
    rate = 16000
    x = np.zeros(3 * rate)
    assert loudness.leading_silence_s(x, rate) == pytest.approx(3.0)
    assert loudness.trailing_silence_s(x, rate) == pytest.approx(3.0)


# --- against FFmpeg ebur128 ------------------------------------------------------------------


@pytest.mark.parametrize("name", SPEECH_FILES)
def test_speech_files_agree_with_ffmpeg(name: str) -> None:
    path = speech_file(name)
    ref_i, ref_tp, _ = ffmpeg_ebur128(path)
    decoded = decode_audio(path)
    # FFmpeg measures the channels as they are (the stereo file is two different speakers).
    report = loudness.measure(decoded.samples, decoded.sample_rate, dual_mono_as_mono=False)
    assert report.integrated_lufs == pytest.approx(ref_i, abs=0.2)
    assert report.true_peak_dbtp == pytest.approx(ref_tp, abs=0.3)
    assert not report.dual_mono


@pytest.mark.parametrize(
    "name",
    [
        "auto-editor_example_720p30_aac48k.mp4",  # AAC 48 kHz stereo speech, 42 s
        "mediabunny_edts_editlist.mp4",  # AAC 44.1 kHz behind an edit list
        "moviepy_video_with_failing_audio_mp3inmp4.mp4",  # MP3 in MP4
    ],
)
def test_real_mp4_audio_agrees_with_ffmpeg(name: str) -> None:
    path = MEDIA / "av" / name
    if not path.is_file():
        pytest.skip(f"reference media not present: {path}")
    ref_i, ref_tp, _ = ffmpeg_ebur128(path)
    decoded = decode_audio(path)
    report = loudness.measure(decoded.samples, decoded.sample_rate, dual_mono_as_mono=False)
    assert report.integrated_lufs == pytest.approx(ref_i, abs=0.2)
    assert report.true_peak_dbtp == pytest.approx(ref_tp, abs=0.3)


def test_speech_loudness_range_agrees_with_ffmpeg() -> None:
    path = speech_file("silero-vad_test_16k_mono_60s.wav")
    _, _, ref_lra = ffmpeg_ebur128(path)
    decoded = decode_audio(path)
    lra = loudness.loudness_range(decoded.samples, decoded.sample_rate)
    assert lra is not None
    assert lra == pytest.approx(ref_lra, abs=0.3)


@pytest.mark.parametrize(
    ("rate", "channels", "codec"),
    [
        (48000, 2, "pcm_f32le"),
        (44100, 1, "pcm_s16le"),
        (22050, 2, "pcm_s24le"),
        (96000, 1, "pcm_f32le"),
        (48000, 6, "pcm_f32le"),
    ],
)
def test_synthetic_files_agree_with_ffmpeg(
    tmp_path: Path, rate: int, channels: int, codec: str
) -> None:
    rng = np.random.default_rng(rate + channels)
    seconds = 6.0
    n = round(seconds * rate)
    # Programme-like: noise with a slow level change, plus a loud sine with overs between
    # samples, plus a quiet stretch the gates must drop.
    envelope = 0.1 * (1.0 + 0.8 * np.sin(2 * np.pi * 0.3 * np.arange(n) / rate))
    x = rng.standard_normal((channels, n)) * envelope
    x[:, : rate // 2] *= 0.001
    x[0] += faded(sine(rate / 4.0, seconds, rate, -8.0, phase=math.pi / 4.0), rate)
    path = write_audio(tmp_path / "signal.wav", x, rate, codec)
    ref_i, ref_tp, _ = ffmpeg_ebur128(path)
    decoded = decode_audio(path)
    report = loudness.measure(decoded.samples, decoded.sample_rate, dual_mono_as_mono=False)
    assert report.integrated_lufs == pytest.approx(ref_i, abs=0.2)
    assert report.true_peak_dbtp == pytest.approx(ref_tp, abs=0.3)


def test_dual_mono_file_reads_3_lu_under_ffmpeg(tmp_path: Path) -> None:
    rate = 48000
    voice = faded(noise(6.0, rate, -19.0, seed=9), rate)
    path = write_audio(tmp_path / "dual.wav", np.vstack([voice, voice]), rate, "pcm_s24le")
    ref_i, _, _ = ffmpeg_ebur128(path)
    decoded = decode_audio(path)
    report = loudness.measure(decoded.samples, decoded.sample_rate)
    assert report.dual_mono
    assert report.integrated_lufs == pytest.approx(ref_i - 3.01, abs=0.2)


# --- decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize(
    ("codec", "tolerance"),
    [("pcm_s16le", 2.0**-15), ("pcm_s24le", 2.0**-23), ("pcm_s32le", 2.0**-30), ("pcm_f32le", 0)],
)
def test_decode_wav_round_trip(tmp_path: Path, rate: int, codec: str, tolerance: float) -> None:
    x = np.vstack([sine(440.0, 0.5, rate, -6.0), sine(1000.0, 0.5, rate, -12.0)])
    decoded = decode_audio(write_audio(tmp_path / "x.wav", x, rate, codec))
    assert isinstance(decoded, DecodedAudio)
    assert decoded.sample_rate == rate
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.shape == x.shape
    assert decoded.duration_s == pytest.approx(0.5)
    assert np.max(np.abs(decoded.samples - x)) <= tolerance + 1e-7


@pytest.mark.parametrize(
    ("codec", "suffix", "rate"),
    [
        ("flac", "flac", 44100),
        ("libmp3lame", "mp3", 44100),
        ("aac", "mp4", 48000),
        ("libopus", "webm", 48000),
        ("vorbis", "mkv", 48000),
        ("libopus", "mkv", 48000),
    ],
)
def test_decode_compressed_formats(tmp_path: Path, codec: str, suffix: str, rate: int) -> None:
    seconds = 3.0
    x = faded(
        np.vstack([sine(440.0, seconds, rate, -12.0), sine(660.0, seconds, rate, -12.0)]), rate
    )
    path = write_audio(tmp_path / f"x.{suffix}", x, rate, codec)
    decoded = decode_audio(path)
    assert decoded.sample_rate == rate
    assert decoded.samples.shape[0] == 2
    assert decoded.layout == "stereo"
    assert decoded.duration_s == pytest.approx(seconds, abs=0.06)
    assert loudness.integrated_loudness(decoded.samples, rate) == pytest.approx(
        loudness.integrated_loudness(x, rate), abs=0.6
    )
    if codec == "flac":
        assert np.max(np.abs(decoded.samples - x)) <= 2.0**-15


def test_decode_picks_the_stream_by_container_index(tmp_path: Path) -> None:
    rate = 48000
    path = tmp_path / "two.mkv"
    with av.open(str(path), "w") as container:
        streams = [
            container.add_stream("pcm_s16le", rate=rate, layout="mono"),
            container.add_stream("pcm_s16le", rate=rate, layout="stereo"),
        ]
        for stream, x in zip(
            streams,
            [sine(440.0, 1.0, rate, -6.0)[np.newaxis], np.zeros((2, rate))],
            strict=True,
        ):
            frame = av.AudioFrame.from_ndarray(
                x.astype(np.float32), format="fltp", layout=stream.layout.name
            )
            frame.sample_rate = rate
            frame.pts = 0
            frame.time_base = Fraction(1, rate)
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                container.mux(packet)
    assert decode_audio(path).samples.shape[0] == 1
    second = decode_audio(path, stream_index=1)
    assert second.samples.shape == (2, rate)
    assert not np.any(second.samples)
    with pytest.raises(NoStreamsError, match="index 5"):
        decode_audio(path, stream_index=5)


def test_decode_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    with pytest.raises(MediaNotFoundError) as exc_info:
        decode_audio(missing)
    assert isinstance(exc_info.value, FileNotFoundError)

    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(EmptyMediaError):
        decode_audio(tmp_path / "empty.wav")

    (tmp_path / "notes.wav").write_text("this is not audio\n" * 100)
    with pytest.raises(NotMediaError):
        decode_audio(tmp_path / "notes.wav")

    video_only = tmp_path / "video.mp4"
    with av.open(str(video_only), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(
                np.full((64, 64, 3), 40 * i, dtype=np.uint8), format="rgb24"
            )
            frame.pts = i
            frame.time_base = Fraction(1, 24)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(NoStreamsError, match="no audio stream"):
        decode_audio(video_only)


def test_decode_survives_damage_mid_stream(tmp_path: Path) -> None:
    rate = 44100
    x = np.vstack([sine(440.0, 4.0, rate, -12.0)] * 2)
    path = write_audio(tmp_path / "x.mp3", x, rate, "libmp3lame")
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    middle = len(data) // 2
    data[middle : middle + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    decoded = decode_audio(damaged)
    # Most of the 4 s survive; what is there is still the tone at about the same level.
    assert decoded.duration_s > 3.0
    assert np.all(np.isfinite(decoded.samples))
    assert loudness.integrated_loudness(decoded.samples, rate) == pytest.approx(
        loudness.integrated_loudness(x, rate), abs=1.0
    )

    truncated = tmp_path / "truncated.wav"
    wav = write_audio(tmp_path / "full.wav", x, rate, "pcm_s16le").read_bytes()
    truncated.write_bytes(wav[: len(wav) // 2 + 1])  # cut mid-sample
    part = decode_audio(truncated)
    assert part.duration_s == pytest.approx(2.0, abs=0.05)
