"""Pixel aspect ratio and colour tags: probed exactly, planned, and carried by both engines
into the bitstream as well as the container, for every preset.

Outputs are read back by readers that are not handoff: FFmpeg's ``trace_headers``
bitstream filter (the H.264 SPS VUI), the ProRes frame header's bytes (SMPTE RDD 36),
the MOV/MP4 ``pasp`` box, what ``ffmpeg -i`` reports for the stream, and MediaInfo
(pymediainfo), which says where each colour tag came from ("Container / Stream").
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from pymediainfo import MediaInfo as PyMediaInfo

from handoff.export.engines import ENGINES, Engine, ffmpeg_engine
from handoff.export.plan import ExportOptions, ExportPlan, destination, export_settings, plan_export
from handoff.export.run import ExportJob, export_one
from handoff.media.synth import ClipSpec, write_clip
from handoff.probe.reader import probe, to_json
from handoff.validate.check import validate_file
from handoff.validate.spec import load_spec, parse_spec
from tests.conftest import REPO, corpus_file, run_handoff

PRESETS = ["h264-review", "prores-master", "prores-proxy", "prores-lt", "prores-422", "prores-4444"]

# H.264 Table E-1: aspect_ratio_idc -> SAR (255 = Extended_SAR, given as sar_width/height).
H264_SAR = {
    1: (1, 1), 2: (12, 11), 3: (10, 11), 4: (16, 11), 5: (40, 33), 6: (24, 11), 7: (20, 11),
    8: (32, 11), 9: (80, 33), 10: (18, 11), 11: (15, 11), 12: (64, 33), 13: (160, 99),
    14: (4, 3), 15: (3, 2), 16: (2, 1),
}  # fmt: skip


# ------------------------------------------------------------------ independent readers


def ffmpeg_exe() -> str:
    return ffmpeg_engine.find_ffmpeg()


def h264_vui(path: Path) -> dict[str, int]:
    """The first SPS's VUI fields, as FFmpeg's trace_headers bitstream filter prints them."""
    argv = [ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0", "-c", "copy"]
    argv += ["-bsf:v", "trace_headers", "-frames:v", "1", "-f", "null", "-"]
    err = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
    fields: dict[str, int] = {}
    for name, value in re.findall(r"\]\s+\d+\s+(\w+)\s+[01]+ = (\d+)", err):
        fields.setdefault(name, int(value))
    return fields


def h264_sar(vui: dict[str, int]) -> Fraction | None:
    if not vui.get("aspect_ratio_info_present_flag"):
        return None
    idc = vui["aspect_ratio_idc"]
    w, h = (vui["sar_width"], vui["sar_height"]) if idc == 255 else H264_SAR[idc]
    return Fraction(w, h)


def pasp(path: Path) -> Fraction | None:
    """hSpacing/vSpacing of the first 'pasp' box (ISO/IEC 14496-12 12.1.4). The outputs
    are small and their index comes first, so the first match is the box."""
    data = path.read_bytes()
    i = data.find(b"pasp")
    if i < 0:
        return None
    h_spacing, v_spacing = struct.unpack(">II", data[i + 4 : i + 12])
    return Fraction(h_spacing, v_spacing)


def ffmpeg_says(path: Path) -> tuple[str, str]:
    """(SAR, DAR) of the video stream in ``ffmpeg -i``'s description."""
    err = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    line = next(x for x in err.splitlines() if "Video:" in x)
    m = re.search(r"SAR (\d+:\d+) DAR (\d+:\d+)", line)
    assert m is not None, line
    return m.group(1), m.group(2)


def prores_header_colour(path: Path) -> tuple[int, int, int]:
    """color_primaries, transfer_characteristic, matrix_coefficients of the first frame
    header (SMPTE RDD 36: frame size, 'icpf', header size, version, creator, width,
    height, two flag bytes, then the three colour bytes)."""
    with av.open(str(path)) as container:
        packet = next(container.demux(video=0))
        data = bytes(packet)
    assert data[4:8] == b"icpf"
    return data[22], data[23], data[24]


def mediainfo_video(path: Path) -> dict[str, object]:
    data: dict[str, object] = PyMediaInfo.parse(path).video_tracks[0].to_data()
    return data


# ------------------------------------------------------------------ sources


