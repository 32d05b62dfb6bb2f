"""The command line, as a user meets it: exit codes, one-line errors, JSON, JUnit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from handoff.cli import main
from tests.conftest import CORPUS, FIXTURES, MakeClip, review_clip_kwargs

PROBE_KEYS = {
    "path",
    "ok",
    "error",
    "container",
    "duration_s",
    "video",
    "audio",
    "av_duration_delta_s",
}
VIDEO_KEYS = {
    "codec",
    "width",
    "height",
    "fps",
    "frame_rate_mode",
    "max_keyframe_interval_s",
    "frames",
}
AUDIO_KEYS = {"codec", "sample_rate", "channels", "bit_rate", "duration_s"}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("handoff: error: ")


def test_probe_json_schema(make_clip: MakeClip) -> None:
    path = make_clip("a.mp4", **review_clip_kwargs())
    code, out, _ = run("probe", "--json", str(path), str(FIXTURES / "not_media.mp4"))
    assert code == 2  # one file unreadable
    data = json.loads(out)
    assert [d["ok"] for d in data] == [True, False]
    for item in data:
        assert PROBE_KEYS <= set(item)
    good, bad = data
    assert VIDEO_KEYS <= set(good["video"]) and AUDIO_KEYS <= set(good["audio"])
    assert good["video"]["fps"] == "24/1"
    assert good["video"]["frame_rate_mode"] == "CFR"
    assert isinstance(good["av_duration_delta_s"], float)
    assert bad["error"] and bad["video"] is None


def test_probe_table_for_people(make_clip: MakeClip) -> None:
    code, out, _ = run("probe", str(make_clip("a.mp4", **review_clip_kwargs())))
    assert code == 0
    assert "CFR  24 fps  72 frames" in out and "all IDR yes" in out
    assert "2 ch (stereo)" in out


def test_probe_whole_corpus_without_traceback() -> None:
    if not CORPUS.exists():
        pytest.skip(f"shared corpus not present: {CORPUS}")
    code, out, err = run("probe", "--json", str(CORPUS))
    assert "Traceback" not in out + err
    data = json.loads(out)
    assert len(data) >= 18
    assert code == 2  # the 48-byte file has no index
    by_name = {Path(d["path"]).name: d for d in data}
    assert by_name["ffmpeg-normalize_out_48B_no_moov.mp4"]["ok"] is False
    assert (
        by_name["videotimestamps_mkv_timescale_cs_FALSE_VFR.mkv"]["video"]["frame_rate_mode"]
        == "CFR"
    )
    assert by_name["moviepy_fire2_android_phone_vfr.mp4"]["video"]["frame_rate_mode"] == "VFR"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["probe", "/definitely/not/here.mp4"], None),
        (["validate", "x.mp4", "--spec", "no-such-spec"], "unknown spec"),
        (["validate", "x.mp4", "--spec", "h264-review", "--option", "allow_pal=true"], "no option"),
        (
            ["validate", "x.mp4", "--spec", "h264-review", "--option", "allow_ntsc=maybe"],
            "true or false",
        ),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], needle: str | None) -> None:
    code, out, err = run(*args)
    assert code == 2
    if needle is None:
        assert "no such file" in out
    else:
        assert needle in err
        assert_one_line_error(err)


def test_folder_with_no_media_is_its_own_error_line(tmp_path: Path, make_clip: MakeClip) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    good = make_clip("good.mp4", **review_clip_kwargs())
    code, out, err = run("validate", str(empty), str(good), "--spec", "h264-review")
    assert code == 2 and not err
    assert f"ERROR  {empty}\n       folder holds no media files" in out
    assert f"PASS   {good}" in out  # the other path was still checked
    assert "2 file(s) against 'h264-review': 1 pass, 0 fail, 1 error" in out


def test_validate_exit_codes(make_clip: MakeClip, tmp_path: Path) -> None:
    good = make_clip("good.mp4", **review_clip_kwargs())
    bad = make_clip("bad.mp4", **{**review_clip_kwargs(), "faststart": False})
    assert run("validate", str(good), "--spec", "h264-review")[0] == 0
    assert run("validate", str(good), str(bad), "--spec", "h264-review")[0] == 1
    code, out, _ = run(
        "validate",
        str(good),
        str(FIXTURES / "interrupted_write_no_moov.mp4"),
        str(bad),
        "--spec",
        "h264-review",
    )
    assert code == 2
    # The files after the broken one were still checked.
    assert "PASS" in out and "ERROR" in out and "FAIL" in out and "bad.mp4" in out


def test_validate_batch_json_and_junit(make_clip: MakeClip, tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copy(make_clip("a.mp4", **review_clip_kwargs()), batch / "001_a.mp4")
    shutil.copy(
        make_clip(
            "b.mp4", **{**review_clip_kwargs(), "audio_rate": 24000, "audio_bit_rate": 96000}
        ),
        batch / "002_b.mp4",
    )
    shutil.copy(FIXTURES / "interrupted_write_no_moov.mp4", batch / "003_broken.mp4")
    junit = tmp_path / "report.xml"
    code, out, _ = run(
        "validate", str(batch), "--spec", "h264-review", "--json", "--junit", str(junit)
    )
    assert code == 2
    data = json.loads(out)
    assert data["summary"] == {"files": 3, "pass": 1, "fail": 1, "error": 1}
    assert [Path(f["path"]).name for f in data["files"]] == [
        "001_a.mp4",
        "002_b.mp4",
        "003_broken.mp4",
    ]
    finding = next(f for f in data["files"][1]["findings"] if f["rule"] == "audio-sample-rate")
    assert finding == {
        "rule": "audio-sample-rate",
        "severity": "error",
        "fact": "audio.sample_rate",
        "expected": "48000 Hz",
        "actual": "24000 Hz",
        "message": "audio.sample_rate is 24000 Hz",
    }
    suite = etree.parse(str(junit)).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    assert len(suite.findall("testcase/failure")) == 1


def test_broken_corpus_never_tracebacks() -> None:
    broken = CORPUS / "broken"
    if not broken.exists():
        pytest.skip(f"shared corpus not present: {broken}")
    for spec in ("h264-review", "prores-master", "ltx2-audio"):
        code, out, err = run("validate", str(broken), "--spec", spec)
        assert "Traceback" not in out + err
        assert code == 2


def test_specs_lists_and_prints() -> None:
    code, out, _ = run("specs")
    assert code == 0 and "ltx2-audio" in out and "allow_ntsc" in out
    code, out, _ = run("specs", "h264-review")
    assert code == 0 and 'name = "h264-review"' in out


def test_python_dash_m_and_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "handoff", "validate", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "Exit codes" in done.stdout and "--spec" in done.stdout


def test_demo_runs_twice_and_every_verdict_holds(tmp_path: Path) -> None:
    code, out, err = run("demo", str(tmp_path / "demo"))
    assert code == 0, out + err
    assert "every verdict as expected" in out
    facts = json.loads((tmp_path / "demo" / "probe.json").read_text())
    by_name = {Path(f["path"]).name: f for f in facts}
    assert by_name["003_phone_vfr.mp4"]["video"]["frame_rate_mode"] == "VFR"
    assert by_name["001_ltx2_raw.mp4"]["audio"]["sample_rate"] == 24000
    # Sync: the take in sync is in and picked, the late one and the drifting one are out,
    # the drifting one with a point to regenerate from.
    assert "as expected  001_scene_take1.mp4 IN " in out
    assert "as expected  001_scene_take2.mp4 OUT " in out and "out from its first frame" in out
    drifting = next(line for line in out.splitlines() if "001_scene_take3.mp4 OUT" in line)
    assert drifting.lstrip().startswith("as expected ") and ": out at " in drifting
    assert "regenerate from" in drifting
    picked = json.loads((tmp_path / "demo" / "selects.json").read_text())
    (segment,) = picked["segments"]
    assert Path(segment["pick"]).name == "001_scene_take1.mp4" and not segment["regenerate"]
    assert "V1 001_scene_take1.mp4" in out and "as expected  edit/narration.fcpxml" in out
    # What the demo lays out for people: readable rates and channels, no raw fractions.
    assert "phone clip (VFR)     h264 640x360 VFR ~" in out and "fps (variable)" in out
    assert "UNEXPECTED" not in out

    # Into the same folder again -- after a run killed there left a partial file -- the
    # same verdicts, and the review copy made from the source again (only the raw render
    # is 1920x1088 with 24 kHz sound), not from an earlier output.
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    orphan = (
        tmp_path
        / "demo"
        / "export"
        / "review"
        / f".001_ltx2_raw.{ended.stdout.strip()}.abcdefgh.part.mp4"
    )
    orphan.write_bytes(b"half")
    code, again, err = run("demo", str(tmp_path / "demo"))
    assert code == 0, again + err
    assert not orphan.exists() and "removed export/review/.001_ltx2_raw." in again

    def verdicts(text: str) -> list[str]:
        marked = [
            line
            for line in text.splitlines()
            if line.lstrip().startswith(("as expected ", "UNEXPECTED "))
        ]
        return [re.sub(r"\(\d+\.\d s\)", "", line) for line in marked]

    assert verdicts(again) == verdicts(out) and len(verdicts(out)) > 20
    review = again[again.index("3. export") : again.index("export/review/003_phone_vfr.mp4")]
    assert "cropped 1920x1088 -> 1920x1080" in review and "24000 Hz -> 48000 Hz" in review


def test_probe_loudness_reports_as_is_and_mono_content(tmp_path: Path) -> None:
    import numpy as np

    from handoff.media.synth import speech_like, write_wav

    mono = speech_like(4.0, 48000, lead=0.2)
    path = write_wav(tmp_path / "dual.wav", np.stack([mono, mono]), 48000)
    code, out, _ = run("probe", "--json", "--loudness", str(path))
    assert code == 0
    data = json.loads(out)[0]["loudness"]
    assert data["dual_mono"] is True
    # Identical channels add 3.01 dB of energy on a stereo meter (BS.1770 channel sum).
    assert data["integrated_lufs"] - data["mono_content_lufs"] == pytest.approx(3.01, abs=0.02)
    assert data["leading_silence_s"] == pytest.approx(0.2, abs=0.02)
    code, out, _ = run("probe", "--loudness", str(path))
    assert "mono content" in out


def test_handoff_alone_shows_its_help() -> None:
    code, out, err = run()
    assert code == 0 and not err
    lines = out.splitlines()
    assert lines[0].startswith("Usage: ") and "Commands:" in lines
    assert any(line.split()[:1] == ["prep-audio"] for line in lines)
