"""Source timecode: made with FFmpeg's own muxers (PyAV), read by handoff's probe, and
checked against independent readers -- PyAV's stream tags and MediaInfo's "Time code of
first frame" (pymediainfo) -- then carried through an export by both engines.

Expected frame counts are worked out here by SMPTE ST 12-1's rule, not by handoff's
timecode module: a non-drop-frame label counts ``timebase`` frames a second; drop-frame
at 29.97 skips labels 00 and 01 at the start of every minute but each tenth.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from pymediainfo import MediaInfo as PyMediaInfo

from handoff.errors import UsageError
from handoff.export.engines import ENGINES, Engine, execute
from handoff.export.plan import ExportOptions, plan_export
from handoff.media.isobmff import read_movie
from handoff.media.synth import ClipSpec, write_clip, write_wav
from handoff.probe.reader import probe, to_json
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec
from tests.conftest import MakeDir, run_handoff

NTSC_FILM = Fraction(24000, 1001)
NTSC_VIDEO = Fraction(30000, 1001)
EXTENSION = {"h264-review": ".mp4", "prores-master": ".mov"}


def smpte_frames(label: str, rate: Fraction) -> int:
    """The frame count ``label`` names at ``rate``, by ST 12-1 (independent of handoff)."""
    hh, mm, ss, ff = (int(x) for x in re.split("[:;]", label))
    base = -(-rate.numerator // rate.denominator)  # 24 at 23.976, 30 at 29.97
    frames = (hh * 3600 + mm * 60 + ss) * base + ff
    if ";" in label:
        minutes = hh * 60 + mm
        frames -= 2 * (minutes - minutes // 10)
    return frames


@dataclass(frozen=True)
class Case:
    name: str
    fps: Fraction
    label: str


CASES = [
    Case("23976", NTSC_FILM, "01:00:00:00"),
    Case("2997df", NTSC_VIDEO, "00:59:59;28"),
    Case("25", Fraction(25), "10:00:00:00"),
    Case("24", Fraction(24), "00:00:10:13"),
]
SOURCES = [(c, ext) for c in CASES for ext in (".mov", ".mp4")]


def _clip(folder: Path, case: Case, ext: str, **spec: object) -> Path:
    path = folder / f"{case.name}{ext}"
    if not path.exists():
        settings = {"width": 160, "height": 90, "seconds": 1.0, **spec}
        write_clip(path, ClipSpec(fps=case.fps, timecode=case.label, **settings))  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="module")
def folder(module_tmp: MakeDir) -> Path:
    return module_tmp("timecode")


def _mediainfo_first_frame(path: Path) -> str | None:
    """MediaInfo's "Time code of first frame" of the file's timecode track."""
    for track in PyMediaInfo.parse(str(path)).tracks:
        if track.track_type == "Other" and track.time_code_of_first_frame:
            return str(track.time_code_of_first_frame)
    return None


def _pyav_timecode(path: Path) -> str | None:
    """The ``timecode`` tag FFmpeg's demuxer reports on the video stream."""
    with av.open(str(path)) as container:
        return container.streams.video[0].metadata.get("timecode")


# ------------------------------------------------------------------ probing


@pytest.mark.parametrize(("case", "ext"), SOURCES, ids=[f"{c.name}{e}" for c, e in SOURCES])
def test_probe_reads_the_timecode_track_exactly(folder: Path, case: Case, ext: str) -> None:
    path = _clip(folder, case, ext)
    info = probe(path)
    tc = info.timecode
    assert tc is not None, info.warnings
    frame = smpte_frames(case.label, case.fps)
    assert (tc.label, tc.origin, tc.frame, tc.rate) == (case.label, "tmcd", frame, case.fps)
    assert tc.start == frame / case.fps  # exact: 86400 frames at 23.976 is 3603.6 s
    assert tc.drop_frame == (";" in case.label)
    assert not info.warnings
    # Independent readers agree on the label.
    assert _mediainfo_first_frame(path) == case.label
    assert _pyav_timecode(path) == case.label
    # The timecode track is still listed as a stream of its own.
    assert [o.codec for o in info.others] == ["tmcd"]


def test_the_ntsc_start_is_the_clock_time_the_label_stands_for(folder: Path) -> None:
    tc = probe(_clip(folder, CASES[0], ".mov")).timecode
    assert tc is not None and tc.start == Fraction(36036, 10)  # 3603.6 s


