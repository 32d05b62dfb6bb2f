"""What ``prep-audio`` wrote and measured: the results, each able to say itself as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from handoff.files import manifest
from handoff.prep.options import RATE, CutKind, PrepOptions
from handoff.prep.shape import Gap
from handoff.validate.check import FileReport

__all__ = [
    "Cut",
    "LeftRight",
    "LeftRightVerdict",
    "MasterInfo",
    "Passage",
    "PrepResult",
    "SegmentInfo",
    "SourceInfo",
    "clock",
]

# Heavy limiting (issue 11): warned when the limiter takes more than 6 dB off a peak, or
# works on more than 5 % of the programme (its first to its last sound).
HEAVY_REDUCTION_DB = 6.0
HEAVY_SHARE = 0.05

LeftRightVerdict = Literal["same", "one-sided", "different"]


@dataclass(frozen=True, slots=True)
class LeftRight:
    """How the two channels of a stereo source compare over its sound (100 ms steps
    whose louder channel is above the silence threshold)."""

    verdict: LeftRightVerdict
    """``same``: one sound on both sides; ``one-sided``: the quieter channel is more than
    20 dB under the louder; ``different``: each channel has a sound of its own
    (correlation under 0.5, or the louder side swings by more than 10 dB)."""
    correlation: float | None
    """Sum of L*R over the sound, normalised: 1 for identical channels, about 0 for
    unrelated ones (None when a channel is digital silence)."""
    level_difference_db: float | None
    """L minus R, energy over the sound (None when a channel is digital silence)."""
    level_swing_db: float
    """Spread (90th minus 10th percentile) of the 100 ms steps' L-minus-R level."""

    def to_manifest(self) -> manifest.ManifestLeftRight:
        return manifest.ManifestLeftRight(
            verdict=self.verdict,
            correlation=manifest.rounded(self.correlation, 3),
            level_difference_db=manifest.rounded(self.level_difference_db, 2),
            level_swing_db=round(self.level_swing_db, 2),
        )

    def to_json(self) -> dict[str, Any]:
        return manifest.section_json(self.to_manifest())


@dataclass(frozen=True, slots=True)
class Passage:
    """Where the limiter worked hardest: its limited stretches around the deepest
    reduction, joined across gaps shorter than a real pause (master samples)."""

    start: int
    end: int
    max_reduction_db: float
    limited_s: float

    def to_manifest(self) -> manifest.ManifestPassage:
        return manifest.ManifestPassage(
            start=self.start,
            end=self.end,
            start_s=manifest.seconds(self.start, RATE),
            end_s=manifest.seconds(self.end, RATE),
            max_reduction_db=round(self.max_reduction_db, 3),
            limited_s=round(self.limited_s, 3),
        )

    def to_json(self) -> dict[str, Any]:
        return manifest.section_json(self.to_manifest())

    def describe(self) -> str:
        return f"{clock(self.start / RATE)}\u2013{clock(self.end / RATE)}"


def clock(seconds: float) -> str:
    """``HH:MM:SS.ss``."""
    centis = round(seconds * 100.0)
    s, cs = divmod(centis, 100)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{cs:02d}"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    path: Path
    sha256: str
    sample_rate: int
    channels: int
    samples: int
    integrated_lufs: float
    """The content (after the channel choice, at 48 kHz) before gain."""
    true_peak_dbtp: float
    measured_as: str = "mono"
    """Which signal ``integrated_lufs`` is the loudness of
    (see :func:`handoff.prep.content.content`)."""
    left_right: LeftRight | None = None
    """How L and R compare (two-channel sources only)."""

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    def to_manifest(self) -> manifest.ManifestSource:
        return manifest.ManifestSource(
            file=str(self.path),
            sha256=self.sha256,
            sample_rate=self.sample_rate,
            channels=self.channels,
            samples=self.samples,
            duration_s=manifest.seconds(self.samples, self.sample_rate),
            integrated_lufs=manifest.rounded(self.integrated_lufs, 3),
            true_peak_dbtp=manifest.rounded(self.true_peak_dbtp, 3),
            measured_as=self.measured_as,
            left_right=None if self.left_right is None else self.left_right.to_manifest(),
        )

    def to_json(self) -> dict[str, Any]:
        return manifest.section_json(self.to_manifest())


@dataclass(frozen=True, slots=True)
class MasterInfo:
    path: Path
    samples: int
    channels: int
    gain_db: float
    integrated_lufs: float
    true_peak_dbtp: float
    measured_as: str
    limiter_max_reduction_db: float
    """Deepest limiter gain reduction, dB (0 when the limiter never acted)."""
    limited_s: float
    """Time during which the limiter reduced the gain by more than 0.01 dB."""
    limited_share: float = 0.0
    """``limited_s`` over the programme (the master from its first to its last sound)."""
    loudest_passage: Passage | None = None
    """Where the limiter took most off (None when it never acted)."""

    @property
    def heavy_limiting(self) -> bool:
        """More than 6 dB taken off a peak, or more than 5 % of the programme limited."""
        return (
            self.limiter_max_reduction_db > HEAVY_REDUCTION_DB or self.limited_share > HEAVY_SHARE
        )

    @property
    def duration_s(self) -> float:
        return self.samples / RATE

    def to_manifest(self) -> manifest.ManifestMaster:
        return manifest.ManifestMaster(
            file=self.path.name,
            samples=self.samples,
            duration_s=manifest.seconds(self.samples, RATE),
            channels=self.channels,
            gain_db=round(self.gain_db, 3),
            integrated_lufs=manifest.rounded(self.integrated_lufs, 3),
            true_peak_dbtp=manifest.rounded(self.true_peak_dbtp, 3),
            measured_as=self.measured_as,
            limiter_max_reduction_db=round(self.limiter_max_reduction_db, 3),
            limited_s=round(self.limited_s, 3),
            limited_share=round(self.limited_share, 4),
            heavy_limiting=self.heavy_limiting,
            loudest_passage=None
            if self.loudest_passage is None
            else self.loudest_passage.to_manifest(),
        )

    def to_json(self) -> dict[str, Any]:
        return manifest.section_json(self.to_manifest())


