"""A real browser for the tests: the system's Chromium driven by Playwright.

Playwright's own browser download is not used (CI and the developer machines may not
reach it): the tests launch the Chromium the operating system installed -- Debian's
``chromium`` package, ``/usr/bin/chromium`` -- or the one ``HANDOFF_CHROMIUM`` names.
Tests that need it skip, saying why, when Playwright is not importable or no Chromium is
installed.

The :func:`browser_page` fixture gives a :class:`BrowserPage`: a fresh page that records
what a self-contained page must never do -- log a console error, throw, ask the network
for anything (any URL that is not ``file:`` or ``data:``; such requests are also aborted,
so a test never waits on the network) or fail to load something -- with helpers to open a
file, check all of that, check every image decoded, and keep full-page screenshots at a
desktop and a phone width in ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        ConsoleMessage,
        Error,
        Page,
        Request,
        Route,
    )

__all__ = [
    "ARTIFACTS",
    "DESKTOP",
    "ENV",
    "PHONE",
    "BrowserPage",
    "browser_page",
    "chromium",
    "find_chromium",
]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
DESKTOP = (1280, 800)
PHONE = (390, 844)
"""An iPhone 12-15's CSS viewport: the narrow width the report must read at."""

ENV = "HANDOFF_CHROMIUM"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
LOCAL_SCHEMES = ("file:", "data:")


def find_chromium() -> str | None:
    """The Chromium to drive: ``$HANDOFF_CHROMIUM`` (a path or a command name), else
    ``chromium`` on the PATH, else Debian's ``/usr/bin/chromium``; None when there is none.
    A ``HANDOFF_CHROMIUM`` that names nothing executable fails the test: an explicit
    choice that is wrong must not turn into a quiet skip."""
    chosen = os.environ.get(ENV)
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            pytest.fail(f"{ENV}={chosen!r} is not an executable Chromium")
        return found
    found = shutil.which("chromium")
    if found is not None:
        return found
    if os.access(DEBIAN_CHROMIUM, os.X_OK):
        return str(DEBIAN_CHROMIUM)
    return None


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """One headless system Chromium for the session (each test gets its own context)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    executable = find_chromium()
    if executable is None:
        pytest.skip(f"no Chromium installed: apt-get install chromium, or set {ENV} to a Chromium")
    with sync_playwright() as playwright:
        # Playwright passes --no-sandbox unless asked for the sandbox, which Chromium
        # refuses to run as root (CI runs as root). /dev/shm is 64 MB in a default
        # Docker container, too small for Chromium's shared memory: use /tmp instead.
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


def _is_local(url: str) -> bool:
    return url.startswith(LOCAL_SCHEMES)


SCROLL_THROUGH = """async () => {
  const frame = () => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
  for (let y = 0; y < document.documentElement.scrollHeight; y += window.innerHeight / 2) {
    window.scrollTo(0, y);
    await frame();
  }
  window.scrollTo(0, 0);
  await frame();
}"""


@dataclass
class BrowserPage:
    """A page in its own browser context, and what it has done so far."""

    page: Page
    name: str
    """The test's name, for its screenshots."""
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outgoing: list[str] = field(default_factory=list)
    """Requests for anything but ``file:`` and ``data:`` URLs (all aborted)."""
    failed: list[str] = field(default_factory=list)
    """Requests that failed, whatever their URL (a missing ``file:`` image, too)."""
    screenshots: list[Path] = field(default_factory=list)

    def open(self, path: Path) -> None:
        """Open a file, wait for its ``load`` event, then scroll through it as a reader
        would and wait until every image has loaded or failed: the report's images are
        ``loading="lazy"``, and Chromium fetches a lazy image only once it nears the
        viewport, so below the fold ``load`` alone says nothing about them."""
        self.page.goto(path.resolve().as_uri(), wait_until="load")
        self.page.evaluate(SCROLL_THROUGH)
        self.page.wait_for_function(
            "() => Array.from(document.images).every((img) => img.complete)", timeout=60_000
        )

    def assert_clean(self) -> None:
        """No console error, no uncaught exception, no request off the machine, no failed
        load."""
        problems = {
            "console errors": self.console_errors,
            "page errors": self.page_errors,
            "requests off the machine": self.outgoing,
            "failed requests": self.failed,
        }
        found = {k: v for k, v in problems.items() if v}
        assert not found, found

    def assert_images_loaded(self) -> int:
        """Every ``<img>`` finished loading and decoded to a picture (naturalWidth > 0);
        returns how many there are."""
        images: list[dict[str, Any]] = self.page.evaluate(
            """() => Array.from(document.images, (img) => ({
                src: img.currentSrc.slice(0, 80),
                alt: img.alt,
                complete: img.complete,
                width: img.naturalWidth,
            }))"""
        )
        broken = [i for i in images if not (i["complete"] and i["width"] > 0)]
        assert not broken, f"images not loaded: {broken}"
        return len(images)

    def horizontal_overflow(self) -> int:
        """How many CSS pixels the document is wider than the viewport (0: none; 1 px is
        allowed for sub-pixel rounding)."""
        excess: int = self.page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        return max(0, excess - 1)

    def screenshot(self, width: int, height: int) -> Path:
        """A full-page screenshot at this viewport: ``test-artifacts/<test>-<width>.png``."""
        self.page.set_viewport_size({"width": width, "height": height})
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{width}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.screenshots.append(path)
        return path

    def screenshots_at_desktop_and_phone(self) -> list[Path]:
        """Screenshots at 1280 and 390 px; at the phone width the page must not scroll
        sideways. Leaves the viewport at the desktop size."""
        shots = [self.screenshot(*DESKTOP), self.screenshot(*PHONE)]
        overflow = self.horizontal_overflow()
        self.page.set_viewport_size({"width": DESKTOP[0], "height": DESKTOP[1]})
        assert overflow == 0, f"{overflow} px of horizontal scroll at {PHONE[0]} px wide"
        return shots


@pytest.fixture
def browser_page(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    """A fresh page at 1280x800 recording console errors, page errors and requests."""
    context = chromium.new_context(viewport={"width": DESKTOP[0], "height": DESKTOP[1]})
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    page = context.new_page()
    recorder = BrowserPage(page, name)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            recorder.console_errors.append(message.text)

    def on_page_error(error: Error) -> None:
        recorder.page_errors.append(error.message)

    def on_request(req: Request) -> None:
        if not _is_local(req.url):
            recorder.outgoing.append(req.url)

    def on_failed(req: Request) -> None:
        recorder.failed.append(f"{req.url[:120]}: {req.failure}")

    def block(route: Route) -> None:
        route.abort()

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    page.on("websocket", lambda ws: recorder.outgoing.append(ws.url))
    context.route(lambda url: not _is_local(url), block)
    try:
        yield recorder
    finally:
        context.close()