def test_a_clip_without_timecode_has_none(folder: Path) -> None:
    path = write_clip(folder / "plain.mp4", ClipSpec(width=160, height=90, seconds=0.5))
    info = probe(path)
    assert info.timecode is None and not info.others
    assert _mediainfo_first_frame(path) is None
    assert to_json(info)["timecode"] is None
    result = run_handoff("probe", str(path))
    assert result.returncode == 0 and "  timecode  " not in result.stdout


def test_probe_prints_the_timecode_and_its_json(folder: Path) -> None:
    case = CASES[1]
    path = _clip(folder, case, ".mov")
    text = run_handoff("probe", str(path))
    assert text.returncode == 0, text.stderr
    assert f"timecode  {case.label} (tmcd track" in text.stdout
    result = run_handoff("probe", str(path), "--json")
    (report,) = json.loads(result.stdout)
    frame = smpte_frames(case.label, case.fps)
    start = Fraction(frame) / case.fps
    assert report["timecode"] == {
        "label": case.label,
        "start_s": round(float(start), 6),
        "start_s_exact": f"{start.numerator}/{start.denominator}",
        "origin": "tmcd",
        "frame": frame,
        "rate": "30000/1001",
        "drop_frame": True,
        "samples": None,
    }


def test_json_reference_names_the_timecode_keys(folder: Path) -> None:
    """docs/reference/json.md names every key of probe's and the plan's timecode."""
    doc = (Path(__file__).parent.parent / "docs" / "reference" / "json.md").read_text("utf-8")
    info = probe(_clip(folder, CASES[2], ".mp4"))
    options = ExportOptions(fps=Fraction(24), rate_conversion="drop")
    plan = plan_export(info, load_spec("prores-master"), options)
    keys = set(to_json(info)["timecode"]) | set(plan.to_json()["video"]) | {"timecode"}
    keys |= set(plan.to_json()["timecode"])
    assert [k for k in sorted(keys) if not re.search(rf"`{k}`", doc)] == []


@pytest.mark.parametrize(
    ("samples", "label"),
    [(172_800_000, "01:00:00.000"), (172_800_000 + 12_345, "01:00:00.257")],
    ids=["on-the-hour", "sub-millisecond"],
)
def test_a_broadcast_wav_time_reference(folder: Path, samples: int, label: str) -> None:
    """EBU Tech 3285's time reference, written by FFmpeg's wav muxer (write_bext)."""
    path = write_wav(
        folder / f"bext-{samples}.wav",
        np.zeros((2, 4800), np.float32),
        48000,
        time_reference=samples,
    )
    info = probe(path)
    tc = info.timecode
    assert tc is not None, info.warnings
    assert (tc.label, tc.origin, tc.samples, tc.frame, tc.rate) == (
        label,
        "bext",
        samples,
        None,
        None,
    )
    assert tc.start == Fraction(samples, 48000)
    # MediaInfo reads the same chunk as the audio's delay, in milliseconds.
    (audio,) = [t for t in PyMediaInfo.parse(str(path)).tracks if t.track_type == "Audio"]
    assert audio.delay__origin == "Container (bext)"
    assert float(audio.delay) / 1000 == pytest.approx(float(tc.start), abs=0.001)
    # PyAV's demuxer reports the tag FFmpeg read from the chunk.
    with av.open(str(path)) as container:
        assert container.metadata["time_reference"] == str(samples)
    text = run_handoff("probe", str(path))
    assert f"timecode  {label} (bext time reference, {samples} samples)" in text.stdout


def test_a_wav_without_bext_has_no_timecode(folder: Path) -> None:
    path = write_wav(folder / "plain.wav", np.zeros((1, 480), np.float32), 48000)
    assert probe(path).timecode is None


@pytest.mark.parametrize(
    ("fps", "label"),
    [(Fraction(25), "01:00:00:25"), (Fraction(24), "01:00:00;00"), (NTSC_VIDEO, "01:01:00;00"),
     (Fraction(25), "1:00:00:00")],
    ids=["frames-past-the-rate", "drop-frame-at-24", "a-dropped-label", "malformed"],
)  # fmt: skip
def test_synth_refuses_a_label_the_muxer_would_drop(
    tmp_path: Path, fps: Fraction, label: str
) -> None:
    with pytest.raises(UsageError):
        write_clip(tmp_path / "x.mov", ClipSpec(fps=fps, seconds=0.2, timecode=label))


