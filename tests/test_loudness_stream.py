"""Tests for measuring a programme a block at a time (handoff.analysis.loudness.LoudnessMeter,
measure_file; handoff.media.audio.audio_blocks; handoff.analysis.dsp.BinPowers).

The streaming answers are checked against the whole-array functions of the same modules
(which test_loudness.py checks against known answers and FFmpeg's ebur128) fed the same
samples in blocks of awkward sizes, and, for files, against FFmpeg's ebur128 directly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from handoff.analysis import dsp, loudness
from handoff.errors import UnmeasurableError
from handoff.jobs.parallel import usable_cores
from handoff.media.audio import BLOCK_SAMPLES, audio_blocks, decode_audio, pcm_wav_blocks
from handoff.media.synth import speech_like, write_wav
from tests.test_loudness import faded, ffmpeg_ebur128, noise, sine
from tests.test_prep import encode

FloatArray = npt.NDArray[np.float64]
RATE = 48000


def programme(seconds: float = 14.0, *, dual: bool = False) -> FloatArray:
    """Two different voices with silence at both ends, loud in the middle, and a sine at
    fs/4 whose peaks fall between samples (so the true peak is above the sample peak)."""
    left = speech_like(seconds, RATE, level=0.3, pauses=[(4.0, 0.5)], lead=0.7, tail=1.3)
    right = left if dual else speech_like(seconds, RATE, level=0.2, lead=0.7, tail=1.3, seed=9)
    x = np.stack([left, right]).astype(np.float64)
    n = x.shape[1]
    burst = faded(sine(RATE / 4.0, 1.0, RATE, -2.0, phase=math.pi / 4.0), RATE)
    x[:, n // 2 : n // 2 + burst.shape[0]] += burst
    return x


def fed(x: npt.NDArray[np.generic], sizes: list[int]) -> loudness.ProgrammeLoudness:
    """The meter fed ``x`` in blocks cycling through ``sizes``."""
    meter = loudness.LoudnessMeter(RATE, x.shape[0])
    pos, i = 0, 0
    while pos < x.shape[1]:
        step = sizes[i % len(sizes)]
        meter.add(x[:, pos : pos + step])
        pos += step
        i += 1
    return meter.finish()


@pytest.mark.parametrize("sizes", [[1 << 20], [4799, 1, 33, 100_003], [31, 17_000]])
def test_blocks_give_the_whole_array_answers(sizes: list[int]) -> None:
    x = programme()
    got = fed(x, sizes)
    r = got.as_is
    assert r.integrated_lufs == pytest.approx(loudness.integrated_loudness(x, RATE), abs=1e-9)
    lra = loudness.loudness_range(x, RATE)
    assert lra is not None and r.loudness_range_lu == pytest.approx(lra, abs=1e-9)
    assert r.true_peak_dbtp == pytest.approx(loudness.true_peak(x, RATE), abs=1e-5)
    assert r.true_peak_dbtp > r.sample_peak_dbfs + 2.0  # the fs/4 sine's peaks are between
    assert r.sample_peak_dbfs == loudness.sample_peak(x)
    assert not r.dual_mono and got.as_mono is None
    assert got.leading_silence_s == loudness.leading_silence_s(x, RATE)
    assert got.trailing_silence_s == loudness.trailing_silence_s(x, RATE)
    assert got.leading_silence_s == pytest.approx(0.7, abs=0.02)
    assert got.trailing_silence_s == pytest.approx(1.3, abs=0.02)


def test_dual_mono_is_measured_both_ways() -> None:
    x = programme(dual=True)
    got = fed(x, [12_345])
    assert got.as_is.dual_mono and got.as_mono is not None
    assert got.as_mono.integrated_lufs == pytest.approx(
        loudness.integrated_loudness(x[:1], RATE), abs=1e-9
    )
    # BS.1770 adds the channel energies: the same signal twice reads 3.01 LU louder.
    assert got.as_is.integrated_lufs - got.as_mono.integrated_lufs == pytest.approx(
        3.0103, abs=1e-3
    )
    assert got.report() == loudness.measure(x, RATE)
    assert got.report(dual_mono_as_mono=False) == loudness.measure(x, RATE, dual_mono_as_mono=False)


def test_integer_samples_and_one_channel() -> None:
    x = (programme()[:1] * 32767).astype(np.int16)
    got = fed(x, [7_000])
    assert got.as_is.integrated_lufs == pytest.approx(
        loudness.integrated_loudness(x, RATE), abs=1e-9
    )
    assert got.as_is.true_peak_dbtp == pytest.approx(loudness.true_peak(x, RATE), abs=1e-5)


def test_short_and_empty_programmes() -> None:
    empty = loudness.LoudnessMeter(RATE, 2).finish().as_is
    assert empty.integrated_lufs == -math.inf and empty.true_peak_dbtp == -math.inf
    short = fed(noise(0.3, RATE, -20.0)[None, :], [1000])  # under one 400 ms block
    assert short.as_is.integrated_lufs == -math.inf
    assert short.as_is.loudness_range_lu is None
    assert math.isfinite(short.as_is.true_peak_dbtp)


def test_meter_refuses_what_it_cannot_measure() -> None:
    with pytest.raises(UnmeasurableError, match="too low"):
        loudness.LoudnessMeter(2000, 1)
    with pytest.raises(UnmeasurableError, match="0 channels"):
        loudness.LoudnessMeter(RATE, 0)
    meter = loudness.LoudnessMeter(RATE, 2)
    with pytest.raises(ValueError, match="1 channels for a 2-channel"):
        meter.add(np.zeros((1, 10)))
    meter.finish()
    with pytest.raises(ValueError, match="finished"):
        meter.add(np.zeros((2, 10)))


def test_bin_powers_in_blocks_equal_bin_power() -> None:
    x = programme(3.0)
    size = dsp.bin_samples(RATE)
    stream = dsp.BinPowers(RATE, 2)
    for start in range(0, x.shape[1], 4_999):
        stream.add(x[:, start : start + 4_999])
    whole, whole_size = dsp.bin_power(x, RATE)
    assert size == whole_size
    # The threshold's windows are kept exactly; the bins for the search in float32.
    assert stream.threshold_db() == dsp.silence_threshold_db(whole)
    assert stream.edges() == dsp.edge_silence(whole, size, x.shape[1])
    np.testing.assert_allclose(stream.finish(), whole, rtol=1e-7, atol=0.0)


def test_audio_blocks_are_the_decoded_audio_in_order(tmp_path: Path) -> None:
    x = programme(7.0).astype(np.float32)
    path = write_wav(tmp_path / "p.wav", x, RATE, "pcm_f32le")
    blocks = list(audio_blocks(path, block_samples=48_000))
    assert all(b.samples.shape[1] >= 48_000 for b in blocks[:-1])
    assert all(b.sample_rate == RATE and b.channels == 2 for b in blocks)
    whole = decode_audio(path)
    np.testing.assert_array_equal(
        np.concatenate([b.samples for b in blocks], axis=1), whole.samples
    )
    np.testing.assert_array_equal(whole.samples, x)
    assert blocks[-1].skipped_packets == whole.skipped_packets == 0


def test_measure_file_agrees_with_ffmpeg(tmp_path: Path) -> None:
    """Longer than several decode blocks, so the K-weighting and the interpolator carry
    their state across block edges; the reference is FFmpeg's ebur128."""
    x = programme(25.0)
    path = write_wav(tmp_path / "long.wav", x.astype(np.float32), RATE, "pcm_s24le")
    ref_i, ref_tp, ref_lra = ffmpeg_ebur128(path)
    got = loudness.measure_file(path)
    assert got.as_is.integrated_lufs == pytest.approx(ref_i, abs=0.1)
    assert got.as_is.true_peak_dbtp == pytest.approx(ref_tp, abs=0.2)
    assert got.as_is.loudness_range_lu == pytest.approx(ref_lra, abs=0.3)
    doc = got.to_json()
    assert doc["integrated_lufs"] == round(got.as_is.integrated_lufs, 2)
    assert doc["mono_content_lufs"] is None and doc["dual_mono"] is False


