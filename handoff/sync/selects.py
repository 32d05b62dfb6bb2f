"""The selects file (schema ``handoff.selects/1``): for each segment, the take to use.

``handoff sync`` measures every generated take against the narration (schema
``handoff.sync/1``). :func:`selects_from_sync` turns that result into a selects document:
each segment's takes ranked by score, the best one that could be measured as the
**pick**, the others as **alternates**, and the segments where no take is within
tolerance marked ``regenerate``. It is plain JSON a person can edit -- to use another
take, put its path in ``pick`` (and, to keep the former pick on the timeline, put that
one in ``alternates``). ``handoff timeline --selects`` then places each pick where its
segment starts, shifted by its measured sound offset, with the alternates beside it.

The document::

    {"schema": "handoff.selects/1", "manifest": "/abs/cond/manifest.json" | null,
     "tolerance_ms": 41.667 | null,
     "segments": [{"segment": 2, "pick": "/abs/renders/002_a_take3.mp4",
                   "alternates": ["/abs/renders/002_a_take1.mp4"],
                   "regenerate": false, "recut_at_s": null,
                   "takes": [{"path": ..., "score": 97.3 | null, "verdict": "in",
                              "audio_offset_ms": 37.02 | null,
                              "picture_offset_ms": 83.1 | null,
                              "drift_exceeds_at_s": 8.2 | null}]}],
     "unplaced": [{"path": ..., "reason": "..."}]}

:func:`load_selects` reads it back as frozen dataclasses, or raises
:class:`~handoff.errors.SelectsError` with one line naming the field by its JSON path
(``selects.json: segments[1].alternates[0]: must be a file path (got 3)``). Array entries
count from 0. What a person is likely to leave out may be left out: only ``schema``,
``segments`` and each segment's ``segment`` and ``pick`` are required; a missing
``alternates`` / ``takes`` / ``unplaced`` is empty, ``regenerate`` false, every other
figure null. Relative paths are taken from the selects file's folder. The pick may be
any file: one of the takes, one of the alternates, or a file measured nowhere (its
offset is then unknown, and the timeline places it unshifted and says so). Whether the
files exist is not checked here: the timeline reports missing media as it does for
clips.

The file is read by :mod:`handoff.files.jsondoc`: at most :data:`MAX_BYTES`, UTF-8, JSON as
RFC 8259 defines it -- a ``NaN``, ``Infinity``, ``1e999`` or an integer of more than 30
digits is refused by the field it is in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from handoff.errors import SelectsError
from handoff.files.fsutil import InputGuard, atomic_write_bytes, resolved
from handoff.files.jsondoc import DocumentKind, Fields, got, load_json

__all__ = [
    "MAX_BYTES",
    "SCHEMA",
    "SYNC_SCHEMA",
    "VERDICTS",
    "SelectSegment",
    "SelectTake",
    "Selects",
    "Unplaced",
    "load_selects",
    "parse_selects",
    "selects_from_sync",
    "selects_json",
    "write_selects",
]

SCHEMA: Final = "handoff.selects/1"
SYNC_SCHEMA: Final = "handoff.sync/1"
VERDICTS: Final = ("in", "out", "error")
MAX_BYTES: Final = 16 * 1024 * 1024
"""The largest selects file read (a few hundred bytes per take)."""

_KIND: Final = DocumentKind(
    error=SelectsError,
    name="selects file",
    not_one="not a selects file",
    folder="is a folder, not a selects file",
    max_bytes=MAX_BYTES,
    too_big=lambda _size: (
        f"larger than any selects file ({MAX_BYTES // (1024 * 1024)} MiB at most)"
    ),
    too_deep="nested too deeply to be a selects file",
)


# ---------------------------------------------------------------- the document


@dataclass(frozen=True, slots=True)
class SelectTake:
    """``segments[].takes[]``: one measured take and the figures the timeline uses."""

    path: Path
    score: float | None
    """0..100, higher is better; null when the take could not be measured."""
    verdict: str
    """``in`` (within tolerance), ``out`` or ``error``."""
    audio_offset_ms: float | None
    """The take's sound against the narration, ms; positive = late. The timeline
    places the take this much earlier. Null: not measured (placed unshifted)."""
    picture_offset_ms: float | None
    drift_exceeds_at_s: float | None


@dataclass(frozen=True, slots=True)
class SelectSegment:
    """``segments[]``: the pick for one narration segment and what else there is."""

    segment: int
    """The manifest segment's ``index`` (the number a take's name starts with)."""
    pick: Path
    alternates: tuple[Path, ...]
    regenerate: bool
    """No take is within tolerance: generate this segment again."""
    recut_at_s: float | None
    """With ``regenerate``: where the pick drifts out, seconds into the segment."""
    takes: tuple[SelectTake, ...]

    def take(self, path: Path) -> SelectTake | None:
        """The measured take at ``path`` (compared as absolute paths), if listed."""
        key = _key(path)
        return next((t for t in self.takes if _key(t.path) == key), None)

    @property
    def shown_alternates(self) -> tuple[Path, ...]:
        """``alternates`` without the pick and without repeats, in their order: what the
        timeline carries beside the pick."""
        seen = {_key(self.pick)}
        out: list[Path] = []
        for a in self.alternates:
            if _key(a) not in seen:
                seen.add(_key(a))
                out.append(a)
        return tuple(out)

    @property
    def left_out(self) -> tuple[Path, ...]:
        """Takes that are neither the pick nor an alternate (after a hand edit)."""
        used = {_key(self.pick), *map(_key, self.alternates)}
        return tuple(t.path for t in self.takes if _key(t.path) not in used)


@dataclass(frozen=True, slots=True)
class Unplaced:
    """``unplaced[]``: a take that belongs to no segment, or could not be measured."""

    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class Selects:
    """A whole selects file, checked."""

    path: Path
    """The selects file, as it was named."""
    manifest: Path | None
    tolerance_ms: float | None
    segments: tuple[SelectSegment, ...]
    unplaced: tuple[Unplaced, ...]

    @property
    def folder(self) -> Path:
        return self.path.parent


def _key(path: Path) -> str:
    """A path as compared: absolute, links followed where they exist (files may be absent)."""
    return os.path.normcase(resolved(path) or path.absolute())


# ---------------------------------------------------------------- from sync


def selects_from_sync(
    sync: Mapping[str, Any], *, relative_to: Path | None = None
) -> dict[str, Any]:
    """The selects document for a ``handoff.sync/1`` result (nothing is read or written).

    ``relative_to``: the folder the selects file will be written in. Paths are then
    written relative to it (a selects file reads relative paths from its own folder, so
    it keeps working wherever the command was run from); None keeps them as given.

    Takes are grouped by ``segment``; each group is ranked by ``score`` (higher first,
    ties by name, takes without a score last). The pick is the best take whose status
    is ``ok``; the alternates are the other ``ok`` takes in rank order. ``regenerate``
    is true when no take of the segment has verdict ``in``; ``recut_at_s`` is then the
    pick's. Takes whose status is ``error`` or whose segment is null, and a path listed
    twice, go to ``unplaced`` with the reason. Raises :class:`SelectsError` naming the
    field when the result does not follow its schema.
    """
    r = Fields(SelectsError, "sync result")
    doc = r.obj(sync, "the document")
    schema = doc.get("schema")
    if schema != SYNC_SCHEMA:
        r.fail("schema", f'must be "{SYNC_SCHEMA}" (got {got(schema)})')
    manifest = r.opt_string(doc, "manifest", "")
    tolerance = r.opt_number(doc, "tolerance_ms", "")
    takes = r.array(doc, "takes", "")

    groups: dict[int, list[tuple[float | None, str, dict[str, Any], float | None]]] = {}
    unplaced: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, value in enumerate(takes):
        at = f"takes[{i}]"
        take = r.obj(value, at)
        path = r.string(take, "path", at)
        name = r.opt_string(take, "name", at) or Path(path).name
        segment = r.opt_integer(take, "segment", at, 1)
        status = r.choice(take, "status", at, ("ok", "error"))
        verdict = r.choice(take, "verdict", at, VERDICTS)
        score = r.opt_number(take, "score", at)
        if path in seen:
            unplaced.append({"path": path, "reason": "listed twice in the sync result"})
            continue
        seen.add(path)
        if status == "error":
            why = r.opt_string(take, "error", at) or "could not be measured"
            unplaced.append({"path": path, "reason": f"not measured: {why}"})
            continue
        if segment is None:
            unplaced.append(
                {"path": path, "reason": "no segment: its name does not start with a "
                 "segment number (002_...)"}
            )  # fmt: skip
            continue
        audio = take.get("audio")
        picture = take.get("picture")
        if audio is not None:
            audio = r.obj(audio, f"{at}.audio")
        if picture is not None:
            picture = r.obj(picture, f"{at}.picture")
        audio_offset = None
        if audio is not None and audio.get("matched") is True:
            audio_offset = r.opt_number(audio, "audio_offset_ms", f"{at}.audio")
        entry = {
            "path": path,
            "score": score,
            "verdict": verdict,
            "audio_offset_ms": audio_offset,
            "picture_offset_ms": None
            if picture is None
            else r.opt_number(picture, "picture_offset_ms", f"{at}.picture"),
            "drift_exceeds_at_s": None
            if picture is None
            else r.opt_number(picture, "drift_exceeds_at_s", f"{at}.picture"),
        }
        recut = r.opt_number(take, "recut_at_s", at)
        groups.setdefault(segment, []).append((score, name, entry, recut))

    segments = []
    for number in sorted(groups):
        ranked = sorted(groups[number], key=lambda g: (g[0] is None, -(g[0] or 0.0), g[1]))
        entries = [g[2] for g in ranked]
        regenerate = not any(e["verdict"] == "in" for e in entries)
        segments.append(
            {
                "segment": number,
                "pick": entries[0]["path"],
                "alternates": [e["path"] for e in entries[1:]],
                "regenerate": regenerate,
                "recut_at_s": ranked[0][3] if regenerate else None,
                "takes": entries,
            }
        )
    if relative_to is not None:
        manifest = None if manifest is None else _relative(manifest, relative_to)
        for seg in segments:
            seg["pick"] = _relative(seg["pick"], relative_to)
            seg["alternates"] = [_relative(a, relative_to) for a in seg["alternates"]]
            for entry in seg["takes"]:
                entry["path"] = _relative(entry["path"], relative_to)
        for item in unplaced:
            item["path"] = _relative(item["path"], relative_to)
    return {
        "schema": SCHEMA,
        "manifest": manifest,
        "tolerance_ms": tolerance,
        "segments": segments,
        "unplaced": unplaced,
    }


def _relative(path: str, folder: Path) -> str:
    """``path`` (relative to the current folder, or absolute) as seen from ``folder``;
    absolute where no relative path leads there (another drive on Windows)."""
    try:
        return os.path.relpath(Path(path).absolute(), Path(folder).absolute())
    except ValueError:
        return str(Path(path).absolute())


# ---------------------------------------------------------------- reading


def load_selects(path: Path | str) -> Selects:
    """Read and check a selects file; :class:`SelectsError` names what is wrong."""
    path = Path(path)
    return parse_selects(load_json(path, _KIND), path)


def parse_selects(data: object, path: Path | str) -> Selects:
    """Check an already parsed document (``path`` names it in errors, and relative paths
    in it are taken from its folder)."""
    path = Path(path)
    r = Fields(SelectsError, path)
    doc = r.obj(data, "the document")
    schema = doc.get("schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith("handoff.selects/"):
            r.fail("schema", f'{got(schema)} is a version this handoff does not read '
                             f'(it reads "{SCHEMA}")')  # fmt: skip
        raise SelectsError(
            f'not a selects file (expected "schema": "{SCHEMA}", got '
            f"{got(schema) if 'schema' in doc else 'none'})",
            path,
        )
    folder = path.parent

    def file(obj: Mapping[str, Any], key: str, where: str) -> Path:
        return folder / r.string(obj, key, where, what="a file path")

    manifest = r.opt_string(doc, "manifest", "")
    segments: list[SelectSegment] = []
    seen: dict[int, int] = {}
    for i, value in enumerate(r.array(doc, "segments", "")):
        at = f"segments[{i}]"
        seg = r.obj(value, at)
        number = r.integer(seg, "segment", at, 1)
        if number in seen:
            r.fail(f"{at}.segment", f"{number} is also the segment of segments[{seen[number]}]: "
                                    "one entry per segment")  # fmt: skip
        seen[number] = i
        pick = file(seg, "pick", at)
        alternates: list[Path] = []
        listed: dict[str, int] = {}
        for k, alt in enumerate(r.array(seg, "alternates", at, required=False)):
            where = f"{at}.alternates[{k}]"
            if not isinstance(alt, str) or not alt:
                r.fail(where, f"must be a file path (got {got(alt)})")
            p = folder / alt
            if _key(p) in listed:
                r.fail(where, f"{got(alt)} is also alternates[{listed[_key(p)]}]")
            listed[_key(p)] = k
            alternates.append(p)
        takes: list[SelectTake] = []
        for k, t in enumerate(r.array(seg, "takes", at, required=False)):
            where = f"{at}.takes[{k}]"
            take = r.obj(t, where)
            takes.append(
                SelectTake(
                    path=file(take, "path", where),
                    score=r.opt_number(take, "score", where),
                    verdict=r.choice(take, "verdict", where, VERDICTS, default="out"),
                    audio_offset_ms=r.opt_number(take, "audio_offset_ms", where),
                    picture_offset_ms=r.opt_number(take, "picture_offset_ms", where),
                    drift_exceeds_at_s=r.opt_number(take, "drift_exceeds_at_s", where),
                )
            )
        recut = r.opt_number(seg, "recut_at_s", at)
        if recut is not None and recut < 0:
            r.fail(f"{at}.recut_at_s", f"must be null or 0 or more (got {got(recut)})")
        segments.append(
            SelectSegment(
                segment=number,
                pick=pick,
                alternates=tuple(alternates),
                regenerate=r.boolean(seg, "regenerate", at, default=False),
                recut_at_s=recut,
                takes=tuple(takes),
            )
        )
    unplaced = []
    for i, value in enumerate(r.array(doc, "unplaced", "", required=False)):
        at = f"unplaced[{i}]"
        u = r.obj(value, at)
        reason = r.opt_string(u, "reason", at) or "not placed"
        unplaced.append(Unplaced(file(u, "path", at), reason))
    tolerance = r.opt_number(doc, "tolerance_ms", "")
    return Selects(
        path=path,
        manifest=None if manifest is None else folder / manifest,
        tolerance_ms=tolerance,
        segments=tuple(segments),
        unplaced=tuple(unplaced),
    )


# ---------------------------------------------------------------- writing


def selects_json(data: Mapping[str, Any]) -> bytes:
    """The document as the file holds it: indented UTF-8 JSON, one trailing newline. A
    path whose bytes are not UTF-8 is written with ``\\udcXX`` escapes (as Python's
    ``json`` writes them), which :func:`load_selects` reads back to the same bytes."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(data, indent=2, ensure_ascii=True, allow_nan=False) + "\n").encode()


def write_selects(
    path: Path | str,
    data: Mapping[str, Any],
    *,
    replace: bool,
    guard: InputGuard | None = None,
) -> None:
    """Check ``data`` as :func:`load_selects` would, then write it atomically
    (:func:`handoff.files.fsutil.atomic_write_bytes`): without ``replace`` an existing file is
    never replaced (:class:`~handoff.errors.OutputExistsError`)."""
    path = Path(path)
    try:
        body = selects_json(data)
    except (TypeError, ValueError) as exc:
        raise SelectsError(f"cannot be written as JSON ({exc})", path) from None
    parse_selects(json.loads(body), path)
    atomic_write_bytes(path, body, replace=replace, guard=guard)
