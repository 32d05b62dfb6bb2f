"""prep-audio's shaping options (issue 17, part 2): --compress, --fill-gaps, --fade-tails.

The narrations are made here, at 48 kHz (so no resampling stands between a source sample
and a master sample): syllabic "words" (:func:`handoff.media.synth.speech_like`) over a
faint room tone, each word starting with its own 2 ms burst of random noise, a marker
found again in the master by cross-correlation to the sample.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import opentimelineio as otio
import pytest
from click.testing import CliRunner

from handoff.analysis import dsp, loudness
from handoff.analysis.narration import narration_facts
from handoff.cli import main
from handoff.errors import ManifestError, UsageError
from handoff.files.manifest import (
    load_manifest,
    master_to_source,
    parse_manifest,
    source_to_master,
)
from handoff.media.audio import decode_audio
from handoff.media.synth import ClipSpec, speech_like, write_clip, write_wav
from handoff.prep import PrepOptions, PrepResult, parse_ratio, prep_audio, prepare
from handoff.prep.samples import ArraySamples, store_bins
from handoff.prep.shape import compression
from handoff.probe.reader import probe
from handoff.timeline import build_timeline, source_from_info
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec
from tests.conftest import MakeDir

RATE = 48000
FloatArray = npt.NDArray[np.float64]
MARK = 96  # 2 ms


@dataclass(frozen=True)
class Made:
    path: Path
    samples: FloatArray
    markers: list[int]
    """Source sample of each word's marker."""
    gaps: list[tuple[int, int]]
    """(start, end) of the silence after each word but the last."""


def make(
    path: Path,
    words: list[float],
    gaps: list[float],
    *,
    levels: list[float] | None = None,
    lead: float = 0.5,
    tail: float = 0.5,
) -> Made:
    """Words of the given lengths (seconds) between silences of the given lengths."""
    rng = np.random.default_rng(17)
    parts = [np.zeros(round(lead * RATE))]
    markers: list[int] = []
    silences: list[tuple[int, int]] = []
    pos = parts[0].shape[0]
    for i, length in enumerate(words):
        level = 0.2 if levels is None else levels[i]
        word = speech_like(length, RATE, level=level, seed=30 + i).astype(np.float64)
        word[:MARK] += 0.25 * level / 0.2 * rng.choice([-1.0, 1.0], MARK)
        markers.append(pos)
        parts.append(word)
        pos += word.shape[0]
        if i < len(gaps):
            n = round(gaps[i] * RATE)
            silences.append((pos, pos + n))
            parts.append(np.zeros(n))
            pos += n
    parts.append(np.zeros(round(tail * RATE)))
    mono = np.concatenate(parts)
    mono += 3e-4 * rng.standard_normal(mono.shape[0])  # room tone, about -70 dBFS
    write_wav(path, mono[np.newaxis, :], RATE, "pcm_s24le")
    return Made(path, mono, markers, silences)


def read_wav(path: Path) -> FloatArray:
    decoded = decode_audio(path)
    assert decoded.sample_rate == RATE
    return np.asarray(decoded.samples[0], dtype=np.float64)


def find(master: FloatArray, source: FloatArray, at: int) -> int:
    """Where the marker at source sample ``at`` is in ``master`` (cross-correlation)."""
    mark = source[at : at + MARK]
    n = master.shape[0] + MARK
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(master, size) * np.conj(np.fft.rfft(mark, size)), size)
    return int(np.argmax(corr[: master.shape[0]]))


WORDS = [2.0, 2.0, 2.0, 2.0, 2.0]
GAPS = [4.0, 0.6, 2.5, 1.4]  # a 4 s dead gap, a short pause, 2.5 s, 1.4 s (kept)


@pytest.fixture(scope="module")
def made(module_tmp: MakeDir) -> Made:
    return make(module_tmp("shape") / "talk.wav", WORDS, GAPS)


def run(made: Made, folder: Path, options: PrepOptions) -> PrepResult:
    return prep_audio(made.path, folder, options)


ALL = PrepOptions(compress=2.0, fill_gaps=True, fade_tails_ms=50)


