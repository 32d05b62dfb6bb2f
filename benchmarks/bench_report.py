"""How long a delivery report of 500 takes takes to write, and to open in Chromium
(issue 15: opens in < 3 s).

The system's Chromium (Debian's ``chromium``, or ``$HANDOFF_CHROMIUM``), driven by
Playwright, opens the page from disk in a fresh browser context, ``--repeat`` times; each
run gives the wall time from navigation to the ``load`` event (every image decoded) as
Playwright sees it, and the page's own Navigation Timing figures (DOMContentLoaded and
``loadEventEnd``, from navigation start). The report prints the medians and the page's
size in bytes and per take.

Which page:

- ``--delivery DIR``: the real page, written by ``handoff report``. DIR is a finished
  delivery (``handoff demo``'s ``delivery/`` will do); its ``report.json`` is repeated,
  segment numbers and take names made new, to ``--takes`` takes in a folder of the
  work directory (each copy names the same masters, so every take's thumbnails,
  waveforms and plots are made from real media by the real code). ``handoff report
  --jobs`` writes the page, timed as a command (wall, CPU, peak RSS of the process tree);
  then the page is opened.
- ``--page PATH``: an existing ``report.html``, opened as it is;
- otherwise a stand-in page of ``--takes`` takes laid out to issue 15's HTML contract
  (segments of five takes, the pick first; three JPEG thumbnails, a waveform and a sync
  plot per take as data URIs, folded probe tables), its pictures made with PyAV at the
  sizes a real report uses: the order of the bytes and decode work, not the real page.

    handoff demo demo-out
    python benchmarks/bench_report.py --delivery demo-out/delivery --takes 500 --repeat 3
    python benchmarks/bench_report.py --page delivery/report.html

No other tool writes this page (MediaConch's and QC tools' HTML reports know nothing of
takes or sync), so the figures stand alone. Timings on a shared machine are noisy: the
first run also pays for a cold disk cache.
"""

from __future__ import annotations

import argparse
import base64
import copy
import io
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import av
import benchlib
import numpy as np
from lxml import etree
from lxml.html import builder as h

THUMB = (160, 90)
PLOT = (640, 160)
DISTINCT = 16
"""Distinct pictures of each kind, used in turn (encoding 2,500 images is not the point)."""

NAV_TIMING = """() => {
  const [nav] = performance.getEntriesByType("navigation");
  return {dcl_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd,
          images: document.images.length,
          decoded: Array.from(document.images).filter((i) => i.naturalWidth > 0).length};
}"""


def find_chromium() -> str:
    chosen = os.environ.get("HANDOFF_CHROMIUM") or "chromium"
    found = shutil.which(chosen) or shutil.which("/usr/bin/chromium")
    if found is None:
        sys.exit(f"no Chromium: apt-get install chromium, or set HANDOFF_CHROMIUM ({chosen!r})")
    return found


