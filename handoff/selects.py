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
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

from handoff.errors import SelectsError
from handoff.fsutil import InputGuard, atomic_write_bytes, resolved

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


def selects_from_sync(sync: Mapping[str, Any]) -> dict[str, Any]:
    """The selects document for a ``handoff.sync/1`` result (nothing is read or written).

    Takes are grouped by ``segment``; each group is ranked by ``score`` (higher first,
    ties by name, takes without a score last). The pick is the best take whose status
    is ``ok``; the alternates are the other ``ok`` takes in rank order. ``regenerate``
    is true when no take of the segment has verdict ``in``; ``recut_at_s`` is then the
    pick's. Takes whose status is ``error`` or whose segment is null, and a path listed
    twice, go to ``unplaced`` with the reason. Raises :class:`SelectsError` naming the
    field when the result does not follow its schema.
    """
    r = _Fields("sync result")
    doc = r.obj(sync, "the document")
    schema = doc.get("schema")
    if schema != SYNC_SCHEMA:
        r.fail("schema", f'must be "{SYNC_SCHEMA}" (got {_got(schema)})')
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
        segment = r.opt_int(take, "segment", at, 1)
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
            r.obj(audio, f"{at}.audio")
        if picture is not None:
            r.obj(picture, f"{at}.picture")
        matched = isinstance(audio, dict) and audio.get("matched") is True
        entry = {
            "path": path,
            "score": score,
            "verdict": verdict,
            "audio_offset_ms": r.opt_number(audio, "audio_offset_ms", f"{at}.audio")
            if matched
            else None,
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
    return {
        "schema": SCHEMA,
        "manifest": manifest,
        "tolerance_ms": tolerance,
        "segments": segments,
        "unplaced": unplaced,
    }


# ---------------------------------------------------------------- reading


def load_selects(path: Path | str) -> Selects:
    """Read and check a selects file; :class:`SelectsError` names what is wrong."""
    path = Path(path)
    return parse_selects(_parse_json(_read_bytes(path), path), path)


def parse_selects(data: object, path: Path | str) -> Selects:
    """Check an already parsed document (``path`` names it in errors, and relative paths
    in it are taken from its folder)."""
    path = Path(path)
    r = _Fields(path)
    doc = r.obj(data, "the document")
    schema = doc.get("schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith("handoff.selects/"):
            r.fail("schema", f'{_got(schema)} is a version this handoff does not read '
                             f'(it reads "{SCHEMA}")')  # fmt: skip
        raise SelectsError(
            f'not a selects file (expected "schema": "{SCHEMA}", got '
            f"{_got(schema) if 'schema' in doc else 'none'})",
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
                r.fail(where, f"must be a file path (got {_got(alt)})")
            p = folder / alt
            if _key(p) in listed:
                r.fail(where, f"{_got(alt)} is also alternates[{listed[_key(p)]}]")
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
            r.fail(f"{at}.recut_at_s", f"must be null or 0 or more (got {_got(recut)})")
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


def _read_bytes(path: Path) -> bytes:
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise SelectsError("is a folder, not a selects file", path)
        if not stat.S_ISREG(st.st_mode):
            raise SelectsError("not a regular file (a FIFO, socket or device)", path)
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SelectsError("selects file not found", path) from None
    except PermissionError:
        raise SelectsError("permission denied (cannot read the selects file)", path) from None
    except OSError as exc:
        raise SelectsError(f"cannot be read ({exc.strerror or exc})", path) from None
    if len(data) > MAX_BYTES:
        raise SelectsError(
            f"larger than any selects file ({MAX_BYTES // (1024 * 1024)} MiB at most)", path
        )
    return data


class _NotANumber:
    """NaN or Infinity, which JSON (RFC 8259) has no number for: kept in the document so
    that the error names the field it is in."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _parse_json(raw: bytes, path: Path) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SelectsError(f"not UTF-8 text (byte {exc.start}): not a selects file", path) from None
    try:
        return json.loads(text, parse_constant=_NotANumber)
    except json.JSONDecodeError as exc:
        raise SelectsError(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", path
        ) from None
    except RecursionError:
        raise SelectsError("nested too deeply to be a selects file", path) from None


def _got(value: object) -> str:
    """A value as an error shows it: JSON's own words, short, on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        text = json.dumps(value if len(value) <= 40 else value[:37] + "...", ensure_ascii=False)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return repr(value)


class _Fields:
    """Typed fields of one document; every failure names the field's JSON path."""

    def __init__(self, source: Path | str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> NoReturn:
        if isinstance(self.source, Path):
            raise SelectsError(f"{where}: {message}", self.source)
        raise SelectsError(f"{self.source}: {where}: {message}")

    @staticmethod
    def _at(where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def obj(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"must be an object (got {_got(value)})")
        return value

    def _value(self, obj: Mapping[str, Any], key: str, where: str, required: bool) -> object:
        if key not in obj:
            if required:
                self.fail(self._at(where, key), "missing")
            return None
        return obj[key]

    def string(self, obj: Mapping[str, Any], key: str, where: str, what: str = "a string") -> str:
        value = self._value(obj, key, where, True)
        if not isinstance(value, str) or not value:
            self.fail(self._at(where, key), f"must be {what} (got {_got(value)})")
        return value

    def opt_string(self, obj: Mapping[str, Any], key: str, where: str) -> str | None:
        value = self._value(obj, key, where, False)
        if value is not None and (not isinstance(value, str) or not value):
            self.fail(self._at(where, key), f"must be null or a string (got {_got(value)})")
        return value

    def integer(self, obj: Mapping[str, Any], key: str, where: str, lo: int) -> int:
        value = self._value(obj, key, where, True)
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            self.fail(self._at(where, key), f"must be a whole number of {lo} or more "
                                            f"(got {_got(value)})")  # fmt: skip
        return value

    def opt_int(self, obj: Mapping[str, Any], key: str, where: str, lo: int) -> int | None:
        value = self._value(obj, key, where, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            self.fail(self._at(where, key), f"must be null or a whole number of {lo} or more "
                                            f"(got {_got(value)})")  # fmt: skip
        return value

    def opt_number(self, obj: object, key: str, where: str) -> float | None:
        if not isinstance(obj, Mapping):
            return None
        value = self._value(obj, key, where, False)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.fail(self._at(where, key), f"must be null or a finite number (got {_got(value)})")
        return float(value)

    def choice(
        self,
        obj: Mapping[str, Any],
        key: str,
        where: str,
        choices: tuple[str, ...],
        default: str | None = None,
    ) -> str:
        value = self._value(obj, key, where, default is None)
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or value not in choices:
            self.fail(self._at(where, key), f"must be one of {', '.join(choices)} "
                                            f"(got {_got(value)})")  # fmt: skip
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = self._value(obj, key, where, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(self._at(where, key), f"must be true or false (got {_got(value)})")
        return value

    def array(
        self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = True
    ) -> list[Any]:
        value = self._value(obj, key, where, required)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            self.fail(self._at(where, key), f"must be an array (got {_got(value)})")
        return value


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
    (:func:`handoff.fsutil.atomic_write_bytes`): without ``replace`` an existing file is
    never replaced (:class:`~handoff.errors.OutputExistsError`)."""
    path = Path(path)
    try:
        body = selects_json(data)
    except (TypeError, ValueError) as exc:
        raise SelectsError(f"cannot be written as JSON ({exc})", path) from None
    parse_selects(json.loads(body), path)
    atomic_write_bytes(path, body, replace=replace, guard=guard)