@pytest.mark.parametrize(
    "options",
    [
        ALL,
        PrepOptions(compress=2.0),
        PrepOptions(fill_gaps=True),
        PrepOptions(fade_tails_ms=50),
    ],
    ids=["all", "compress", "fill-gaps", "fade-tails"],
)
def test_no_word_moves(made: Made, tmp_path: Path, options: PrepOptions) -> None:
    result = run(made, tmp_path / "out", options)
    manifest = load_manifest(result.manifest_path)
    master = read_wav(result.master.path)
    found = [find(master, made.samples, at) for at in made.markers]
    removed_after = [0] * len(made.gaps)
    for g in manifest.gaps:
        hits = [i for i, (a, b) in enumerate(made.gaps) if a <= g.source_start < b]
        assert len(hits) == 1, g
        removed_after[hits[0]] += g.removed
    if options.fill_gaps:
        assert removed_after[0] > 0 and removed_after[2] > 0  # the 4 s and 2.5 s gaps
        assert removed_after[1] == 0 and removed_after[3] == 0  # 0.6 s and 1.4 s kept
    else:
        assert manifest.gaps == ()
    for i in range(len(found) - 1):
        was = made.markers[i + 1] - made.markers[i]
        now = found[i + 1] - found[i]
        assert abs(now - (was - removed_after[i])) <= 1, (i, was, now, removed_after[i])
    for at, got in zip(made.markers, found, strict=True):
        assert abs(manifest.master_position(at) - got) <= 1
        assert abs(master_to_source(manifest.gaps, got) - at) <= 1
    # A segment is the master over its range (the pre-roll before it).
    for seg in manifest.segments:
        audio = read_wav(manifest.segment_path(seg))
        body = audio[seg.preroll_end : seg.preroll_end + (seg.source_out - seg.source_in)]
        mid = slice(RATE // 10, body.shape[0] - RATE // 10)
        ref = master[seg.source_in : seg.source_out]
        assert np.max(np.abs(body[mid] - ref[mid])) < 1e-5


def test_targets_still_met(made: Made, tmp_path: Path) -> None:
    result = run(made, tmp_path / "out", ALL)
    assert not result.failed
    spec = load_spec("ltx2-audio")
    for seg in result.segments:
        report = validate_file(seg.path, spec)
        assert report.status == "pass", report.to_json()
        audio = decode_audio(seg.path).samples.astype(np.float64)
        assert abs(loudness.integrated_loudness(audio[:1], RATE) - -16.0) <= 0.5
        assert loudness.true_peak(audio, RATE) <= -3.0


def test_time_map_helpers() -> None:
    from handoff.files.manifest import Gap

    gaps = (
        Gap(100, 150, 50, 100, 0, 0, 0, 0, 0),
        Gap(300, 320, 20, 250, 0, 0, 0, 0, 0),
    )
    assert source_to_master(gaps, 99) == 99
    assert source_to_master(gaps, 150) == 100
    assert source_to_master(gaps, 299) == 249
    assert source_to_master(gaps, 320) == 250
    for master in (0, 99, 100, 249, 250, 400):
        assert source_to_master(gaps, master_to_source(gaps, master)) == master


# --- compress ---------------------------------------------------------------------------------


def phrase_levels(x: FloatArray, spans: list[tuple[int, int]]) -> FloatArray:
    return np.array([10 * math.log10(float(np.mean(x[a:b] ** 2))) for a, b in spans])


def test_compress_narrows_the_spread_without_pumping(tmp_path: Path) -> None:
    levels = [0.25, 0.0628] * 4  # 12 dB apart
    made = make(tmp_path / "loud_soft.wav", [3.0] * 8, [0.5] * 7, levels=levels)
    spans = [(m + RATE // 10, m + 3 * RATE - RATE // 10) for m in made.markers]
    # A low target, so that the limiter leaves the loud phrases alone in both (it takes
    # the markers' peaks only, outside the spans measured).
    plain = run(made, tmp_path / "plain", PrepOptions(target_lufs=-26.0))
    squeezed = run(made, tmp_path / "squeezed", PrepOptions(target_lufs=-26.0, compress=2.0))
    assert plain.master.limited_share < 0.01
    spread_plain = np.ptp(phrase_levels(read_wav(plain.master.path), spans))
    spread_comp = np.ptp(phrase_levels(read_wav(squeezed.master.path), spans))
    assert spread_plain == pytest.approx(12.0, abs=0.5)
    assert spread_comp < spread_plain - 2.0, (spread_plain, spread_comp)
    assert spread_comp > 4.0  # 2:1 above a threshold: roughly half the excess is taken
    settings = squeezed.settings["compress"]
    assert settings["ratio"] == 2.0 and settings["knee_db"] == 6.0
    assert settings["max_reduction_db"] > 2.0
    # No pumping: the gain changes by little within any 10 ms (more only where the attack
    # meets a word's first 20 ms, its marker a burst over everything else).
    bins = store_bins(ArraySamples(made.samples), RATE)
    comp = compression(bins, made.samples.shape[0], 2.0)
    assert comp.threshold_db == pytest.approx(settings["threshold_dbfs"], abs=0.01)
    step = np.abs(comp.gain_db[10:] - comp.gain_db[:-10])
    onset = np.zeros(step.shape[0], dtype=bool)
    for m in made.markers:
        onset[max(0, m // 48 - 10) : m // 48 + 20] = True
    assert float(np.max(step[~onset])) < 1.5


# --- fill-gaps --------------------------------------------------------------------------------


def test_fill_gaps_shortens_long_silences_only(made: Made, tmp_path: Path) -> None:
    result = run(made, tmp_path / "out", PrepOptions(fill_gaps=True))
    manifest = load_manifest(result.manifest_path)
    master = read_wav(result.master.path)
    bins = dsp.bin_power(master, RATE)[0]
    facts = narration_facts(bins, master.shape[0], RATE)
    longest = facts.longest
    assert longest is not None
    assert longest.length <= 1.5 * RATE + 0.01 * RATE
    removed = sum(g.removed for g in manifest.gaps)
    assert result.master.samples == made.samples.shape[0] - removed
    assert len(manifest.gaps) == 2
    for g in manifest.gaps:
        assert g.removed == g.source_end - g.source_start
        assert g.pause_s - g.removed_s == pytest.approx(1.5, abs=1e-6)
    # the 1.4 s silence is as long in the master as in the source
    kept = [s for s in facts.silences if abs(s.length - 1.4 * RATE) < 0.03 * RATE]
    assert len(kept) == 1
    assert manifest.settings.fill_gaps is not None
    assert manifest.settings.fill_gaps.max_gap_s == 1.5


def test_fill_gaps_timeline_places_clips_at_their_sound(tmp_path: Path) -> None:
    """A narration cut into segments, long silences shortened: a timeline built from the
    manifest puts each clip where its segment's first word -- found in the master by its
    marker, not by the manifest -- is in the master."""
    words = [3.0] * 8
    gaps = [3.0, 0.5] * 3 + [3.0]
    made = make(tmp_path / "long.wav", words, gaps)
    options = PrepOptions(fill_gaps=True, max_seconds=9.0, segment_min=4.0, segment_max=8.0)
    result = run(made, tmp_path / "out", options)
    manifest = load_manifest(result.manifest_path)
    assert len(manifest.segments) >= 3
    assert len(manifest.gaps) == 4
    master = read_wav(result.master.path)
    found = [find(master, made.samples, at) for at in made.markers]
    renders = tmp_path / "renders"
    renders.mkdir()
    clips = []
    for seg in manifest.segments:
        spec = ClipSpec(fps=Fraction(24), seconds=seg.samples / RATE, width=64, height=64,
                        video_options={"preset": "ultrafast"})  # fmt: skip
        clips.append(write_clip(renders / f"{seg.index:03d}_render.mp4", spec))
    build = build_timeline(
        [source_from_info(probe(c)) for c in clips],
        master=source_from_info(probe(result.master.path), audio_only=True),
        manifest=manifest,
    )
    m0 = build.master_start
    track = build.timeline.tracks[0]
    placed = [
        (round(track.range_of_child_at_index(i).start_time.value), item)
        for i, item in enumerate(track)
        if isinstance(item, otio.schema.Clip)
    ]
    assert len(placed) == len(manifest.segments)
    for (start, clip), seg in zip(placed, manifest.segments, strict=True):
        first_word = min(f for f in found if f >= seg.source_in)
        assert first_word - seg.source_in <= RATE * 6 // 1000  # the 5 ms lead-in
        speech_starts = (
            start + Fraction(seg.preroll_end, RATE) * 24 - round(clip.source_range.start_time.value)
        )
        assert abs(speech_starts - (m0 + Fraction(first_word, RATE) * 24)) <= Fraction(1, 2)
        src = manifest.source_position(seg.source_in)
        assert manifest.master_position(src) == seg.source_in


# --- fade-tails -------------------------------------------------------------------------------


def reverberant(path: Path, trailing_s: float) -> Path:
    """A dry 2 s "word" convolved with decaying noise (-60 dB over 0.6 s), cut 50 ms after
    the dry word's end, then ``trailing_s`` of digital silence."""
    rng = np.random.default_rng(3)
    dry = speech_like(2.0, RATE, level=0.2, seed=8).astype(np.float64)
    t = np.arange(round(0.6 * RATE)) / RATE
    ir = rng.standard_normal(t.shape[0]) * 10 ** (-3 * t / 0.6)
    ir[0] = 20.0
    wet = np.convolve(dry, ir)[: dry.shape[0] + round(0.05 * RATE)]
    wet *= 0.3 / np.max(np.abs(wet))
    mono = np.concatenate([np.zeros(RATE // 2), wet, np.zeros(round(trailing_s * RATE))])
    write_wav(path, mono[np.newaxis, :], RATE, "pcm_s24le")
    return path


def end_level(path: Path) -> float:
    report = validate_file(path, load_spec("ltx2-audio"))
    level = report.measurements["audio.end_level_db"]
    assert isinstance(level, float)
    return level


def test_fade_tails_fade_the_reverb_not_the_word(tmp_path: Path) -> None:
    path = reverberant(tmp_path / "reverb.wav", 0.5)
    result = prep_audio(path, tmp_path / "out", PrepOptions(fade_tails_ms=50))
    assert not result.failed
    assert result.settings["fade_tails_ms"] == 50
    assert result.settings["silence"]["tail_s"] == 0.05
    master = read_wav(result.master.path)
    fade = RATE * 50 // 1000
    (seg,) = result.segments
    assert end_level(seg.path) <= 0.0
    audio = read_wav(seg.path)
    n = seg.source_out - seg.source_in
    body = audio[seg.preroll_end :]
    assert body.shape[0] == n
    ref = master[seg.source_in : seg.source_out]
    lead = RATE * 5 // 1000  # the fade-in
    # The word and its tail, sample for sample, up to where the fade starts ...
    assert np.array_equal(body[lead : n - fade], ref[lead : n - fade])
    # ... then the raised-cosine fade (24-bit rounding aside).
    curve = np.cos(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2
    assert np.max(np.abs(body[n - fade :] - ref[n - fade :] * curve)) < 1e-6
    # The fade lies after the last sound: the tail kept is the fade's length.
    sound = dsp.SoundMap(master, RATE)
    last = sound.end_before(sound.bins.shape[0])
    assert last is not None
    assert seg.source_out == last * sound.size + fade


def test_fade_tails_on_a_file_that_stops_in_its_reverb(tmp_path: Path) -> None:
    """A file that stops 50 ms after the dry word, its reverb still loud: nothing follows
    to keep, so the fade is all there is. 50 ms takes the end down by about 15 dB (not
    to silence: the reverb there is about 30 dB over the threshold); 200 ms silences it."""
    path = reverberant(tmp_path / "reverb.wav", 0.0)
    levels = {}
    for ms in (0, 50, 200):
        result = prep_audio(path, tmp_path / f"out{ms}", PrepOptions(fade_tails_ms=ms))
        (seg,) = result.segments
        assert seg.source_out == result.master.samples
        levels[ms] = end_level(seg.path)
    assert levels[0] > 20.0
    assert levels[50] < levels[0] - 10.0
    assert levels[200] <= 0.0


# --- options and the CLI ----------------------------------------------------------------------


def test_parse_ratio() -> None:
    assert parse_ratio("2:1") == 2.0
    assert parse_ratio(" 3.5 : 1 ") == 3.5
    for bad in ("9:1", "abc", "1:1", "2", "0.5:1", "2:2"):
        with pytest.raises(UsageError):
            parse_ratio(bad)


@pytest.mark.parametrize(
    "args",
    [
        ["--compress", "9:1"],
        ["--compress", "abc"],
        ["--fade-tails", "-5"],
        ["--fade-tails", "501"],
        ["--max-gap-s", "0"],
    ],
)
def test_cli_refuses_bad_values(made: Made, tmp_path: Path, args: list[str]) -> None:
    out = CliRunner().invoke(main, ["prep-audio", str(made.path), "--out", str(tmp_path), *args])
    assert out.exit_code == 2, out.output
    assert "Traceback" not in out.output
    errors = [line for line in out.output.splitlines() if line.strip()]
    assert len(errors) == 1, out.output


def test_cli_runs_dry_runs_and_reruns(made: Made, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    args = ["prep-audio", str(made.path), "--out", str(out_dir)]
    shaping = ["--compress", "2:1", "--fill-gaps", "--fade-tails", "50"]
    runner = CliRunner()
    dry = runner.invoke(main, [*args, *shaping, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "compress 2:1" in dry.output
    assert "4.00 s -> 1.50 s" in dry.output and "2.50 s -> 1.50 s" in dry.output
    assert "fades out over its last 50 ms" in dry.output
    plan = runner.invoke(main, [*args, *shaping, "--dry-run", "--json"])
    doc = json.loads(plan.output)
    assert doc["settings"]["compress"]["ratio"] == 2.0
    assert doc["settings"]["fill_gaps"]["max_gap_s"] == 1.5
    assert doc["settings"]["fade_tails_ms"] == 50
    assert len(doc["gaps"]) == 2
    done = runner.invoke(main, [*args, *shaping])
    assert done.exit_code == 0, done.output
    assert "compress 2:1" in done.output and "4.00 s -> 1.50 s" in done.output
    again = runner.invoke(main, [*args, *shaping])
    assert again.exit_code == 0 and "skipped" in again.output
    for other in (["--compress", "3:1"], ["--fill-gaps"], ["--fade-tails", "60"], []):
        refused = runner.invoke(main, [*args, *other])
        assert refused.exit_code == 2, (other, refused.output)
        assert "other settings" in refused.output
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert len(manifest["gaps"]) == 2
    assert manifest["settings"]["fade_tails_ms"] == 50


def test_options_are_off_by_default(made: Made) -> None:
    _, plan = prepare(made.path, PrepOptions())
    doc = plan.to_json()
    assert doc["settings"]["compress"] is None
    assert doc["settings"]["fill_gaps"] is None
    assert doc["settings"]["fade_tails_ms"] is None
    assert doc["gaps"] == []


# --- the manifest -----------------------------------------------------------------------------


def test_manifest_reads_and_checks_the_new_keys(made: Made, tmp_path: Path) -> None:
    result = run(made, tmp_path / "out", ALL)
    doc = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert [g["removed"] for g in doc["gaps"]] == [
        g.source_end - g.source_start for g in result.gaps
    ]
    for g in doc["gaps"]:
        assert g["removed_s"] == round(g["removed"] / RATE, 6)
    manifest = parse_manifest(doc, result.manifest_path)
    assert manifest.settings.compress is not None
    assert manifest.settings.compress.ratio == 2.0
    assert manifest.settings.fade_tails_ms == 50
    assert manifest.to_json()["gaps"] == doc["gaps"]
    # A manifest from before issue 17 still loads (no time map: the identity).
    old = json.loads(json.dumps(doc))
    del old["gaps"]
    for key in ("compress", "fill_gaps", "fade_tails_ms"):
        del old["settings"][key]
    before = parse_manifest(old, result.manifest_path)
    assert before.gaps == () and before.settings.compress is None
    assert before.master_position(12345) == 12345

    def broken(edit: Callable[[dict[str, Any]], None]) -> str:
        bad = json.loads(json.dumps(doc))
        edit(bad)
        with pytest.raises(ManifestError) as caught:
            parse_manifest(bad, result.manifest_path)
        message = str(caught.value)
        assert "\n" not in message
        return message

    def setting(key: str, value: object) -> Callable[[dict[str, Any]], None]:
        return lambda d: d["settings"].__setitem__(key, value)

    def gap(i: int, key: str, by: int) -> Callable[[dict[str, Any]], None]:
        return lambda d: d["gaps"][i].__setitem__(key, d["gaps"][i][key] + by)

    assert "gaps[0].removed" in broken(gap(0, "removed", 1))
    assert "gaps[1].master_at" in broken(gap(1, "master_at", 5))
    assert "gaps[1].source_start" in broken(gap(1, "source_start", -(10**6)))
    too_hard = {**doc["settings"]["compress"], "ratio": 9}
    assert "settings.compress.ratio" in broken(setting("compress", too_hard))
    assert "settings.fade_tails_ms" in broken(setting("fade_tails_ms", 501))
    assert "gaps" in broken(lambda d: d.__setitem__("gaps", {}))