@dataclass(frozen=True, slots=True)
class Cut:
    """Where a segment's audio was cut out of the master (48 kHz master samples)."""

    position: int
    kind: CutKind
    pause_s: float | None = None
    """Length of the pause the cut is in (None at the programme's edges)."""

    def to_manifest(self) -> manifest.Cut:
        return manifest.Cut(
            position=self.position,
            position_s=manifest.seconds(self.position, RATE),
            kind=self.kind,
            pause_s=manifest.rounded(self.pause_s, 3),
        )

    def to_json(self) -> dict[str, Any]:
        return manifest.section_json(self.to_manifest())


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    index: int
    path: Path
    samples: int
    channels: int
    source_in: int
    """First master sample of the segment's audio (it starts at ``preroll_end``)."""
    source_out: int
    """Master sample after the segment's last one."""
    click_start: int | None
    click_end: int | None
    preroll_start: int
    preroll_end: int
    integrated_lufs: float
    true_peak_dbtp: float
    measured_as: str
    cut_in: Cut
    cut_out: Cut

    @property
    def duration_s(self) -> float:
        return self.samples / RATE

    @property
    def source_in_s(self) -> float:
        return self.source_in / RATE

    @property
    def source_out_s(self) -> float:
        return self.source_out / RATE

    def to_manifest(self) -> manifest.Segment:
        return manifest.Segment(
            index=self.index,
            file=self.path.name,
            samples=self.samples,
            duration_s=manifest.seconds(self.samples, RATE),
            channels=self.channels,
            source_in=self.source_in,
            source_out=self.source_out,
            source_in_s=manifest.seconds(self.source_in, RATE),
            source_out_s=manifest.seconds(self.source_out, RATE),
            click_start=self.click_start,
            click_end=self.click_end,
            preroll_start=self.preroll_start,
            preroll_end=self.preroll_end,
            integrated_lufs=manifest.rounded(self.integrated_lufs, 3),
            true_peak_dbtp=manifest.rounded(self.true_peak_dbtp, 3),
            measured_as=self.measured_as,
            cut_in=self.cut_in.to_manifest(),
            cut_out=self.cut_out.to_manifest(),
        )

    def to_json(self) -> dict[str, Any]:
        return manifest.section_json(self.to_manifest())


@dataclass(frozen=True, slots=True)
class PrepResult:
    """Everything ``prep_audio`` wrote and measured."""

    out_dir: Path
    manifest_path: Path
    source: SourceInfo
    master: MasterInfo
    segments: tuple[SegmentInfo, ...]
    options: PrepOptions
    """The options used, channels resolved."""
    settings: dict[str, Any] = field(hash=False)
    warnings: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    checks: tuple[FileReport, ...] = ()
    """Each segment file as written, validated against
    :func:`handoff.prep.execute.self_check_spec`."""
    gaps: tuple[Gap, ...] = ()
    """``--fill-gaps``: the spans removed from long silences (the manifest's time map)."""

    @property
    def failed(self) -> tuple[FileReport, ...]:
        """The segments that do not pass the spec of what was asked (see ``checks``)."""
        return tuple(r for r in self.checks if r.status != "pass")

    def to_manifest(self) -> manifest.Manifest:
        """``manifest.json`` as :mod:`handoff.files.manifest` writes and reads it."""
        return manifest.Manifest(
            path=self.manifest_path,
            source=self.source.to_manifest(),
            settings=manifest.settings_from_json(self.settings),
            master=self.master.to_manifest(),
            segments=tuple(s.to_manifest() for s in self.segments),
            warnings=self.warnings,
            gaps=tuple(g.to_manifest() for g in self.gaps),
        )

    def manifest(self) -> dict[str, Any]:
        """The content of ``manifest.json``."""
        return self.to_manifest().to_json()

    def to_json(self) -> dict[str, Any]:
        """The manifest plus absolute paths (``manifest``, ``master.path``, ``segments[].path``)."""
        out = self.manifest()
        out["manifest"] = str(self.manifest_path)
        out["out_dir"] = str(self.out_dir)
        out["master"]["path"] = str(self.master.path)
        for seg_json, seg in zip(out["segments"], self.segments, strict=True):
            seg_json["path"] = str(seg.path)
        out["elapsed_s"] = round(self.elapsed_s, 3)
        out["checks"] = [r.to_json() for r in self.checks]
        return out
