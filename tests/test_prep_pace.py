"""prep-audio --cut-at-pace-change (issue 17): a narration read at two speeds becomes two
segments, cut at a gap between words where the pace changes, and nothing moves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from handoff.analysis.dsp import bin_power
from handoff.analysis.narration import narration_facts
from handoff.cli import main
from handoff.files.manifest import load_manifest
from handoff.media.audio import decode_audio
from handoff.media.synth import write_wav
from handoff.prep import PrepOptions, prep_audio
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec
from tests.conftest import MakeDir
from tests.test_narration import faster, room_tone, voice

RATE = 48000
CHANGE_S = 36.0


@pytest.fixture(scope="module")
def two_speeds(module_tmp: MakeDir) -> tuple[Path, float]:
    """72 s of voice over room tone, its second half played a third faster from
    ``CHANGE_S``; and where the change is in the file (seconds)."""
    x = voice(72.0, seed=4) + room_tone(72 * RATE, -70.0)
    at = round(CHANGE_S * RATE)
    y = np.concatenate([np.zeros(RATE // 10), x[:at], faster(x[at:], 4.0 / 3.0)])
    path = module_tmp("pace") / "two_speeds.wav"
    write_wav(path, np.stack([y, y]), RATE)
    return path, 0.1 + CHANGE_S


def test_a_narration_read_at_two_speeds_is_cut_where_the_pace_changes(
    two_speeds: tuple[Path, float], tmp_path: Path
) -> None:
    path, change_s = two_speeds
    plain = prep_audio(path, tmp_path / "plain", PrepOptions())
    assert len(plain.segments) == 1  # 63 s fits one segment
    result = prep_audio(path, tmp_path / "paced", PrepOptions(cut_at_pace_change=True))
    assert len(result.segments) == 2
    first, second = result.segments
    assert first.cut_out.kind == "pace-change" and second.cut_in.kind == "pace-change"
    # The cut falls in a gap near the change (the rates are read over 30 s windows).
    assert abs(first.cut_out.position / RATE - change_s) < 6.0, first.cut_out.position / RATE
    said = [w for w in result.warnings if "where the pace changes by +" in w]
    assert said and "syllables/s" in said[0], result.warnings
    # Each segment holds one pace: no pacing warning in either, and the rates differ.
    spec = load_spec("ltx2-audio")
    rates = []
    for seg in result.segments:
        assert "pacing" not in {f.rule for f in validate_file(seg.path, spec).findings}
        audio = decode_audio(seg.path)
        bins, _ = bin_power(audio.samples, RATE)
        rate = narration_facts(bins, audio.samples.shape[1], RATE).speech_rate
        assert rate is not None
        rates.append(rate)
    assert rates[1] / rates[0] > 1.15, rates
    # Nothing moved: the segments are the master's samples over their ranges (bar the
    # fades at the cut), and the master is the plain run's master.
    master = decode_audio(result.master.path).samples
    assert np.array_equal(master, decode_audio(plain.master.path).samples)
    for seg in result.segments:
        body = decode_audio(seg.path).samples[:, seg.preroll_end :]
        span = master[:, seg.source_in : seg.source_out]
        assert body.shape == span.shape
        inner = slice(RATE // 100, body.shape[1] - RATE // 100)
        assert np.array_equal(body[:, inner], span[:, inner])
    manifest = load_manifest(result.manifest_path)
    assert manifest.settings.cut_at_pace_change is True
    assert [s.cut_out.kind for s in manifest.segments] == ["pace-change", "end"]


def test_an_even_narration_is_not_cut(tmp_path: Path) -> None:
    x = voice(60.0, seed=5) + room_tone(60 * RATE, -70.0)
    path = tmp_path / "even.wav"
    write_wav(path, np.stack([x, x]), RATE)
    result = prep_audio(path, tmp_path / "out", PrepOptions(cut_at_pace_change=True))
    assert len(result.segments) == 1


def test_the_cli_option_and_a_rerun_without_it(
    two_speeds: tuple[Path, float], tmp_path: Path
) -> None:
    path, _ = two_speeds
    out = tmp_path / "out"
    runner = CliRunner()
    done = runner.invoke(main, ["prep-audio", str(path), "--out", str(out), "--cut-at-pace-change"])
    assert done.exit_code == 0, done.output
    assert "where the pace changes by +" in done.output
    dry = runner.invoke(
        main,
        [
            "prep-audio",
            str(path),
            "--out",
            str(tmp_path / "dry"),
            "--cut-at-pace-change",
            "--dry-run",
        ],
    )
    assert dry.exit_code == 0 and "pace-change" in dry.output, dry.output
    again = runner.invoke(main, ["prep-audio", str(path), "--out", str(out)])
    assert again.exit_code == 2
    assert "cut_at_pace_change True -> False" in again.output, again.output
