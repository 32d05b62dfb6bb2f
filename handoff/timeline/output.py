"""Where a built timeline's files go, and writing them: every format asked for, or none.

:func:`plan_timeline_files` decides -- one file per format, named after the sequence
(cut to fit the file system) or the path given, never an input, an existing file kept
unless replacing was asked for -- and :func:`write_timeline_files` renders every format
before it writes any, then publishes them atomically (:mod:`handoff.files.fsutil`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from handoff.errors import Option, Text, UsageError
from handoff.files.fsutil import InputGuard, atomic_write_bytes
from handoff.files.names import fit_file_name, xml_text
from handoff.timeline import FORMATS, check_relative, render
from handoff.timeline.model import TimelineBuild

__all__ = [
    "TimelineFiles",
    "check_outputs",
    "out_is_file",
    "plan_timeline_files",
    "write_timeline_files",
]

# Characters no file name of ours carries: Windows' reserved ones (and '/'), and what
# handoff.files.names replaces in a name (controls, bytes that were not UTF-8, U+FFFD).
_NOT_IN_FILE_NAMES = '/\\:*?"<>|\ufffd'


@dataclass(frozen=True, slots=True)
class TimelineFiles:
    """The files a timeline goes to, decided before anything is rendered or written."""

    targets: tuple[tuple[str, Path], ...]
    """(format, file) to write."""
    kept: tuple[tuple[str, Path], ...]
    """(format, file) that exist and are kept (replacing them was not asked for)."""
    inputs: tuple[Path, ...]
    """The build's inputs: never written over, whatever ``replace`` says."""
    replace: bool
    relative: bool
    fcpxml_version: str
    notes: tuple[str, ...]
    """What the user should know about the files (names cut, files kept, tracks to lock
    after import), after the build's own notes."""


def plan_timeline_files(
    build: TimelineBuild,
    formats: Sequence[str],
    out: Path | None = None,
    *,
    replace: bool = False,
    relative: bool = False,
    fcpxml_version: str = "1.10",
    out_is_folder: bool = False,
) -> TimelineFiles:
    """One file per format: ``out`` itself for one format and a file name, else
    NAME.<suffix> in the folder ``out`` (or the current folder), NAME the sequence's
    name (see :func:`out_is_file`; ``out_is_folder``: the user said so, with a trailing
    separator). Raises :class:`~handoff.errors.UsageError` for several formats and one
    timeline file, :class:`~handoff.errors.OverwritesInputError` for a file that is one
    of the inputs."""
    chosen = list(dict.fromkeys(formats))
    check_outputs(chosen, out, relative=relative, out_is_folder=out_is_folder)
    notes: list[str] = []
    folder = out if out is None or not out_is_file(chosen, out, out_is_folder) else None
    targets = (
        [(chosen[0], out)]
        if out is not None and folder is None
        else _targets(chosen, folder, build.timeline.name, notes)
    )
    guard = InputGuard(build.inputs)
    for _, path in targets:
        guard.check(path)
    kept = [] if replace else [t for t in targets if t[1].exists() or t[1].is_symlink()]
    notes += [
        Text(f"skipped {path}: exists (use ", Option("replace", True), " to replace it)")
        for _, path in kept
    ]
    notes += [f"{f}: {FORMATS[f].lock}" for f in chosen if not FORMATS[f].arrives_locked]
    return TimelineFiles(
        targets=tuple(t for t in targets if t not in kept),
        kept=tuple(kept),
        inputs=tuple(build.inputs),
        replace=replace,
        relative=relative,
        fcpxml_version=fcpxml_version,
        notes=tuple(notes),
    )


def out_is_file(formats: Sequence[str], out: Path, out_is_folder: bool = False) -> bool:
    """Whether ``out`` names the one file to write rather than a folder to write into.

    A folder when it is one, or was given with a trailing separator; for one format, a
    file when its name has a suffix; for several, a folder unless its suffix is a
    timeline file's (``cut.otio``, refused by :func:`check_outputs`) -- so that
    ``out/23.976`` is a folder, as the user meant, though it does not exist yet."""
    if out_is_folder or out.is_dir() or not out.suffix:
        return False
    if len(set(formats)) == 1:
        return True
    return out.suffix.lower() in {"." + f.suffix.rsplit(".", 1)[-1] for f in FORMATS.values()}


def check_outputs(
    formats: Sequence[str],
    out: Path | None,
    *,
    relative: bool = False,
    out_is_folder: bool = False,
) -> None:
    """Refuse what no build can change: several formats and one file, or relative media
    references in a format that must name media by absolute URL. (Checked again by
    :func:`plan_timeline_files`; a caller may check first, before the clips are probed.)"""
    if len(set(formats)) > 1 and out is not None and out_is_file(formats, out, out_is_folder):
        raise UsageError(
            Text(
                "several formats need ",
                Option("out"),
                f" to be a folder, not the file {out} (end it with '/' to name a folder)",
            )
        )
    if relative:
        check_relative(formats)


def _targets(
    formats: Sequence[str], out: Path | None, name: str, notes: list[str]
) -> list[tuple[str, Path]]:
    """NAME.<suffix> for every format in the folder ``out`` (None: the current one)."""
    safe = "".join("_" if ch in _NOT_IN_FILE_NAMES else ch for ch in xml_text(name))
    safe = safe.strip() or "timeline"
    longest = max((FORMATS[f].suffix for f in formats), key=len)
    fitted = fit_file_name(safe, longest) or "timeline"
    if fitted != safe:
        notes.append(f"file names cut to {len(fitted)} characters of the sequence name")
    folder = Path() if out is None else out
    return [(f, folder / f"{fitted}{FORMATS[f].suffix}") for f in formats]


def write_timeline_files(
    build: TimelineBuild, files: TimelineFiles
) -> tuple[tuple[str, Path], ...]:
    """Render every target, then write them all or none; returns the (format, file)
    written. A name or a path one format cannot hold stops the run with nothing written;
    when a write fails, the files this call already published are removed again (with
    ``replace``, the earlier files they replaced stay replaced)."""
    rendered = [
        (
            path,
            render(
                build.timeline,
                fmt,
                relative_to=path.parent.resolve() if files.relative else None,
                fcpxml_version=files.fcpxml_version,
            ),
        )
        for fmt, path in files.targets
    ]
    guard = InputGuard(files.inputs)
    published: list[Path] = []
    try:
        for path, data in rendered:
            atomic_write_bytes(path, data, replace=files.replace, guard=guard)
            published.append(path)
    except BaseException:
        for path in published:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return files.targets
