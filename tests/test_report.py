"""The delivery report: ``collect`` on hand-built and real ``report.json`` documents, the
plots, and the page ``handoff deliver`` and ``handoff report`` write, read back with
lxml (structure, words, escaping, links) and its images decoded (PyAV for the JPEGs,
the PNG header by hand).

One batch is delivered per module: three takes of segment 1 (in sync, picture two
frames late, picture drifting), a fourth whose name holds ``& < > ' "``, and a
48-byte file that is no media at all.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import av
import lxml.html
import numpy as np
import pytest
from lxml import etree

from handoff.errors import InputError
from handoff.media.synth import TakeSpec
from handoff.report import collect
from handoff.report.assets import AssetJob, envelope, take_assets
from handoff.report.model import SyncView
from handoff.report.page import render_page
from handoff.report.plots import sync_png, waveform_png
from tests.conftest import REPO, MakeDir, run_handoff
from tests.test_deliver import make_batch

IN, LATE, DRIFT = "001_take1.mp4", "001_take2.mp4", "001_take3.mp4"
ODD = "001_a&b<c>'d\".mp4"
BROKEN = "002_broken.mp4"
RENDERS = (IN, LATE, DRIFT, ODD, BROKEN)
PAGE_BUDGET_PER_TAKE = 200_000


# ------------------------------------------------------------------ hand-built documents


def _row(
    name: str,
    *,
    segment: int | None,
    verdict: str | None,
    picked: bool = False,
    master_status: str = "pass",
    findings: list[dict[str, Any]] | None = None,
    failed: str | None = None,
    out: str = "/old/delivery",
    series: list[list[float]] | None = None,
) -> dict[str, Any]:
    master = f"{out}/masters/{Path(name).stem}.mov"
    records: dict[str, Any] = {
        "receive": {"status": "error" if failed else "done", "reason": failed, "outputs": [],
                    "result": None if failed else {"probe": {"ok": True, "container": "mp4"}}},
    }  # fmt: skip
    if not failed:
        records["master"] = {
            "status": "done",
            "reason": None,
            "outputs": [master],
            "result": {
                "validation": {
                    "spec": "prores-master",
                    "status": master_status,
                    "findings": findings or [],
                }
            },
        }
    if segment is not None and not failed:
        records["sync"] = {
            "status": "done",
            "result": {
                "sync": {
                    "segment": segment,
                    "verdict": verdict,
                    "score": 90.0 if verdict == "in" else 20.0,
                    "tolerance_ms": 41.667,
                    "duration_s": 6.0,
                    "reference": "/old/cond/001_narration.wav",
                    "audio": {"audio_offset_ms": 0.0},
                    "picture": {
                        "picture_offset_ms": 0.0 if verdict == "in" else 83.3,
                        "picture_drift_ms_per_min": None,
                        "drift_exceeds_at_s": None if verdict == "in" else 0.0,
                        "series": series or [],
                    },
                    "recut_at_s": None,
                    "notes": [],
                }
            },
        }
    return {
        "render": f"/old/renders/{name}",
        "state": "failed" if failed else "done",
        "reason": failed,
        "sync_verdict": verdict,
        "picked": picked,
        "records": records,
    }


def _document() -> dict[str, Any]:
    rule = {"rule": "container", "severity": "error", "fact": "container", "expected": "mov",
            "actual": "mp4", "message": "a ProRes master is a QuickTime .mov"}  # fmt: skip
    return {
        "schema": "handoff.delivery-report/1",
        "options": {"out": "/old/delivery", "preset": "prores-master", "review": None,
                    "manifest": "/old/cond/manifest.json"},
        "renders": [
            _row("002_b.mp4", segment=2, verdict="out"),
            _row("001_z.mp4", segment=1, verdict="out"),
            _row("001_y.mp4", segment=1, verdict="in", picked=True),
            _row("001_x.mp4", segment=1, verdict="in", master_status="fail", findings=[rule]),
            _row("009_gone.mp4", segment=None, verdict=None, failed="receive: not a media file"),
        ],
        "selects": {
            "segments": [
                {"segment": 1, "pick": "masters/001_y.mov",
                 "alternates": ["masters/001_x.mov", "masters/001_z.mov"], "regenerate": False,
                 "recut_at_s": None},
                {"segment": 2, "pick": None, "alternates": [], "regenerate": True,
                 "recut_at_s": 2.5},
            ]
        },
    }  # fmt: skip


def test_collect_orders_takes_pick_first_and_says_what_to_regenerate(tmp_path: Path) -> None:
    report = collect(_document(), tmp_path)
    assert [s.segment for s in report.segments] == [1, 2, None]
    one, two, loose = report.segments
    assert [t.name for t in one.takes] == ["001_y.mp4", "001_x.mp4", "001_z.mp4"]
    assert one.pick is not None and one.pick.name == "001_y.mp4"
    assert [t.sync for t in one.takes] == ["in", "in", "out"]
    assert [t.spec for t in one.takes] == ["pass", "fail", "pass"]
    assert one.takes[1].failed_rules == (
        "container: mp4, expected mov -- a ProRes master is a QuickTime .mov",
    )
    # Paths under the folder the document was written in now point into this one.
    assert one.takes[0].master == tmp_path / "masters" / "001_y.mov"
    assert one.takes[0].render == Path("/old/renders/001_y.mp4")
    assert two.regenerate and two.recut_at_s == 2.5
    assert [t.name for t in loose.takes] == ["009_gone.mp4"]
    gone = loose.takes[0]
    assert (
        gone.spec == "error"
        and not gone.delivered
        and gone.problem == ("receive: not a media file")
    )
    assert (report.segment_count, len(report.takes), report.picks) == (2, 5, 1)
    # Only 001_y passes: 001_x fails its spec, 001_z and 002_b are out of sync.
    assert report.passes == 1 and report.failures == 1 and report.out_of_sync == 2
    assert report.next_steps() == (
        "Regenerate segment 002 from 2.50 s (the best take is in sync up to there)",
    )


def test_collect_refuses_what_is_not_a_delivery_report(tmp_path: Path) -> None:
    for document in ({"schema": "handoff.selects/1"}, {}, {"schema": "handoff.delivery-report/1"}):
        with pytest.raises(InputError, match="not a delivery report"):
            collect(document, tmp_path)


def test_page_of_a_hand_built_document_says_every_verdict_in_words(tmp_path: Path) -> None:
    """No media: the page still has every take, its verdicts in words, a failed spec's
    rules visible (not folded away), and the broken render's reason."""
    report = collect(_document(), tmp_path)
    page = _parse(render_page(report, {}, tmp_path / "report.html"))
    summary = _one(page, "//section[@id='summary']")
    assert {k: summary.get(f"data-{k}") for k in ("segments", "takes", "picks", "passes",
            "failures")} == {"segments": "2", "takes": "5", "picks": "1", "passes": "1",
                             "failures": "1"}  # fmt: skip
    steps = page.xpath("//ul[@id='next-steps']/li")
    assert [s.text_content() for s in steps] == list(report.next_steps())
    failing = _article(page, "001_x.mp4")
    assert failing.get("data-spec") == "fail"
    assert "FAILS prores-master" in failing.text_content()
    [rules] = failing.xpath(".//ul[@class='failed-rules']")
    assert not rules.xpath("ancestor::details")
    assert "QuickTime .mov" in rules.text_content()
    passing = _article(page, "001_y.mp4")
    assert "FAILS" not in passing.text_content() and "PICK" in passing.text_content()
    gone = _article(page, "009_gone.mp4")
    assert _one(gone, ".//p[@class='problem']").text_content() == "receive: not a media file"
    assert gone.getparent().getparent().get("data-segment") == ""


