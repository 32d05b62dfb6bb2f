"""How the browser tests find their Chromium (``tests/browser.py``), without starting it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import ENV, find_chromium


def test_the_environment_names_the_chromium_to_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chrome = tmp_path / "my chrome"
    chrome.write_text("#!/bin/sh\n")
    chrome.chmod(0o755)
    monkeypatch.setenv(ENV, str(chrome))
    assert find_chromium() == str(chrome)


@pytest.mark.parametrize("mode", [None, 0o644], ids=["missing", "not-executable"])
def test_a_wrong_chromium_in_the_environment_fails_rather_than_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int | None
) -> None:
    chrome = tmp_path / "chrome"
    if mode is not None:
        chrome.write_text("#!/bin/sh\n")
        chrome.chmod(mode)
    monkeypatch.setenv(ENV, str(chrome))
    with pytest.raises(pytest.fail.Exception, match=ENV):
        find_chromium()


def test_without_the_environment_the_path_is_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chrome = tmp_path / "chromium"
    chrome.write_text("#!/bin/sh\n")
    chrome.chmod(0o755)
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert find_chromium() == str(chrome)
