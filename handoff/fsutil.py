"""Writing outputs so that a final name only ever holds a complete file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output", "atomic_write_bytes", "remove_stale_parts"]


def _part_prefix(dest: Path) -> str:
    return f".{dest.stem}."


def _part_suffix(dest: Path) -> str:
    return f".part{dest.suffix}"


@contextlib.contextmanager
def atomic_output(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only on success.

    The temporary file is hidden, carries the writer's process id, and ends in
    ``.part`` followed by the real suffix, so muxers that choose a format from the
    extension still see it: ``.001_intro.4242.k2j3.part.mp4``. A failure removes it;
    a kill leaves it behind under that name only, never under ``dest`` --
    :func:`remove_stale_parts` clears such leftovers on the next run.
    """
    dest = Path(dest)
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
        tmp.replace(dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_parts(dest: Path) -> list[Path]:
    """Delete temporary files left beside ``dest`` by writers that no longer run."""
    removed: list[Path] = []
    prefix, suffix = _part_prefix(dest), _part_suffix(dest)
    if not dest.parent.is_dir():
        return removed
    for candidate in dest.parent.iterdir():
        name = candidate.name
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        pid_text = name[len(prefix) :].split(".", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    with atomic_output(dest) as tmp, tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