def anamorphic(path: Path, width: int = 1440, height: int = 1080, **more: object) -> Path:
    """Anamorphic HD as cameras and some generators write it: 4:3 pixels, 16:9 picture,
    with sound, no colour tags (as LTX-2 writes none)."""
    spec = ClipSpec(
        width=width,
        height=height,
        seconds=0.25,
        sample_aspect_ratio=Fraction(4, 3),
        colour_tags=False,
        video_options={"preset": "ultrafast"},
        **more,  # type: ignore[arg-type]
    )
    return write_clip(path, spec)


def export_file(source: Path, preset: str, engine: Engine, out: Path, **options: object) -> Path:
    """Export as the CLI does: plan, encode, check against the preset, rename."""
    chosen = ExportOptions(out_dir=out, **options)  # type: ignore[arg-type]
    dest = destination(source, export_settings(load_spec(preset)), out)
    result = export_one(ExportJob(0, source, dest, preset, chosen, engine))
    assert result.status == "done", (result.error, result.findings)
    return dest


# ------------------------------------------------------------------ probe and spec


def test_probe_reads_sar_and_dar_exactly(tmp_path: Path) -> None:
    src = anamorphic(tmp_path / "ana.mp4")
    v = probe(src).video
    assert v is not None
    assert (v.sample_aspect_ratio, v.display_aspect_ratio) == (Fraction(4, 3), Fraction(16, 9))
    data = to_json(probe(src))["video"]
    assert (data["sample_aspect_ratio"], data["display_aspect_ratio"]) == ("4/3", "16/9")
    # MediaInfo agrees.
    mi = mediainfo_video(src)
    assert mi["pixel_aspect_ratio"] == "1.333" and mi["other_display_aspect_ratio"] == ["16:9"]
    table = run_handoff("probe", str(src))
    assert table.returncode == 0 and "1440x1080 [SAR 4:3 DAR 16:9]" in table.stdout


def test_a_file_that_states_no_sar_has_square_pixels(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "plain.mp4", ClipSpec(width=320, height=180, seconds=0.25))
    with av.open(str(src)) as c:
        assert c.streams.video[0].sample_aspect_ratio is None  # truly unstated
    v = probe(src).video
    assert v is not None
    assert (v.sample_aspect_ratio, v.display_aspect_ratio) == (Fraction(1), Fraction(16, 9))


@pytest.mark.parametrize(
    ("name", "size", "sar", "dar"),
    [
        # A real nearly-square SAR: 854x480 of 1280:1281 pixels shows exactly 16:9.
        ("av/mediabunny_edts_editlist.mp4", (854, 480), Fraction(1280, 1281), Fraction(16, 9)),
        # Real anamorphic SD: 320x240 of 4:3 pixels shows 16:9.
        ("av/ffmpeg-normalize_test_bbb_mp3_ac3_2audio.mp4", (320, 240), Fraction(4, 3),
         Fraction(16, 9)),
        ("av/pymediainfo_sample_1080p23976_aac48k.mp4", (1920, 1080), Fraction(1), Fraction(16, 9)),
    ],
)  # fmt: skip
def test_corpus_aspect_ratios(
    name: str, size: tuple[int, int], sar: Fraction, dar: Fraction
) -> None:
    path = corpus_file(name)
    v = probe(path).video
    assert v is not None and (v.width, v.height) == size
    assert (v.sample_aspect_ratio, v.display_aspect_ratio) == (sar, dar)
    assert ffmpeg_says(path) == (
        f"{sar.numerator}:{sar.denominator}",
        f"{dar.numerator}:{dar.denominator}",
    )


