"""prep-audio in bounded memory: every piece that reads the programme a stretch at a time
gives, to the bit, what the whole-array function gives -- and the master a run writes
from its scratch files is the levelling of the whole array, sample for sample.

Media is made here (handoff.media.synth); the master is read back with PyAV.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from handoff.analysis import dsp, loudness
from handoff.analysis.limiter import LimiterSettings, gain_curve, gain_curve_at, oversampled_peak
from handoff.files.manifest import load_manifest
from handoff.media.audio import decode_audio
from handoff.media.riff import write_pcm_wav, write_pcm_wav_blocks
from handoff.media.synth import speech_like, write_wav
from handoff.prep import PrepOptions, prep_audio
from handoff.prep.content import ChannelComparison, Resampler, compare_channels, content, resample
from handoff.prep.level import Levelled, Meter, PeakEnvelope, level, true_peaks
from handoff.prep.samples import ArraySamples, ScratchSamples, gather

RATE = 48000


def _bursty(seconds: float, rate: int, seed: int = 4) -> np.ndarray:
    """Quiet speech with bursts a linear gain cannot clear (the limiter must act)."""
    x = speech_like(seconds, rate, level=0.05, pauses=[(6.0, 1.2), (14.0, 1.0)], seed=seed)
    for t in np.arange(2.0, seconds, 5.0):
        a = int(t * rate)
        x[a : a + rate // 5] *= 4.0
    return x


def _pieces(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """``x`` cut at uneven places (as a decoder's blocks fall)."""
    out, pos, i = [], 0, 0
    while pos < x.shape[1]:
        step = sizes[i % len(sizes)]
        out.append(x[:, pos : pos + step])
        pos, i = pos + step, i + 1
    return out


def test_scratch_file_round_trip_and_gather(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 100_003)).astype(np.float32)
    with ScratchSamples(2, tmp_path) as store:
        for piece in _pieces(x, [7, 65_536, 1_000]):
            store.append(piece)
        assert list(tmp_path.iterdir()) == []  # unnamed: nothing to clean up, ever
        assert store.samples == x.shape[1]
        np.testing.assert_array_equal(store.read(0, store.samples), x)
        np.testing.assert_array_equal(store.read(99_990, 200_000), x[:, 99_990:])
        index = np.sort(rng.choice(x.shape[1], 5_000, replace=False)).astype(np.int64)
        np.testing.assert_array_equal(gather(store, index), x[:, index])
        store.truncate(100_010)  # longer: zeros after the end
        np.testing.assert_array_equal(store.read(100_003, 100_010), np.zeros((2, 7)))


def test_peak_envelope_parts_are_the_whole_envelope() -> None:
    """Parts of 2^20 samples read with the kernel's context: the same float32 values."""
    x = (0.5 * np.random.default_rng(2).standard_normal((2, (1 << 20) * 2 + 12_345))).astype(
        np.float32
    )
    whole = oversampled_peak(x, 4)
    parts = list(dsp.oversampled_peak_parts(lambda a, b: x[:, a:b], x.shape[1], 4))
    assert [a for a, _ in parts] == [0, 1 << 20, 2 << 20]
    np.testing.assert_array_equal(np.concatenate([p for _, p in parts]), whole)
    starts, stops = np.array([5, 70_000, 2_000_000]), np.array([4_096, 90_001, 2_100_000])
    runs = dsp.oversampled_peak_runs(lambda a, b: x[:, a:b], x.shape[1], starts, stops, 4)
    inside = dsp.oversampled_peak_in(x, starts, stops, 4)
    for a, b, run in zip(starts, stops, runs, strict=True):
        np.testing.assert_array_equal(run, inside[a:b])
        assert np.max(np.abs(run - whole[a:b])) <= 1e-6 * float(whole.max())


def test_step_energy_read_in_parts_is_the_whole_arrays() -> None:
    x = np.stack([_bursty(50.0, RATE), 0.7 * _bursty(50.0, RATE, seed=8)])
    weights = loudness.channel_weights(2)
    whole = loudness.weighted_segment_energy(x, RATE, weights)
    read = loudness.read_segment_energy(lambda ch, a, b: x[ch, a:b], x.shape[1], RATE, weights)
    np.testing.assert_array_equal(read[0], whole[0])
    np.testing.assert_array_equal(read[1], whole[1])


def test_channel_comparison_and_resampler_by_blocks() -> None:
    left = speech_like(20.0, 44100, seed=1, pauses=[(5.0, 1.0)])
    right = speech_like(20.0, 44100, seed=9, level=0.1)
    x = np.stack([left, right]).astype(np.float32)
    comparison = ChannelComparison(44100)
    swr = Resampler(44100, 2)
    out = []
    for piece in _pieces(x, [1_024, 300_000, 77_777]):
        comparison.add(piece)
        out.extend(swr.add(piece))
    out.extend(swr.finish())
    assert comparison.finish() == compare_channels(x, 44100)
    whole = resample(x, 44100)
    joined = np.concatenate(out, axis=1)[:, : whole.shape[1]]
    np.testing.assert_array_equal(joined, whole)


def test_sparse_gain_curve_is_the_dense_one() -> None:
    p = oversampled_peak(_bursty(12.0, RATE)[None, :], 4)
    ceiling = 0.5 * float(p.max())
    dense = gain_curve(p, ceiling, RATE)
    over = np.flatnonzero(p > ceiling)
    sparse = gain_curve_at(over, p[over], p.shape[0], ceiling, RATE)
    np.testing.assert_array_equal(sparse.index, dense.index)
    np.testing.assert_array_equal(sparse.values, dense.values)
    envelope = PeakEnvelope.of_array(p)
    np.testing.assert_array_equal(envelope.curve(ceiling, LimiterSettings()).values, dense.values)


