"""Export carries one picture and one sound, and says what it leaves out.

A source with a second (5.1 AC-3) sound, a QuickTime timecode track and subtitles: the
report names each stream not carried, ``--audio-stream`` picks the sound, the timecode
is carried (the output gets a timecode track of its own), and every output passes the
same ``handoff validate`` a user runs afterwards.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from handoff.export.engines.ffmpeg_engine import ffmpeg_binary
from handoff.probe.reader import probe
from handoff.validate.spec import builtin_spec_text
from tests.conftest import MakeDir, run_handoff

RATE = 48000
TONES = {1: 440.0, 2: 1000.0}
"""Stream index -> the tone it carries, to tell the sounds apart in the output."""


def _tone(freq: float, channels: int, n: int, start: int) -> np.ndarray:
    t = (np.arange(n) + start) / RATE
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.tile(wave, (channels, 1))


def _two_sounds_and_timecode(path: Path, seconds: float = 2.0) -> Path:
    """H.264 picture, AAC stereo at 440 Hz (#1), AC-3 5.1 at 1 kHz (#2), and the
    timecode track FFmpeg's mov muxer writes for a ``timecode`` tag (#3)."""
    with av.open(str(path), "w", format="mov") as out:
        out.metadata["timecode"] = "01:00:00:00"
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 128, 72, "yuv420p"
        sounds = [
            out.add_stream("aac", rate=RATE, layout="stereo"),
            out.add_stream("ac3", rate=RATE, layout="5.1"),
        ]
        for i in range(round(seconds * 24)):
            frame = av.VideoFrame.from_ndarray(np.full((72, 128, 3), i * 5, np.uint8), "rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for stream, freq in zip(sounds, TONES.values(), strict=True):
            cc = stream.codec_context
            size = cc.frame_size or 1024
            channels = cc.layout.nb_channels
            for start in range(0, round(seconds * RATE), size):
                sound = av.AudioFrame.from_ndarray(
                    _tone(freq, channels, size, start), format="fltp", layout=cc.layout.name
                )
                sound.sample_rate, sound.pts = RATE, start
                out.mux(stream.encode(sound))
            out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def source(module_tmp: MakeDir) -> Path:
    """The source above with a mov_text subtitle stream added by the ffmpeg CLI (PyAV
    does not encode subtitles), using the binary handoff's ffmpeg engine would run."""
    folder = module_tmp("streams")
    plain = _two_sounds_and_timecode(folder / "plain.mov")
    subs = folder / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n", encoding="utf-8")
    dest = folder / "many.mov"
    argv = [ffmpeg_binary().path, "-v", "error", "-i", str(plain), "-i", str(subs)]
    argv += ["-map", "0", "-map", "1", "-c", "copy", "-c:s", "mov_text", str(dest)]
    subprocess.run(argv, check=True, timeout=60)
    return dest


def _dominant_frequency(path: Path) -> float:
    planar = av.AudioResampler(format="fltp")  # PCM decodes interleaved: one row per channel
    with av.open(str(path)) as container:
        chunks = [out.to_ndarray() for f in container.decode(audio=0) for out in planar.resample(f)]
    mono = np.concatenate(chunks, axis=1).astype(np.float64).mean(axis=0)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    return float(np.fft.rfftfreq(mono.size, 1 / RATE)[int(np.argmax(spectrum))])


def test_the_probe_lists_the_streams_that_are_neither_picture_nor_sound(source: Path) -> None:
    info = probe(source)
    assert [(a.index, a.codec, a.channels) for a in info.audios] == [(1, "aac", 2), (2, "ac3", 6)]
    kinds = {(o.type, o.codec) for o in info.others}
    assert ("data", "tmcd") in kinds
    assert ("subtitle", "mov_text") in kinds
    result = run_handoff("probe", str(source), "--json")
    (report,) = json.loads(result.stdout)
    streams = report["streams"]
    assert {(s["type"], s["codec"]) for s in streams} >= {
        ("data", "tmcd"),
        ("subtitle", "mov_text"),
    }


@pytest.mark.parametrize("engine", ["pyav", "ffmpeg"])
def test_every_stream_left_out_is_named_and_the_sound_can_be_chosen(
    source: Path, tmp_path: Path, engine: str
) -> None:
    first = run_handoff("export", str(source), "--preset", "prores-master", "--engine", engine,
                        "--out", str(tmp_path / "first"), "--json")  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    (result,) = json.loads(first.stdout)["files"]
    assert result["status"] == "done"
    left_out = result["not_carried"]
    assert any(s.startswith("audio #2 (ac3, 6 ch") and "--audio-stream 2" in s for s in left_out)
    assert not any("tmcd" in s for s in left_out)  # carried: see the timecode below
    assert any(s.startswith("subtitles #") and "mov_text" in s for s in left_out)
    assert all(f"not carried: {s}" in result["notes"] for s in left_out)
    out = Path(result["dest"])
    assert _dominant_frequency(out) == pytest.approx(TONES[1], abs=2)
    carried = probe(out)
    assert carried.timecode is not None and carried.timecode.label == "01:00:00:00"
    assert [o.codec for o in carried.others] == ["tmcd"]

    chosen = run_handoff("export", str(source), "--preset", "prores-master", "--engine", engine,
                         "--audio-stream", "2", "--out", str(tmp_path / "chosen"))  # fmt: skip
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert "not carried: audio #1 (aac, 2 ch): choose it with --audio-stream 1" in chosen.stdout
    assert "6-channel audio" in chosen.stdout and "down-mixed to stereo" in chosen.stdout
    out2 = tmp_path / "chosen" / "many.mov"
    assert _dominant_frequency(out2) == pytest.approx(TONES[2], abs=2)
    # What export called done passes the check a user runs afterwards.
    for path in (out, out2):
        check = run_handoff("validate", str(path), "--spec", "prores-master")
        assert check.returncode == 0, check.stdout


def test_an_audio_stream_that_is_not_there_fails_naming_the_ones_that_are(
    source: Path, tmp_path: Path
) -> None:
    result = run_handoff("export", str(source), "--preset", "prores-master",
                         "--audio-stream", "3", "--out", str(tmp_path))  # fmt: skip
    assert result.returncode == 1
    assert "--audio-stream 3: no such audio stream; the source has #1 (aac, 2 ch), " in (
        result.stdout
    )
    assert not list(tmp_path.iterdir())


def test_a_source_without_sound_is_done_when_the_spec_does_not_ask_for_it(
    tmp_path: Path,
) -> None:
    """The refusal comes from the preset's own rule: a spec without audio-present takes
    a mute source, and says it wrote no sound."""
    from handoff.media.synth import ClipSpec, write_clip

    src = write_clip(tmp_path / "mute.mp4", ClipSpec(width=160, height=96, seconds=1.0,
                                                     audio_rate=None))  # fmt: skip
    spec = tmp_path / "picture-only.toml"
    builtin = builtin_spec_text("h264-review")
    rules, export = builtin.split("\n[export]", 1)
    kept = [
        block
        for block in rules.split("\n[[rules]]")
        if 'fact = "audio.' not in block and 'fact = "av_duration' not in block
    ]
    text = "\n[[rules]]".join(kept) + "\n[export]" + export
    spec.write_text(text.replace('name = "h264-review"', 'name = "picture-only"'), "utf-8")
    result = run_handoff("export", str(src), "--preset", str(spec), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no audio in the source, and none written ('picture-only' allows that)" in result.stdout
    assert probe(tmp_path / "o" / "mute.mp4").audio is None
