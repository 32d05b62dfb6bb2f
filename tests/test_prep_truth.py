"""prep-audio says what it does (issue 11, item 7): which signal the source loudness is
of, two different sounds on L and R not mixed silently, heavy limiting named.

Inputs are made here with numpy and PyAV (or taken from the shared corpus); the checks
read what was written with FFmpeg's ``ebur128`` (loudness), PyAV (samples) and the
manifest as JSON.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner

from handoff.analysis import limiter
from handoff.cli import main
from handoff.cli.common import flags
from handoff.errors import ManifestError
from handoff.files.manifest import load_manifest
from handoff.media.audio import decode_audio
from handoff.media.synth import babble, speech_like, write_wav
from handoff.prep import PrepOptions, PrepResult, prep_audio
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec
from tests.conftest import REPO, corpus_file, run_handoff
from tests.docrun import blocks, not_printed
from tests.test_prep import ebur128

RATE = 48000
Float32Array = npt.NDArray[np.float32]

DIFFERENT = "L and R carry different sound"
HEAVY = "heavy limiting"


def two_voices(seconds: float = 20.0) -> Float32Array:
    """Two different babble narrations, one per channel (an interview on two lavaliers)."""
    return np.vstack([babble(seconds, RATE, seed=1), babble(seconds, RATE, seed=2)])


def prep(source: Path, out: Path, **options: object) -> PrepResult:
    return prep_audio(source, out, PrepOptions(**options))  # type: ignore[arg-type]


def read(path: Path) -> Float32Array:
    decoded = decode_audio(path)
    assert decoded.sample_rate == RATE
    return decoded.samples


def resample(x: Float32Array, rate: int, to: int) -> Float32Array:
    """Mono ``x`` at ``to`` Hz with FFmpeg's resampler (PyAV)."""
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=to)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(x[np.newaxis, :], dtype=np.float32), format="fltp", layout="mono"
    )
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = Fraction(1, rate)
    out = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    out += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32)


# --- which loudness the source line reports ---------------------------------------------------


def test_stereo_voice_is_measured_as_its_mono_mix(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "two.wav", two_voices(), RATE)
    result = prep(source, tmp_path / "out")
    assert result.source.measured_as == "mono content: L+R averaged"
    # FFmpeg's meter on (L+R)/2 of the file as written reads the same figure ...
    mix = ebur128(source, "pan=mono|c0=0.5*c0+0.5*c1")[0]
    assert result.source.integrated_lufs == pytest.approx(mix, abs=0.1)
    # ... which is not what a stereo meter reads on the same file.
    assert abs(ebur128(source)[0] - mix) > 2.0


def test_dual_mono_kept_as_stereo_is_measured_as_one_channel(tmp_path: Path) -> None:
    voice = babble(12.0, RATE, seed=4)
    source = write_wav(tmp_path / "dual.wav", np.vstack([voice, voice]), RATE)
    result = prep(source, tmp_path / "out", kind="music")
    assert result.source.measured_as.startswith("mono content of dual-mono: one channel")
    one = ebur128(source, "pan=mono|c0=c0")[0]
    assert result.source.integrated_lufs == pytest.approx(one, abs=0.1)
    # The label's claim: a stereo meter reads 3.01 dB more (BS.1770 sums the channels).
    assert ebur128(source)[0] - one == pytest.approx(3.01, abs=0.1)


def test_real_stereo_is_measured_as_the_sum_of_its_channels(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "two.wav", two_voices(), RATE)
    result = prep(source, tmp_path / "out", kind="music")
    assert result.source.measured_as == "stereo: BS.1770 sum of L and R"
    assert result.source.integrated_lufs == pytest.approx(ebur128(source)[0], abs=0.1)


def test_mono_source(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "mono.wav", babble(8.0, RATE, seed=3), RATE)
    result = prep(source, tmp_path / "out")
    assert result.source.measured_as == "mono"
    assert result.source.left_right is None
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["source"]["measured_as"] == "mono"
    assert manifest["source"]["left_right"] is None
    assert ebur128(source)[0] == pytest.approx(result.source.integrated_lufs, abs=0.1)


def test_cli_source_line_names_the_measurement(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "two.wav", two_voices(), RATE)
    out = CliRunner().invoke(main, ["prep-audio", str(source), "--out", str(tmp_path / "out")])
    assert out.exit_code == 0, out.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    src = manifest["source"]
    lr = src["left_right"]
    expected = (
        f"  source   {src['integrated_lufs']:.2f} LUFS (mono content: L+R averaged); "
        f"L/R different (correlation {lr['correlation']:.2f})"
    )
    assert expected in out.output.splitlines()
    assert f"  ! {DIFFERENT}" in out.output


