"""The delivery report as people see it: ``report.html`` opened in a real Chromium.

The page's contract (issue 15) is checked by :func:`read_report`, once against
``fixtures/report/contract.html`` -- a hand-written page that follows the contract, so the
checks themselves are tried on a page known to be right -- and once against the report a
real ``handoff deliver`` writes for a small batch: three 24-second takes of one segment
(in sync, picture three frames late, picture drifting 0.6 % slow: in sync at its start,
out of tolerance from about 7 s) and a 48-byte file that is no media.

In the browser: no console error, no request off the machine or failed, every image
decoded; the pick marked in words and first in its segment; OUT OF SYNC and a failed
spec's rules visible without unfolding anything; the probe facts folded away; readable at
1280 px and at a phone's 390 px without sideways scrolling (screenshots kept in
``test-artifacts/``).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import av
import numpy as np
import pytest

from handoff.media.synth import TakeSpec
from handoff.report import collect
from handoff.report.plots import ERROR_COLOUR, TAKE_COLOUR, sync_figure
from tests.browser import BrowserPage
from tests.conftest import FIXTURES, MakeDir, run_handoff
from tests.test_deliver import make_batch
from tests.test_report import deliver_with_a_broken_render

CONTRACT_PAGE = FIXTURES / "report" / "contract.html"
TAKE_BUDGET = 200_000
"""Bytes of page one take may cost (issue 15: a 500-take report must stay openable)."""

SYNC_STATES = {"in", "out", "none"}
SPEC_STATES = {"pass", "fail", "error", "none"}
IMAGE_CLASSES = ("thumb", "waveform", "sync-plot")
PICK_WORD = re.compile(r"\bPICK\b")
FAILS_WORD = re.compile(r"\bFAILS\s+\S")

# Everything the checks need from the page, read in one pass over the DOM.
READ_PAGE = """() => {
  const attrs = (el) => Object.fromEntries(Array.from(el.attributes, (a) => [a.name, a.value]));
  const meta = (sel) => { const m = document.querySelector(sel); return m ? attrs(m) : null; };
  const summary = document.querySelector("section#summary");
  return {
    lang: document.documentElement.getAttribute("lang"),
    charset: meta("meta[charset]"),
    viewport: meta('meta[name="viewport"]'),
    title: document.title,
    summary: summary ? attrs(summary) : null,
    summaryText: summary ? summary.innerText : "",
    nextSteps: Array.from(document.querySelectorAll("ul#next-steps > li"), (li) => li.innerText),
    segments: Array.from(document.querySelectorAll("section.segment"), (s) => ({
      segment: s.getAttribute("data-segment"),
      takes: Array.from(s.querySelectorAll("article.take"), (a) => ({
        attrs: attrs(a),
        bytes: a.outerHTML.length,
        images: Array.from(a.querySelectorAll("img"), (img) => ({
          cls: img.className, alt: img.getAttribute("alt"),
          src: (img.getAttribute("src") || "").slice(0, 30),
        })),
        problems: Array.from(a.querySelectorAll("p.problem"), (p) => p.innerText),
        links: Array.from(a.querySelectorAll("a.file"), (l) => l.getAttribute("href")),
        rules: Array.from(a.querySelectorAll("ul.failed-rules > li"), (li) => ({
          text: li.textContent, folded: li.closest("details") !== null,
        })),
        probes: Array.from(a.querySelectorAll("details.probe"), (d) => ({
          open: d.open, summary: d.querySelector(":scope > summary") !== null,
          table: d.querySelector("table") !== null,
        })),
      })),
    })),
    allTakes: document.querySelectorAll("article.take").length,
    addresses: Array.from(document.querySelectorAll("[src], [href], [srcset], [action]"),
      (el) => el.getAttribute("src") ?? el.getAttribute("href") ?? el.getAttribute("srcset")
        ?? el.getAttribute("action")),
  };
}"""


@dataclass(frozen=True)
class Take:
    segment: str
    name: str
    pick: bool
    sync: str
    spec: str
    readable: bool


@dataclass(frozen=True)
class Report:
    counts: dict[str, int]
    next_steps: list[str]
    takes: list[Take]

    def take(self, name: str) -> Take:
        [found] = [t for t in self.takes if t.name == name]
        return found


def read_report(bp: BrowserPage, path: Path, *, files_exist: bool) -> Report:
    """Open the report and hold it to the contract; returns what it says, for the test to
    compare with what it should say. ``files_exist``: every ``a.file`` must name a file
    that is there (relative to the report's folder)."""
    raw = path.read_text(encoding="utf-8")
    external = re.findall(r".{0,40}\b(?:https?|ftp|wss?):.{0,40}", raw, flags=re.IGNORECASE)
    assert not external, f"external URLs in the page: {external}"

    bp.open(path)
    page: dict[str, Any] = bp.page.evaluate(READ_PAGE)

    # The head: language, encoding, phone viewport, a title.
    assert page["lang"] == "en"
    assert page["charset"] is not None and page["charset"]["charset"].lower() == "utf-8"
    assert page["viewport"] is not None and "width=device-width" in page["viewport"]["content"]
    assert page["title"].strip()
    for address in page["addresses"]:
        scheme = urlsplit(address).scheme
        assert scheme in ("", "data") and not address.startswith("//"), address

    # The summary: the counts as data and in words, and what to do next.
    summary = page["summary"]
    assert summary is not None, "no section#summary"
    keys = ("segments", "takes", "picks", "passes", "failures")
    counts = {k: int(summary[f"data-{k}"]) for k in keys}
    for key, number in counts.items():
        assert re.search(rf"\b{number}\b", page["summaryText"]), (key, number)
    assert page["nextSteps"] and all(s.strip() for s in page["nextSteps"]), page["nextSteps"]

    # Segments, the one for renders with no segment last; one article per take.
    segments = page["segments"]
    labels = [s["segment"] for s in segments]
    assert all(re.fullmatch(r"\d+", s) for s in labels if s != ""), labels
    assert "" not in labels[:-1], f"the no-segment section must come last: {labels}"
    assert len(set(labels)) == len(labels), labels
    assert counts["segments"] == sum(1 for s in labels if s != "")
    assert counts["takes"] == page["allTakes"] == sum(len(s["takes"]) for s in segments)
    assert counts["passes"] + counts["failures"] <= counts["takes"], f"counts: {counts}"

    takes: list[Take] = []
    articles = bp.page.locator("article.take")
    index = 0
    for segment in segments:
        for position, found in enumerate(segment["takes"]):
            attrs = found["attrs"]
            take = Take(
                segment=segment["segment"],
                name=attrs["data-take"],
                pick=attrs["data-pick"] == "true",
                sync=attrs["data-sync"],
                spec=attrs["data-spec"],
                readable=not found["problems"],
            )
            where = f"{take.name!r} (segment {take.segment!r})"
            assert take.name, where
            assert attrs["data-pick"] in ("true", "false"), where
            assert take.sync in SYNC_STATES and take.spec in SPEC_STATES, (where, attrs)
            assert found["bytes"] <= TAKE_BUDGET, f"{where}: {found['bytes']} bytes of page"
            article = articles.nth(index)
            index += 1
            text = article.inner_text()

            if take.pick:
                assert position == 0, f"{where}: the pick must come first in its segment"
                assert PICK_WORD.search(text), f"{where}: the pick does not say PICK"
                assert article.get_by_text(PICK_WORD).first.is_visible(), where
            if take.sync == "out":
                shown = article.get_by_text("OUT OF SYNC").first.is_visible()
                assert shown, f"{where}: out of tolerance, yet OUT OF SYNC is not visible"
            else:
                assert "OUT OF SYNC" not in text, f"{where}: says OUT OF SYNC, data-sync is not out"
            if take.spec == "fail":
                shown = article.get_by_text(FAILS_WORD).first.is_visible()
                assert shown, f"{where}: fails its spec, yet FAILS <spec> is not visible"
                rules = found["rules"]
                assert rules, f"{where}: fails its spec but lists no rule"
                for rule in rules:
                    assert not rule["folded"], f"{where}: failed rules folded in a <details>"
                    assert rule["text"].strip(), f"{where}: a failed rule with no words"
                shown = article.locator("ul.failed-rules").first.is_visible()
                assert shown, f"{where}: the failed rules are not visible"

            images = found["images"]
            if take.readable:
                by_class = {c: [i for i in images if c in i["cls"].split()] for c in IMAGE_CLASSES}
                assert len(by_class["thumb"]) == 3, (where, images)
                assert len(by_class["waveform"]) == 1, (where, images)
                assert len(by_class["sync-plot"]) <= 1, (where, images)
                if take.sync != "none":
                    assert len(by_class["sync-plot"]) == 1, (where, images)
            else:
                assert not images, f"{where}: unreadable, yet has images"
                assert all(p.strip() and "\n" not in p.strip() for p in found["problems"]), where
                assert article.locator("p.problem").first.is_visible(), where
            for image in images:
                assert image["src"].startswith("data:image/"), (where, image)
                assert image["alt"] and image["alt"].strip(), (where, image)

            assert found["links"], f"{where}: no link to its files"
            for href in found["links"]:
                parts = urlsplit(href)
                assert not parts.scheme and not parts.netloc and not href.startswith("/"), href
                if files_exist:
                    target = path.parent / unquote(parts.path)
                    assert target.is_file(), f"{where}: {href} -> {target} is not there"
            for probe in found["probes"]:
                assert not probe["open"], f"{where}: probe facts unfolded by default"
                assert probe["summary"] and probe["table"], (where, probe)
            probes = article.locator("details.probe")
            for n in range(probes.count()):
                assert not probes.nth(n).locator("table").is_visible(), where
            takes.append(take)

    for segment in {t.segment for t in takes}:
        assert sum(t.pick for t in takes if t.segment == segment) <= 1, f"picks in {segment!r}"
    marked = sum(t.pick for t in takes)
    assert counts["picks"] == marked, f"summary says {counts['picks']} picks, page marks {marked}"

    # In the browser: nothing logged, thrown, fetched from afar or missing.
    assert bp.assert_images_loaded() == sum(len(t["images"]) for s in segments for t in s["takes"])
    bp.assert_clean()
    bp.screenshots_at_desktop_and_phone()
    bp.assert_clean()
    return Report(counts, page["nextSteps"], takes)


# --------------------------------------------------------------------- the contract page


def test_the_contract_page_passes_every_check(browser_page: BrowserPage) -> None:
    report = read_report(browser_page, CONTRACT_PAGE, files_exist=False)

    assert report.counts == {"segments": 2, "takes": 5, "picks": 2, "passes": 3, "failures": 2}
    assert [(t.segment, t.name) for t in report.takes] == [
        ("1", "001_take1.mp4"),
        ("1", "001_take2.mp4"),
        ("1", '001_take3 & <"co">\'s.mp4'),  # escaped in the file, exact in the DOM
        ("2", "002_take1.mp4"),
        ("", "003_broken.mp4"),
    ]
    assert [t.name for t in report.takes if t.pick] == ["001_take1.mp4", "002_take1.mp4"]
    assert report.take("003_broken.mp4").readable is False
    assert report.next_steps == [
        "Regenerate segment 002 from 4.20 s (its best take drifts out of sync there)."
    ]
    for shot in browser_page.screenshots:
        assert shot.stat().st_size > 0, shot


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (('data-pick="true" data-sync="in"', 'data-pick="false" data-sync="in"'), "picks"),
        (('<span class="bad">OUT OF SYNC</span>: the picture', "the picture"), "OUT OF SYNC"),
        (('<ul class="failed-rules">', '<details><ul class="failed-rules">'), "folded"),
        (('<details class="probe">', '<details class="probe" open>'), "unfolded"),
        (("</body>", '<img src="https://example.com/x.png"></body>'), "external"),
        (('<p class="problem">', '<img class="thumb" alt="x" src="data:image/png;base64,AA"'
          '><p class="problem">'), "unreadable, yet has images"),
        (("</body>", "<script>console.error('boom')</script></body>"), "console errors"),
        (('2.mp4" data-pick="false"', '2.mp4" data-pick="true"'), "must come first"),
        (('<span class="good">PICK</span> 001_take1', "001_take1"), "does not say PICK"),
        (('src="data:image/jpeg;base64,', 'src="data:image/jpeg;base64,AAAA'), "images not loaded"),
        (("</body>", '<pre style="white-space: pre">' + "x" * 200 + "</pre></body>"), "scroll"),
    ],
    ids=["pick-count", "no-out-of-sync-word", "rules-folded", "probe-open", "external-url",
         "broken-with-images", "console-error", "pick-not-first", "pick-not-in-words",
         "undecodable-image", "too-wide-for-a-phone"],
)  # fmt: skip
def test_each_check_catches_a_page_that_breaks_the_contract(
    browser_page: BrowserPage, tmp_path: Path, change: tuple[str, str], complaint: str
) -> None:
    """The checks can fail: each mutation of the contract page is caught, for its reason."""
    text = CONTRACT_PAGE.read_text(encoding="utf-8")
    old, new = change
    assert old in text
    broken = tmp_path / "report.html"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(AssertionError) as caught:
        read_report(browser_page, broken, files_exist=False)
    assert complaint in str(caught.value), str(caught.value)


