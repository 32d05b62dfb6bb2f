"""Shared test helpers: the real-media corpus beside the repo, and media made in the test."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from handoff.probe import probe
from handoff.synth import ClipSpec, write_clip, write_wav
from handoff.timeline import TimelineBuild, build_timeline, load_manifest, source_from_info

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


# ---------------------------------------------------------------- timelines


@dataclass(frozen=True)
class TimelineProject:
    """Clips, a master narration and a prep-audio-shaped manifest, on disk."""

    folder: Path
    clips: list[Path]
    master: Path
    manifest: Path
    rate: Fraction


# Awkward on purpose: every format must carry these names through intact.
AWKWARD_DIR = "Proj & Co #1 'ü' 100%"


def make_timeline_project(
    root: Path,
    *,
    fps: Fraction = Fraction(24000, 1001),
    clip_seconds: Sequence[float] = (3.0, 3.0, 2.5),
    master_channels: int = 1,
    clip_audio: bool = True,
) -> TimelineProject:
    """Clips named after their segments (``001_…``) in a folder with an awkward name,
    the master WAV and a manifest in the form ``prep-audio`` writes (segments laid end
    to end in the master, each with a 150 ms pre-roll in its own file)."""
    folder = root / AWKWARD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    sr = 48000
    preroll = sr * 150 // 1000
    clips: list[Path] = []
    segments: list[dict[str, object]] = []
    pos = 0
    for i, seconds in enumerate(clip_seconds, 1):
        spec = ClipSpec(
            fps=fps,
            seconds=seconds,
            width=160,
            height=96,
            audio_rate=48000 if clip_audio else None,
            audio_channels=2,
            video_options={"preset": "ultrafast"},
        )
        clips.append(write_clip(folder / f"{i:03d}_shot é & #{i}.mp4", spec))
        speech = round((seconds - 0.15) * sr)
        segments.append(
            {
                "index": i,
                "file": f"{i:03d}_narration.wav",
                "source_in": pos,
                "source_out": pos + speech,
                "preroll_start": 0,
                "preroll_end": preroll,
            }
        )
        pos += speech
    master = folder / "narration master's.wav"
    t = np.arange(pos) / sr
    tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    write_wav(master, np.repeat(tone[None, :], master_channels, axis=0), sr)
    manifest = folder / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "schema": "handoff.prep-audio/1",
                "settings": {"sample_rate": sr},
                "master": {"file": master.name, "samples": pos},
                "segments": segments,
            }
        ),
        encoding="utf-8",
    )
    return TimelineProject(folder, clips, master, manifest, fps)


def project_timeline(project: TimelineProject, *, with_master: bool = True) -> TimelineBuild:
    """The OTIO model for a project: with master + manifest, or the clips back to back."""
    sources = [source_from_info(probe(c)) for c in project.clips]
    if not with_master:
        return build_timeline(sources, name="Clips only")
    manifest = load_manifest(project.manifest)
    master = source_from_info(probe(project.master), audio_only=True)
    return build_timeline(sources, master=master, manifest=manifest, name="Déjà vu & 'co' #1")
