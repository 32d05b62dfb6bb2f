"""Every public library entry point, fed odd and broken media, says what is wrong as a
HandoffError (or a result naming the problem) -- never a builtin exception -- and every
command says it in one line, exits non-zero and still does the rest of its batch.

The odd media is made here with PyAV (sample rates BS.1770 or the 1 ms analysis bins do
not cover, a rate far above any editor's, a header declaring no channels, a clip with no
sound); the broken files are the shared corpus's (skipped with a reason when absent).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from handoff.analysis import loudness
from handoff.cli import main
from handoff.errors import HandoffError, Option, Text, UsageError, describe
from handoff.export.plan import ExportOptions, plan_export
from handoff.export.run import export_one, plan_jobs
from handoff.files.manifest import load_manifest
from handoff.media.synth import ClipSpec, speech_like, write_clip, write_wav
from handoff.prep import PrepOptions, prep_audio, prepare
from handoff.probe import probe, probe_loudness
from handoff.sync.measure import plan_sync, run_sync
from handoff.sync.selects import load_selects
from handoff.timeline.project import timeline_from_paths
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec
from tests.conftest import MakeDir, corpus_file

# Sample rates no delivery uses: under BS.1770's 4 kHz floor (500 Hz is also under the
# 1 kHz the 1 ms analysis bins need), telephone speech, and 8x 48 kHz.
ODD_RATES = (500, 2000, 8000, 384000)
BROKEN = (
    "broken/ffmpeg-normalize_out_48B_no_moov.mp4",
    "broken/mediabunny_annex-b_TRUNCATED_100000B.mp4",
)
BUG = "a bug in handoff"


def _zero_channel_wav(path: Path) -> Path:
    """A WAV whose fmt chunk declares 0 channels (RIFF WAVE: nChannels is the 16-bit
    field at offset 22 of a canonical header), its data left as written."""
    write_wav(path, np.full((1, 4800), 0.1, dtype=np.float32), 48000, codec="pcm_s16le")
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"fmt "
    data[22:24] = (0).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def media(module_tmp: MakeDir) -> dict[str, Path]:
    folder = module_tmp("odd")
    out: dict[str, Path] = {}
    for rate in ODD_RATES:
        t = np.arange(2 * rate) / rate
        tone = 0.3 * np.sin(2 * np.pi * min(440.0, rate / 4) * t)
        out[f"{rate}hz"] = write_wav(folder / f"tone_{rate}.wav", np.stack([tone, tone]), rate)
    out["0ch"] = _zero_channel_wav(folder / "zero_channels.wav")
    out["silent-clip"] = write_clip(folder / "no_audio.mp4", ClipSpec(seconds=1, audio_rate=None))
    return out


@pytest.fixture(scope="module")
def good(module_tmp: MakeDir) -> dict[str, Path]:
    folder = module_tmp("good")
    voice = speech_like(3.0, 48000)
    return {
        "wav": write_wav(folder / "narration.wav", np.stack([voice, voice]), 48000),
        "clip": write_clip(folder / "take.mp4", ClipSpec(seconds=2)),
    }


def _odd_and_broken(media: dict[str, Path]) -> list[Path]:
    return [*media.values(), *(corpus_file(b) for b in BROKEN)]


def _said(call: Callable[[], Any]) -> str:
    """What ``call`` made of the input: "raised" for a HandoffError, else the result's
    repr (checked for naming a bug). A builtin exception propagates: the test fails."""
    try:
        result = call()
    except HandoffError as exc:
        assert BUG not in describe(exc)
        assert "\n" not in str(exc)
        return "raised"
    text = repr(result)
    assert BUG not in text, text
    return text


@pytest.mark.parametrize("name", [*(f"{r}hz" for r in ODD_RATES), "0ch", "silent-clip"])
def test_each_entry_point_on_odd_audio(
    name: str, media: dict[str, Path], good: dict[str, Path], tmp_path: Path
) -> None:
    _each_entry_point(media[name], good, tmp_path)


@pytest.mark.parametrize("relative", BROKEN)
def test_each_entry_point_on_the_broken_corpus(
    relative: str, good: dict[str, Path], tmp_path: Path
) -> None:
    _each_entry_point(corpus_file(relative), good, tmp_path)


def _each_entry_point(path: Path, good: dict[str, Path], tmp_path: Path) -> None:
    _said(lambda: probe(path))
    _said(lambda: probe_loudness(probe(path)))
    _said(lambda: loudness.measure_file(path))
    for spec_name in ("ltx2-audio", "h264-review"):
        spec = load_spec(spec_name)
        report = validate_file(path, spec, spec.resolve_options({}))
        assert report.status in ("fail", "error")
        assert BUG not in repr(report)
    review = load_spec("h264-review")
    _said(lambda: plan_export(probe(path), review, ExportOptions(out_dir=tmp_path / "x")))
    planned, refused = plan_jobs([path], "h264-review", ExportOptions(out_dir=tmp_path / "x"),
                                 "pyav", dry_run=True)  # fmt: skip
    for result in [*refused, *(export_one(job) for job in planned)]:
        assert result.status in ("failed", "error") and result.error, result
        assert BUG not in result.error
    _said(lambda: prepare(path, PrepOptions()))
    _said(lambda: prep_audio(path, tmp_path / "prep", PrepOptions()))
    for take, reference in ((good["clip"], path), (path, good["wav"])):
        (measured,) = run_sync(plan_sync([take], reference=reference))
        assert BUG not in repr(measured)
    _said(lambda: timeline_from_paths([path]))
    _said(lambda: timeline_from_paths([good["clip"]], master_path=path))
    _said(lambda: load_manifest(path))
    _said(lambda: load_selects(path))


def test_a_rate_too_low_for_the_analysis_bins_is_a_handoff_error(media: dict[str, Path]) -> None:
    # Once a ValueError from the 1 ms bins: prep-audio of a 500 Hz WAV was a traceback.
    with pytest.raises(HandoffError, match="500 Hz is too low"):
        prepare(media["500hz"], PrepOptions())


def test_a_rate_bs1770_cannot_weight_is_a_reason_not_an_error(media: dict[str, Path]) -> None:
    found = probe_loudness(probe(media["2000hz"]))
    assert found.measured is None and found.to_json() is None
    assert found.not_measured is not None and "4000 Hz" in found.not_measured
    eight = probe_loudness(probe(media["8000hz"]))
    assert eight.measured is not None and eight.not_measured is None


# ---------------------------------------------------------------- messages


def test_library_messages_name_options_not_flags(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "no_sound.mp4", ClipSpec(seconds=1, audio_rate=None))
    with pytest.raises(UsageError) as caught:
        plan_export(probe(clip), load_spec("h264-review"), ExportOptions(out_dir=tmp_path))
    said = str(caught.value)
    assert "add_silence=True" in said and "--add-silence" not in said
    assert isinstance(caught.value.message, Text)
    assert Option("add_silence", True) in caught.value.message.parts
    # The CLI says the same with its flag.
    result = CliRunner().invoke(main, ["export", str(clip), "--preset", "h264-review",
                                       "--out", str(tmp_path / "o"), "--dry-run"])  # fmt: skip
    assert result.exit_code == 1
    assert "pass --add-silence to give the output a silent track" in result.stdout
    assert "add_silence=True" not in result.stdout


def test_a_message_keeps_its_options_across_processes_and_describe() -> None:
    import pickle

    text = Text("choose ", Option("fps"), " (24 or 30) and ", Option("rate_conversion", "drop"))
    again = pickle.loads(pickle.dumps(text))
    assert again == text == "choose fps (24 or 30) and rate_conversion=drop"
    assert again.parts == text.parts
    said = describe(UsageError(Text("  two\n lines: ", Option("name"), " ")))
    assert isinstance(said, Text) and said == "two lines: name"


# ---------------------------------------------------------------- the CLI


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_batch_commands_report_each_bad_file_and_do_the_rest(
    media: dict[str, Path], good: dict[str, Path], tmp_path: Path
) -> None:
    bad = _odd_and_broken(media)
    code, out, _ = _cli("probe", "--loudness", *map(str, bad), str(good["wav"]))
    assert code == 2
    assert "loudness   -" in out.split(str(good["wav"]))[-1]  # the good file measured
    assert out.count("ERROR") >= 2  # the broken corpus
    assert "loudness   not measured: sample rate 2000 Hz" in out

    for spec in ("ltx2-audio", "h264-review"):
        code, out, _ = _cli("validate", "--spec", spec, *map(str, bad), str(good["clip"]))
        assert code == 2
        assert f"{len(bad) + 1} file(s) against '{spec}'" in out
        assert BUG not in out

    code, out, _ = _cli("export", *map(str, bad), str(good["clip"]), "--preset", "h264-review",
                        "--out", str(tmp_path / "exp"), "--dry-run")  # fmt: skip
    assert code == 2
    assert f"plan    {good['clip']}" in out and BUG not in out

    code, out, _ = _cli("sync", *map(str, bad), str(good["clip"]), "--reference", str(good["wav"]))
    assert code == 2
    assert f"{len(bad) + 1} take(s)" in out and BUG not in out


@pytest.mark.parametrize("name", [*(f"{r}hz" for r in ODD_RATES), "0ch", "silent-clip"])
def test_single_input_commands_say_one_line(
    name: str, media: dict[str, Path], good: dict[str, Path], tmp_path: Path
) -> None:
    path = str(media[name])
    for args in (
        ("prep-audio", path, "--out", str(tmp_path / "prep")),
        ("timeline", str(good["clip"]), "--master", path, "--format", "otio",
         "--out", str(tmp_path / "t.otio")),
        ("sync", str(good["clip"]), "--reference", path),
    ):  # fmt: skip
        code, out, err = _cli(*args)
        if code == 0:  # conditioned, or a timeline made: nothing was wrong for this command
            continue
        assert BUG not in out + err
        if err:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("handoff: error: "), err
