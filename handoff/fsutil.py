"""Writing outputs so that a final name only ever holds a complete file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output", "atomic_write_bytes"]


@contextlib.contextmanager
def atomic_output(dest: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only on success.

    The temporary name is hidden and ends in ``.part`` with the real suffix kept before
    it, so muxers that choose a format from the extension still see it. A failure or a
    kill leaves no file under the final name (a stray ``.part`` at most).
    """
    dest = Path(dest)
    if not overwrite and dest.exists():
        raise FileExistsError(f"{dest} exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.stem}.", suffix=f".part{dest.suffix}", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.replace(dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    with atomic_output(dest) as tmp, tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