# ------------------------------------------------------------------ damage


def _tmcd_chunk_box(data: bytes, offset: int) -> int:
    """File position of the stco entry that holds the timecode track's chunk offset."""
    at = 0
    while (at := data.find(b"stco", at + 1)) != -1:
        count, first = struct.unpack_from(">II", data, at + 8)
        if count == 1 and first == offset:
            return at + 12
    raise AssertionError("no stco entry points at the timecode sample")


@pytest.mark.parametrize("damage", ["absurd-sample", "sample-past-the-end"])
def test_a_broken_timecode_track_is_a_warning(folder: Path, tmp_path: Path, damage: str) -> None:
    source = _clip(folder, CASES[0], ".mov")
    movie = read_movie(source)
    assert movie is not None and movie.layout.timecode is not None
    offset = movie.layout.timecode.first_offset
    assert offset is not None
    data = bytearray(source.read_bytes())
    if damage == "absurd-sample":
        struct.pack_into(">I", data, offset, 0xFFFFFFF0)  # ~2 million hours
    else:
        struct.pack_into(">I", data, _tmcd_chunk_box(bytes(data), offset), len(data) + 100)
    broken = tmp_path / f"{damage}.mov"
    broken.write_bytes(bytes(data))
    info = probe(broken)
    assert info.timecode is None
    assert any(w.startswith("no timecode read: the timecode track") for w in info.warnings)
    result = run_handoff("probe", str(broken))
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "no timecode read" in result.stdout
    assert info.video is not None and info.video.frames == 24  # the rest is read as before


def test_an_unreadable_timecode_tag_is_a_warning(tmp_path: Path) -> None:
    """Matroska keeps a timecode as a tag only; one that does not exist at the rate is
    a warning (FFmpeg's matroska muxer writes the tag as given)."""
    path = tmp_path / "tag.mkv"
    write_clip(path, ClipSpec(fps=Fraction(25), seconds=0.2, audio_rate=None, width=64, height=64))
    good = tmp_path / "good.mkv"
    bad = tmp_path / "bad.mkv"
    for dest, label in ((good, "10:00:00:12"), (bad, "10:00:00:40")):
        with av.open(str(path)) as src, av.open(str(dest), "w") as out:
            vin = src.streams.video[0]
            vout = out.add_stream_from_template(vin)
            vout.metadata["timecode"] = label
            for packet in src.demux(vin):
                if packet.dts is not None:
                    packet.stream = vout
                    out.mux(packet)
    tc = probe(good).timecode
    assert tc is not None and (tc.label, tc.origin, tc.frame) == ("10:00:00:12", "metadata", 900012)
    info = probe(bad)
    assert info.timecode is None
    assert any("no timecode read: the timecode tag" in w for w in info.warnings)


# ------------------------------------------------------------------ export


def _export(source: Path, preset: str, engine: Engine, out: Path, **options: object) -> Path:
    info = probe(source)
    dest = out / f"{source.stem}-{engine}{EXTENSION[preset]}"
    plan = plan_export(info, load_spec(preset), ExportOptions(**options), dest=dest)  # type: ignore[arg-type]
    execute(plan, dest, engine)
    report = validate_file(dest, load_spec(preset))
    assert report.status == "pass" and not report.findings, report.findings
    return dest


@pytest.mark.parametrize("preset", ["h264-review", "prores-master"])
@pytest.mark.parametrize("engine", ENGINES)
def test_an_export_keeps_the_timecode(
    folder: Path, tmp_path: Path, engine: Engine, preset: str
) -> None:
    """Drop-frame at 29.97, the odd label just before the hour: the output's first frame
    has the source's label, as handoff's probe, MediaInfo and PyAV read it."""
    case = CASES[1]
    source = _clip(folder, case, ".mov")
    plan = plan_export(probe(source), load_spec(preset), ExportOptions())
    assert plan.timecode is not None and plan.timecode.label == case.label
    assert f"timecode {case.label} kept (written as a timecode track)" in map(str, plan.notes)
    assert plan.not_carried == ()  # the timecode track is carried, as a new one
    out = _export(source, preset, engine, tmp_path)
    info = probe(out)
    tc = info.timecode
    assert tc is not None and (tc.label, tc.frame, tc.drop_frame) == (
        case.label,
        smpte_frames(case.label, case.fps),
        True,
    )
    assert [o.codec for o in info.others] == ["tmcd"]  # one track, not two
    assert _mediainfo_first_frame(out) == case.label
    assert _pyav_timecode(out) == case.label