# --------------------------------------------------------------------------------- plots


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk (PNG spec, 11.2.2), its CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(data[12 : 16 + length]) == crc
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plots_are_small_pngs() -> None:
    rate = 8000
    t = np.arange(3 * rate) / rate
    take = envelope(np.sin(2 * np.pi * 220 * t) * (t > 0.5), rate)
    narration = envelope(0.5 * np.sin(2 * np.pi * 220 * t), rate)
    drifting = SyncView(
        verdict="out", score=30.0, tolerance_ms=41.7, duration_s=3.0, audio_offset_ms=0.0,
        picture_offset_ms=10.0, drift_ms_per_min=1200.0, exceeds_at_s=1.6, recut_at_s=1.5,
        series=((0.5, 10.0), (1.5, 30.0), (2.5, 50.0)), reference=None, notes=(),
    )  # fmt: skip
    flat = SyncView(
        verdict="out", score=30.0, tolerance_ms=41.7, duration_s=3.0, audio_offset_ms=0.0,
        picture_offset_ms=83.3, drift_ms_per_min=None, exceeds_at_s=0.0, recut_at_s=None,
        series=(), reference=None, notes=(),
    )  # fmt: skip
    pngs: list[bytes | None] = [waveform_png(take, narration), waveform_png(None, narration)]
    pngs += [sync_png(drifting), sync_png(flat)]
    for png in pngs:
        assert png is not None
        width, height = _png_size(png)
        assert width >= 300 and height >= 100, (width, height)
        assert len(png) < 40_000, len(png)
    nothing = SyncView(
        verdict="none", score=None, tolerance_ms=None, duration_s=None, audio_offset_ms=None,
        picture_offset_ms=None, drift_ms_per_min=None, exceeds_at_s=None, recut_at_s=None,
        series=(), reference=None, notes=(),
    )  # fmt: skip
    assert sync_png(nothing) is None


