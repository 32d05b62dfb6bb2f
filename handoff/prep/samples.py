"""Where prep keeps a programme between its passes: in memory, or in a scratch file.

An hour of 48 kHz float32 content is 691 MB a channel, and prep needs it three times over
(measured, levelled, written), so the job reads it from a scratch file a stretch at a
time (:class:`ScratchSamples`); the pure functions of :mod:`handoff.prep.level` take an
array just as well (:class:`ArraySamples`). Both give ``(channels, m)`` float32 stretches
through :meth:`read`; nothing else is asked of them.

The scratch file is created unnamed (``O_TMPFILE`` on Linux, else unlinked at once by
:func:`tempfile.TemporaryFile`), so it leaves nothing behind however the process ends --
an exception, Ctrl-C or a kill -- and :meth:`ScratchSamples.close` frees its space early.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from handoff.analysis import dsp
from handoff.media.arrays import Float32Array, FloatArray

__all__ = ["ArraySamples", "SampleStore", "ScratchSamples", "gather", "store_bins", "stretches"]


_GATHER_BLOCK = 1 << 16  # samples read at a time when picking scattered samples
_BINS_BLOCK = 614_400  # samples read at a time for their 1 ms bins (12.8 s at 48 kHz)


class SampleStore(Protocol):
    """A programme, ``channels`` x ``samples`` float32, read a stretch at a time."""

    @property
    def channels(self) -> int: ...

    @property
    def samples(self) -> int: ...

    def read(self, start: int, stop: int) -> Float32Array:
        """Samples ``start .. stop - 1`` (clipped to the programme), ``(channels, m)``."""
        ...


class ArraySamples:
    """A programme held in memory (tests, short clips): reads are views."""

    __slots__ = ("array",)

    def __init__(self, array: npt.ArrayLike) -> None:
        arr = np.asarray(array, dtype=np.float32)
        self.array = arr[np.newaxis, :] if arr.ndim == 1 else arr

    @property
    def channels(self) -> int:
        return int(self.array.shape[0])

    @property
    def samples(self) -> int:
        return int(self.array.shape[1])

    def read(self, start: int, stop: int) -> Float32Array:
        return self.array[:, max(0, start) : max(0, stop)]


class ScratchSamples:
    """A programme in an unnamed scratch file, float32 interleaved, appended in order and
    read back by ``pread`` (so reader threads need no lock)."""

    __slots__ = ("_channels", "_file", "_samples")

    def __init__(self, channels: int, folder: Path | None = None) -> None:
        where = folder if folder is not None and folder.is_dir() else None
        # Held open for the object's life, closed by close() (or when it is collected).
        self._file = tempfile.TemporaryFile(prefix=".handoff-prep-", dir=where)  # noqa: SIM115
        self._channels = int(channels)
        self._samples = 0

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def samples(self) -> int:
        return self._samples

    def append(self, block: npt.NDArray[np.floating]) -> None:
        """Add ``(channels, m)`` samples at the end."""
        data = np.ascontiguousarray(np.asarray(block, dtype=np.float32).T)
        self._file.seek(self._samples * 4 * self._channels)
        self._file.write(data.data)
        self._samples += int(data.shape[0])

    def truncate(self, samples: int) -> None:
        """Keep the first ``samples`` samples, padding with zeros when there are fewer."""
        self._file.truncate(samples * 4 * self._channels)  # a longer file reads as zeros
        self._samples = samples

    def read(self, start: int, stop: int) -> Float32Array:
        start, stop = max(0, start), min(self._samples, stop)
        count = max(0, stop - start)
        width = 4 * self._channels
        raw = os.pread(self._file.fileno(), count * width, start * width)
        if len(raw) != count * width:
            raise OSError(f"scratch file read short: {len(raw)} of {count * width} bytes")
        values = np.frombuffer(raw, dtype=np.float32).reshape(count, self._channels)
        return np.ascontiguousarray(values.T)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ScratchSamples:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stretches(store: SampleStore, block: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive ``block``-sample stretches covering ``store``."""
    n = store.samples
    return [(a, min(n, a + block)) for a in range(0, n, block)]


def store_bins(store: SampleStore, rate: int, block: int = _BINS_BLOCK) -> FloatArray:
    """:func:`handoff.analysis.dsp.bin_power` of a store, read ``block`` samples at a
    time (``block`` a whole number of bins): one float64 per 1 ms, 29 MB an hour."""
    size = dsp.bin_samples(rate)
    out = np.empty(-(-store.samples // size))
    for a, b in stretches(store, block):
        part = dsp.bin_power(store.read(a, b), rate)[0]
        out[a // size : a // size + part.shape[0]] = part
    return out


def gather(store: SampleStore, index: npt.NDArray[np.int64]) -> Float32Array:
    """``store[:, index]`` for ascending ``index``, reading only the stretches it falls in."""
    out = np.empty((store.channels, index.shape[0]), dtype=np.float32)
    if index.shape[0] == 0:
        return out
    blocks = index // _GATHER_BLOCK
    cuts = np.flatnonzero(np.diff(blocks)) + 1
    for lo, hi in zip(
        np.concatenate(([0], cuts)).tolist(),
        np.concatenate((cuts, [index.shape[0]])).tolist(),
        strict=True,
    ):
        first, last = int(index[lo]), int(index[hi - 1]) + 1
        out[:, lo:hi] = store.read(first, last)[:, index[lo:hi] - first]
    return out
