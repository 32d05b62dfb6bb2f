"""A small reader for the chunk structure of RIFF/WAVE files.

FFmpeg's WAV demuxer reads up to the end of the file whatever the header declares, so a
WAV whose write was interrupted (its ``data`` chunk declares more bytes than the file
holds) plays, probes and measures as if nothing were missing; MediaInfo alone calls it
``IsTruncated``. Reading the chunk headers says so without touching the samples, and
gives the fast PCM reader (:func:`handoff.media.audio.read_pcm_wav`) the format and the sample
data's place. :func:`write_pcm_wav` is the writing side.

Layout (Microsoft/IBM "Multimedia Programming Interface and Data Specifications 1.0",
RIFF): ``RIFF`` size ``WAVE``, then chunks of a 4-byte id, a 32-bit little-endian size
and a payload padded to an even length. RF64/BW64 (EBU Tech 3306) put the real sizes of
files over 4 GB in a ``ds64`` chunk and 0xFFFFFFFF in the 32-bit fields.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from handoff.errors import UnsupportedError

__all__ = [
    "PCM_SUBTYPE",
    "WRITE_BLOCK",
    "WavLayout",
    "pcm24_bytes",
    "read_wav_layout",
    "wav_header",
    "write_pcm_wav",
    "write_pcm_wav_blocks",
]

# A streaming writer that cannot seek back leaves a placeholder data size: 0 or
# 0xFFFFFFFF (FFmpeg's wav muxer on a pipe, many recorders). The length is then unknown.
_PLACEHOLDERS = {0, 0xFFFFFFFF}
_MAX_CHUNKS = 4096  # a header walk that long is damage, not a WAV

PCM_SUBTYPE = bytes.fromhex("0100000000001000800000aa00389b71")
"""KSDATAFORMAT_SUBTYPE_PCM: WAVE_FORMAT_EXTENSIBLE's SubFormat GUID for integer PCM (its
first two bytes are the format tag, the rest is shared by every subtype)."""


@dataclass(frozen=True, slots=True)
class WavLayout:
    """What the chunk headers of a WAV say, and whether the file holds it all."""

    file_size: int
    fmt: bytes | None
    """The ``fmt `` chunk's payload (WAVEFORMAT[EX|EXTENSIBLE])."""
    data_offset: int | None
    """File offset of the first sample byte."""
    data_size: int | None
    """Bytes the ``data`` chunk declares; None when the writer left a placeholder."""
    truncated: str | None
    """Why the file is cut short, or None."""
    time_reference: int | None = None
    """Broadcast Wave: the ``bext`` chunk's time reference, samples since midnight of the
    first sample; None without a ``bext`` chunk (before the audio data)."""
    bext_problem: str | None = None
    """Why a ``bext`` chunk's time reference could not be read (a chunk too short)."""

    @property
    def data_present(self) -> int:
        """Bytes of sample data the file actually holds."""
        if self.data_offset is None:
            return 0
        end = self.file_size
        if self.data_size is not None:
            end = min(end, self.data_offset + self.data_size)
        return max(0, end - self.data_offset)


def read_wav_layout(path: Path) -> WavLayout | None:
    """The chunk layout of a RIFF/WAVE or RF64 file; None when the file is not one."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:] != b"WAVE":
            return None
        ds64_data: int | None = None
        fmt: bytes | None = None
        bext: tuple[int | None, str | None] = (None, None)
        pos = 12
        for _ in range(_MAX_CHUNKS):
            f.seek(pos)
            header = f.read(8)
            if len(header) < 8:
                why = f"no 'data' chunk before the end of the file ({size} bytes)"
                return WavLayout(size, fmt, None, None, why)
            cid, length = header[:4], struct.unpack("<I", header[4:])[0]
            payload = pos + 8
            if cid == b"data":
                declared: int | None = length
                if head[:4] != b"RIFF" and ds64_data is not None and length == 0xFFFFFFFF:
                    declared = ds64_data
                elif length in _PLACEHOLDERS:
                    declared = None
                truncated = None
                if declared is not None and payload + declared > size:
                    truncated = (
                        f"the WAV's data chunk declares {declared} bytes of audio but the file "
                        f"holds {size - payload}: the write was interrupted"
                    )
                return WavLayout(size, fmt, payload, declared, truncated, *bext)
            if payload + length > size:
                name = cid.decode("latin-1")
                why = f"the file ends inside its '{name}' chunk, before any audio data"
                return WavLayout(size, fmt, None, None, why)
            if cid == b"fmt ":
                fmt = f.read(min(length, 1024))
            elif cid == b"bext":
                bext = _time_reference(f, length)
            elif cid == b"ds64" and length >= 16:
                ds64_data = struct.unpack("<Q", f.read(16)[8:16])[0]
            pos = payload + length + (length & 1)
    return WavLayout(size, fmt, None, None, "too many chunks before the audio data")


# EBU Tech 3285 v2, section 2.3: the bext chunk's fixed fields are Description (256
# bytes), Originator (32), OriginatorReference (32), OriginationDate (10),
# OriginationTime (8), then TimeReferenceLow and TimeReferenceHigh, two little-endian
# 32-bit halves of one 64-bit sample count: at byte 338 of the chunk's payload.
_TIME_REFERENCE_AT = 338


def _time_reference(f: BinaryIO, length: int) -> tuple[int | None, str | None]:
    """(samples since midnight, None), or (None, why not) for a ``bext`` chunk of
    ``length`` bytes at the file's current position."""
    if length < _TIME_REFERENCE_AT + 8:
        return None, f"its 'bext' chunk is {length} bytes, too short for a time reference"
    f.seek(_TIME_REFERENCE_AT, 1)
    (samples,) = struct.unpack("<Q", f.read(8))
    return int(samples), None


