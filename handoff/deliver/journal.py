"""The delivery journal (``DELIVERY/journal.jsonl``), the file stamps that let a re-run
tell a finished step from one to redo, and the lock that keeps one run per folder.

Why JSON lines and not SQLite (even in WAL mode): the journal has one writer (the
client process, which holds :class:`FolderLock`) and it only ever appends whole lines,
one ``os.write`` each, fsynced as each step finishes. That is all the durability a
resumable run needs, and a crash can cost at most the line being written -- a torn last
line, which the reader skips, so that one step is redone. A text file is also readable
while the run goes on, with ``tail -f`` and ``jq``, by the person waiting for it; it has
no schema to migrate (each line names its schema, ``handoff.journal/1``); and reading it
back is cheap: 500 renders x 6 steps is 3000 lines, read in milliseconds.

A step is done again when its record is missing or failed, its settings changed, an
input is no longer the file it was (:meth:`Stamp.same_file`), or an output is gone or
changed (:func:`outputs_intact`); the planner decides that, from :attr:`Journal.latest`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from handoff.errors import DeliveryBusyError

__all__ = [
    "JOURNAL_NAME",
    "LOCK_NAME",
    "SCHEMA",
    "FolderLock",
    "Journal",
    "Record",
    "Stamp",
    "Stamper",
    "fingerprint",
    "outputs_intact",
    "settings_digest",
]

SCHEMA = "handoff.journal/1"
JOURNAL_NAME = "journal.jsonl"
LOCK_NAME = ".deliver.lock"

_FINGERPRINT_PREFIX = "blake2b-128:"
_READ_SIZE = 1 << 20  # 1 MiB reads: large enough that hashing runs at disk speed
# Windows would otherwise turn "\n" into "\r\n" on write.
_O_BINARY = getattr(os, "O_BINARY", 0)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _field(d: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``d[name]``, checked to be a ``kind`` (a bool is not an int here)."""
    value = d[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise TypeError(f"{name}: expected {kind}, got a boolean")
    if not isinstance(value, kind):
        raise TypeError(f"{name}: expected {kind}, got {type(value).__name__}")
    return value


# --- stamps -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a file was when a step used or made it."""

    path: str  # absolute path as given (Path.absolute(), not resolved)
    size: int
    mtime_ns: int
    fingerprint: str | None  # "blake2b-128:<32 hex>" of the whole content; None = stat only

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Stamp:
        return cls(
            path=_field(d, "path", str),
            size=_field(d, "size", int),
            mtime_ns=_field(d, "mtime_ns", int),
            fingerprint=_field(d, "fingerprint", (str, type(None))),
        )

    def same_file(self, other: Stamp) -> bool:
        """The same content: by fingerprint when both have one (a file touched or copied
        with its bytes kept is the same file), else by size and modification time."""
        if self.fingerprint is not None and other.fingerprint is not None:
            return self.fingerprint == other.fingerprint
        return self.size == other.size and self.mtime_ns == other.mtime_ns


def fingerprint(path: Path) -> str:
    """``blake2b-128:<32 hex>`` of the whole content of ``path``.

    BLAKE2b is in every Python's hashlib and hashes faster than SHA-256 without SHA
    extensions; 128 bits is ample to tell one render from another (it is not a defence
    against someone forging a file)."""
    digest = hashlib.blake2b(digest_size=16)
    buffer = bytearray(_READ_SIZE)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return _FINGERPRINT_PREFIX + digest.hexdigest()


def _stat_key(path: str, st: os.stat_result) -> tuple[str, int, int]:
    return (path, st.st_size, st.st_mtime_ns)


# A file that still changes while it is hashed (a render being written) is hashed again,
# this many times at most; after that its stamp keeps the stat taken before the last
# read, which a later stat will not match, so the next run hashes it again.
_SETTLE_TRIES = 3


class Stamper:
    """Stamps files, reusing a fingerprint the journal holds for the same path, size and
    mtime_ns, so a re-run of a finished batch reads no media (only stat).

    The reuse trusts that a file whose size and modification time (to the nanosecond)
    are unchanged has unchanged content, as make, rsync and git do. On a file system
    with coarse timestamps (FAT's 2 s, HFS+'s 1 s) a file rewritten to the same size
    within the same tick as it was stamped would be missed; renders are not rewritten
    that fast.
    """

    def __init__(self, known: Iterable[Stamp] = ()) -> None:
        self._known: dict[tuple[str, int, int], Stamp] = {
            (s.path, s.size, s.mtime_ns): s for s in known if s.fingerprint is not None
        }
        self.hashed = 0  # how many files were actually read

    def stamp(self, path: Path, *, content: bool = True) -> Stamp:
        """The stamp of ``path`` now; ``content=False`` stats it only (fingerprint None).

        OSError (a missing file, a folder, no permission) propagates: the caller turns it
        into the step's error."""
        where = path.absolute()
        absolute = str(where)
        before = where.stat()
        if not content:
            return Stamp(absolute, before.st_size, before.st_mtime_ns, None)
        known = self._known.get(_stat_key(absolute, before))
        if known is not None:
            return known
        for attempt in range(1, _SETTLE_TRIES + 1):
            digest = fingerprint(where)
            self.hashed += 1
            after = where.stat()
            settled = _stat_key(absolute, after) == _stat_key(absolute, before)
            if settled or attempt == _SETTLE_TRIES:
                break
            before = after
        stamp = Stamp(absolute, before.st_size, before.st_mtime_ns, digest)
        if settled:
            self._known[_stat_key(absolute, before)] = stamp
        return stamp


def outputs_intact(record: Record) -> bool:
    """Every output of ``record`` still exists with its size and mtime_ns (stat only: an
    output is the step's own work, so a changed time means someone changed it)."""
    for out in record.outputs:
        try:
            st = Path(out.path).stat()
        except OSError:
            return False
        if st.st_size != out.size or st.st_mtime_ns != out.mtime_ns:
            return False
    return True


def settings_digest(settings: Mapping[str, Any]) -> str:
    """``sha256:<16 hex>`` of a step's options as canonical JSON (keys sorted, no spaces),
    so the same options in any order give the same digest."""
    canonical = json.dumps(
        settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


# --- records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One finished step."""

    key: str  # e.g. "master:/abs/renders/001_a.mp4", "timeline:batch"
    step: str  # receive | master | review | sync | selects | timeline | report
    status: str  # done | failed | error
    settings: str  # settings_digest of the step's options
    inputs: tuple[Stamp, ...]
    outputs: tuple[Stamp, ...]
    reason: str | None = None
    result: dict[str, Any] | None = None  # the step's JSON result, kept as is
    seconds: float = 0.0
    at: str = ""  # ISO-8601 UTC, filled by Journal.append when empty
    run: str = ""  # the run id, filled by Journal.append when empty

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "step": self.step,
            "status": self.status,
            "settings": self.settings,
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "reason": self.reason,
            "result": self.result,
            "seconds": self.seconds,
            "at": self.at,
            "run": self.run,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Record:
        """The record ``d`` describes; KeyError, TypeError or ValueError when it is not one."""
        if not isinstance(d, Mapping):
            raise TypeError(f"record: expected an object, got {type(d).__name__}")
        seconds = _field(d, "seconds", (int, float))
        return cls(
            key=_field(d, "key", str),
            step=_field(d, "step", str),
            status=_field(d, "status", str),
            settings=_field(d, "settings", str),
            inputs=tuple(Stamp.from_json(s) for s in _field(d, "inputs", list)),
            outputs=tuple(Stamp.from_json(s) for s in _field(d, "outputs", list)),
            reason=_field(d, "reason", (str, type(None))),
            result=_field(d, "result", (dict, type(None))),
            seconds=float(seconds),
            at=_field(d, "at", str),
            run=_field(d, "run", str),
        )


def _line(obj: Mapping[str, Any]) -> bytes:
    """One journal line. NaN is refused (ValueError) before anything is written."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, allow_nan=False)
    return (text + "\n").encode("utf-8")


# --- the journal --------------------------------------------------------------------


class Journal:
    """DELIVERY/journal.jsonl: one JSON object per line, appended as each step finishes.
    Only the client process writes it (one writer; the FolderLock guarantees it)."""

    def __init__(
        self,
        path: Path,
        fd: int,
        latest: dict[str, Record],
        notes: list[str],
        *,
        torn: bool,
    ) -> None:
        self.path = path
        self.latest = latest  # the last record per key
        self.notes = notes  # what reading skipped, one sentence each
        self.run_id = f"{_utc_now().strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}"
        self._fd: int | None = fd
        # The file does not end in "\n" (a torn last line): the next write starts with
        # one, so that the next record begins on a line of its own.
        self._torn = torn

    @classmethod
    def open(cls, folder: Path) -> Journal:
        """Open (creating ``folder`` and the file if missing) and read every line."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / JOURNAL_NAME
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_BINARY, 0o644)
        try:
            if created:
                _sync_folder(folder)  # so the new file's name survives a power cut too
            with path.open("rb") as f:
                data = f.read()
            latest, notes = _read(data)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, latest, notes, torn=bool(data) and not data.endswith(b"\n"))

    def known_stamps(self) -> list[Stamp]:
        """Every input stamp with a fingerprint, for :class:`Stamper`."""
        return [s for r in self.latest.values() for s in r.inputs if s.fingerprint is not None]

    def append(self, record: Record) -> Record:
        """Write ``record`` as one line, flushed to disk (fsync) before this returns; fills
        its ``at`` and ``run`` when empty and returns the record as written. A result that
        JSON cannot hold (NaN, an object) raises ValueError or TypeError, writing nothing."""
        filled = replace(
            record,
            at=record.at or _iso(_utc_now()),
            run=record.run or self.run_id,
        )
        self._write(_line({"schema": SCHEMA, "record": filled.to_json()}))
        self.latest[filled.key] = filled
        return filled

    def event(self, kind: str, **fields: Any) -> None:
        """Write one event line (a run started, resumed, was stopped...): not a step, so
        it does not count in :attr:`latest`."""
        self._write(_line({"event": kind, "at": _iso(_utc_now()), "run": self.run_id, **fields}))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, line: bytes) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path}: the journal is closed")
        data = b"\n" + line if self._torn else line
        # One write per line: with O_APPEND the line lands at the end whole, or -- after
        # a power cut -- cut short, which the reader skips. A failed write (disk full)
        # may leave part of a line, so the next write starts a new line.
        self._torn = True
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self._torn = False


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that a file just created in it keeps its name after a power
    cut (POSIX; Windows cannot open a folder, and NTFS journals names itself)."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems (and some FUSE mounts) refuse it
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _read(data: bytes) -> tuple[dict[str, Record], list[str]]:
    latest: dict[str, Record] = {}
    notes: list[str] = []
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the empty piece after the final "\n"
    last = len(lines)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{JOURNAL_NAME} line {number}"
        try:
            obj = json.loads(raw.decode("utf-8"))
        except ValueError:  # also UnicodeDecodeError: a cut through a multibyte letter
            if number == last:
                notes.append(f"{where} was cut short (a write interrupted) and is ignored")
            else:
                notes.append(f"{where} is not valid JSON and is ignored")
            continue
        if not isinstance(obj, dict):
            notes.append(f"{where} is not a journal record or event and is ignored")
        elif "schema" in obj:
            if obj["schema"] != SCHEMA:
                notes.append(
                    f"{where} has schema {json.dumps(obj['schema'], ensure_ascii=False)},"
                    f" not {SCHEMA} (written by another version of handoff) and is ignored"
                )
                continue
            try:
                record = Record.from_json(obj["record"])
            except (KeyError, TypeError, ValueError) as exc:
                notes.append(f"{where} is not a {SCHEMA} record ({exc}) and is ignored")
                continue
            latest[record.key] = record
        elif "event" not in obj:
            notes.append(f"{where} is not a journal record or event and is ignored")
    return latest, notes