def test_measure_file_reads_a_wav_directly_with_the_decoders_answers(tmp_path: Path) -> None:
    """A plain PCM WAV is read straight from the file (pcm_wav_blocks), not through
    FFmpeg's decoder: the same samples, so the same figures as the meter fed what the
    decoder gives; FLAC of the same samples goes through FFmpeg and agrees too."""
    x = programme(12.0)
    path = write_wav(tmp_path / "p.wav", x.astype(np.float32), RATE, "pcm_s16le")
    reader = pcm_wav_blocks(path, block_samples=BLOCK_SAMPLES)
    assert reader is not None and reader.frames == x.shape[1]
    got = loudness.measure_file(path)
    decoded = decode_audio(path).samples
    assert got == fed(decoded, [BLOCK_SAMPLES])
    flac = encode(tmp_path / "p.flac", decoded, RATE, "flac")
    assert pcm_wav_blocks(flac) is None
    other = loudness.measure_file(flac)
    assert other.as_is.integrated_lufs == pytest.approx(got.as_is.integrated_lufs, abs=1e-9)
    assert other.as_is.true_peak_dbtp == pytest.approx(got.as_is.true_peak_dbtp, abs=1e-5)


def test_worker_threads_change_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks are measured on worker threads while the next one is read (when the process
    may use more than one core): the answers are those of measuring them one by one."""
    if usable_cores() < 2:
        pytest.skip("this process may use one core: the meter runs no worker threads")
    x = programme(8.0)
    threaded = fed(x, [50_000])
    monkeypatch.setattr(loudness, "usable_cores", lambda: 1)
    serial = fed(x, [50_000])
    assert threaded == serial