# --------------------------------------------------------------------- a real delivery

DRIFT_STRETCH = 1.006
SECONDS = 24.0
"""Long enough for a series of drift measurements (takes under 12 s get one offset)."""
TAKES = (
    ("001_take1.mp4", TakeSpec()),
    ("001_take2.mp4", TakeSpec(picture_delay_s=3 / 24)),
    ('001_take3 & <"co">\'s.mp4', TakeSpec(picture_stretch=DRIFT_STRETCH)),
)
BROKEN = "002_broken.mp4"


@pytest.fixture(scope="module")
def delivered(module_tmp: MakeDir) -> Iterator[Path]:
    """``handoff deliver`` on the small batch; its ``report.html``."""
    root = module_tmp("report")
    make_batch(root, TAKES, seconds=SECONDS, size=(320, 180))
    deliver_with_a_broken_render(root, BROKEN)
    yield root / "delivery" / "report.html"


def test_a_delivered_report_reads_right_in_chromium(
    browser_page: BrowserPage, delivered: Path
) -> None:
    report = read_report(browser_page, delivered, files_exist=True)

    names = [name for name, _ in TAKES]
    assert sorted(t.name for t in report.takes) == sorted([*names, BROKEN])
    assert report.counts["segments"] == 1 and report.counts["takes"] == 4
    assert report.counts["picks"] == 1

    # The in-sync take is the pick, first in segment 1; the late and the stretched are out.
    first = next(t for t in report.takes if t.segment == "1")
    assert (first.name, first.pick) == (names[0], True)
    assert report.take(names[0]).sync == "in"
    assert report.take(names[1]).sync == "out"
    assert report.take(names[2]).sync == "out"
    # The broken file has no segment and no pictures, only the reason it could not be read.
    broken = report.take(BROKEN)
    assert (broken.segment, broken.readable, broken.pick) == ("", False, False)
    # The pick is in sync: nothing to regenerate, and the one step says so.
    assert len(report.next_steps) == 1
    assert "Regenerate" not in report.next_steps[0], report.next_steps
    for shot in browser_page.screenshots:
        assert shot.stat().st_size > 0, shot