# --- two different sounds on L and R ----------------------------------------------------------


def test_two_voices_are_warned_and_recorded(tmp_path: Path) -> None:
    x = two_voices()
    source = write_wav(tmp_path / "two.wav", x, RATE, "pcm_f32le")
    result = prep(source, tmp_path / "out")
    assert sum(DIFFERENT in w for w in result.warnings) == 1
    warned = next(w for w in result.warnings if DIFFERENT in w)
    # The library names its option; the CLI says the flag.
    assert "keep them apart with channels=stereo" in warned
    assert flags(warned).endswith("keep them apart with --channels stereo")
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    lr = manifest["source"]["left_right"]
    assert lr["verdict"] == "different"
    assert manifest["warnings"] == list(result.warnings)
    # The figure is the channels' correlation, as numpy reads it from the file.
    left, right = read(source).astype(np.float64)
    assert abs(float(np.corrcoef(left, right)[0, 1])) < 0.1
    assert lr["correlation"] == pytest.approx(float(np.corrcoef(left, right)[0, 1]), abs=0.05)
    # What was done is what the warning says: the master holds (L+R)/2, both voices.
    master = read(result.master.path).astype(np.float64)
    assert np.array_equal(master[0], master[1])
    mix = left + right
    assert float(np.corrcoef(master[0], mix)[0, 1]) > 0.99
    for side in (left, right):
        assert 0.5 < float(np.corrcoef(master[0], side)[0, 1]) < 0.9


def test_real_speech_on_each_side_is_warned(tmp_path: Path) -> None:
    """A real speaker on L, another recording (other speakers, 8 kHz upsampled) on R."""
    left = decode_audio(corpus_file("speech/silero-vad_test_16k_mono_60s.wav"))
    right = decode_audio(corpus_file("speech/silero-vad_aepyx_8k_voxconverse.wav"))
    assert left.sample_rate == 16000 and right.sample_rate == 8000
    n = 30 * 16000
    pair = np.vstack([left.samples[0, :n], resample(right.samples[0], 8000, 16000)[:n]])
    source = write_wav(tmp_path / "interview.wav", pair, 16000, "pcm_s16le")
    result = prep(source, tmp_path / "out")
    assert result.source.left_right is not None
    assert result.source.left_right.verdict == "different"
    assert any(DIFFERENT in w for w in result.warnings)


def test_corpus_file_with_one_speaker_per_channel_is_warned(tmp_path: Path) -> None:
    source = corpus_file("speech/faster-whisper_stereo_diarization_16k.wav")
    result = prep(source, tmp_path / "out")
    assert result.source.left_right is not None
    assert result.source.left_right.verdict == "different"
    assert any(DIFFERENT in w for w in result.warnings)


def test_two_voices_with_bleed_are_told_by_the_swing(tmp_path: Path) -> None:
    """Each voice leaks into the other mic 10 dB down: the correlation alone (about 0.56)
    would pass them as one sound; which side is louder follows the speaker."""
    a, b = two_voices()
    source = write_wav(tmp_path / "bleed.wav", np.vstack([a + 0.3 * b, b + 0.3 * a]), RATE)
    result = prep(source, tmp_path / "out")
    lr = result.source.left_right
    assert lr is not None and lr.correlation is not None
    assert lr.correlation > 0.5
    assert lr.level_swing_db > 10.0
    assert lr.verdict == "different"
    assert any(DIFFERENT in w for w in result.warnings)


@pytest.mark.parametrize(
    ("right", "verdict"),
    [
        (lambda a: a, "same"),  # dual-mono
        (lambda a: 0.5 * a + 0.01 * babble(20.0, RATE, seed=9), "same"),  # one voice, 6 dB down
        (lambda a: np.zeros_like(a), "one-sided"),  # one mic, the other track empty
        (lambda a: 0.02 * babble(20.0, RATE, seed=9), "one-sided"),  # another sound, 34 dB down
    ],
    ids=["dual-mono", "one-voice-two-levels", "silent-right", "faint-right"],
)
def test_one_sound_is_not_warned(tmp_path: Path, right: object, verdict: str) -> None:
    a = babble(20.0, RATE, seed=1)
    source = write_wav(tmp_path / "one.wav", np.vstack([a, right(a)]), RATE)  # type: ignore[operator]
    result = prep(source, tmp_path / "out")
    assert result.source.left_right is not None
    assert result.source.left_right.verdict == verdict
    assert not any(DIFFERENT in w for w in result.warnings)


