"""Shared test helpers: the real-media corpus beside the repo, and media made in the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from handoff.media.synth import ClipSpec, write_clip, write_wav
from handoff.probe.reader import probe
from handoff.timeline import TimelineBuild, build_timeline, load_manifest, source_from_info
from tests.browser import browser_page, chromium  # noqa: F401  (fixtures, for every test module)

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "reference" / "media"
NLE = REPO.parent / "shared" / "reference" / "nle"
FIXTURES = REPO / "fixtures"

X264_2S_GOP_24 = {
    "preset": "ultrafast",
    "x264-params": "keyint=48:min-keyint=48:scenecut=0:open-gop=0",
}


def run_handoff(
    *args: str, unprivileged: bool = False, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``handoff ARGS`` in a child process (a native crash must not take pytest with it),
    in ``cwd`` when given.

    ``unprivileged``: without the capabilities that let root read any file, so that
    permission bits count when the tests run as root (setpriv(1) drops them from the
    bounding set; root then reads only what its owner and mode bits allow).
    """
    argv = [sys.executable, "-m", "handoff", *args]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permission bits cannot be tested")
        argv = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *argv]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        cwd=cwd,
    )


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
    timecodes: Sequence[str | None] | None = None,
    master_time_reference: int | None = None,
) -> TimelineProject:
    """Clips named after their segments (``001_…``) in a folder with an awkward name,
    the master WAV and a complete manifest in the form ``prep-audio`` writes (segments
    laid end to end in the master, each with a 150 ms pre-roll in its own file; every
    field of schema ``handoff.prep-audio/1``, the measured ones made up).

    ``timecodes``: each clip's start timecode, written as a ``tmcd`` track;
    ``master_time_reference``: the master's BWF time reference (samples since
    midnight)."""
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
            timecode=None if timecodes is None else timecodes[i - 1],
        )
        clips.append(write_clip(folder / f"{i:03d}_shot é & #{i}.mp4", spec))
        speech = round((seconds - 0.15) * sr)
        first, last = i == 1, i == len(clip_seconds)
        segments.append(
            {
                "index": i,
                "file": f"{i:03d}_narration.wav",
                "samples": preroll + speech,
                "duration_s": round((preroll + speech) / sr, 6),
                "channels": master_channels,
                "source_in": pos,
                "source_out": pos + speech,
                "source_in_s": round(pos / sr, 6),
                "source_out_s": round((pos + speech) / sr, 6),
                "click_start": None,
                "click_end": None,
                "preroll_start": 0,
                "preroll_end": preroll,
                "integrated_lufs": -16.0,
                "true_peak_dbtp": -3.4,
                "measured_as": "as is",
                "cut_in": {
                    "position": pos,
                    "position_s": round(pos / sr, 6),
                    "kind": "start" if first else "pause",
                    "pause_s": None if first else 0.0,
                },
                "cut_out": {
                    "position": pos + speech,
                    "position_s": round((pos + speech) / sr, 6),
                    "kind": "end" if last else "pause",
                    "pause_s": None if last else 0.0,
                },
            }
        )
        pos += speech
    master = folder / "narration master's.wav"
    t = np.arange(pos) / sr
    tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    write_wav(master, np.repeat(tone[None, :], master_channels, axis=0), sr,
              time_reference=master_time_reference)  # fmt: skip
    manifest = folder / "manifest.json"
    document = {
        "schema": "handoff.prep-audio/1",
        "source": {
            "file": str(master.resolve()),
            "sha256": "0" * 64,
            "sample_rate": sr,
            "channels": master_channels,
            "samples": pos,
            "duration_s": round(pos / sr, 6),
            "integrated_lufs": -20.0,
            "true_peak_dbtp": -6.0,
        },
        "settings": {
            "name": "narration",
            "kind": "voice",
            "channels": "mono" if master_channels == 1 else "dual-mono",
            "target_lufs": -16.0,
            "true_peak_dbtp": -3.0,
            "preroll_ms": 150,
            "click": False,
            "max_seconds": 120.0,
            "segment_min_s": 60.0,
            "segment_max_s": 90.0,
            "bit_depth": 24,
            "sample_rate": sr,
            "limiter": {
                "ceiling_dbtp": -3.3,
                "attack_ms": 1.5,
                "hold_ms": 0.0,
                "release_db_per_s": 200.0,
                "oversample": 4,
            },
            "silence": {
                "threshold_dbfs": -60.0,
                "real_pause_s": 0.3,
                "short_pause_s": 0.15,
                "lead_in_s": 0.005,
                "tail_s": 0.04,
            },
        },
        "master": {
            "file": master.name,
            "samples": pos,
            "duration_s": round(pos / sr, 6),
            "channels": master_channels,
            "gain_db": 4.0,
            "integrated_lufs": -16.0,
            "true_peak_dbtp": -3.4,
            "measured_as": "as is",
            "limiter_max_reduction_db": 0.0,
            "limited_s": 0.0,
        },
        "segments": segments,
        "warnings": [],
    }
    manifest.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return TimelineProject(folder, clips, master, manifest, fps)


def project_timeline(project: TimelineProject, *, with_master: bool = True) -> TimelineBuild:
    """The OTIO model for a project: with master + manifest, or the clips back to back."""
    sources = [source_from_info(probe(c)) for c in project.clips]
    if not with_master:
        return build_timeline(sources, name="Clips only")
    manifest = load_manifest(project.manifest)
    master = source_from_info(probe(project.master), audio_only=True)
    return build_timeline(sources, master=master, manifest=manifest, name="Déjà vu & 'co' #1")


MakeDir = Callable[[str], Path]
"""``module_tmp(name)``: a new folder for media a test module shares."""


@pytest.fixture(scope="module")
def module_tmp(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeDir]:
    """New folders for a module's shared media (``tmp_path_factory.mktemp``), removed when
    the module is done if none of its tests failed -- what ``tmp_path_retention_policy =
    "failed"`` does for each test's own ``tmp_path``, which pytest does not do for the
    factory's folders until the whole run has passed. A failed module's folders are kept
    for a look."""
    made: list[Path] = []
    failed_before = request.session.testsfailed

    def make(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield make
    if request.session.testsfailed == failed_before:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``demo-out/`` as ``handoff demo demo-out`` leaves it, made once a session. Tests
    copy it (:func:`copy_demo`) rather than change it."""
    root = tmp_path_factory.mktemp("demo")
    done = run_handoff("demo", "demo-out", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "demo-out"


def copy_demo(demo: Path, into: Path) -> Path:
    """A fresh copy of the demo's folder as ``into/demo-out`` (symbolic links kept)."""
    into.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(demo, into / "demo-out", symlinks=True))
