"""Tests for handoff.prep (prep-audio) and handoff.analysis.limiter, on real media.

The independent reference for loudness and true peak is FFmpeg's ``ebur128`` filter (the
imageio-ffmpeg binary), reading the WAV files prep_audio wrote. Dual-mono files are measured
on one channel for loudness (their mono content, the ltx2-audio convention) and on both for
the true peak. Pause positions and speech are known because the narration is made here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from av.audio.stream import AudioStream

from handoff.analysis import limiter, loudness
from handoff.errors import HandoffError, InputError, UsageError
from handoff.media.audio import decode_audio
from handoff.media.synth import speech_like, write_wav
from handoff.prep import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    OutputExistsError,
    PrepOptions,
    PrepResult,
    _read_pcm_wav,
    parse_segment_range,
    prep_audio,
)
from handoff.probe.reader import probe
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec
from tests.conftest import MakeDir, corpus_file

FloatArray = npt.NDArray[np.float64]
RATE = 48000
NULL_OUT = ("-f", "null", "-")
SPEECH = [
    "speech/silero-vad_aepyx_8k_voxconverse.wav",  # 8 kHz mono, 169 s: cut in two
    "speech/silero-vad_test_16k_mono_60s.wav",  # 16 kHz mono, 60 s
    "speech/faster-whisper_stereo_diarization_16k.wav",  # 16 kHz, one speaker per channel
    "speech/speech_recognition_english_44k1_mono.wav",  # 44.1 kHz mono, 2.7 s
]


# --- helpers ---------------------------------------------------------------------------------


def ffmpeg_exe() -> str:
    """The ffmpeg handoff's engine would run (``$HANDOFF_FFMPEG``, the imageio-ffmpeg
    wheel's, or PATH's), as the reference meter and to make inputs."""
    from handoff.export.engines.ffmpeg_engine import find_ffmpeg

    return find_ffmpeg()


def ebur128(path: Path, pre: str = "") -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) from FFmpeg's ebur128, after an optional filter."""
    chain = (pre + "," if pre else "") + "ebur128=peak=true"
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-af", chain, *NULL_OUT],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = proc.stderr[proc.stderr.rindex("Summary:") :]
    found_i = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    found_tp = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    assert found_i is not None and found_tp is not None, summary
    return float(found_i.group(1)), float(found_tp.group(1))


def mono_content_lufs(path: Path) -> float:
    """ebur128 loudness of channel 0 alone: the mono content of a dual-mono file."""
    return ebur128(path, "pan=mono|c0=c0")[0]