def test_channels_stereo_keeps_two_voices_apart(tmp_path: Path) -> None:
    x = two_voices()
    source = write_wav(tmp_path / "two.wav", x, RATE, "pcm_f32le")
    result = prep(source, tmp_path / "out", channels="stereo")
    assert not any(DIFFERENT in w for w in result.warnings)
    assert result.source.measured_as == "stereo: BS.1770 sum of L and R"
    assert not result.failed  # the self-check asks no mono content of stereo asked for
    (seg,) = result.segments
    y = read(seg.path).astype(np.float64)[:, seg.preroll_end :]
    assert abs(float(np.corrcoef(y[0], y[1])[0, 1])) < 0.1  # still two voices
    assert ebur128(seg.path)[0] == pytest.approx(-16.0, abs=0.5)  # measured as stereo
    # The ltx2-audio spec itself still wants mono content: that is all it finds.
    report = validate_file(seg.path, load_spec("ltx2-audio"))
    assert [f.rule for f in report.findings if f.severity == "error"] == ["mono-content"]


# --- heavy limiting --------------------------------------------------------------------------


def transients_over_speech(path: Path) -> tuple[Path, float]:
    """Quiet speech-like sound with three clicks, the loudest at 5.2 s (returned)."""
    x = speech_like(10.0, RATE, level=0.05, lead=0.5, tail=0.5, seed=11).astype(np.float64)
    burst = np.hanning(round(0.004 * RATE)) * np.sin(
        2 * np.pi * 3000.0 * np.arange(round(0.004 * RATE)) / RATE
    )
    for t, amp in ((2.0, 0.3), (5.2, 0.9), (8.0, 0.4)):
        a = round(t * RATE)
        x[a : a + burst.shape[0]] += amp * burst
    return write_wav(path, x, RATE, "pcm_f32le"), 5.2


def test_transients_over_quiet_speech_are_heavy_limiting(tmp_path: Path) -> None:
    source, loudest = transients_over_speech(tmp_path / "clicks.wav")
    result = prep(source, tmp_path / "out")
    m = result.master
    assert m.heavy_limiting
    passage = m.loudest_passage
    assert passage is not None
    assert passage.start / RATE <= loudest + 0.002 <= passage.end / RATE
    assert passage.end - passage.start < RATE // 2
    assert passage.max_reduction_db == pytest.approx(m.limiter_max_reduction_db)
    assert passage.max_reduction_db > 6.0
    # The warning names the passage as HH:MM:SS.ss and how much it was limited.
    (warning,) = [w for w in result.warnings if w.startswith(HEAVY)]
    found = re.search(
        r"loudest passage (\d\d):(\d\d):(\d\d\.\d\d)\u2013(\d\d):(\d\d):(\d\d\.\d\d)", warning
    )
    assert found is not None, warning
    start = int(found[1]) * 3600 + int(found[2]) * 60 + float(found[3])
    end = int(found[4]) * 3600 + int(found[5]) * 60 + float(found[6])
    assert start == pytest.approx(passage.start / RATE, abs=0.006)
    assert end == pytest.approx(passage.end / RATE, abs=0.006)
    assert f"up to {passage.max_reduction_db:.1f} dB" in warning
    # The files agree: at the click the master is that much under the source at the gain.
    src = read(source)[0].astype(np.float64) * 10.0 ** (m.gain_db / 20.0)
    master = read(m.path)[0].astype(np.float64)
    a, b = round((loudest - 0.01) * RATE), round((loudest + 0.02) * RATE)
    taken = 20.0 * np.log10(np.max(np.abs(src[a:b])) / np.max(np.abs(master[a:b])))
    assert taken == pytest.approx(passage.max_reduction_db, abs=1.0)
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["master"]["heavy_limiting"] is True
    assert manifest["master"]["loudest_passage"] == passage.to_json()
    assert manifest["master"]["loudest_passage"]["start_s"] == pytest.approx(start, abs=0.006)