def test_levelling_from_a_scratch_file_is_the_levelling_of_the_array(tmp_path: Path) -> None:
    """Meter, envelope, gain solve, true peaks and sound map read from scratch files a
    stretch at a time: the same answers and samples as on the array."""
    x = np.stack([_bursty(40.0, RATE), _bursty(40.0, RATE)])
    settings = LimiterSettings()
    meter_a = Meter(x)
    peak_a = oversampled_peak(x, settings.oversample)
    on_array = level(x, meter_a, peak_a, -16.0, -3.3, settings)
    assert not on_array.curve.empty
    with ScratchSamples(2, tmp_path) as store, ScratchSamples(1, tmp_path) as env:
        for piece in _pieces(x, [123_457, 614_400]):
            store.append(piece)
        meter_s = Meter(store)
        assert meter_s.as_mono and meter_a.as_mono
        assert meter_s.lufs0 == meter_a.lufs0
        peak_s = PeakEnvelope.measure(store, settings.oversample, env)
        on_scratch = level(store, meter_s, peak_s, -16.0, -3.3, settings)
        assert (on_scratch.gain_db, on_scratch.lufs) == (on_array.gain_db, on_array.lufs)
        y = on_scratch.read(0, on_scratch.samples)
        np.testing.assert_array_equal(y, on_array.read(0, on_array.samples))
        np.testing.assert_array_equal(y, on_array.curve.apply(x, float(on_array.gain)))
        spans = [(0, y.shape[1]), (RATE, 7 * RATE + 11), (100, 4_000), (30 * RATE, y.shape[1])]
        got = true_peaks(on_scratch, peak_s, spans, settings.oversample)
        assert got == true_peaks(on_array, PeakEnvelope.of_array(peak_a), spans, 4)
        assert got[0] == max(got)  # the whole programme holds every span's peak
        sound = on_scratch.sound()
        whole_map = dsp.SoundMap(y, RATE)
        np.testing.assert_array_equal(sound.bins, whole_map.bins)
        assert sound.threshold_db == whole_map.threshold_db


def test_blocks_written_as_wav_are_the_bytes_of_the_whole(tmp_path: Path) -> None:
    x = (0.9 * np.random.default_rng(3).standard_normal((2, 300_001))).astype(np.float32)
    for bits in (16, 24):
        whole, blocks = io.BytesIO(), io.BytesIO()
        write_pcm_wav(whole, x, bits, RATE)
        write_pcm_wav_blocks(blocks, _pieces(x, [1_001, 99_999]), x.shape[1], 2, bits, RATE)
        assert whole.getvalue() == blocks.getvalue()
    with pytest.raises(ValueError, match="header"):
        write_pcm_wav_blocks(io.BytesIO(), [x[:, :10]], 11, 2, 16, RATE)


def test_master_written_from_scratch_is_the_whole_array_levelled(tmp_path: Path) -> None:
    """A stereo 44.1 kHz source (resampled, mixed, limited): the master a run writes is,
    sample for sample, the whole decoded array mixed, resampled and levelled in memory at
    the gain the manifest records; and the run leaves no scratch file behind."""
    x = np.stack([_bursty(45.0, 44100), 0.9 * _bursty(45.0, 44100)])
    source = write_wav(tmp_path / "vo.wav", x, 44100, "pcm_s16le")
    out = tmp_path / "cond"
    out.mkdir()
    result = prep_audio(source, out, PrepOptions())
    assert result.master.limiter_max_reduction_db > 0.5  # the limiter acted
    names = sorted(p.name for p in out.iterdir())
    written = [result.master.path.name, "manifest.json", *(s.path.name for s in result.segments)]
    assert [n for n in names if not n.startswith(".")] == sorted(written)
    assert not any(n.startswith(".handoff-prep-") for n in names)  # no scratch file left

    warnings: list[str] = []
    mono, _ = content(decode_audio(source), False, warnings)
    settings = LimiterSettings()
    meter = Meter(mono)
    levelled = level(
        mono,
        meter,
        oversampled_peak(mono, settings.oversample),
        -16.0,
        load_manifest(out / "manifest.json").settings.limiter.ceiling_dbtp,
        settings,
    )
    assert round(levelled.gain_db, 3) == load_manifest(out / "manifest.json").master.gain_db
    expected = np.clip(np.rint(levelled.read(0, levelled.samples) * 2.0**23), -(2**23), 2**23 - 1)
    frames = []
    with av.open(str(result.master.path)) as c:
        for f in c.decode(audio=0):
            a = f.to_ndarray()
            frames.append(a if f.format.is_planar else a.reshape(-1, 2).T)
    got = np.concatenate(frames, axis=1).astype(np.int64) >> 8  # s24 decodes as s32
    assert got.shape[1] == levelled.samples
    np.testing.assert_array_equal(got[0], expected[0].astype(np.int64))
    np.testing.assert_array_equal(got[1], got[0])  # dual-mono


def test_levelled_reads_any_stretch() -> None:
    x = _bursty(10.0, RATE)[None, :]
    peak = oversampled_peak(x, 4)
    out = level(x, Meter(x), peak, -14.0, -3.3, LimiterSettings())
    assert isinstance(out, Levelled) and not out.curve.empty
    whole = out.read(0, out.samples)
    for a, b in [(0, 1), (12_345, 99_999), (out.samples - 5, out.samples + 100)]:
        np.testing.assert_array_equal(out.read(a, b), whole[:, a:b])
    assert ArraySamples(x).read(-5, 3).shape == (1, 3)