def test_a_report_written_elsewhere_links_to_the_files_from_there(
    browser_page: BrowserPage, delivered: Path
) -> None:
    """``handoff report DELIVERY --out`` in another folder: the links are relative to
    where the page is, so they still reach the delivery's files."""
    delivery = delivered.parent
    elsewhere = delivery.parent / "for the editor & co"
    elsewhere.mkdir(exist_ok=True)
    run = run_handoff("report", str(delivery), "--out", str(elsewhere / "report.html"))
    assert run.returncode == 0, run.stdout + run.stderr
    report = read_report(browser_page, elsewhere / "report.html", files_exist=True)
    assert sorted(t.name for t in report.takes) == sorted([*(n for n, _ in TAKES), BROKEN])


# The plot of the drifting take, read in the browser and decoded as pixels.
READ_TAKE = """(name) => {
  const take = Array.from(document.querySelectorAll("article.take"))
    .find((a) => a.getAttribute("data-take") === name);
  const plot = take.querySelector("img.sync-plot");
  return {text: take.innerText, alt: plot.getAttribute("alt"), src: plot.getAttribute("src"),
          width: plot.naturalWidth, height: plot.naturalHeight};
}"""


def _crossing(series: Sequence[tuple[float, float]], tolerance: float) -> float:
    """Where the measured series first leaves the band, by linear interpolation."""
    for (t0, e0), (t1, e1) in itertools.pairwise(series):
        if abs(e0) <= tolerance < abs(e1):
            return t0 + (t1 - t0) * (tolerance - abs(e0)) / (abs(e1) - abs(e0))
    raise AssertionError(f"the series never leaves the ±{tolerance} ms band: {series}")


