"""Bad input through every command: one line for the bad file, the rest of the batch done.

One test (or a few) per class of defect a fuzzing and fault campaign found: many-channel
audio, codecs FFmpeg cannot identify, surprises inside a validate or export batch, odd
paths, concurrent writers, truncated files, outputs over inputs, a DC-only narration.
Media is made here (PyAV, or the ``wave`` module where PyAV itself was the problem) and
read back by independent readers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from handoff.cli import main
from handoff.files.fsutil import OUTPUT_MARK, atomic_write_bytes
from handoff.media.audio import decode_audio
from handoff.probe.reader import probe
from tests.conftest import MakeClip, review_clip_kwargs, run_handoff

REPO = Path(__file__).resolve().parents[1]  # for the child processes' PYTHONPATH


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wav_with_channels(
    path: Path, channels: int, seconds: float = 2.0, *, voice: bool = False
) -> Path:
    """16-bit 48 kHz PCM written with the wave module: a different tone per channel, or
    (``voice``) one speech-like signal at a different level per channel."""
    rate = 48000
    t = np.arange(round(seconds * rate)) / rate
    if voice:
        from handoff.media.synth import speech_like

        base = speech_like(seconds, rate)[: t.shape[0]]
        tones = np.stack([base * (0.3 + 0.02 * c) for c in range(channels)], 1)
    else:
        tones = np.stack([0.2 * np.sin(2 * np.pi * (200 + 37 * c) * t) for c in range(channels)], 1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((tones * 32767).astype("<i2").tobytes())
    return path


# ------------------------------------------------------- 1. many channels


@pytest.mark.parametrize("channels", [1, 7, 8, 12, 16])
def test_decode_keeps_every_channel_of_wide_audio(tmp_path: Path, channels: int) -> None:
    path = wav_with_channels(tmp_path / f"{channels}ch.wav", channels)
    decoded = decode_audio(path)
    assert decoded.samples.shape == (channels, 96000)
    with wave.open(str(path), "rb") as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    expected = raw.reshape(-1, channels).T.astype(np.float32) / 32768.0
    assert np.array_equal(decoded.samples, expected)


def test_every_command_takes_16_channel_audio(tmp_path: Path) -> None:
    path = wav_with_channels(tmp_path / "wide.wav", 16, seconds=3.0, voice=True)
    probed = run_handoff("probe", "--loudness", "--json", str(path))
    assert probed.returncode == 0, probed.stderr
    loud = json.loads(probed.stdout)[0]["loudness"]
    assert loud["integrated_lufs"] is not None and loud["true_peak_dbtp"] < 0
    checked = run_handoff("validate", str(path), "--spec", "ltx2-audio")
    assert checked.returncode == 1 and "FAIL" in checked.stdout  # 16 channels is no mono
    prepped = run_handoff("prep-audio", str(path), "--out", str(tmp_path / "cond"), "--json")
    assert prepped.returncode == 0, prepped.stdout + prepped.stderr
    segment = tmp_path / "cond" / "001_wide.wav"
    with av.open(str(segment)) as c:
        assert c.streams.audio[0].codec_context.channels == 2


# ------------------------------------------------------- 2. unknown codecs


def _rename_codec(path: Path, old: bytes, new: bytes, dest: Path, after: bytes = b"") -> Path:
    """A copy of ``path`` whose first ``old`` after ``after`` reads ``new``."""
    data = path.read_bytes()
    at = data.index(old, data.index(after))
    dest.write_bytes(data[:at] + new + data[at + len(old) :])
    return dest


def test_unknown_codecs_are_reported_not_raised(make_clip: MakeClip, tmp_path: Path) -> None:
    mp4 = make_clip("src.mp4", width=64, height=64, seconds=1.0)
    # An MP4 sample entry and a Matroska CodecID that FFmpeg does not know.
    zzzz = _rename_codec(mp4, b"avc1", b"zzzz", tmp_path / "zzzz.mp4", after=b"stsd")
    mka = make_clip("src.mkv", width=64, height=64, seconds=1.0, audio_codec="libopus")
    opxs = _rename_codec(mka, b"A_OPUS", b"A_OPXS", tmp_path / "opxs.mkv")

    video = probe(zzzz).video
    assert video is not None and video.codec == "unknown" and video.width is None
    assert video.frames == 24  # timing still comes from the packets
    assert any("'zzzz'" in w and "cannot be decoded" in w for w in probe(zzzz).warnings)
    audio = probe(opxs).audio
    assert audio is not None and audio.codec == "unknown" and audio.sample_rate is None

    code, out, err = run("probe", str(zzzz), str(opxs))
    assert code == 0 and not err and "video #0   unknown" in out

    code, out, err = run("validate", str(zzzz), str(opxs), "--spec", "h264-review", "--json")
    assert code == 1, err
    reports = {Path(r["path"]).name: r for r in json.loads(out)["files"]}
    assert reports["zzzz.mp4"]["status"] == "fail"
    codec_rule = next(f for f in reports["zzzz.mp4"]["findings"] if f["rule"] == "video-codec")
    assert codec_rule["actual"] == "unknown"
    assert reports["opxs.mkv"]["status"] == "fail"

    code, out, _ = run("validate", str(opxs), "--spec", "ltx2-audio")
    assert code == 1 and "loudness: expected -16 +/- 1 LUFS, got missing" in out

    code, out, err = run(
        "export",
        str(zzzz),
        str(opxs),
        str(mp4),
        "--preset",
        "h264-review",
        "--fps",
        "24",
        "--out",
        str(tmp_path / "out"),
        "--jobs",
        "1",
    )
    assert code == 1 and not err
    assert "video stream #0 has a codec FFmpeg cannot identify" in out
    assert "audio stream #1 has a codec FFmpeg cannot identify" in out
    assert (tmp_path / "out" / "src.mp4").is_file()


# ------------------------------------------------------- 3 & 4. one file never stops a batch


def test_validate_batch_survives_audio_the_meter_cannot_measure(tmp_path: Path) -> None:
    # 2 kHz: BS.1770's K-weighting is undefined that low; the meter raised ValueError,
    # which stopped the batch (no summary, no JUnit). Now the measured facts are missing.
    low = tmp_path / "a_low.wav"
    with wave.open(str(low), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(2000)
        w.writeframes((np.sin(np.arange(4000) / 3) * 8000).astype("<i2").tobytes())
    good = wav_with_channels(tmp_path / "b_good.wav", 2)
    junit = tmp_path / "report.xml"
    code, out, err = run(
        "validate", str(low), str(good), "--spec", "ltx2-audio", "--junit", str(junit)
    )
    assert code == 1 and not err
    assert f"FAIL   {low}" in out and f"FAIL   {good}" in out
    assert "x loudness: expected -16 +/- 1 LUFS, got missing" in out
    assert "note: audio not measured: sample rate 2000 Hz is too low" in out
    assert "2 file(s) against 'ltx2-audio': 0 pass, 2 fail, 0 error" in out
    assert junit.read_text().count("<testcase") == 2
    code, out, _ = run("probe", "--loudness", str(low))
    assert code == 0 and "loudness   not measured: sample rate 2000 Hz" in out


def test_export_batch_survives_an_mp4_without_its_media_data(
    make_clip: MakeClip, tmp_path: Path
) -> None:
    good = make_clip("b_good.mp4", **review_clip_kwargs())
    hollow = tmp_path / "a_hollow.mp4"  # index intact, media data gone (head -c 5000)
    hollow.write_bytes(good.read_bytes()[:5000])
    out_dir = tmp_path / "out"
    for flags, codes in (([], {2}), (["--allow-truncated"], {0, 1})):
        code, out, err = run(
            "export", str(hollow), str(good), "--preset", "h264-review",
            "--out", str(out_dir), "--jobs", "1", "--overwrite", *flags,
        )  # fmt: skip
        assert "Traceback" not in out + err
        assert code in codes, out
        assert f"done    {good}" in out and "2 input(s)" in out
    names = [p.name for p in out_dir.iterdir() if p.name != OUTPUT_MARK]
    assert "b_good.mp4" in names and not [n for n in names if n.startswith(".")]


# ------------------------------------------------------- 5. paths


def test_odd_paths_are_each_one_error_line(make_clip: MakeClip, tmp_path: Path) -> None:
    good = make_clip("good.mp4", **review_clip_kwargs())
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(tmp_path / "loop2.mp4")
    (tmp_path / "loop2.mp4").symlink_to(loop)
    broken = tmp_path / "broken.mp4"
    broken.symlink_to(tmp_path / "nowhere.mp4")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    too_long = tmp_path / ("x" * 300 + ".mp4")  # over NAME_MAX: ENAMETOOLONG on lookup
    for command in (["probe"], ["validate", "--spec", "h264-review"]):
        code, out, err = run(*command, str(loop), str(broken), str(fifo), str(too_long), str(good))
        assert code == 2 and not err, out
        assert "cannot be read (File name too long)" in out
        assert "a loop of symbolic links" in out
        assert "broken symbolic link" in out
        assert "not a regular file" in out  # refused before opening: no wait for a writer
        assert str(good) in out
    code, out, err = run("prep-audio", str(fifo), "--out", str(tmp_path / "cond"))
    assert code == 2 and "not a regular file" in err


def test_unreadable_files_and_folders_are_reported_not_skipped(
    make_clip: MakeClip, tmp_path: Path
) -> None:
    good = make_clip("good.mp4", **review_clip_kwargs())
    batch = tmp_path / "batch"
    (batch / "locked_dir").mkdir(parents=True)
    shutil.copy(good, batch / "ok.mp4")
    shutil.copy(good, batch / "locked_dir" / "inside.mp4")
    shutil.copy(good, batch / "locked.mp4")
    (batch / "locked.mp4").chmod(0)
    (batch / "locked_dir").chmod(0)
    named = tmp_path / "named_locked.mp4"
    shutil.copy(good, named)
    named.chmod(0)
    try:
        done = run_handoff(
            "validate", str(batch), str(named), "--spec", "h264-review", unprivileged=True
        )
    finally:
        (batch / "locked_dir").chmod(0o755)
    assert done.returncode == 2 and not done.stderr, done.stdout + done.stderr
    assert f"PASS   {batch / 'ok.mp4'}" in done.stdout
    assert f"ERROR  {batch / 'locked.mp4'}\n       permission denied" in done.stdout
    assert f"ERROR  {batch / 'locked_dir'}\n       cannot list this folder" in done.stdout
    assert f"ERROR  {named}\n       permission denied" in done.stdout
    assert "4 file(s) against 'h264-review': 1 pass, 0 fail, 3 error" in done.stdout


# ------------------------------------------------------- 9. concurrent writers


def test_publishing_never_replaces_a_file_another_writer_published(tmp_path: Path) -> None:
    from handoff.errors import OutputExistsError
    from handoff.files.fsutil import atomic_output

    dest = tmp_path / "clip.mov"
    with pytest.raises(OutputExistsError), atomic_output(dest, replace=False) as first:
        first.write_bytes(b"first writer")
        # A second writer finishes while the first is still writing.
        atomic_write_bytes(dest, b"second writer", replace=False)
    assert dest.read_bytes() == b"second writer"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mov"]  # no .part left
    atomic_write_bytes(dest, b"asked to replace", replace=True)
    assert dest.read_bytes() == b"asked to replace"


def test_two_concurrent_exports_to_one_name(make_clip: MakeClip, tmp_path: Path) -> None:
    source = make_clip("clip.mp4", width=640, height=360, seconds=4.0)
    out = tmp_path / "out"
    argv = [
        sys.executable,
        "-m",
        "handoff",
        "export",
        str(source),
        "--preset",
        "prores-master",
        "--out",
        str(out),
        "--jobs",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [r.communicate(timeout=300)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    heads = sorted(o.splitlines()[0].split()[0] for o in outputs)
    assert heads == ["done", "skipped"], outputs
    assert "exists (use --overwrite to replace it)" in "".join(outputs)
    assert [p.name for p in out.iterdir() if p.name != OUTPUT_MARK] == ["clip.mov"]
    assert run("validate", str(out / "clip.mov"), "--spec", "prores-master")[0] == 0


# ------------------------------------------------------- 10. truncation


def test_a_wav_cut_short_is_incomplete_everywhere(tmp_path: Path) -> None:
    whole = wav_with_channels(tmp_path / "whole.wav", 2, seconds=3.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + 48000 * 4])  # header says 3 s, 1 s is there
    info = probe(cut)
    assert info.truncated is not None and "declares 576000 bytes" in info.truncated
    assert probe(whole).truncated is None
    code, out, _ = run("probe", str(cut))
    assert code == 0 and "! truncated: the WAV's data chunk declares" in out
    code, out, _ = run("validate", str(cut), str(whole), "--spec", "ltx2-audio", "--json")
    by_name = {Path(r["path"]).name: r for r in json.loads(out)["files"]}
    rules = {f["rule"] for f in by_name["cut.wav"]["findings"]}
    assert "complete-file" in rules and by_name["cut.wav"]["status"] == "fail"
    assert "complete-file" not in {f["rule"] for f in by_name["whole.wav"]["findings"]}


@pytest.mark.parametrize("spec", ["h264-review", "prores-master", "ltx2-audio", "prores-lt"])
def test_every_builtin_spec_has_the_complete_file_rule(spec: str) -> None:
    code, out, _ = run("specs", spec)
    assert code == 0
    if spec == "prores-lt":  # extends prores-master: the rule comes with it
        from handoff.validate.spec import load_spec

        assert any(r.id == "complete-file" for r in load_spec(spec).rules)
    else:
        assert 'id = "complete-file"' in out


def test_export_refuses_a_cut_mp4_unless_allowed(make_clip: MakeClip, tmp_path: Path) -> None:
    whole = make_clip("whole.mp4", width=160, height=96, seconds=6.0)
    half = tmp_path / "half.mp4"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out_dir = tmp_path / "out"
    export = ["export", str(half), "--preset", "h264-review", "--fps", "24"]
    export += ["--out", str(out_dir), "--jobs", "1"]
    code, out, _ = run(*export)
    assert code == 2 and "ERROR" in out and "incomplete source (truncated" in out
    assert "--allow-truncated" in out
    assert not out_dir.exists() or not any(out_dir.iterdir())
    code, out, _ = run(*export, "--allow-truncated")
    assert code == 0 and "incomplete source exported as it is" in out
    exported = probe(out_dir / "half.mp4")
    assert exported.truncated is None and exported.duration_s < 4.0


# ------------------------------------------------------- 11. inputs are never written over


def test_prep_audio_never_writes_over_its_input(tmp_path: Path) -> None:
    from handoff.media.synth import speech_like, write_wav

    folder = tmp_path / "ow"
    folder.mkdir()
    voice = speech_like(4.0, 48000)
    source = write_wav(folder / "001_intro.wav", np.stack([voice, voice]), 48000)
    before = sha256(source)
    for flags in ([], ["--overwrite"]):
        code, _, err = run(
            "prep-audio", str(source), "--out", str(folder), "--name", "intro", *flags
        )
        assert code == 2 and "would write over the input" in err, err
        assert sha256(source) == before
    # The same file under another name (a hard link) is the same input.
    master = folder / "intro_master.wav"
    os.link(source, master)
    code, _, err = run(
        "prep-audio", str(master), "--out", str(folder), "--name", "intro", "--overwrite"
    )
    assert code == 2 and "would write over the input" in err
    assert sha256(source) == before


def test_export_and_junit_never_write_over_inputs(make_clip: MakeClip, tmp_path: Path) -> None:
    source = make_clip("clip.mp4", **review_clip_kwargs())
    before = sha256(source)
    out = tmp_path / "out"
    out.mkdir()
    os.link(source, out / "clip.mp4")  # the output name is the input, by another path
    code, text, _ = run(
        "export",
        str(source),
        "--preset",
        "h264-review",
        "--out",
        str(out),
        "--overwrite",
        "--jobs",
        "1",
    )
    assert code == 1 and "would write over the input" in text
    code, _, err = run("validate", str(source), "--spec", "h264-review", "--junit", str(source))
    assert code == 2 and "would write over the input" in err
    assert sha256(source) == before


# ------------------------------------------------------- 12. smaller ones


def test_prep_audio_fails_when_its_output_misses_the_target(tmp_path: Path) -> None:
    dc = tmp_path / "dc.wav"
    with wave.open(str(dc), "wb") as w:  # a constant: no sound a K-weighted meter hears
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(np.full(48000 * 5, 16000, dtype="<i2").tobytes())
    code, out, err = run("prep-audio", str(dc), "--out", str(tmp_path / "cond"))
    assert code == 1, out + err
    assert "FAIL" in out and "x loudness" in out
    assert "1 of 1 segment(s) do not pass 'ltx2-audio'" in out


def test_junit_given_a_folder_is_one_line(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip("a.mp4", **review_clip_kwargs())
    code, out, err = run("validate", str(clip), "--spec", "h264-review", "--junit", str(tmp_path))
    assert code == 2 and not out
    assert (
        err.strip() == f"handoff: error: {tmp_path}: --junit names a folder; give a file "
        "name such as report.xml"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["export", "x.mp4"], "Missing option '--preset' (see 'handoff export --help')"),
        (["validate", "x.mp4", "--spec"], "requires an argument (see 'handoff validate --help')"),
        (["frobnicate"], "No such command 'frobnicate' (see 'handoff --help')"),
        (["export", "x.mp4", "--preset", "h264-review", "--jobs", "0"], "--jobs"),
        (["timeline", "x.mp4"], "Missing option '--format'. Choose from: otio, premiere-xml,"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], needle: str) -> None:
    code, out, err = run(*args)
    assert code == 2 and not out
    assert err.count("\n") == 1 and err.startswith("handoff: error: ") and needle in err


# ------------------------------------------------------- 7 (beyond timelines). names


def test_awkward_file_names_through_every_command(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip("src.mp4", **review_clip_kwargs())
    names = [
        os.fsdecode(b"007_ctrl\x01bel\x07.mp4"),  # control characters
        os.fsdecode(b"012_caf\xe9.mp4"),  # a byte that is not UTF-8 (Latin-1)
        "L" * 240 + ".mp4",  # a .part name built on it would pass NAME_MAX
    ]
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in names:
        shutil.copy(clip, folder / name)
    for engine in ("pyav", "ffmpeg"):
        out = tmp_path / f"out_{engine}"
        code, text, err = run("export", str(folder), "--preset", "h264-review", "--engine",
                              engine, "--out", str(out), "--jobs", "1")  # fmt: skip
        assert code == 0 and not err, text
        assert "\x01" not in text and "\\x01bel\\x07" in text and "caf\\xe9" in text
        assert sorted(p.name for p in out.iterdir()) == sorted([*names, OUTPUT_MARK])
    junit = tmp_path / "report.xml"
    code, text, _ = run("validate", str(folder), "--spec", "h264-review", "--junit", str(junit))
    assert code == 0, text
    from lxml import etree

    cases = [c.get("name") for c in etree.parse(str(junit)).iter("testcase")]
    assert any(str(c).endswith("012_caf\\xe9.mp4") for c in cases) and len(cases) == 3
    dry = ["export", str(folder / names[1]), "--preset", "h264-review", "--dry-run"]
    code, text, _ = run(*dry, "--out", str(tmp_path / "x"), "--engine", "ffmpeg")
    assert code == 0 and "012_caf\\xe9.mp4" in text  # the ffmpeg argv, shown escaped


def test_prep_audio_names_outputs_it_can_write(tmp_path: Path) -> None:
    source = wav_with_channels(tmp_path / os.fsdecode(b"nar\x07ration\xe9.wav"), 2, voice=True)
    code, out, err = run("prep-audio", str(source), "--out", str(tmp_path / "cond"))
    assert code == 0, out + err
    assert "outputs are named 'nar_ration_'" in out
    assert sorted(p.name for p in (tmp_path / "cond").iterdir()) == [
        OUTPUT_MARK,
        "001_nar_ration_.wav",
        "manifest.json",
        "nar_ration__master.wav",
    ]
    code, _, err = run("prep-audio", str(source), "--out", str(tmp_path / "c2"), "--name", "a\x07")
    assert code == 2 and "cannot be used in a file name" in err and "\x07" not in err


def test_tags_that_are_not_utf8_do_not_stop_reading(make_clip: MakeClip, tmp_path: Path) -> None:
    clip = make_clip("clip.mp4", **review_clip_kwargs())
    data = clip.read_bytes()
    brands = data.index(b"iso2", 0, 64)  # ftyp's compatible brands become a container tag
    odd = tmp_path / "odd_tag.mp4"
    odd.write_bytes(data[:brands] + b"\xf0\x28\x8c\x28" + data[brands + 4 :])
    info = probe(odd)  # PyAV's strict tag decoding raised UnicodeDecodeError from av.open
    assert info.video is not None and info.video.codec == "h264" and info.truncated is None
    code, out, _ = run("validate", str(odd), "--spec", "h264-review")
    assert code == 0, out
    assert decode_audio(odd).samples.shape[1] > 0


def test_names_made_from_long_inputs_fit_the_file_system(
    make_clip: MakeClip, tmp_path: Path
) -> None:
    stem = "é" * 125  # 250 bytes in UTF-8: fits as an input, not with a longer suffix
    clip = make_clip(f"{stem}.mp4", **review_clip_kwargs())
    code, out, err = run("timeline", str(clip), "--format", "all", "--out", str(tmp_path / "tl"))
    assert code == 0, out + err
    assert "file names cut to" in out
    written = sorted(p.name for p in (tmp_path / "tl").iterdir())
    assert len(written) == 5 and all(len(n.encode()) <= 255 for n in written)
    voice = wav_with_channels(tmp_path / f"{stem}.wav", 2, voice=True)
    code, out, err = run("prep-audio", str(voice), "--out", str(tmp_path / "cond"))
    assert code == 0, out + err
    assert "the input's name is too long for the outputs' file names: cut to" in out
    assert all(len(p.name.encode()) <= 255 for p in (tmp_path / "cond").iterdir())
    code, _, err = run("prep-audio", str(voice), "--out", str(tmp_path / "c2"), "--name", stem)
    assert code == 2 and "too long for a file name (250 bytes; 244 at most)" in err


def test_a_wav_without_a_data_size_is_said_to_be_unchecked(tmp_path: Path) -> None:
    whole = wav_with_channels(tmp_path / "whole.wav", 2).read_bytes()
    at = whole.index(b"data") + 4
    streamed = tmp_path / "streamed.wav"  # a size of 0, as some streaming writers leave
    streamed.write_bytes(whole[:at] + b"\x00\x00\x00\x00" + whole[at + 4 :])
    info = probe(streamed)
    assert info.truncated is None
    assert any("cannot be checked" in w for w in info.warnings)


def test_a_matroska_cut_in_its_header_is_not_a_disk_error(
    make_clip: MakeClip, tmp_path: Path
) -> None:
    mka = make_clip("a.mkv", width=64, height=64, audio_codec="libopus")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(mka.read_bytes()[:100])
    code, _, err = run("prep-audio", str(cut), "--out", str(tmp_path / "cond"))
    assert code == 2 and "not a media file FFmpeg can read" in err


def test_an_mp4_whose_write_never_finished_is_told_the_same_by_every_command(
    tmp_path: Path,
) -> None:
    """One reading of a file FFmpeg cannot open, whichever stage opens it."""
    cut = REPO / "fixtures" / "interrupted_write_no_moov.mp4"
    said = "MP4/MOV with no index (no 'moov' box"
    wav = tmp_path / "narration.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"\0\0" * 48000)
    for args in (
        ["probe", str(cut)],
        ["validate", str(cut), "--spec", "h264-review"],
        ["export", str(cut), "--preset", "h264-review", "--out", str(tmp_path / "out")],
        ["prep-audio", str(cut), "--out", str(tmp_path / "cond")],
        ["sync", str(cut), "--reference", str(wav)],
    ):
        code, out, err = run(*args)
        assert code == 2 and said in out + err, (args, out, err)
