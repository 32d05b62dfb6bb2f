"""From paths on the command line (or a selects file) to a built timeline: gather,
probe, lay out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from handoff.errors import HandoffError, InputError, Option, SelectsError, Text, UsageError
from handoff.files.find import AUDIO_SUFFIXES, find_media, is_folder
from handoff.files.manifest import Manifest, load_manifest
from handoff.files.names import shown
from handoff.probe.reader import probe
from handoff.sync.selects import SelectSegment, load_selects
from handoff.timeline.model import (
    FROM_CLIPS,
    SegmentTakes,
    SequenceSettings,
    Source,
    Take,
    TimelineBuild,
    build_selects_timeline,
    build_timeline,
    source_from_info,
)

__all__ = ["Gathered", "gather_clips", "timeline_from_paths", "timeline_from_selects"]


@dataclass(slots=True)
class Gathered:
    clips: list[Path]
    skipped: list[Path] = field(default_factory=list)
    """Audio files met inside folders (narration beside the clips), left off V1."""
    problems: list[InputError] = field(default_factory=list)
    """Paths that gave no file: a folder that cannot be listed or holds no media."""
    notes: list[str] = field(default_factory=list)
    """Folders left out because they hold outputs (:meth:`handoff.files.find.FoundMedia.notes`)."""


def gather_clips(paths: Sequence[Path]) -> Gathered:
    """Files as given; folders expanded to their video files in numeric-prefix order.

    What cannot be expanded (a folder that cannot be listed, or holds no media) is kept
    in :attr:`Gathered.problems`, for the caller to report with the clips that cannot be
    used. Raises :class:`UsageError` only when there is nothing at all to report on.
    """
    out = Gathered([])
    named = {p for p in paths if not is_folder(p)}
    found = find_media(paths)
    out.notes = found.notes()
    for f in found.items:
        if isinstance(f, InputError):
            out.problems.append(f)
            continue
        from_folder_audio = f not in named and f.suffix.lower() in AUDIO_SUFFIXES
        (out.skipped if from_folder_audio else out.clips).append(f)
    if not out.clips and not out.problems:
        raise UsageError(
            Text("no video clips among the inputs (audio files go in ", Option("master_path"), ")")
        )
    return out


def timeline_from_paths(
    clip_paths: Sequence[Path],
    *,
    manifest_path: Path | None = None,
    master_path: Path | None = None,
    name: str | None = None,
    selects_path: Path | None = None,
    settings: SequenceSettings = FROM_CLIPS,
) -> TimelineBuild:
    """Probe every clip (all problems reported at once), then build the timeline.

    ``selects_path``: build from a selects file instead (:func:`timeline_from_selects`);
    it names the clips, so ``clip_paths`` must then be empty. ``settings``: the frame
    size and start timecode, when the user sets them."""
    if selects_path is not None:
        if clip_paths:
            raise UsageError(
                Text(Option("selects_path"), " names the takes to use: pass no clips with it")
            )
        return timeline_from_selects(
            selects_path, manifest_path=manifest_path, master_path=master_path, name=name,
            settings=settings,
        )  # fmt: skip
    gathered = gather_clips(clip_paths)
    manifest: Manifest | None = None if manifest_path is None else load_manifest(manifest_path)
    master_path = _master_path(manifest, master_path)
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
    build = build_timeline(sources, master=master, manifest=manifest, name=name, settings=settings)
    inputs = [*gathered.clips, *gathered.skipped]
    if master_path is not None:
        inputs.append(master_path)
    if manifest_path is not None:
        inputs.append(manifest_path)
    left: list[str] = []
    if gathered.skipped:
        left.append(
            Text(
                f"left {len(gathered.skipped)} audio file(s) found in the folders off V1 "
                "(the narration goes in with ",
                Option("master_path"),
                " or ",
                Option("manifest_path"),
                ")",
            )
        )
    notes = (*left, *gathered.notes, *build.notes)
    return replace(build, inputs=tuple(inputs), notes=notes)


def _master_path(manifest: Manifest | None, master_path: Path | None) -> Path | None:
    """The master narration: as given, else the manifest's (which must be beside it)."""
    if master_path is None and manifest is not None:
        master_path = manifest.master_path
        if not master_path.exists():
            raise UsageError(
                Text(
                    f"the manifest's master {master_path.name} is not beside it; pass ",
                    Option("master_path"),
                ),
                manifest.path,
            )
    return None if master_path is None else master_path.resolve()


