"""Shared test helpers: the real-media corpus beside the repo, and media made in the test."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from handoff.synth import ClipSpec, write_clip

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "reference" / "media"
NLE = REPO.parent / "shared" / "reference" / "nle"
FIXTURES = REPO / "fixtures"

X264_2S_GOP_24 = {
    "preset": "ultrafast",
    "x264-params": "keyint=48:min-keyint=48:scenecut=0:open-gop=0",
}


def corpus_file(relative: str) -> Path:
    """A file of the shared corpus, or skip the test saying why."""
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"shared corpus file not present: {path}")
    return path


MakeClip = Callable[..., Path]


@pytest.fixture
def make_clip(tmp_path: Path) -> MakeClip:
    """Encode a small synthetic clip in the test's folder: make_clip("a.mp4", fps=..., ...)."""

    def make(name: str, **kwargs: object) -> Path:
        spec = ClipSpec(**kwargs)  # type: ignore[arg-type]
        return write_clip(tmp_path / name, spec)

    return make


def review_clip_kwargs(fps: Fraction = Fraction(24), seconds: float = 3.0) -> dict[str, object]:
    """Settings that meet the h264-review spec."""
    gop = round(2 * fps)
    return {
        "fps": fps,
        "seconds": seconds,
        "gop": gop,
        "profile": "high",
        "video_options": {
            "preset": "veryfast",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0",
        },
        "audio_bit_rate": 192000,
        "width": 160,
        "height": 96,
    }