def test_envelope_holds_each_columns_extremes() -> None:
    samples = np.zeros((2, 1000), dtype=np.float32)
    samples[0, 10] = 0.9
    samples[1, 995] = -0.7
    env = envelope(samples, 1000, columns=10)
    assert env.low.shape == env.high.shape == (10,)
    assert env.high[0] == pytest.approx(0.9) and env.low[9] == pytest.approx(-0.7)
    assert float(np.abs(env.high[1:]).max()) == 0.0 and env.duration_s == 1.0


def test_assets_of_a_file_that_is_no_media_give_the_reason(tmp_path: Path) -> None:
    junk = tmp_path / "001_junk.mp4"
    junk.write_bytes(b"\0" * 48)
    got = take_assets(AssetJob("k", junk, probe_media=True))
    assert got.problem and "\n" not in got.problem
    assert got.thumbnails == () and got.waveform_png is None and got.facts is None


# ------------------------------------------------------------------- a delivered batch


@pytest.fixture(scope="module")
def delivered(module_tmp: MakeDir) -> Iterator[Path]:
    """The batch's root (renders/, cond/, delivery/), delivered once."""
    root = module_tmp("report") / "batch"
    root.mkdir()
    make_batch(
        root,
        [
            (IN, TakeSpec()),
            (LATE, TakeSpec(picture_delay_s=2 / 24)),
            (DRIFT, TakeSpec(picture_stretch=1.03)),
            (ODD, TakeSpec(picture_delay_s=3 / 24, seed=5)),
        ],
        seconds=6.0,
        size=(160, 120),
    )
    deliver_with_a_broken_render(root, BROKEN)
    yield root