def read(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    decoded = decode_audio(path)
    return decoded.samples, decoded.sample_rate


def encode(path: Path, samples: npt.ArrayLike, rate: int, codec: str) -> Path:
    """Write float audio (channels, n) with any PyAV audio encoder."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    layout = "mono" if x.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, AudioStream)
        formats = stream.codec_context.codec.audio_formats or []
        fmt = formats[0].name if formats else "fltp"
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        step = stream.codec_context.frame_size or 4096
        for start in range(0, x.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[:, start : start + step]), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for conv in resampler.resample(frame):
                for packet in stream.encode(conv):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def voice(seconds: float, rate: int, *, lead: float = 1.0, tail: float = 1.0) -> FloatArray:
    """Short speech-like mono signal, about -30 LUFS, with silence around it."""
    x = speech_like(seconds, rate, level=0.05, lead=lead, tail=tail, seed=11)
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True)
class Narration:
    source: Path
    samples: FloatArray  # (2, n) at 44.1 kHz, as written (16-bit)
    rate: int
    pauses: list[tuple[float, float]]  # seconds, silence between paragraphs
    lead: float
    result: PrepResult


def make_narration(path: Path) -> tuple[FloatArray, list[tuple[float, float]], float]:
    """About 5 minutes of stereo 44.1 kHz "speech": paragraphs of 20-30 s between 1-2 s
    pauses, 3 s of silence before and 2.5 s after, plosive-like bursts (so the limiter has
    work to do), at about -30 LUFS. Built from one 30 s block for speed."""
    rate = 44100
    rng = np.random.default_rng(5)
    block = speech_like(30.0, rate, level=0.2, seed=5).astype(np.float64)
    gain = np.ones(block.shape[0])
    burst = np.hanning(round(0.03 * rate))
    for start in rng.integers(0, block.shape[0] - burst.shape[0], 60):
        gain[start : start + burst.shape[0]] += 1.5 * burst
    block *= gain
    fade = np.linspace(0.0, 1.0, round(0.01 * rate))
    lead, tail = 3.0, 2.5
    parts = [np.zeros(round(lead * rate))]
    pauses: list[tuple[float, float]] = []
    pos = round(lead * rate)
    for _ in range(12):
        length = round(rng.uniform(20.0, 29.0) * rate)
        start = int(rng.integers(0, block.shape[0] - length))
        para = block[start : start + length].copy()
        para[: fade.shape[0]] *= fade
        para[-fade.shape[0] :] *= fade[::-1]
        parts.append(para)
        pos += length
        gap = round(rng.uniform(1.0, 2.0) * rate)
        parts.append(np.zeros(gap))
        pauses.append((pos / rate, (pos + gap) / rate))
        pos += gap
    parts[-1] = np.zeros(round(tail * rate))  # the last gap is the tail
    pauses.pop()
    mono = np.concatenate(parts)
    stereo = np.vstack([mono, 0.8 * mono + 0.05 * np.roll(mono, 11)])
    stereo *= 10.0 ** ((-30.0 - loudness.integrated_loudness(stereo, rate)) / 20.0)
    write_wav(path, stereo, rate, "pcm_s16le")
    return read(path)[0].astype(np.float64), pauses, lead


@pytest.fixture(scope="module")
def narration(module_tmp: MakeDir) -> Narration:
    folder = module_tmp("narration")
    source = folder / "talk.wav"
    samples, pauses, lead = make_narration(source)
    result = prep_audio(source, folder / "out", PrepOptions())
    return Narration(source, samples, 44100, pauses, lead, result)


# --- the long narration ------------------------------------------------------------------------


def test_narration_is_cut_into_segments_within_limits(narration: Narration) -> None:
    result = narration.result
    segments = result.segments
    assert len(segments) >= 3
    assert [s.path.name for s in segments] == [
        f"{i:03d}_talk.wav" for i in range(1, 1 + len(segments))
    ]
    for seg in segments:
        info = probe(seg.path)
        assert info.audio is not None
        assert info.audio.sample_rate == RATE
        assert info.audio.codec == "pcm_s24le"
        assert info.audio.channels == 2
        assert info.duration_s < 120.0
        assert info.duration_s == pytest.approx(seg.duration_s, abs=1e-3)
        # Pauses come every 20-30 s here, so every segment fits the 60-90 s range.
        assert 60.0 <= seg.duration_s <= 90.0, seg
    assert not [w for w in result.warnings if "pause" in w or "quietest" in w]


def test_narration_level_by_ffmpeg(narration: Narration) -> None:
    result = narration.result
    for seg in result.segments:
        lufs = mono_content_lufs(seg.path)
        _, tp = ebur128(seg.path)  # both channels
        assert lufs == pytest.approx(-16.0, abs=0.5), seg.path.name
        assert tp <= -3.0, seg.path.name
        assert seg.integrated_lufs == pytest.approx(lufs, abs=0.15)
        assert seg.true_peak_dbtp == pytest.approx(tp, abs=0.15)
    # The master: one channel (the two are identical: checked sample by sample).
    master, _ = read(result.master.path)
    assert np.array_equal(master[0], master[1])
    lufs, tp = ebur128(result.master.path, "pan=mono|c0=c0")
    assert lufs == pytest.approx(-16.0, abs=0.5)
    assert tp <= -3.0
    assert result.master.integrated_lufs == pytest.approx(-16.0, abs=0.1)
    assert result.master.integrated_lufs == pytest.approx(lufs, abs=0.15)
    # The limiter really worked: the bursts go well over the ceiling at this gain.
    assert result.master.limiter_max_reduction_db > 1.0


def test_narration_outputs_are_dual_mono_and_pass_the_spec(narration: Narration) -> None:
    spec = load_spec("ltx2-audio")
    for seg in narration.result.segments:
        samples, _ = read(seg.path)
        assert np.array_equal(samples[0], samples[1])
        report = validate_file(seg.path, spec)
        assert report.status == "pass", report.findings
        assert seg.measured_as == "mono content of dual-mono"


def test_narration_head_silence_is_the_preroll(narration: Narration) -> None:
    for seg in narration.result.segments:
        samples, rate = read(seg.path)
        assert seg.click_start is None and seg.preroll_start == 0
        assert seg.preroll_end == round(0.150 * RATE)
        assert not np.any(samples[:, : seg.preroll_end])  # digital silence
        head = loudness.leading_silence_s(samples, rate)
        assert head == pytest.approx(0.150, abs=0.020), seg.path.name


def test_narration_cuts_are_inside_pauses(narration: Narration) -> None:
    segments = narration.result.segments
    pauses = narration.pauses

    def pause_at(t: float) -> tuple[float, float] | None:
        return next(((a, b) for a, b in pauses if a <= t <= b), None)

    for before, after in itertools.pairwise(segments):
        assert before.cut_out == after.cut_in
        cut_s = before.cut_out.position / RATE
        pause = pause_at(cut_s)
        assert pause is not None, f"cut at {cut_s:.3f} s is not in a pause"
        assert before.cut_out.kind == "pause"
        # Both sides of the cut stay in the same pause: nothing of a paragraph is cut.
        assert pause[0] - 0.05 <= before.source_out_s <= cut_s <= after.source_in_s
        assert after.source_in_s <= pause[1]
        # The cut is at the quietest point: here the pause is digital silence, so its middle.
        assert cut_s == pytest.approx((pause[0] + pause[1]) / 2.0, abs=0.03)


def test_narration_loses_no_speech(narration: Narration) -> None:
    """Every 20 ms of the source with sound in it lies inside some segment."""
    x, rate = narration.samples, narration.rate
    size = round(0.020 * rate)
    count = x.shape[1] // size
    power = np.max(np.mean(x[:, : count * size].reshape(2, count, size) ** 2, axis=2), axis=0)
    threshold = 10.0 ** (loudness.silence_threshold_dbfs(x, rate) / 10.0)
    loud_times = (np.flatnonzero(power > threshold) + 0.5) * size / rate
    assert loud_times.shape[0] > 5000
    segments = narration.result.segments
    starts = np.array([s.source_in_s for s in segments])
    ends = np.array([s.source_out_s for s in segments])
    which = np.searchsorted(starts, loud_times, side="right") - 1
    half = 0.010  # a window is "in" when its centre is, give or take half a window
    inside = (
        (which >= 0) & (loud_times >= starts[which] - half) & (loud_times <= ends[which] + half)
    )
    assert inside.all(), loud_times[~inside][:10]


def test_narration_segments_are_the_master_at_the_mapped_positions(narration: Narration) -> None:
    result = narration.result
    master, rate = read(result.master.path)
    assert rate == RATE
    assert (
        master.shape[1] == result.master.samples == round(narration.samples.shape[1] * RATE / 44100)
    )
    # The master keeps the source's timeline: its first sound is where the source's is.
    assert loudness.leading_silence_s(master, RATE) == pytest.approx(narration.lead, abs=0.005)
    for seg in result.segments:
        audio, _ = read(seg.path)
        body = audio[:, seg.preroll_end :]
        assert body.shape[1] == seg.source_out - seg.source_in
        fade = round(0.010 * RATE)  # fades at both ends; the rest is sample-exact
        assert np.array_equal(
            body[:, fade:-fade], master[:, seg.source_in + fade : seg.source_out - fade]
        )


def test_narration_manifest(narration: Narration) -> None:
    result = narration.result
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest == result.manifest()
    assert manifest["schema"] == MANIFEST_SCHEMA
    assert result.manifest_path.name == MANIFEST_NAME
    digest = hashlib.sha256(narration.source.read_bytes()).hexdigest()
    assert manifest["source"]["sha256"] == digest
    assert manifest["source"]["sample_rate"] == 44100
    assert manifest["source"]["channels"] == 2
    master = manifest["master"]
    assert master["file"] == "talk_master.wav"
    assert master["channels"] == 2
    assert master["measured_as"] == "mono content of dual-mono"
    assert master["gain_db"] == pytest.approx(
        -16.0 - manifest["source"]["integrated_lufs"], abs=3.0
    )
    settings = manifest["settings"]
    assert settings["target_lufs"] == -16.0 and settings["true_peak_dbtp"] == -3.0
    assert settings["channels"] == "dual-mono" and settings["bit_depth"] == 24
    for entry in manifest["segments"]:
        assert (result.out_dir / entry["file"]).is_file()
        assert entry["source_in_s"] == pytest.approx(entry["source_in"] / RATE, abs=1e-6)
        assert entry["samples"] == entry["preroll_end"] + entry["source_out"] - entry["source_in"]
        assert entry["integrated_lufs"] == pytest.approx(-16.0, abs=0.5)
        assert entry["true_peak_dbtp"] <= -3.0
    full = result.to_json()
    assert full["master"]["path"] == str(result.master.path)
    assert [s["path"] for s in full["segments"]] == [str(s.path) for s in result.segments]
    json.dumps(full)


# --- real speech -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPEECH)
def test_real_speech_conditions_and_validates(tmp_path: Path, name: str) -> None:
    source = corpus_file(name)
    result = prep_audio(source, tmp_path, PrepOptions())
    spec = load_spec("ltx2-audio")
    assert result.master.integrated_lufs == pytest.approx(-16.0, abs=0.1)
    assert result.master.true_peak_dbtp <= -3.0
    for seg in result.segments:
        report = validate_file(seg.path, spec)
        assert report.status == "pass", (seg.path.name, report.findings)
        assert seg.duration_s < 120.0
    if source.stat().st_size > 2_000_000:  # the 169 s file: two segments
        assert len(result.segments) == 2


def test_real_speech_level_by_ffmpeg(tmp_path: Path) -> None:
    source = corpus_file(SPEECH[1])
    result = prep_audio(source, tmp_path, PrepOptions())
    (seg,) = result.segments
    assert mono_content_lufs(seg.path) == pytest.approx(-16.0, abs=0.5)
    assert ebur128(seg.path)[1] <= -3.0
    assert mono_content_lufs(result.master.path) == pytest.approx(-16.0, abs=0.2)


# --- inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "codec", "rate"),
    [(".flac", "flac", 96000), (".m4a", "aac", 48000), (".mp3", "libmp3lame", 22050)],
)
def test_compressed_and_high_rate_inputs(
    tmp_path: Path, suffix: str, codec: str, rate: int
) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"no {codec} encoder in this PyAV build")
    source = encode(tmp_path / f"voice{suffix}", voice(6.0, rate), rate, codec)
    result = prep_audio(source, tmp_path / "out", PrepOptions(name="v"))
    (seg,) = result.segments
    assert seg.path.name == "001_v.wav"
    report = validate_file(seg.path, load_spec("ltx2-audio"))
    assert report.status == "pass", report.findings
    assert result.source.sample_rate == rate


def test_first_audio_stream_of_a_video(tmp_path: Path) -> None:
    source = corpus_file("av/auto-editor_example_720p30_aac48k.mp4")  # AAC stereo speech
    result = prep_audio(source, tmp_path, PrepOptions())
    assert result.source.channels == 2
    for seg in result.segments:
        report = validate_file(seg.path, load_spec("ltx2-audio"))
        assert report.status == "pass", report.findings


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        (np.zeros(3 * RATE), "silent"),
        (np.random.default_rng(1).standard_normal(3 * RATE) * 1e-4, "silent"),  # -80 dBFS
        (
            np.concatenate([np.zeros(RATE), voice(0.3, RATE, lead=0, tail=0), np.zeros(RATE)]),
            "too short",
        ),
        (voice(0.3, RATE, lead=0, tail=0), "too short"),
    ],
    ids=["digital-silence", "near-silence", "0.3s-of-sound", "0.3s-file"],
)
def test_silent_or_too_short_input_is_refused(
    tmp_path: Path, signal: FloatArray, message: str
) -> None:
    source = write_wav(tmp_path / "in.wav", signal, RATE, "pcm_f32le")
    with pytest.raises(InputError, match=message) as caught:
        prep_audio(source, tmp_path / "out", PrepOptions())
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()


@pytest.mark.parametrize("codec", ["pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le"])
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_fast_path_reads_what_ffmpeg_decodes(tmp_path: Path, codec: str, channels: int) -> None:
    rng = np.random.default_rng(channels)
    x = np.clip(rng.standard_normal((channels, 3_000_001)) * 0.3, -1.0, 1.0)
    path = write_wav(tmp_path / "x.wav", x, 44100, codec)
    fast = _read_pcm_wav(path)
    assert fast is not None
    reference = decode_audio(path)
    assert fast.sample_rate == reference.sample_rate == 44100
    assert fast.samples.dtype == np.float32
    assert np.array_equal(fast.samples, reference.samples)


def test_wav_fast_path_leaves_the_unusual_to_ffmpeg(tmp_path: Path) -> None:
    x = np.zeros((1, 1000))
    assert _read_pcm_wav(write_wav(tmp_path / "u8.wav", x, RATE, "pcm_u8")) is None
    assert _read_pcm_wav(write_wav(tmp_path / "six.wav", np.zeros((6, 1000)), RATE)) is None
    good = write_wav(tmp_path / "good.wav", x, RATE).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good[:-100])  # data chunk runs past the end of the file
    assert _read_pcm_wav(cut) is None
    flac = encode(tmp_path / "x.flac", x, RATE, "flac")
    assert _read_pcm_wav(flac) is None


def test_empty_and_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(HandoffError):
        prep_audio(tmp_path / "nope.wav", tmp_path / "out", PrepOptions())
    empty = write_wav(tmp_path / "empty.wav", np.zeros((1, 0)), RATE)
    with pytest.raises(InputError):
        prep_audio(empty, tmp_path / "out", PrepOptions())


# --- options ---------------------------------------------------------------------------------


def test_click_is_recorded_audible_then_preroll_then_speech(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "v.wav", voice(8.0, 44100, lead=1.0), 44100)
    result = prep_audio(source, tmp_path / "out", PrepOptions(click=True, preroll_ms=120))
    (seg,) = result.segments
    assert seg.click_start == 0
    assert seg.click_end is not None and 0 < seg.click_end <= round(0.010 * RATE)
    assert seg.preroll_start == seg.click_end
    assert seg.preroll_end == seg.click_end + round(0.120 * RATE)
    x, _ = read(seg.path)
    click = x[:, : seg.click_end]
    assert 20 * math.log10(float(np.max(np.abs(click)))) > -12.0  # clearly audible
    assert not np.any(x[:, seg.click_end : seg.preroll_end])  # then digital silence
    # ... then the speech, right after the pre-roll.
    after = loudness.leading_silence_s(x[:, seg.click_end :], RATE)
    assert after == pytest.approx(0.120, abs=0.020)
    assert loudness.leading_silence_s(x, RATE) == 0.0  # the click counts as sound
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["segments"][0]["click_end"] == seg.click_end
    report = validate_file(seg.path, load_spec("ltx2-audio"))
    assert report.status == "pass", report.findings


def test_music_keeps_its_stereo(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(round(12.0 * rate)) / rate
    env = 0.5 * (1.0 + np.sin(2 * np.pi * 0.7 * t))
    left = 0.1 * env * np.sin(2 * np.pi * 220.0 * t)
    right = 0.1 * env[::-1] * np.sin(2 * np.pi * 330.0 * t + 0.3)
    source = write_wav(tmp_path / "m.wav", np.vstack([left, right]), rate)
    result = prep_audio(source, tmp_path / "out", PrepOptions(kind="music"))
    assert result.options.channels == "stereo"
    (seg,) = result.segments
    x, _ = read(seg.path)
    assert x.shape[0] == 2
    assert not loudness.is_dual_mono(x)
    assert float(np.corrcoef(x[0], x[1])[0, 1]) < 0.5
    assert seg.measured_as == "as is"
    lufs, tp = ebur128(seg.path)  # stereo measured as stereo
    assert lufs == pytest.approx(-16.0, abs=0.5)
    assert tp <= -3.0


def test_mono_and_16_bit_outputs(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "v.wav", voice(6.0, 16000), 16000)
    result = prep_audio(source, tmp_path / "out", PrepOptions(channels="mono", bit_depth=16))
    (seg,) = result.segments
    info = probe(seg.path)
    assert info.audio is not None
    assert info.audio.codec == "pcm_s16le" and info.audio.channels == 1
    assert info.audio.sample_rate == RATE
    assert ebur128(seg.path)[0] == pytest.approx(-16.0, abs=0.5)
    report = validate_file(seg.path, load_spec("ltx2-audio"))
    assert report.status == "pass"
    assert [f.rule for f in report.findings] == ["two-channels"]  # a warning only


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "v.wav", voice(5.0, RATE), RATE)
    out = tmp_path / "out"
    first = prep_audio(source, out, PrepOptions())
    before = first.segments[0].path.read_bytes()
    with pytest.raises(OutputExistsError, match=r"v_master\.wav|manifest\.json") as caught:
        prep_audio(source, out, PrepOptions())
    assert isinstance(caught.value, UsageError)
    assert caught.value.path is not None and caught.value.path.parent == out
    assert first.segments[0].path.read_bytes() == before
    # A stray segment file alone is refused too, and named.
    (out / MANIFEST_NAME).unlink()
    first.master.path.unlink()
    with pytest.raises(OutputExistsError, match=r"001_v\.wav"):
        prep_audio(source, out, PrepOptions())
    again = prep_audio(source, out, PrepOptions(overwrite=True))
    assert again.segments[0].path.read_bytes() == before  # deterministic
    assert sorted(p.name for p in out.iterdir()) == ["001_v.wav", MANIFEST_NAME, "v_master.wav"]


def test_no_pause_falls_back_to_the_quietest_point_with_a_warning(tmp_path: Path) -> None:
    # 130 s of syllables without a single pause: it must be cut somewhere.
    block = speech_like(10.0, RATE, level=0.05, seed=2)
    source = write_wav(tmp_path / "long.wav", np.tile(block, 13), RATE, "pcm_f32le")
    result = prep_audio(source, tmp_path / "out", PrepOptions())
    assert len(result.segments) == 2
    assert all(s.duration_s < 120.0 for s in result.segments)
    assert result.segments[0].cut_out.kind == "quietest"
    assert any("quietest" in w for w in result.warnings)
    for seg in result.segments:
        assert validate_file(seg.path, load_spec("ltx2-audio")).status == "pass"


def test_parse_segment_range() -> None:
    assert parse_segment_range("60-90") == (60.0, 90.0)
    assert parse_segment_range(" 45.5 - 80 ") == (45.5, 80.0)
    for bad in ("60", "90-60", "a-b", "0-10", "-5-10"):
        with pytest.raises(UsageError):
            parse_segment_range(bad)


@pytest.mark.parametrize(
    "options",
    [
        PrepOptions(segment_min=90.0, segment_max=60.0),
        PrepOptions(max_seconds=80.0),  # under the segment maximum
        PrepOptions(preroll_ms=2000),
        PrepOptions(preroll_ms=-1),
        PrepOptions(target_lufs=0.0),
        PrepOptions(true_peak=1.0),
        PrepOptions(name="a/b"),
        PrepOptions(kind="speech"),  # type: ignore[arg-type]
        PrepOptions(bit_depth=32),  # type: ignore[arg-type]
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, options: PrepOptions) -> None:
    with pytest.raises(UsageError):
        prep_audio(tmp_path / "unused.wav", tmp_path / "out", options)


def test_preroll_outside_the_recommendation_warns(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "v.wav", voice(4.0, RATE), RATE)
    result = prep_audio(source, tmp_path / "out", PrepOptions(preroll_ms=60))
    assert any("100-200" in w for w in result.warnings)
    assert result.segments[0].preroll_end == round(0.060 * RATE)


# --- the limiter -----------------------------------------------------------------------------


def test_oversampled_peak_is_the_meters_true_peak() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 50_000)) * 0.1
    x[1, 20_000:20_010] = [0.0, 0.7, -0.7, 0.7, -0.7, 0.7, -0.7, 0.7, 0.0, 0.0]
    env = limiter.oversampled_peak(x)
    assert env.shape == (50_000,)
    # Same kernel as loudness.true_peak (which ignores in-between values after the end).
    assert 20 * math.log10(float(env[:-1].max())) == pytest.approx(
        loudness.true_peak(x, RATE), abs=1e-4
    )
    assert np.all(env + 1e-7 >= np.max(np.abs(x), axis=0))
    part = limiter.oversampled_peak_in(x, [10_000, 19_990], [10_500, 20_100])
    assert np.allclose(part[10_000:10_500], env[10_000:10_500], atol=1e-6)
    assert np.allclose(part[19_990:20_100], env[19_990:20_100], atol=1e-6)
    assert not np.any(part[:10_000]) and not np.any(part[20_100:])


def test_sliding_min_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    for width in (1, 2, 7, 64):
        a = rng.standard_normal(500)
        expected = [a[max(0, i - width + 1) : i + 1].min() for i in range(500)]
        assert np.array_equal(limiter.sliding_min(a, width), expected)


def test_gain_curve_holds_every_peak_under_the_ceiling() -> None:
    rng = np.random.default_rng(6)
    n = 200_000
    peak = np.abs(rng.standard_normal(n)).astype(np.float32) * 0.1
    peak[rng.integers(0, n, 40)] = rng.uniform(0.5, 3.0, 40).astype(np.float32)
    settings = limiter.LimiterSettings()
    curve = limiter.gain_curve(peak, 0.5, RATE, settings)
    gain = np.ones(n, dtype=np.float32)
    gain[curve.index] = curve.values
    assert float(np.max(gain * peak)) <= 0.5 * (1 + 1e-5)
    assert np.all(gain <= 1.0) and np.all(gain > 0.0)
    # Look-ahead: the gain is already down attack_ms before the first over ...
    first = int(np.flatnonzero(peak > 0.5)[0])
    attack = round(settings.attack_ms * RATE / 1000)
    assert gain[first - attack + 1] < 1.0
    assert gain[first - attack - 1] == 1.0 or first - attack - 1 < 0
    # ... and it moves smoothly (no step larger than the ramp allows).
    db = 20 * np.log10(gain.astype(np.float64))
    assert float(np.max(np.abs(np.diff(db)))) <= 20 * math.log10(3.0 / 0.5) / attack + 1e-3
    # Nothing over: nothing to do.
    assert limiter.gain_curve(peak * 0.1, 0.5, RATE).empty