def documented_square_pixel_rules() -> str:
    """The square-pixel example of docs/reference/spec-format.md, as a spec."""
    text = (REPO / "docs" / "reference" / "spec-format.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    rules = next(b for b in blocks if 'id = "square-pixels"' in b)
    return f'name = "square-16x9"\n{rules}'


def test_spec_rules_on_pixel_and_display_aspect(tmp_path: Path) -> None:
    spec = parse_spec(documented_square_pixel_rules())
    ana = validate_file(anamorphic(tmp_path / "ana.mp4"), spec)
    square = write_clip(tmp_path / "sq.mp4", ClipSpec(width=320, height=180, seconds=0.25))
    assert validate_file(square, spec).status == "pass"
    assert ana.status == "fail"
    assert [(f.rule, f.actual) for f in ana.findings] == [("square-pixels", "4/3 (~1.333)")]


# ------------------------------------------------------------------ plan


def _plan(source: Path, preset: str = "h264-review", **options: object) -> ExportPlan:
    return plan_export(probe(source), load_spec(preset), ExportOptions(**options))  # type: ignore[arg-type]


def test_the_plan_keeps_the_pixel_shape_through_a_crop(tmp_path: Path) -> None:
    # LTX-2's 1920x1088 with 4:3 pixels: the crop to 1080 cuts whole pixels, so the
    # SAR stays and the picture shows 1920 x 4/3 / 1080 = 64:27.
    src = anamorphic(tmp_path / "ltx.mp4", width=1920, height=1088)
    plan = _plan(src)
    v = plan.video
    assert (v.width, v.height, v.sample_aspect_ratio) == (1920, 1080, Fraction(4, 3))
    assert v.display_aspect_ratio == Fraction(64, 27)
    data = plan.to_json()["video"]
    assert (data["sample_aspect_ratio"], data["display_aspect_ratio"]) == ("4/3", "64/27")
    assert any("SAR 4:3" in n and "shows 64:27" in n for n in plan.notes)


def test_square_and_unstated_pixels_are_planned_square_without_a_note(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "plain.mp4", ClipSpec(width=320, height=180, seconds=0.25))
    plan = _plan(src)
    assert plan.video.sample_aspect_ratio == 1
    assert not any("pixels" in n for n in plan.notes)


def test_dry_run_shows_the_pixel_shape(tmp_path: Path) -> None:
    src = anamorphic(tmp_path / "ana.mp4")
    r = run_handoff("export", str(src), "--preset", "h264-review", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    planned = json.loads(r.stdout)["files"][0]
    assert planned["plan"]["video"]["sample_aspect_ratio"] == "4/3"
    assert planned["plan"]["video"]["display_aspect_ratio"] == "16/9"
    # The colon escaped once for the option, once for the graph (ffmpeg-python's quoting).
    assert re.search(r"setsar=max=65535:r=4\\+:3\b", " ".join(planned["ffmpeg_command"]))
    text = run_handoff("export", str(src), "--preset", "h264-review", "--dry-run")
    assert "non-square pixels kept: SAR 4:3" in text.stdout


# ------------------------------------------------------------------ engines x presets


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("engine", ENGINES)
def test_anamorphic_keeps_its_display_aspect(engine: Engine, preset: str, tmp_path: Path) -> None:
    src = anamorphic(tmp_path / "ana.mp4")
    out = export_file(src, preset, engine, tmp_path / "out")
    # Container: the pasp box, and the stream as FFmpeg reports it.
    assert pasp(out) == Fraction(4, 3)
    assert ffmpeg_says(out) == ("4:3", "16:9")
    mi = mediainfo_video(out)
    assert mi["other_display_aspect_ratio"] == ["16:9"]
    # Colour: tagged BT.709 in the container and in the bitstream, which MediaInfo
    # reports as read from both ("Container / Stream").
    assert mi["color_primaries"] == "BT.709"
    for key in ("colour_primaries_source", "transfer_characteristics_source",
                "matrix_coefficients_source"):  # fmt: skip
        assert mi[key] == "Container / Stream", (key, mi)
    if preset == "h264-review":
        vui = h264_vui(out)
        assert h264_sar(vui) == Fraction(4, 3)
        colour = (vui["colour_primaries"], vui["transfer_characteristics"])
        assert (*colour, vui["matrix_coefficients"]) == (1, 1, 1)
    else:
        assert prores_header_colour(out) == (1, 1, 1)  # H.273 code 1: BT.709


@pytest.mark.parametrize("preset", ["h264-review", "prores-master"])
@pytest.mark.parametrize("engine", ENGINES)
def test_ltx2_crop_keeps_the_pixel_shape(engine: Engine, preset: str, tmp_path: Path) -> None:
    src = anamorphic(tmp_path / "ltx.mp4", width=1920, height=1088)
    out = export_file(src, preset, engine, tmp_path / "out")
    assert ffmpeg_says(out) == ("4:3", "64:27")
    assert pasp(out) == Fraction(4, 3)
    v = probe(out).video
    assert v is not None and (v.width, v.height) == (1920, 1080)


@pytest.mark.parametrize("engine", ENGINES)
def test_unstated_pixels_are_written_square(engine: Engine, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "plain.mp4", ClipSpec(width=320, height=180, seconds=0.25))
    assert pasp(src) is None
    out = export_file(src, "prores-master", engine, tmp_path / "out")
    assert pasp(out) == 1
    assert ffmpeg_says(out) == ("1:1", "16:9")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_quarter_turn_stands_the_pixels_on_their_side(engine: Engine, tmp_path: Path) -> None:
    plain = anamorphic(tmp_path / "plain.mp4", width=320, height=240)
    src = tmp_path / "turned.mp4"
    argv = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-display_rotation", "90"]
    subprocess.run([*argv, "-i", str(plain), "-c", "copy", str(src)], check=True)
    out = export_file(src, "h264-review", engine, tmp_path / "out")
    # 320x240 of 4:3 pixels (16:9) turned a quarter: 240x320 of 3:4 pixels (9:16).
    assert ffmpeg_says(out) == ("3:4", "9:16")
    assert h264_sar(h264_vui(out)) == Fraction(3, 4)


@pytest.mark.parametrize("engine", ENGINES)
def test_real_1280_1281_sar_is_kept_exactly(engine: Engine, tmp_path: Path) -> None:
    src = corpus_file("av/mediabunny_edts_editlist.mp4")
    out = export_file(
        src, "h264-review", engine, tmp_path, fps=Fraction(24), rate_conversion="drop"
    )
    assert h264_sar(h264_vui(out)) == Fraction(1280, 1281)
    assert pasp(out) == Fraction(1280, 1281)
    assert ffmpeg_says(out) == ("1280:1281", "16:9")


@pytest.mark.parametrize("engine", ENGINES)
def test_held_out_anamorphic_clip_through_the_cli(engine: str, tmp_path: Path) -> None:
    """A real anamorphic file (4:3 pixels, 16:9 picture, 60 fps), exported as a user
    would, to both kinds of preset."""
    src = corpus_file("av/ffmpeg-normalize_test_bbb_mp3_ac3_2audio.mp4")
    for preset in ("h264-review", "prores-master"):
        r = run_handoff(
            "export", str(src), "--preset", preset, "--fps", "30", "--engine", engine,
            "--out", str(tmp_path / preset), "--json",
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        dest = Path(json.loads(r.stdout)["files"][0]["dest"])
        assert ffmpeg_says(dest) == ("4:3", "16:9")
        assert pasp(dest) == Fraction(4, 3)
        assert to_json(probe(dest))["video"]["display_aspect_ratio"] == "16/9"


# ---------------------------------------------------------------- pixels untouched


def _gradient_source(path: Path, tagged: bool) -> Path:
    """8-bit 4:2:0 H.264 with smooth gradients (a matrix conversion shows on them),
    tagged BT.709 with limited range as cameras and generators write it, or untagged."""
    import numpy as np

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        video.options = {"crf": "12"}
        if tagged:
            cc = video.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 1, 1, 1, 1
        yy, xx = np.mgrid[0:180, 0:320]
        for i in range(12):
            rgb = np.stack([(xx * 255 // 320 + 9 * i) % 256, yy * 255 // 180, (xx + yy) // 2 % 256])
            frame = av.VideoFrame.from_ndarray(rgb.transpose(1, 2, 0).astype(np.uint8), "rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def _lumas(path: Path) -> list[Any]:
    import numpy as np

    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    deep = "10" in frames[0].format.name
    dtype = "<u2" if deep else "u1"
    out = []
    for f in frames:
        plane = np.frombuffer(bytes(f.planes[0]), dtype=dtype).reshape(f.height, -1)[:, : f.width]
        out.append(plane.astype(np.float64) / (4.0 if deep else 1.0))
    return out


@pytest.mark.parametrize("tagged", [True, False], ids=["bt709", "untagged"])
@pytest.mark.parametrize("engine", ENGINES)
def test_colour_is_tagged_never_converted(engine: Engine, tagged: bool, tmp_path: Path) -> None:
    """A ProRes HQ master keeps the source's luma (to 10-bit precision): no scaler turns
    one matrix or range into another on the way. With PyAV's own filter source the
    BT.709-tagged case came out 29 dB from its source (a matrix conversion)."""
    import numpy as np

    source = _gradient_source(tmp_path / "src.mp4", tagged)
    info = probe(source)
    plan = plan_export(info, load_spec("prores-master"), ExportOptions(add_silence=True))
    out = tmp_path / f"{engine}.mov"
    from handoff.export.engines import execute

    execute(plan, out, engine)
    ours, theirs = _lumas(out), _lumas(source)
    assert len(ours) == len(theirs) == 12
    for a, b in zip(ours, theirs, strict=True):
        error = float(np.mean((a - b) ** 2))
        assert 10 * np.log10(255.0**2 / max(error, 1e-12)) > 55, "picture changed"
        assert abs(float(np.mean(a - b))) < 0.05, "levels shifted"