# ---------------------------------------------------------------- writing


def wav_header(frames: int, channels: int, bits: int, rate: int) -> bytes:
    """RIFF/WAVE header: plain PCM for 16-bit, WAVE_FORMAT_EXTENSIBLE for 24-bit (as FFmpeg)."""
    block = channels * bits // 8
    data = frames * block
    if 36 + 24 + data >= 1 << 32:
        raise UnsupportedError("output over 4 GB: too long for a WAV file")
    if bits == 16:
        fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    else:
        mask = 0x4 if channels == 1 else 0x3
        fmt = struct.pack(
            "<HHIIHHHHI16s",
            0xFFFE,
            channels,
            rate,
            rate * block,
            block,
            bits,
            22,
            bits,
            mask,
            PCM_SUBTYPE,
        )
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data)
    return b"RIFF" + struct.pack("<I", len(body) - 4 + 4 + data) + body


def pcm24_bytes(q: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    """Little-endian 24-bit PCM bytes of ``q``: every 4 samples packed into 3 32-bit words."""
    n = q.shape[0]
    pad = (-n) % 4
    u = np.concatenate((q, np.zeros(pad, dtype=np.int32))).view(np.uint32) & np.uint32(0xFFFFFF)
    u = u.reshape(-1, 4)
    words = np.empty((u.shape[0], 3), dtype="<u4")
    words[:, 0] = u[:, 0] | (u[:, 1] << 24)
    words[:, 1] = (u[:, 1] >> 8) | (u[:, 2] << 16)
    words[:, 2] = (u[:, 2] >> 16) | (u[:, 3] << 8)
    return words.reshape(-1).view(np.uint8)[: n * 3]


def write_pcm_wav(
    f: BinaryIO,
    samples: npt.NDArray[np.float32],
    bits: int,
    rate: int,
    *,
    duplicate: bool = False,
) -> None:
    """Write ``samples`` (channels, n; full scale 1.0) to ``f`` as a whole PCM WAV file.

    Each sample is rounded to the nearest step and clipped to the format's range.
    ``duplicate``: a mono ``samples`` is written as two identical channels (dual-mono).
    Written in blocks, so no full-length integer copy is made.
    """
    n = samples.shape[1]
    step = WRITE_BLOCK
    blocks = (samples[:, start : start + step] for start in range(0, n, step))
    write_pcm_wav_blocks(f, blocks, n, samples.shape[0], bits, rate, duplicate=duplicate)


WRITE_BLOCK = 1 << 18
"""Samples per block :func:`write_pcm_wav` converts at a time (small blocks: temporaries
are reused, not re-mapped)."""


def write_pcm_wav_blocks(
    f: BinaryIO,
    blocks: Iterable[npt.NDArray[np.float32]],
    frames: int,
    channels: int,
    bits: int,
    rate: int,
    *,
    duplicate: bool = False,
) -> None:
    """:func:`write_pcm_wav` of a programme of ``frames`` samples of ``channels`` given as
    ``(channels, m)`` blocks in order (the same bytes: every sample is converted alone).
    Raises ValueError if the blocks do not hold ``frames`` samples (the header says so)."""
    ch = 2 if duplicate else channels
    scale = np.float32(1 << (bits - 1))
    f.write(wav_header(frames, ch, bits, rate))
    written = 0
    for samples in blocks:
        block = samples * scale
        np.rint(block, out=block)
        np.clip(block, -scale, scale - 1.0, out=block)
        q = block.astype(np.int32)
        if duplicate:
            inter = np.repeat(q[0], 2)
        elif q.shape[0] == 1:
            inter = q[0]
        else:
            inter = np.ascontiguousarray(q.T).reshape(-1)
        if bits == 16:
            f.write(inter.astype("<i2").data)
        else:
            f.write(pcm24_bytes(inter).data)
        written += int(q.shape[1])
    if written != frames:
        raise ValueError(f"{written} samples written for a header of {frames}")