@pytest.mark.parametrize("engine", ENGINES)
def test_a_rate_change_keeps_the_label(folder: Path, tmp_path: Path, engine: Engine) -> None:
    """25 fps at 10:00:00:00 written at 24 fps: 10:00:00:00 again (36000 s after midnight)."""
    source = _clip(folder, CASES[2], ".mp4")
    out = _export(source, "prores-master", engine, tmp_path, fps=Fraction(24),
                  rate_conversion="drop")  # fmt: skip
    tc = probe(out).timecode
    assert tc is not None
    assert (tc.label, tc.rate, tc.start) == ("10:00:00:00", Fraction(24), Fraction(36000))
    assert _mediainfo_first_frame(out) == "10:00:00:00"


@pytest.mark.parametrize(
    ("fps", "frame"), [(Fraction(24), 3600 * 24), (NTSC_VIDEO, 3600 * 30)], ids=["24", "29.97"]
)
def test_the_plan_keeps_the_label_at_another_rate(folder: Path, fps: Fraction, frame: int) -> None:
    """01:00:00:00 at 23.976 (3603.6 s after midnight: a label counts frames, it is not
    a clock) exported at 24 or 29.97 fps is 01:00:00:00 again -- frame 86400 at 24,
    108000 at 29.97 -- not 01:00:03:14, where reading the label as a clock would put it."""
    source = probe(_clip(folder, CASES[0], ".mov"))
    plan = plan_export(source, load_spec("prores-master"), ExportOptions(fps=fps))
    assert plan.timecode is not None
    assert (plan.timecode.label, plan.timecode.frame) == ("01:00:00:00", frame)
    assert plan.timecode.start == frame / fps
    assert not plan.timecode.drop_frame  # the source's label is non-drop-frame
    assert "timecode 01:00:00:00 kept (written as a timecode track)" in map(str, plan.notes)
    assert plan.to_json()["timecode"]["label"] == "01:00:00:00"


def test_a_drop_frame_label_at_another_rate(folder: Path) -> None:
    """29.97 drop-frame 00:59:59;28 exported at 24 fps: its hours, minutes and seconds
    kept, its frames field counted at 24 (28 of 30 is 22.4 of 24: 22, the nearest)."""
    source = probe(_clip(folder, CASES[1], ".mov"))
    plan = plan_export(source, load_spec("prores-master"),
                       ExportOptions(fps=Fraction(24), rate_conversion="drop"))  # fmt: skip
    assert plan.timecode is not None
    assert (plan.timecode.label, plan.timecode.frame) == ("00:59:59:22", 3599 * 24 + 22)
    assert not plan.timecode.drop_frame
    assert any("written as 00:59:59:22" in str(n) and "nearest" in str(n) for n in plan.notes)


@pytest.mark.parametrize(
    ("conversion", "label", "frame"),
    [("retime", "00:00:10:20", 10 * 24 + 20), ("drop", "00:00:10:19", 259)],
)
def test_a_retime_keeps_the_label_and_a_drop_scales_its_frames(
    folder: Path, tmp_path: Path, conversion: str, label: str, frame: int
) -> None:
    """25 fps at 00:00:10:20 (10.8 s) to 24 fps: a retime keeps every frame, so the first
    keeps its label (frame 260 at 24); dropping frames keeps its seconds and counts its
    frames field at 24 (20 of 25 is 19.2 of 24), the nearest, 00:00:10:19."""
    case = Case("25-odd", Fraction(25), "00:00:10:20")
    source = probe(_clip(folder, case, ".mp4"))
    plan = plan_export(source, load_spec("prores-master"),
                       ExportOptions(fps=Fraction(24), rate_conversion=conversion))  # type: ignore[arg-type]  # fmt: skip
    assert plan.timecode is not None
    assert (plan.timecode.label, plan.timecode.frame) == (label, frame)
    out = _export(_clip(folder, case, ".mp4"), "prores-master", "pyav", tmp_path,
                  fps=Fraction(24), rate_conversion=conversion)  # fmt: skip
    assert _mediainfo_first_frame(out) == label
