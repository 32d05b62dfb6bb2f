"""Writing outputs so that a final name only ever holds a complete file -- and never
one the command was not asked to replace, least of all one of its own inputs."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from handoff.errors import Option, OutputExistsError, OverwritesInputError, Text
from handoff.files.names import cut_to_bytes

__all__ = [
    "OUTPUT_MARK",
    "InputGuard",
    "atomic_output",
    "atomic_write_bytes",
    "clear_stale_parts",
    "holds_any",
    "is_output_folder",
    "mark_output_folder",
    "publish",
    "remove_stale_parts",
    "resolved",
]


# A temporary name adds ".", ".<pid>.<random>.part" to the output's name; a stem cut to
# this many bytes keeps it under the 255 bytes most file systems allow in a name.
_PART_STEM_BYTES = 160


def _part_prefix(dest: Path) -> str:
    return f".{cut_to_bytes(dest.stem, _PART_STEM_BYTES)}."


def _part_suffix(dest: Path) -> str:
    return f".part{dest.suffix}"


# The whole temporary name: "." + stem + "." + writer's pid + "." + mkstemp's 8 random
# characters + ".part" + the output's suffix (none for a name without one).
_PART_NAME = re.compile(r"^\..*\.(?P<pid>\d+)\.[A-Za-z0-9_]{8}\.part(?:\.[^.]+)?$")


def _writer_pid(name: str) -> int | None:
    """The process id in a temporary name of ours; None for any other name."""
    m = _PART_NAME.match(name)
    return int(m.group("pid")) if m else None


class InputGuard:
    """The inputs of one command, to refuse any output that would write over one of them.

    An output is an input when it names the same file after links are followed, or
    when it is the same file under another name (a hard link: same device and inode).
    Inputs are never written over, whatever the flags: ``--overwrite`` replaces earlier
    *outputs* only.
    """

    def __init__(self, inputs: Iterable[Path]) -> None:
        self._paths: dict[Path, Path] = {}
        self._files: dict[tuple[int, int], Path] = {}
        for p in inputs:
            self.add(p)

    def add(self, path: Path) -> None:
        real = resolved(path)
        if real is not None:
            self._paths.setdefault(real, path)
        with contextlib.suppress(OSError):
            st = path.stat()
            self._files.setdefault((st.st_dev, st.st_ino), path)

    def input_at(self, output: Path) -> Path | None:
        """The input ``output`` would write over, if any."""
        real = resolved(output)
        if real is not None and real in self._paths:
            return self._paths[real]
        try:
            st = output.stat()
        except OSError:
            return None
        return self._files.get((st.st_dev, st.st_ino))

    def check(self, output: Path) -> None:
        """Raise :class:`OverwritesInputError` when ``output`` is one of the inputs."""
        hit = self.input_at(output)
        if hit is not None:
            raise OverwritesInputError(
                f"would write over the input {hit}: choose another output name or folder",
                output,
            )


def resolved(path: Path) -> Path | None:
    """``path`` with every link followed; None when that cannot be done (a loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        return None


@contextlib.contextmanager
def atomic_output(dest: Path, *, replace: bool, guard: InputGuard | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; publish it as ``dest`` only on success.

    The temporary file is hidden, carries the writer's process id, and ends in
    ``.part`` followed by the real suffix, so muxers that choose a format from the
    extension still see it: ``.001_intro.4242.k2j3.part.mp4``. A failure removes it;
    a kill leaves it behind under that name only, never under ``dest`` --
    :func:`remove_stale_parts` clears such leftovers on the next run.

    Without ``replace``, an existing ``dest`` is never replaced -- not even one that
    another process published while this one was writing: :class:`OutputExistsError`.
    ``guard`` refuses, at the last moment too, a ``dest`` that is one of the inputs.
    """
    dest = Path(dest)
    if guard is not None:
        guard.check(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f"{_part_prefix(dest)}{os.getpid()}.", suffix=_part_suffix(dest), dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); a finished output gets the mode any
        # new file of this user would have.
        tmp.chmod(0o666 & ~_umask())
        if guard is not None:
            guard.check(dest)
        publish(tmp, dest, replace=replace)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def publish(tmp: Path, dest: Path, *, replace: bool) -> None:
    """Rename ``tmp`` to ``dest``; without ``replace``, fail if ``dest`` exists.

    The no-replace rename is atomic where the system offers one: Linux's
    ``renameat2(RENAME_NOREPLACE)`` (renameat2(2), Linux 3.15+, glibc 2.28+), else a
    hard link (``link(2)`` fails with EEXIST) then the unlink of the temporary name.
    On a file system with neither (FAT, some network shares) a check then a rename
    leaves a window of microseconds in which a concurrent writer can still lose.
    """
    if replace:
        tmp.replace(dest)
        return
    try:
        if _rename_noreplace(tmp, dest):
            return
        if _link_noreplace(tmp, dest):
            return
        if dest.exists() or dest.is_symlink():
            raise FileExistsError(errno.EEXIST, "File exists", str(dest))
        tmp.rename(dest)
    except FileExistsError:
        raise OutputExistsError(
            Text("already exists (use ", Option("replace", True), " to replace it)"), dest
        ) from None


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's renameat2, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _rename_noreplace(tmp: Path, dest: Path) -> bool:
    """True when renamed; False when the system or file system cannot do it."""
    fn = _renameat2()
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(dest), _RENAME_NOREPLACE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), str(dest))
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # this kernel or file system has no RENAME_NOREPLACE
    raise OSError(err, os.strerror(err), str(dest))


def _link_noreplace(tmp: Path, dest: Path) -> bool:
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            return False  # no hard links here (FAT, some shares)
        raise
    tmp.unlink()
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie does not: it has exited and waits
    for its parent to collect it -- forever, when that parent was killed and the
    process that adopts orphans does not reap (as in containers whose init is not a
    reaper; measured: a --jobs worker of a SIGKILLed run stayed a zombie, and its
    temporary file was kept as a live writer's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: exists; is it running?
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no /proc (not Linux), or it went: take it as running
    # proc(5): "pid (comm) state ...", comm may hold spaces and parentheses.
    state = stat[stat.rfind(")") + 2 : stat.rfind(")") + 3]
    return state not in ("Z", "X")


def _remove_if_orphaned(candidate: Path) -> bool:
    """Remove one of our temporary files whose writer no longer runs on this machine.

    The writer's process id is in the name (:func:`atomic_output`): a live writer -- a
    concurrent run, a ``--jobs`` worker -- keeps its file. A writer on another machine
    sharing the folder is not seen from here: its file would be taken for an orphan.
    """
    pid = _writer_pid(candidate.name)
    if pid is None or _alive(pid):
        return False
    try:
        candidate.unlink()
    except FileNotFoundError:
        return False  # another run cleared it first
    return True


def remove_stale_parts(dest: Path) -> list[Path]:
    """Delete temporary files left beside ``dest``, for ``dest``, by writers that no
    longer run."""
    prefix, suffix = _part_prefix(dest), _part_suffix(dest)
    if not dest.parent.is_dir():
        return []
    return [
        c
        for c in sorted(dest.parent.iterdir())
        if c.name.startswith(prefix) and c.name.endswith(suffix) and _remove_if_orphaned(c)
    ]


def clear_stale_parts(folders: Iterable[Path]) -> list[Path]:
    """Delete, in each of ``folders`` (not below), every temporary file of ours whose
    writer no longer runs: what a run killed before it could clean up left behind
    (SIGKILL, a power cut). Called at the start of every command that writes there."""
    removed: list[Path] = []
    for folder in dict.fromkeys(Path(f) for f in folders):
        try:
            names = sorted(folder.iterdir())
        except OSError:
            continue  # not made yet, or not listable: nothing of ours to clear
        removed += [c for c in names if _remove_if_orphaned(c)]
    return removed


OUTPUT_MARK = ".handoff-output"
"""A hidden file in each folder handoff writes media into (export's ``--out``,
prep-audio's ``--out``): when a folder above it is given as input, this folder is left
out, so a re-run never takes the previous run's outputs for new inputs."""

_MARK_TEXT = (
    b"handoff wrote media into this folder. When a folder holding this one is given to\n"
    b"handoff as input, this folder is left out (its files are outputs, not sources);\n"
    b"name this folder itself to read it. Deleting this file lifts that.\n"
)


def is_output_folder(folder: Path) -> bool:
    """Whether ``folder`` carries handoff's output mark (:data:`OUTPUT_MARK`)."""
    try:
        return (folder / OUTPUT_MARK).is_file()
    except OSError:
        return False


def holds_any(folder: Path, paths: Iterable[Path]) -> bool:
    """Whether one of ``paths`` lies in ``folder``, at any depth (links followed)."""
    real = resolved(folder)
    if real is None:
        return False
    for p in paths:
        where = resolved(Path(p))
        if where is not None and where.is_relative_to(real):
            return True
    return False


def mark_output_folder(folder: Path, inputs: Iterable[Path] = ()) -> bool:
    """Mark ``folder`` as holding handoff outputs, unless one of ``inputs`` lies in it
    (:func:`holds_any`): a folder of sources with outputs written beside them stays a
    folder of sources. True when the folder carries the mark afterwards."""
    real = resolved(folder)
    if real is None or not real.is_dir() or holds_any(real, inputs):
        return False
    if is_output_folder(real):
        return True
    with contextlib.suppress(OutputExistsError):  # a concurrent run marked it first
        atomic_write_bytes(real / OUTPUT_MARK, _MARK_TEXT, replace=False)
    return True


def atomic_write_bytes(
    dest: Path, data: bytes, *, replace: bool, guard: InputGuard | None = None
) -> None:
    """Write ``data`` to ``dest`` atomically (see :func:`atomic_output`)."""
    with atomic_output(dest, replace=replace, guard=guard) as tmp, tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