def deliver_with_a_broken_render(root: Path, broken: str) -> None:
    """Add a 48-byte file that is no media as ``renders/<broken>``, and ``handoff
    deliver`` the batch into ``root/delivery``: exit 1 (that render failed), no traceback."""
    (root / "renders" / broken).write_bytes(b"\0" * 48)
    done = run_handoff(
        "deliver", "renders", "--manifest", "cond/manifest.json", "--out", "delivery",
        "--jobs", "2", cwd=root,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def _parse(raw: bytes | str) -> Any:
    """The page as lxml.html reads it (typed Any: xpath results are of every type)."""
    return lxml.html.document_fromstring(raw)


def _one(node: Any, xpath: str) -> Any:
    found = node.xpath(xpath)
    assert len(found) == 1, (xpath, found)
    return found[0]


def _article(page: Any, name: str) -> Any:
    return _one(page, f"//article[@data-take={_xpath_literal(name)}]")


def _xpath_literal(text: str) -> str:
    """An XPath 1.0 string literal of any text (it has no escapes: concat() the quotes)."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in text.split("'")) + ")"


def _decoded_jpeg_width(data: bytes) -> int:
    """Decode a JPEG with FFmpeg's mjpeg decoder, through PyAV: its width."""
    codec = av.CodecContext.create("mjpeg", "r")
    frames = [*codec.decode(av.Packet(data)), *codec.decode(None)]
    assert frames, "the JPEG did not decode"
    width: int = frames[0].width
    return width


def _check_page(html: Path) -> Any:
    """Everything the page must be wherever it is written; returns the parsed page."""
    raw = html.read_bytes()
    page = _parse(raw)
    text = raw.decode("utf-8")
    # Self-contained: no script, no stylesheet link, no URL off this machine (base64 has
    # no ':', so no image can hide one).
    assert not re.search(r"\b(?:https?|file|ftp)://", text)
    assert not page.xpath("//script | //link | //iframe | //object")
    assert page.get("lang") == "en"
    assert page.xpath("//meta[@charset='utf-8']") and page.xpath("//meta[@name='viewport']")
    articles = page.xpath("//article[contains(concat(' ', @class, ' '), ' take ')]")
    assert sorted(a.get("data-take") for a in articles) == sorted(RENDERS)
    assert len(raw) / len(articles) < PAGE_BUDGET_PER_TAKE
    for article in articles:
        assert len(etree.tostring(article)) < PAGE_BUDGET_PER_TAKE, article.get("data-take")
    for img in page.xpath("//img"):
        src = img.get("src")
        assert img.get("alt"), src[:40]
        head, _, payload = src.partition(",")
        data = base64.b64decode(payload, validate=True)
        if head == "data:image/jpeg;base64":
            assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
            assert _decoded_jpeg_width(data) == int(img.get("width"))
        else:
            assert head == "data:image/png;base64", head
            width, height = _png_size(data)
            assert width > 0 and height > 0
    for link in page.xpath("//a[@class='file']"):
        href = link.get("href")
        assert ":" not in href and not href.startswith("/"), href
        assert (html.parent / unquote(href)).is_file(), href
    return page


def test_deliver_writes_the_page(delivered: Path) -> None:
    delivery = delivered / "delivery"
    page = _check_page(delivery / "report.html")

    summary = _one(page, "//section[@id='summary']")
    assert summary.get("data-segments") == "1" and summary.get("data-takes") == "5"
    assert summary.get("data-picks") == "1" and summary.get("data-failures") == "1"
    assert summary.get("data-passes") == "1"
    assert "1 segment(s), 5 take(s)" in summary.text_content()
    assert page.xpath("//ul[@id='next-steps']/li")

    segment = _one(page, "//section[@class='segment'][@data-segment='1']")
    takes = segment.xpath(".//article")
    assert takes[0].get("data-take") == IN
    assert [a.get("data-pick") for a in takes] == ["true", "false", "false", "false"]
    assert "PICK" in takes[0].text_content()
    assert all("PICK" not in a.xpath("string(.//h3)") for a in takes[1:])
    for article in takes:
        thumbs = article.xpath(".//img[@class='thumb']")
        assert len(thumbs) == 3
        assert len(article.xpath(".//img[@class='waveform']")) == 1
        assert len(article.xpath(".//img[@class='sync-plot']")) == 1
        assert "LUFS" in article.text_content() and "dBTP" in article.text_content()
        probes = article.xpath(".//details[@class='probe']")
        assert probes and all(p.xpath("./summary") and p.xpath(".//table//td") for p in probes)
        assert article.get("data-spec") == "pass"
        made = [li.text_content() for li in article.xpath(".//div[@class='made']//li")]
        assert [line.split(":")[0] for line in made] == ["picture", "sound"], made
        assert made[0].startswith("picture: encode -- codec: "), made
    for name in (LATE, DRIFT):
        late = _article(page, name)
        assert late.get("data-sync") == "out"
        assert "OUT OF SYNC" in late.text_content()
    assert _article(page, IN).get("data-sync") == "in"
    assert "OUT OF SYNC" not in _article(page, IN).text_content()
    # 6-second takes are too short for a drift series: the page says so, rather than
    # drawing a flat line a reader would take for "no drift".
    for article in takes:
        assert "drift not measured (take shorter than 12 s)" in article.text_content()

    broken = _article(page, BROKEN)
    assert broken.getparent().getparent().get("data-segment") == ""
    assert not broken.xpath(".//img")
    problem = _one(broken, ".//p[@class='problem']").text_content()
    assert "not a media file" in problem and "\n" not in problem


def test_names_with_markup_characters_are_escaped(delivered: Path) -> None:
    raw = (delivered / "delivery" / "report.html").read_text(encoding="utf-8")
    assert "a&b<c>" not in raw and "<c>" not in raw
    assert "001_a&amp;b&lt;c&gt;" in raw
    page = _parse(raw)
    odd = _article(page, ODD)
    assert odd.xpath("string(.//h3)").endswith(ODD)
    masters = [a for a in odd.xpath(".//a[@class='file']") if "masters/" in a.get("href")]
    assert [unquote(a.get("href")) for a in masters] == ["masters/001_a&b<c>'d\".mov"]


def test_report_command_writes_the_page_elsewhere_and_from_a_moved_folder(
    delivered: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "pages" / "batch.html"
    proc = run_handoff("report", str(delivered / "delivery"), "--out", str(elsewhere),
                       "--jobs", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert str(elsewhere) in proc.stdout and "Traceback" not in proc.stderr
    page = _check_page(elsewhere)
    assert _article(page, IN).get("data-pick") == "true"

    # The folder moved as a whole: the links follow it (report.json holds the paths
    # it was written with).
    moved = tmp_path / "moved"
    shutil.copytree(delivered / "delivery", moved)
    (moved / "report.html").unlink()
    proc = run_handoff("report", str(moved), "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    page = _check_page(moved / "report.html")
    hrefs = [a.get("href") for a in page.xpath("//a[@class='file']")]
    assert f"masters/{Path(IN).stem}.mov" in hrefs

    # Never over what it reports on.
    before = (moved / "report.json").read_bytes()
    proc = run_handoff("report", str(moved), "--out", str(moved / "report.json"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert (moved / "report.json").read_bytes() == before


def test_collect_of_a_real_delivery(delivered: Path) -> None:
    delivery = delivered / "delivery"
    document = json.loads((delivery / "report.json").read_text(encoding="utf-8"))
    report = collect(document, delivery)
    [segment, loose] = report.segments
    assert segment.segment == 1 and loose.segment is None
    assert segment.takes[0].name == IN
    assert {t.name: t.sync for t in segment.takes} == {
        IN: "in",
        LATE: "out",
        DRIFT: "out",
        ODD: "out",
    }
    for take in segment.takes:
        assert take.master is not None and take.master.is_file()
        assert take.sync_detail is not None and take.sync_detail.reference is not None
        assert take.sync_detail.reference.is_file()
    assert [t.name for t in loose.takes] == [BROKEN]
    assert report.failures == 1 and report.picks == 1
    for take in segment.takes:
        # What the export did with each stream, read against the files themselves: the
        # renders are H.264 and the masters ProRes, so the picture was encoded; a copied
        # sound is the render's codec and rate.
        assert take.master is not None
        picture, sound = take.made
        with av.open(str(take.render)) as src, av.open(str(take.master)) as out:
            assert src.streams.video[0].codec_context.name == "h264"
            assert out.streams.video[0].codec_context.name == "prores"
            assert picture.startswith("picture: encode -- codec: "), picture
            same = (src.streams.audio[0].codec_context.name, src.streams.audio[0].rate) == (
                out.streams.audio[0].codec_context.name,
                out.streams.audio[0].rate,
            )
            assert sound.startswith("sound: copy (" if same else "sound: encode -- "), sound


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda root: root / "nowhere", ["nowhere", "no such folder"]),
        (lambda root: root, ["not a delivery folder", "report.json"]),
        (lambda root: _write(root / "report.json", "{ not json"), ["not a folder"]),
        (lambda root: _folder_with(root, "{ not json"), ["report.json", "not valid JSON"]),
        (lambda root: _folder_with(root, '{"schema": "handoff.selects/1"}'),
         ["not a delivery report", "handoff.selects/1"]),
        (lambda root: _folder_with(root, "[1, 2]"), ["not a delivery report"]),
    ],
    ids=["missing", "no-report-json", "a-file", "bad-json", "other-schema", "not-an-object"],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, make: Any, words: list[str]) -> None:
    target = make(tmp_path)
    proc = run_handoff("report", str(target))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("handoff: error: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not (tmp_path / "report.html").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _folder_with(root: Path, text: str) -> Path:
    _write(root / "report.json", text)
    return root


def test_usage_errors_exit_2() -> None:
    for args in (["report"], ["report", ".", "--jobs", "0"]):
        proc = run_handoff(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_cli_reference_names_every_option_of_report() -> None:
    from handoff.cli.report import report_cmd

    doc = (REPO / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    start = doc.index("## `handoff report DELIVERY")
    section = doc[start : doc.index("\n## ", start + 3)]
    for param in report_cmd.params:
        for flag in param.opts:
            if flag.startswith("--"):
                assert f"`{flag}" in section, flag


def test_without_a_manifest_every_take_is_in_the_last_section(tmp_path: Path) -> None:
    document = _document()
    document["options"]["manifest"] = None
    document["selects"] = None
    document["renders"] = [
        _row("b.mp4", segment=None, verdict=None),
        _row("a.mp4", segment=None, verdict=None),
    ]
    report = collect(document, tmp_path)
    [loose] = report.segments
    assert loose.segment is None and [t.name for t in loose.takes] == ["a.mp4", "b.mp4"]
    assert report.segment_count == 0 and report.passes == 2
    [step] = report.next_steps()
    assert "without a manifest" in step
    page = _parse(render_page(report, {}, tmp_path / "report.html"))
    sections = page.xpath("//section[@class='segment']")
    assert [s.get("data-segment") for s in sections] == [""]
    assert [a.get("data-sync") for a in sections[0].xpath(".//article")] == ["none", "none"]
