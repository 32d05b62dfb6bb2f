"""From paths on the command line to a built timeline: gather, probe, lay out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from handoff.errors import HandoffError, InputError, UsageError
from handoff.files import AUDIO_SUFFIXES, expand_media, is_folder
from handoff.manifest import Manifest, load_manifest
from handoff.probe import probe
from handoff.timeline.model import (
    Source,
    TimelineBuild,
    build_timeline,
    source_from_info,
)

__all__ = ["Gathered", "gather_clips", "timeline_from_paths"]


@dataclass(slots=True)
class Gathered:
    clips: list[Path]
    skipped: list[Path] = field(default_factory=list)
    """Audio files met inside folders (narration beside the clips), left off V1."""
    problems: list[InputError] = field(default_factory=list)
    """Paths that gave no file: a folder that cannot be listed or holds no media."""


def gather_clips(paths: Sequence[Path]) -> Gathered:
    """Files as given; folders expanded to their video files in numeric-prefix order.

    What cannot be expanded (a folder that cannot be listed, or holds no media) is kept
    in :attr:`Gathered.problems`, for the caller to report with the clips that cannot be
    used. Raises :class:`UsageError` only when there is nothing at all to report on.
    """
    out = Gathered([])
    named = {p for p in paths if not is_folder(p)}
    for f in expand_media(paths):
        if isinstance(f, InputError):
            out.problems.append(f)
            continue
        from_folder_audio = f not in named and f.suffix.lower() in AUDIO_SUFFIXES
        (out.skipped if from_folder_audio else out.clips).append(f)
    if not out.clips and not out.problems:
        raise UsageError("no video clips among the inputs (audio files go in --master)")
    return out


def timeline_from_paths(
    clip_paths: Sequence[Path],
    *,
    manifest_path: Path | None = None,
    master_path: Path | None = None,
    name: str | None = None,
) -> TimelineBuild:
    """Probe every clip (all problems reported at once), then build the timeline."""
    gathered = gather_clips(clip_paths)
    manifest: Manifest | None = None if manifest_path is None else load_manifest(manifest_path)
    if master_path is None and manifest is not None:
        master_path = manifest.master_path
        if not master_path.exists():
            raise UsageError(
                f"the manifest's master {master_path.name} is not beside it; pass --master",
                manifest.path,
            )
    if master_path is not None:
        master_path = master_path.resolve()
    clips_only = [c for c in gathered.clips if master_path is None or c.resolve() != master_path]

    sources: list[Source] = []
    problems: list[str] = [str(p) for p in gathered.problems]
    for c in clips_only:
        try:
            sources.append(source_from_info(probe(c)))
        except HandoffError as exc:
            problems.append(str(exc))
    if problems:
        total = len(clips_only) + len(gathered.problems)
        head = f"{len(problems)} of {total} clips cannot go on a timeline: "
        raise InputError(head + "; ".join(problems))
    master = None
    if master_path is not None:
        master = source_from_info(probe(master_path), audio_only=True)
    if name is None:
        name = (
            master_path.stem.removesuffix("_master")
            if master_path is not None
            else _default_name(clip_paths)
        )
    build = build_timeline(sources, master=master, manifest=manifest, name=name)
    build.inputs = [*gathered.clips, *gathered.skipped]
    if master_path is not None:
        build.inputs.append(master_path)
    if manifest_path is not None:
        build.inputs.append(manifest_path)
    if gathered.skipped:
        build.notes.insert(
            0,
            f"left {len(gathered.skipped)} audio file(s) found in the folders off V1 "
            "(the narration goes in with --master or --manifest)",
        )
    return build


def _default_name(paths: Sequence[Path]) -> str:
    first = paths[0].resolve()
    return first.name if is_folder(first) else first.stem