# --- the folder lock ----------------------------------------------------------------


class FolderLock:
    """``DELIVERY/.deliver.lock``: one ``handoff deliver`` writes into a folder at a time.

    The lock is ``flock(LOCK_EX | LOCK_NB)`` on the lock file, kept open for the run.
    The kernel drops a flock when the last descriptor of its open file is closed, which
    happens when its holder dies however it dies (even SIGKILL; flock(2)), so a dead
    run never holds the folder and there is no stale lock to clear. Children that fork
    without exec share the descriptor and so the lock: a pool's workers must die with
    their parent (``handoff.jobs.processes`` sees to it). The file holds one line naming
    the holder (``pid host started-at argv``), for the refusal to quote.

    flock belongs to an open file, not to a process, so a second FolderLock in the same
    process is refused too. The lock file is never deleted: deleting it would race with
    a second run that has opened it but not yet locked it (the two would then lock two
    different files).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        """Take the lock, or raise DeliveryBusyError naming who holds it."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: this FolderLock is already held")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _O_BINARY, 0o644)
        try:
            if not _try_lock(fd):
                raise DeliveryBusyError(_busy_message(self.folder, _holder(fd)))
            argv = shlex.join(sys.argv).replace("\n", " ")
            line = f"{os.getpid()} {socket.gethostname()} {_iso(_utc_now())} {argv}\n"
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, line.encode("utf-8"))
        except BaseException:
            os.close(fd)  # also drops the lock if it was taken
            raise
        self._fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # Emptied while still held: once unlocked, the line may be another run's.
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)


def _busy_message(folder: Path, holder: str | None) -> str:
    who = "another 'handoff deliver'"
    if holder:
        pid, host, since = [*holder.split(" ", 3), "?", "?", "?"][:3]
        who += f" (pid {pid} on {host}, since {since})"
    return f"{who} is writing into {folder}: wait for it to finish, or stop it"


def _holder(fd: int) -> str | None:
    """The holder's line, or None when it cannot be read. The holder writes it just
    after taking the lock, so an empty file is read again for a moment."""
    for _ in range(10):
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, 4096).decode("utf-8", "replace")
        except OSError:  # Windows: the first byte is locked against reading too
            return None
        line = text.partition("\n")[0].strip()
        if line:
            return line
        time.sleep(0.02)
    return None


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        # Windows has no flock: lock the first byte; it too is released when the
        # holder's handle closes, which the system does when a process dies.
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # EWOULDBLOCK: another open file holds it
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