def timeline_from_selects(
    selects_path: Path,
    *,
    manifest_path: Path | None = None,
    master_path: Path | None = None,
    name: str | None = None,
    settings: SequenceSettings = FROM_CLIPS,
) -> TimelineBuild:
    """The timeline of a selects file (:mod:`handoff.sync.selects`): each segment's pick on
    V1 where its segment starts, moved by its measured sound offset, its alternates on
    disabled tracks V2, V3, ... (FCPXML: auditions), the master locked on A1.

    The manifest is the selects' own ``manifest`` unless ``manifest_path`` is given; the
    master is the manifest's unless ``master_path`` is given. Every pick and alternate
    is probed first, and every file that cannot be used is reported at once
    (:class:`InputError`), as for clips.
    """
    selects = load_selects(selects_path)
    if manifest_path is None:
        if selects.manifest is None:
            raise SelectsError(
                Text(
                    "manifest: null; a timeline from selects places each pick where its "
                    "segment starts in the narration: pass the prep-audio manifest (",
                    Option("manifest_path"),
                    ")",
                ),
                selects.path,
            )
        manifest_path = selects.manifest
    manifest = load_manifest(manifest_path)
    numbers = {s.index for s in manifest.segments}
    for i, seg in enumerate(selects.segments):
        if seg.segment not in numbers:
            raise SelectsError(
                f"segments[{i}].segment: {seg.segment} is not a segment of {manifest.path} "
                f"(it has {_ranges(sorted(numbers))})",
                selects.path,
            )
    if not selects.segments:
        raise SelectsError("segments: no segment has a pick: nothing to put on a timeline",
                           selects.path)  # fmt: skip
    master_path = _master_path(manifest, master_path)

    files: list[Path] = []
    for seg in selects.segments:
        files += [seg.pick, *seg.shown_alternates]
    sources: dict[Path, Source] = {}
    problems: list[str] = []
    for f in dict.fromkeys(files):
        try:
            sources[f] = source_from_info(probe(f))
        except HandoffError as exc:
            problems.append(str(exc))
    if problems:
        total = len(dict.fromkeys(files))
        raise InputError(f"{len(problems)} of {total} takes cannot go on a timeline: "
                         + "; ".join(problems))  # fmt: skip

    takes = [_segment_takes(seg, sources) for seg in selects.segments]
    master = None if master_path is None else source_from_info(probe(master_path), audio_only=True)
    if name is None:
        name = (
            master_path.stem.removesuffix("_master")
            if master_path is not None
            else selects.path.stem
        )
    build = build_selects_timeline(
        takes, manifest=manifest, master=master, name=name, settings=settings
    )
    notes = _selects_notes(selects.segments, [u.path for u in selects.unplaced])
    inputs = [*dict.fromkeys(files), selects.path, manifest.path]
    if master_path is not None:
        inputs.append(master_path)
    return replace(build, notes=(*notes, *build.notes), inputs=tuple(inputs))


def _segment_takes(seg: SelectSegment, sources: dict[Path, Source]) -> SegmentTakes:
    def take(path: Path) -> Take:
        measured = seg.take(path)
        if measured is None:
            return Take(sources[path])
        return Take(sources[path], measured.audio_offset_ms, measured.score)

    return SegmentTakes(
        segment=seg.segment,
        pick=take(seg.pick),
        alternates=tuple(take(a) for a in seg.shown_alternates),
        regenerate=seg.regenerate,
        recut_at_s=seg.recut_at_s,
    )


def _selects_notes(segments: Sequence[SelectSegment], unplaced: Sequence[Path]) -> list[str]:
    notes = []
    for seg in segments:
        if seg.take(seg.pick) is None:
            notes.append(
                f"segment {seg.segment}: the pick {shown(seg.pick.name)} is not among the "
                "measured takes: its sound offset is unknown, placed unshifted"
            )
        left = seg.left_out
        if left:
            notes.append(
                f"segment {seg.segment}: {', '.join(shown(p.name) for p in left)} neither "
                "the pick nor an alternate: left off the timeline (list it under "
                "alternates to keep it)"
            )
    if unplaced:
        listed = ", ".join(shown(p.name) for p in unplaced[:3])
        more = f" and {len(unplaced) - 3} more" if len(unplaced) > 3 else ""
        notes.append(
            f"{len(unplaced)} take(s) listed as unplaced in the selects are not on the "
            f"timeline: {listed}{more}"
        )
    return notes


def _ranges(numbers: Sequence[int]) -> str:
    """1, 2, 3, 5 -> "1-3, 5"."""
    parts: list[str] = []
    for n in numbers:
        if parts and n == int(parts[-1].rsplit("-", 1)[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{n}"
        else:
            parts.append(str(n))
    return ", ".join(parts)


def _default_name(paths: Sequence[Path]) -> str:
    first = paths[0].resolve()
    return first.name if is_folder(first) else first.stem