def encode_image(rgb: np.ndarray[Any, np.dtype[np.uint8]], codec: str, pix_fmt: str) -> bytes:
    """One still picture as a JPEG (``mjpeg``) or PNG (``png``) file's bytes, by PyAV."""
    height, width = rgb.shape[:2]
    out = io.BytesIO()
    with av.open(out, "w", format="image2pipe") as container:
        stream = container.add_stream(codec, rate=1)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def stand_in_pictures(seed: int) -> tuple[list[str], list[str]]:
    """DISTINCT thumbnails (noisy gradients, as hard to compress as a video frame) and
    DISTINCT plots (a filled waveform with a line over it)."""
    rng = np.random.default_rng(seed)
    thumbs, plots = [], []
    w, h = THUMB
    y, x = np.mgrid[0:h, 0:w]
    for i in range(DISTINCT):
        base = np.stack([(x * 3 + i * 16) % 256, (y * 5 + i * 8) % 256, (x + y) % 256], -1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        thumbs.append(data_uri("image/jpeg", encode_image(noisy, "mjpeg", "yuvj420p")))
    w, h = PLOT
    for i in range(DISTINCT):
        plot = np.full((h, w, 3), 255, np.uint8)
        envelope = np.abs(rng.normal(0, 0.35, w)).clip(0, 1) * (h // 2 - 4)
        for col, amp in enumerate(envelope.astype(int)):
            plot[h // 2 - amp : h // 2 + amp + 1, col] = (40, 90, 200)
        line = (h // 2 + 30 * np.sin(np.arange(w) / (20 + i))).astype(int)
        plot[line, np.arange(w)] = (200, 40, 40)
        plots.append(data_uri("image/png", encode_image(plot, "png", "rgb24")))
    return thumbs, plots


def stand_in_page(takes: int) -> bytes:
    """A contract-shaped report of ``takes`` takes, five to a segment, the first the pick,
    every third out of sync, every seventh failing its spec."""
    thumbs, plots = stand_in_pictures(seed=15)
    segments: list[Any] = []
    picks = out_of_sync = failures = 0
    for first in range(0, takes, 5):
        number = first // 5 + 1
        articles = []
        for n in range(first, min(first + 5, takes)):
            name = f"{number:03d}_take{n - first + 1} & co.mp4"
            pick, out, fails = n == first, n % 3 == 1, n % 7 == 3
            picks, out_of_sync, failures = picks + pick, out_of_sync + out, failures + fails
            body: list[Any] = [h.H3(*(["PICK "] if pick else []), name)]
            body.append(
                h.DIV(
                    *(
                        h.IMG(h.CLASS("thumb"), alt=f"{name}, {where} frame", src=thumbs[n % 16])
                        for where in ("first", "middle", "last")
                    ),
                    h.CLASS("thumbs"),
                )
            )
            body.append(h.IMG(h.CLASS("waveform"), alt="waveform", src=plots[n % 16]))
            body.append(h.IMG(h.CLASS("sync-plot"), alt="sync error", src=plots[(n + 5) % 16]))
            body.append(h.P("OUT OF SYNC from 4.20 s" if out else "IN SYNC"))
            if fails:
                body += [h.P("FAILS prores-master"), h.UL(h.LI("True peak above -1 dBTP"))]
                body[-1].set("class", "failed-rules")
            body.append(h.P(h.A("master", h.CLASS("file"), href=f"masters/{name[:-4]}.mov")))
            rows = [h.TR(h.TH(k), h.TD(v)) for k, v in (("Rate", "24/1 CFR"), ("GOP", "1"))]
            body.append(h.DETAILS(h.SUMMARY("Probe facts"), h.TABLE(*rows), h.CLASS("probe")))
            article = h.ARTICLE(*body, h.CLASS("take"))
            article.attrib.update({"data-take": name, "data-pick": str(pick).lower(),
                                   "data-sync": "out" if out else "in",
                                   "data-spec": "fail" if fails else "pass"})  # fmt: skip
            articles.append(article)
        section = h.SECTION(h.H2(f"Segment {number:03d}"), *articles, h.CLASS("segment"))
        section.set("data-segment", str(number))
        segments.append(section)
    counts = {"segments": len(segments), "takes": takes, "picks": picks,
              "passes": takes - failures, "failures": failures}  # fmt: skip
    summary = h.SECTION(
        h.H2("Summary"),
        h.P(", ".join(f"{v} {k}" for k, v in counts.items())),
        h.UL(h.LI("Nothing needs regenerating."), id="next-steps"),
        id="summary",
    )
    summary.attrib.update({f"data-{k}": str(v) for k, v in counts.items()})
    css = ".take{display:inline-block;width:30%;vertical-align:top} img{max-width:100%}"
    page = h.HTML(
        h.HEAD(
            h.META(charset="utf-8"),
            h.META(name="viewport", content="width=device-width, initial-scale=1"),
            h.TITLE(f"Stand-in report of {takes} takes"),
            h.STYLE(css),
        ),
        h.BODY(summary, *segments),
        lang="en",
    )
    return etree.tostring(page, method="html", encoding="utf-8", doctype="<!DOCTYPE html>")


def time_page(page: Path, repeat: int) -> list[dict[str, float]]:
    from playwright.sync_api import sync_playwright

    runs = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=["--disable-dev-shm-usage"]
        )
        try:
            for run in range(repeat):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                tab = context.new_page()
                start = time.perf_counter()
                tab.goto(page.resolve().as_uri(), wait_until="load", timeout=120_000)
                wall = time.perf_counter() - start
                # loadEventEnd is set once the load handlers have returned.
                tab.wait_for_function(
                    "() => performance.getEntriesByType('navigation')[0].loadEventEnd > 0"
                )
                figures: dict[str, float] = tab.evaluate(NAV_TIMING)
                figures["wall_s"] = wall
                benchlib.say(f"run {run + 1}: {wall:.2f} s to load, {figures}")
                runs.append(figures)
                context.close()
        finally:
            browser.close()
    return runs


def repeated_delivery(delivery: Path, takes: int, into: Path) -> Path:
    """A folder whose ``report.json`` holds ``takes`` takes: ``delivery``'s rows over and
    over, each copy's segments numbered after the last copy's and its names made new."""
    document = json.loads((delivery / "report.json").read_text(encoding="utf-8"))
    rows = [r for r in document["renders"] if r.get("state") == "done"]
    if not rows:
        sys.exit(f"{delivery}: no delivered render in its report.json")
    selects = document.get("selects") or {"segments": []}

    def segment_of(row: dict[str, Any]) -> int | None:
        sync = (((row.get("records") or {}).get("sync") or {}).get("result") or {}).get("sync")
        return sync.get("segment") if isinstance(sync, dict) else None

    span = max((segment_of(r) or 0) for r in rows) or 1
    out_rows, out_segments = [], []
    for n in range(takes):
        copy_no, row = divmod(n, len(rows))
        row = copy.deepcopy(rows[row])
        render = Path(row["render"])
        row["render"] = str(render.with_name(f"copy{copy_no:03d}_{render.name}"))
        segment = segment_of(row)
        if segment is not None:
            row["records"]["sync"]["result"]["sync"]["segment"] = segment + copy_no * span
        out_rows.append(row)
    for copy_no in range(-(-takes // len(rows))):
        for chosen in selects.get("segments") or []:
            chosen = copy.deepcopy(chosen)
            chosen["segment"] = chosen["segment"] + copy_no * span
            out_segments.append(chosen)
    into.mkdir(parents=True, exist_ok=True)
    # The masters stay where they are: paths outside the folder are taken as they are.
    document["options"]["out"] = str(into.resolve())
    document["renders"] = out_rows
    document["selects"] = {**selects, "segments": out_segments}
    (into / "report.json").write_text(json.dumps(document), encoding="utf-8")
    return into


def write_real_page(folder: Path, jobs: int) -> dict[str, Any]:
    """``handoff report FOLDER --jobs N``, timed as a command."""
    argv = [sys.executable, "-m", "handoff", "report", str(folder), "--jobs", str(jobs)]
    done, figures = benchlib.measure_command(argv, method="ru_maxrss of the waited children")
    if done.returncode != 0:
        sys.exit(f"handoff report failed ({done.returncode}): {done.stderr.strip()}")
    benchlib.say(
        f"handoff report: {figures['wall_s']:.1f} s wall, {figures['cpu_s']:.1f} s CPU, "
        f"peak RSS {benchlib.mib(figures['peak_rss_kib']):.0f} MiB"
    )
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--page", type=Path, help="time this report.html instead")
    parser.add_argument(
        "--delivery",
        type=Path,
        help="write the real page from this delivery's report.json, repeated",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="handoff report --jobs (with --delivery)")  # fmt: skip
    parser.add_argument("--takes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=benchlib.WORKDIR)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    written: dict[str, Any] | None = None
    if args.page is not None:
        page, takes = args.page, None
        if not page.is_file():
            parser.error(f"--page {page}: no such file")
    elif args.delivery is not None:
        if not (args.delivery / "report.json").is_file():
            parser.error(f"--delivery {args.delivery}: no report.json there")
        takes = args.takes
        folder = repeated_delivery(args.delivery, takes, args.workdir / f"report_{takes}_real")
        benchlib.say(f"writing the real report of {takes} takes in {folder}")
        written = write_real_page(folder, args.jobs)
        page = folder / "report.html"
    else:
        takes = args.takes
        page = args.workdir / f"report_{takes}_takes.html"
        benchlib.say(f"writing a stand-in report of {takes} takes to {page}")
        args.workdir.mkdir(parents=True, exist_ok=True)
        page.write_bytes(stand_in_page(takes))
    size = page.stat().st_size
    runs = time_page(page, args.repeat)
    wall = statistics.median(r["wall_s"] for r in runs)
    load = statistics.median(r["load_ms"] for r in runs) / 1000
    dcl = statistics.median(r["dcl_ms"] for r in runs) / 1000
    print(f"page: {page} ({size / 1e6:.1f} MB" + (f", {size / takes / 1e3:.0f} KB a take)"
          if takes else ")"))  # fmt: skip
    if written is not None:
        print(f"written by handoff report --jobs {args.jobs}: {written['wall_s']:.1f} s wall, "
              f"{written['cpu_s']:.1f} s CPU, peak RSS "
              f"{benchlib.mib(written['peak_rss_kib']):.0f} MiB")  # fmt: skip
    print(f"median of {len(runs)}: load event {wall:.2f} s (Playwright), loadEventEnd "
          f"{load:.2f} s, DOMContentLoaded {dcl:.2f} s; target < 3 s")  # fmt: skip
    undecoded = [r for r in runs if r["decoded"] != r["images"]]
    if undecoded:
        print(f"images not decoded: {undecoded}")
    if args.json:
        document = {
            "command": benchlib.command_line(sys.argv[1:]),
            "page": str(page),
            "bytes": size,
            "takes": takes,
            "runs": runs,
            "written": written,
            "machine": benchlib.machine(ffmpeg=False),
        }
        benchlib.write_json(args.json, document)
    return 1 if undecoded else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