def test_speech_the_gain_alone_levels_has_no_limiting_warning(tmp_path: Path) -> None:
    x = speech_like(10.0, RATE, level=0.05, lead=0.5, tail=0.5, seed=11)
    source = write_wav(tmp_path / "v.wav", x, RATE, "pcm_f32le")
    result = prep(source, tmp_path / "out")
    m = result.master
    assert not any(w.startswith(HEAVY) for w in result.warnings)
    assert not m.heavy_limiting and m.loudest_passage is None
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["master"]["heavy_limiting"] is False
    assert manifest["master"]["loudest_passage"] is None
    # Nothing limited: the master is the source times the one gain (24-bit rounding aside).
    src = read(source)[0].astype(np.float64) * 10.0 ** (m.gain_db / 20.0)
    assert float(np.max(np.abs(read(m.path)[0] - src))) < 1e-5


def test_limiting_most_of_the_time_is_heavy_below_6_db(tmp_path: Path) -> None:
    """Babble at -16 LUFS: no peak loses 6 dB, but more than 5 % of it loses over 1 dB."""
    a = babble(20.0, RATE, seed=1)
    source = write_wav(tmp_path / "b.wav", np.vstack([a, a]), RATE)
    result = prep(source, tmp_path / "out")
    m = result.master
    assert m.limiter_max_reduction_db < 6.0
    assert m.limited_share > 0.05
    assert m.heavy_limiting
    (warning,) = [w for w in result.warnings if w.startswith(HEAVY)]
    assert f"{m.limited_share:.1%} of the programme limited by over 1 dB" in warning


def test_gain_curve_passages_join_across_short_gaps() -> None:
    peak = np.full(RATE, 0.1, dtype=np.float32)
    for t in (0.100, 0.150, 0.600):
        peak[round(t * RATE)] = 1.0
    curve = limiter.gain_curve(peak, 0.5, RATE)
    apart = curve.passages(1.0, 0)
    assert len(apart) == 3
    joined = curve.passages(1.0, round(0.3 * RATE))
    assert len(joined) == 2
    assert joined[0][0] == apart[0][0] and joined[0][1] == apart[1][1]
    assert joined[1] == apart[2]
    gain = np.ones(RATE, dtype=np.float32)
    gain[curve.index] = curve.values
    for a, b in apart:  # each run really is reduced by more than 1 dB, and only it
        assert np.all(gain[a:b] < 10 ** (-1 / 20))
        assert gain[a - 1] >= 10 ** (-1 / 20) and gain[b] >= 10 ** (-1 / 20)
    assert limiter.gain_curve(peak * 0.1, 0.5, RATE).passages(1.0, 100) == []


# --- the reference's example ------------------------------------------------------------------


def test_cli_reference_example_prints_what_it_shows(tmp_path: Path) -> None:
    """docs/reference/cli.md's prep-audio example, run as written on the corpus's
    interview (one speaker per channel); every line it shows is printed (figures within
    5 % or 0.5)."""
    text = (REPO / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    found = blocks(text[text.index("## `handoff prep-audio") : text.index("## `handoff sync")])
    (command,) = [body.strip() for lang, body in found if lang == "sh"]
    (shown,) = [body for lang, body in found if lang == "text"]
    shutil.copy(
        corpus_file("speech/faster-whisper_stereo_diarization_16k.wav"), tmp_path / "interview.wav"
    )
    argv = shlex.split(command)
    assert argv[:2] == ["handoff", "prep-audio"]
    done = run_handoff(*argv[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not_printed(shown, done.stdout) == [], done.stdout


# --- the manifest reader ------------------------------------------------------------------------


def test_manifest_reader_checks_the_new_fields_and_reads_older_manifests(tmp_path: Path) -> None:
    source, _ = transients_over_speech(tmp_path / "clicks.wav")
    result = prep(source, tmp_path / "out")
    manifest = load_manifest(result.manifest_path)
    assert manifest.source.measured_as == "mono"
    assert manifest.master.heavy_limiting is True
    assert manifest.master.loudest_passage is not None
    assert manifest.master.loudest_passage.start == result.master.loudest_passage.start  # type: ignore[union-attr]
    doc = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    # A manifest from before these fields still reads.
    older = json.loads(json.dumps(doc))
    for key in ("measured_as", "left_right"):
        del older["source"][key]
    for key in ("limited_share", "heavy_limiting", "loudest_passage"):
        del older["master"][key]
    path = tmp_path / "out" / "older.json"
    path.write_text(json.dumps(older), encoding="utf-8")
    read_back = load_manifest(path)
    assert read_back.master.loudest_passage is None and read_back.source.measured_as is None
    # Present, they are checked: a passage past the master's end is named.
    doc["master"]["loudest_passage"]["end"] = doc["master"]["samples"] + 1
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ManifestError, match=r"master\.loudest_passage\.end: "):
        load_manifest(path)