def test_the_drifting_takes_plot_marks_where_it_crosses_the_tolerance(
    browser_page: BrowserPage, delivered: Path
) -> None:
    name = TAKES[2][0]
    [view] = [
        t.sync_detail
        for s in collect(json.loads((delivered.parent / "report.json").read_text()),
                         delivered.parent).segments
        for t in s.takes
        if t.name == name
    ]  # fmt: skip
    assert view is not None and view.tolerance_ms is not None and view.exceeds_at_s is not None
    # What was measured: in sync at the start, out by the end, leaving the band where a
    # 0.6 % slow picture is one tolerance late (tolerance / (1 - 1 / stretch)).
    series, tolerance = view.series, view.tolerance_ms
    assert len(series) >= 3, series
    assert abs(series[0][1]) <= tolerance < abs(series[-1][1]), series
    truth = tolerance / 1000.0 / (1.0 - 1.0 / DRIFT_STRETCH)
    assert _crossing(series, tolerance) == pytest.approx(truth, abs=1.0)
    assert view.exceeds_at_s == pytest.approx(truth, abs=1.0)

    browser_page.open(delivered)
    shown: dict[str, Any] = browser_page.page.evaluate(READ_TAKE, name)
    assert re.search(r"\bout of tolerance from \d", shown["text"], re.IGNORECASE), shown["text"]
    assert f"out of tolerance from {view.exceeds_at_s:.2f} s, marked" in shown["alt"]
    assert shown["width"] > 0 and shown["height"] > 0

    # The plot as the browser got it, decoded by PyAV: a red dashed line stands where the
    # figure's own axes put the crossing.
    png = base64.b64decode(shown["src"].split(",", 1)[1])
    codec = av.CodecContext.create("png", "r")
    [frame] = [*codec.decode(av.Packet(png)), *codec.decode(None)]
    rgb = frame.to_ndarray(format="rgb24").astype(int)
    assert rgb.shape[:2] == (shown["height"], shown["width"])
    red = np.all(np.abs(rgb - np.array(_hex_rgb(ERROR_COLOUR))) <= 40, axis=2)
    column = int(np.argmax(red.sum(axis=0)))
    assert red[:, column].sum() >= rgb.shape[0] // 4, "no red line in the plot"
    drawn = sync_figure(view)
    assert drawn is not None
    figure, ax = drawn
    figure.canvas.draw()
    expected = float(ax.transData.transform((view.exceeds_at_s, 0.0))[0])
    assert column == pytest.approx(expected, abs=2.0), (column, expected)
    # ... and the take's line leaves the shaded band there: inside the axes, blue pixels
    # beyond the band only to the right of the red line (image rows count from the top).
    height = rgb.shape[0]
    box = ax.get_window_extent()
    band_top = height - round(float(ax.transData.transform((0.0, tolerance))[1]))
    band_bottom = height - round(float(ax.transData.transform((0.0, -tolerance))[1]))
    left, right = round(box.x0) + 2, round(box.x1)
    blue = np.all(np.abs(rgb - np.array(_hex_rgb(TAKE_COLOUR))) <= 40, axis=2)
    beyond = blue[height - round(box.y1) : band_top - 2, left:right].any(axis=0)
    beyond |= blue[band_bottom + 2 : height - round(box.y0), left:right].any(axis=0)
    columns = np.nonzero(beyond)[0] + left
    assert columns.size, "the take's line never leaves the band"
    assert int(columns.min()) >= column - 3, (int(columns.min()), column)


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
