"""What ``handoff export --dry-run`` and ``handoff deliver`` say about conforming: per
stream, copy, retag or encode and the rule that decided it, in text and JSON, and
``--reencode``, which encodes everything.

The media are made here and checked first by independent readers (PyAV demux,
pymediainfo), so that "conformant", "a 10-second GOP" and "untagged" are facts of the
files, not of the planner under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import pytest
from click.testing import CliRunner
from pymediainfo import MediaInfo as PyMediaInfo

from handoff.cli import main
from handoff.media.synth import ClipSpec, write_clip
from tests.conftest import MakeDir, review_clip_kwargs, run_handoff


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def dry_run(source: Path, preset: str, *more: str) -> tuple[str, dict[str, Any]]:
    """The dry run's text (the lines under the plan's head) and its JSON plan."""
    code, text, err = run("export", str(source), "--preset", preset, "--dry-run", *more)
    assert code == 0, text + err
    code, out, err = run("export", str(source), "--preset", preset, "--dry-run", "--json", *more)
    assert code == 0, out + err
    [item] = json.loads(out)["files"]
    assert item["status"] == "planned"
    return text, item["plan"]


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        tb = stream.time_base
        assert tb is not None
        return sorted(
            float(p.pts * tb) for p in c.demux(stream) if p.pts is not None and p.is_keyframe
        )


@pytest.fixture(scope="module")
def media(module_tmp: MakeDir) -> dict[str, Path]:
    """A ProRes HQ master exported by handoff itself, an H.264 with a 10-second GOP and
    44.1 kHz sound, and an H.264 that meets h264-review but has no colour tags."""
    folder = module_tmp("conform")
    review = review_clip_kwargs(seconds=2.0)
    take = write_clip(folder / "take.mp4", ClipSpec(**review))  # type: ignore[arg-type]
    code, out, err = run("export", str(take), "--preset", "prores-master", "--out",
                         str(folder / "masters"), "--jobs", "1")  # fmt: skip
    assert code == 0, out + err
    long_gop = {
        **review,
        "seconds": 11.0,
        "gop": 240,
        "audio_rate": 44100,
        "video_options": {
            "preset": "veryfast",
            "x264-params": "keyint=240:min-keyint=240:scenecut=0:open-gop=0",
        },
    }
    untagged = ClipSpec(**{**review, "colour_tags": False})  # type: ignore[arg-type]
    return {
        "master": folder / "masters" / "take.mov",
        "long_gop": write_clip(folder / "long_gop.mp4", ClipSpec(**long_gop)),  # type: ignore[arg-type]
        "untagged": write_clip(folder / "untagged.mp4", untagged),
    }


def test_the_media_are_what_the_tests_say(media: dict[str, Path]) -> None:
    mi = PyMediaInfo.parse(media["master"])
    video, audio = mi.video_tracks[0], mi.audio_tracks[0]
    assert video.format == "ProRes" and video.format_profile == "422 HQ"
    assert (
        audio.format == "PCM" and int(audio.sampling_rate) == 48000 and int(audio.bit_depth) == 24
    )
    assert keyframe_times(media["long_gop"]) == [0.0, 10.0]
    assert int(PyMediaInfo.parse(media["long_gop"]).audio_tracks[0].sampling_rate) == 44100
    with av.open(str(media["untagged"])) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace) == (2, 2, 2)  # unspecified


def test_a_conformant_master_is_copied_picture_and_sound(media: dict[str, Path]) -> None:
    text, plan = dry_run(media["master"], "prores-master")
    assert "picture: copy (every rule of the preset passes as it is)" in text
    assert "sound: copy (every rule of the preset passes and its length is the picture's)" in text
    assert plan["video"]["decision"] == {
        "action": "copy",
        "rule": None,
        "why": "every rule of the preset passes as it is",
    }
    assert plan["video"]["retag"] is None
    assert plan["audio"]["decision"]["action"] == "copy"
    assert plan["audio"]["decision"]["rule"] is None


def test_a_long_gop_is_encoded_and_the_rule_named(media: dict[str, Path]) -> None:
    text, plan = dry_run(media["long_gop"], "h264-review")
    lines = text.splitlines()
    [picture] = [line.strip() for line in lines if line.strip().startswith("picture:")]
    assert picture.startswith(
        "picture: encode -- keyframe-interval: video.max_keyframe_interval_s is 10 s, "
        "expected <= 2 s"
    ), picture
    assert "sound: encode -- sample-rate: 44100 Hz; 48000 Hz is written" in text
    video, audio = plan["video"]["decision"], plan["audio"]["decision"]
    assert (video["action"], video["rule"]) == ("encode", "keyframe-interval")
    assert "video.max_keyframe_interval_s is 10 s" in video["why"]
    assert plan["video"]["retag"] is None
    assert (audio["action"], audio["rule"]) == ("encode", "sample-rate")
    # The picture's line sits under its plan's line, before the notes.
    head = next(i for i, line in enumerate(lines) if line.startswith("plan "))
    assert lines[head + 1].strip() == picture
    assert lines[head + 2].strip().startswith("sound: encode")


def test_an_untagged_h264_is_retagged(media: dict[str, Path], tmp_path: Path) -> None:
    text, plan = dry_run(media["untagged"], "h264-review")
    assert (
        "picture: retag with h264_metadata (only the colour tags are missing: colour_primaries=1, "
        "transfer_characteristics=1, matrix_coefficients=1)"
    ) in text
    assert "sound: copy" in text
    assert plan["video"]["decision"]["action"] == "retag"
    assert plan["video"]["decision"]["rule"] is None
    retag = plan["video"]["retag"]
    assert retag == {
        "filter": "h264_metadata",
        "options": {
            "colour_primaries": "1",
            "transfer_characteristics": "1",
            "matrix_coefficients": "1",
        },
    }
    # FFmpeg takes the filter as the plan gives it, and the stream it writes decodes as
    # BT.709 (H.273 code point 1) with the packets' picture untouched.
    description = retag["filter"] + "=" + ":".join(f"{k}={v}" for k, v in retag["options"].items())
    out = tmp_path / "retagged.mp4"
    with av.open(str(media["untagged"])) as src, av.open(str(out), "w") as dst:
        stream = src.streams.video[0]
        written = dst.add_stream_from_template(stream)
        bsf = av.BitStreamFilterContext(description, stream, written)
        packets = [p for p in src.demux(stream) if p.size]
        for packet in packets:
            for filtered in bsf.filter(packet):
                filtered.stream = written
                dst.mux(filtered)
        for filtered in bsf.filter(None):
            filtered.stream = written
            dst.mux(filtered)
    with av.open(str(out)) as check, av.open(str(media["untagged"])) as original:
        decoded = list(check.decode(video=0))
        # Each frame's tags come from the SPS the filter rewrote (2: unspecified before).
        assert {(f.color_primaries, f.color_trc, f.colorspace) for f in decoded} == {(1, 1, 1)}
        frames = [f.to_ndarray() for f in decoded]
        before = [f.to_ndarray() for f in original.decode(video=0)]
    assert len(frames) == len(before) == 48
    assert all((a == b).all() for a, b in zip(frames, before, strict=True))


@pytest.mark.parametrize(("name", "preset"), [("master", "prores-master"),
                         ("long_gop", "h264-review"), ("untagged", "h264-review")])  # fmt: skip
def test_reencode_encodes_every_stream(media: dict[str, Path], name: str, preset: str) -> None:
    text, plan = dry_run(media[name], preset, "--reencode")
    said = [line.strip() for line in text.splitlines() if line.strip().startswith(("picture:",
            "sound:"))]  # fmt: skip
    for key in ("video", "audio"):
        assert plan[key]["decision"] == {
            "action": "encode",
            "rule": "--reencode",
            "why": "asked for (--reencode)",
        }, key
    assert plan["video"]["retag"] is None
    assert said == ["picture: encode -- asked for (--reencode)",
                    "sound: encode -- asked for (--reencode)"]  # fmt: skip


# --------------------------------------------------------------------- deliver


def _master_step(out: str) -> str:
    [line] = [line for line in out.splitlines() if line.strip().startswith(("run", "keep"))
              and " master " in line]  # fmt: skip
    return " ".join(line.split())


def test_deliver_reruns_the_master_when_reencode_changes(tmp_path: Path) -> None:
    """--reencode (a flag, or ``reencode = true`` in a batch file) is part of what the
    master depends on: turning it on or off runs the master again, saying why, and
    keeps the receive step."""
    renders = tmp_path / "renders"
    renders.mkdir()
    write_clip(renders / "001_a.mp4", ClipSpec(**review_clip_kwargs(seconds=1.0)))  # type: ignore[arg-type]
    args = ("deliver", "renders", "--out", "d", "--jobs", "1", "--format", "otio")
    first = run_handoff(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr

    same = run_handoff(*args, "--dry-run", cwd=tmp_path)
    assert _master_step(same.stdout) == "keep master done", same.stdout
    asked = run_handoff(*args, "--reencode", "--dry-run", cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    assert _master_step(asked.stdout) == "run master the settings changed", asked.stdout
    assert "keep     received" in asked.stdout
    (tmp_path / "batch.toml").write_text(
        'renders = ["renders"]\nout = "d"\nformat = "otio"\nreencode = true\n', encoding="utf-8"
    )
    from_file = run_handoff("deliver", "--config", "batch.toml", "--dry-run", cwd=tmp_path)
    assert _master_step(from_file.stdout) == "run master the settings changed", from_file.stdout
    plan = json.loads(run_handoff(*args, "--reencode", "--dry-run", "--json", cwd=tmp_path).stdout)
    assert plan["options"]["reencode"] is True

    again = run_handoff(*args, "--reencode", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    lines = (tmp_path / "d" / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    masters = [json.loads(x)["record"] for x in lines if '"record"' in x]
    masters = [r for r in masters if r["step"] == "master"]
    assert len(masters) == 2 and masters[0]["settings"] != masters[1]["settings"]
    assert masters[1]["status"] == "done"
    kept = run_handoff(*args, "--reencode", "--dry-run", cwd=tmp_path)
    assert _master_step(kept.stdout) == "keep master done", kept.stdout
    back = run_handoff(*args, "--dry-run", cwd=tmp_path)
    assert _master_step(back.stdout) == "run master the settings changed", back.stdout


def test_a_batch_file_reencode_must_be_true_or_false(tmp_path: Path) -> None:
    (tmp_path / "batch.toml").write_text('reencode = "yes"\n', encoding="utf-8")
    proc = run_handoff("deliver", "--config", "batch.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "handoff: error: batch.toml: reencode must be true or false"
    ]


def test_reencode_reaches_both_exports_and_only_their_settings(tmp_path: Path) -> None:
    """The planner gives --reencode to the master and the review export alike and puts it
    in their settings (so either re-runs), not in the receive step's (the render is
    read the same way)."""
    from handoff.deliver.journal import Stamper
    from handoff.deliver.plan import DeliverOptions, Step, plan_delivery

    render = tmp_path / "001_a.mp4"
    render.write_bytes(b"a render")

    def steps(reencode: bool) -> dict[str, Step]:
        options = DeliverOptions(out=tmp_path / "d", review="h264-review", reencode=reencode)
        plan = plan_delivery([(render, Stamper().stamp(render))], options, {})
        return {sp.step.kind: sp.step for sp in plan.steps}

    plain, asked = steps(False), steps(True)
    for kind in ("master", "review"):
        on, off = asked[kind].export, plain[kind].export
        assert on is not None and off is not None
        assert on.reencode and not off.reencode
        assert asked[kind].settings == {**plain[kind].settings, "reencode": True}
    assert asked["receive"].settings == plain["receive"].settings


def test_a_real_export_says_what_it_copied(media: dict[str, Path], tmp_path: Path) -> None:
    """The ``done`` line names each stream's action, as the dry run does, and ``--json``
    carries the plan that ran; an independent read of the output agrees with the words."""
    out = tmp_path / "out"
    code, text, err = run("export", str(media["untagged"]), "--preset", "h264-review",
                          "--out", str(out), "--jobs", "1")  # fmt: skip
    assert code == 0, text + err
    assert text.startswith("done ")
    assert "picture: retag with h264_metadata (only the colour tags are missing" in text
    assert "sound: copy (" in text
    code, raw, err = run("export", str(media["untagged"]), "--preset", "h264-review",
                         "--out", str(out), "--jobs", "1", "--overwrite", "--json")  # fmt: skip
    assert code == 0, raw + err
    [item] = json.loads(raw)["files"]
    assert item["status"] == "done"
    assert item["plan"]["video"]["decision"]["action"] == "retag"
    assert item["plan"]["audio"]["decision"]["action"] == "copy"
    written = out / media["untagged"].name
    with av.open(str(media["untagged"])) as src, av.open(str(written)) as dst:
        a = [bytes(p) for p in src.demux(audio=0) if p.size]
        b = [bytes(p) for p in dst.demux(audio=0) if p.size]
    assert a == b
