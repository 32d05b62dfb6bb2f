"""Decode one audio stream of any media file to a float32 numpy array with PyAV.

The samples come out as float32, shape ``(channels, samples)``, full scale 1.0, at
the stream's own sample rate and channel layout: measuring loudness or true peak needs the
signal as delivered, so nothing is resampled or down-mixed here.

Samples are concatenated in decode order; timestamps are not applied. A stream that
starts after the container's zero, or has holes in its timestamps, is not padded with
silence -- the array is the audio the stream holds (after FFmpeg has applied the codec
delay and MP4 edit-list trimming it knows about).

Damage is handled the way a player handles it: a packet the decoder rejects is skipped
and decoding goes on; a container that stops making sense part-way ends the decode with
what was read so far. Nothing is printed; errors a user can act on are raised as the
:mod:`handoff.errors` classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.layout import AudioLayout
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.video.frame import VideoFrame

from handoff.errors import (
    InputError,
    MediaNotFoundError,
    MediaPermissionError,
    NoStreamsError,
    NotMediaError,
    TruncatedMediaError,
    UnsupportedError,
)
from handoff.files.find import check_readable, open_input
from handoff.media.isobmff import read_layout, sniff_isobmff
from handoff.media.riff import PCM_SUBTYPE, read_wav_layout

__all__ = [
    "BLOCK_SAMPLES",
    "Damage",
    "DecodedAudio",
    "PcmWavBlocks",
    "ShortReadError",
    "audio_blocks",
    "decode_audio",
    "decoded_frames",
    "frame_samples",
    "open_media",
    "pcm_wav_blocks",
    "read_pcm_wav",
]


BLOCK_SAMPLES = 1 << 18
"""Samples per channel in a block of :func:`audio_blocks` (5.5 s at 48 kHz): long enough
that per-block Python work is small next to the numpy work on it, short enough that a
block of 8 float32 channels is 8 MB."""


@dataclass(frozen=True, slots=True, eq=False)
class DecodedAudio:
    """Decoded samples, ``(channels, samples)`` float32, and their sample rate.

    (No ``==``: comparing the arrays element-wise is the caller's choice.)
    """

    samples: npt.NDArray[np.float32]
    sample_rate: int
    layout: str | None = None
    """FFmpeg's name for the channel layout (``"stereo"``, ``"5.1"``), if it has one."""
    channel_names: tuple[str, ...] = ()
    """FFmpeg's channel names in order (``("FL", "FR")``); empty when the file does not
    say which channel is which (e.g. a WAV without a channel mask)."""
    skipped_packets: int = 0
    """Packets the decoder rejected (damaged data; their audio is missing), plus one if
    the container broke off before its end."""

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return int(self.samples.shape[1]) / self.sample_rate


def open_media(path: Path) -> av.container.InputContainer:
    """``av.open`` for reading, its failures as :mod:`handoff.errors` classes -- one
    wording for every stage that opens media (probe, prep, sync, export)."""
    try:
        return open_input(path)
    except FileNotFoundError:
        raise MediaNotFoundError("no such file", path) from None
    except PermissionError:
        raise MediaPermissionError("permission denied", path) from None
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        raise _unreadable(path, exc, None) from exc
    except av.error.FFmpegError as exc:
        # E.g. EIO from a Matroska file cut inside its header: the file, not the disk.
        raise _unreadable(path, exc, exc.strerror or type(exc).__name__) from exc


def _unreadable(path: Path, exc: Exception, reason: str | None) -> InputError:
    """Why FFmpeg could not open ``path``: an MP4/MOV whose write never finished (no
    index) is told apart from a damaged one and from a file that is not media."""
    with path.open("rb") as f:
        head = f.read(16)
    if sniff_isobmff(head):
        layout = read_layout(path)
        if layout is not None and not layout.has_moov:
            size = path.stat().st_size
            return TruncatedMediaError(
                f"MP4/MOV with no index (no 'moov' box; {size} bytes): the write was "
                "interrupted before it finished -- export the file again",
                path,
            )
        return NotMediaError(f"damaged MP4/MOV that FFmpeg cannot read ({exc})", path)
    if reason is None:
        return NotMediaError("not a media file FFmpeg can read", path)
    return NotMediaError(f"not a media file FFmpeg can read ({reason})", path)


def _pick_stream(
    container: av.container.InputContainer, stream_index: int | None, path: Path
) -> AudioStream:
    audio = list(container.streams.audio)
    if stream_index is None:
        if not audio:
            raise NoStreamsError("no audio stream", path)
        return audio[0]
    for stream in audio:
        if stream.index == stream_index:
            return stream
    have = ", ".join(str(s.index) for s in audio) or "none"
    raise NoStreamsError(f"no audio stream with index {stream_index} (audio streams: {have})", path)


def frame_samples(frame: AudioFrame) -> npt.NDArray[np.float32]:
    """The samples of a *packed* float frame (format ``flt``) as ``(channels, samples)``.

    Interleaved float is read as one plane and de-interleaved in numpy. Planar frames
    are not read plane by plane: PyAV 18.1's ``to_ndarray()`` on a planar frame of 8 or
    more channels crashes the interpreter (SIGSEGV/SIGABRT; FFmpeg keeps planes past the
    eighth in ``extended_data``, measured with an 8-channel WAV), while one interleaved
    plane holds any channel count.
    """
    if frame.format.name != "flt":
        raise ValueError(f"expected packed float samples, got {frame.format.name}")
    channels = frame.layout.nb_channels
    flat = np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)
    return np.ascontiguousarray(flat[: frame.samples * channels].reshape(-1, channels).T)


class _Collector:
    """Converts decoded frames to float at one fixed layout and rate, and keeps them.

    The output format is fixed by the first frame. A stream that changes layout or rate
    part-way (it happens with AAC and with concatenated files) is converted to the first
    frame's, so the result is one consistent array. Conversion is to packed float
    (:func:`frame_samples` says why not planar).
    """

    def __init__(self) -> None:
        self.chunks: list[npt.NDArray[np.float32]] = []
        self.held = 0
        """Samples per channel in ``chunks``."""
        self.layout: AudioLayout | None = None
        self.rate: int | None = None
        self._resampler: AudioResampler | None = None
        self._input_key: tuple[str, str, int] | None = None

    def add(self, frame: AudioFrame) -> None:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.layout is None or self.rate is None:
            self.layout = frame.layout
            self.rate = frame.sample_rate
        if key != self._input_key or self._resampler is None:
            self.finish()  # a new input format needs a new conversion graph
            self._resampler = AudioResampler(format="flt", layout=self.layout, rate=self.rate)
            self._input_key = key
        self._keep(self._resampler.resample(frame))

    def finish(self) -> None:
        if self._resampler is not None:
            self._keep(self._resampler.resample(None))
            self._resampler = None

    def _keep(self, frames: list[AudioFrame]) -> None:
        for out in frames:
            # A pass-through resampler answers a flush with [None].
            if out is not None and out.samples:
                self.chunks.append(frame_samples(out))
                self.held += out.samples


@dataclass(slots=True)
class Damage:
    """What :func:`decoded_frames` had to pass over."""

    skipped: int = 0
    """Packets the decoder rejected, plus one if the container broke off before its end."""


def decoded_frames(
    container: av.container.InputContainer,
    streams: Sequence[av.stream.Stream],
    path: Path,
    damage: Damage,
) -> Iterator[AudioFrame | VideoFrame]:
    """Every decoded frame of ``streams``, in file order, then what the decoders held back.

    Damage is handled the way a player handles it: a packet the decoder rejects is
    skipped (its picture or sound is lost, the rest stays in place) and counted in
    ``damage``; a container that stops making sense part-way (a truncated file) ends
    the frames there. A codec FFmpeg has no decoder for raises UnsupportedError.
    """
    try:
        for packet in container.demux(*streams):
            try:
                frames = packet.decode()
            except av.error.DecoderNotFoundError as exc:
                raise UnsupportedError(
                    f"no decoder for {packet.stream.type} codec "
                    f"{packet.stream.codec_context.name!r}",
                    path,
                ) from exc
            except av.error.FFmpegError:
                damage.skipped += 1
                continue
            for frame in frames:
                if isinstance(frame, AudioFrame | VideoFrame):
                    yield frame
    except (av.error.InvalidDataError, av.error.EOFError, av.error.OSError):
        damage.skipped += 1
        return
    # The demuxer's end flushes the decoders (PyAV sends an empty packet per stream), so
    # frames held back by a decoder (B-frame reordering) came out above.


def audio_blocks(
    path: Path | str, stream_index: int | None = None, *, block_samples: int = BLOCK_SAMPLES
) -> Iterator[DecodedAudio]:
    """Decode the first audio stream of ``path`` (or the one with container index
    ``stream_index``) a block at a time: float32 ``(channels, samples)`` at its native rate
    and layout, in order, at least ``block_samples`` per block (the last may be shorter).

    Only one block is held at a time, so a programme of any length is decoded in bounded
    memory. The last block -- empty when the audio ended on a block boundary or there was
    none -- comes after decoding has ended and carries the final ``skipped_packets``;
    every block carries the rate, layout and channel names (those of the first frame).

    Raises what :func:`decode_audio` raises; NotMediaError (not one packet decodes) only
    after the damaged packets have been read.
    """
    path = Path(path)
    check_readable(path)
    with open_media(path) as container:
        stream = _pick_stream(container, stream_index, path)
        codec_context: av.AudioCodecContext | None = stream.codec_context
        if codec_context is None:  # a codec FFmpeg cannot identify (PyAV: no context)
            raise UnsupportedError(
                f"audio stream {stream.index} has a codec FFmpeg cannot identify", path
            )
        collector = _Collector()
        damage = Damage()
        decoded_any = False

        def block() -> DecodedAudio:
            layout = collector.layout
            names = () if layout is None else tuple(c.name for c in layout.channels)
            if any(name in {"", "NONE"} or name.startswith("USR") for name in names):
                names = ()  # FFmpeg's "N channels": count known, positions not
            if collector.chunks:
                samples = np.concatenate(collector.chunks, axis=1)
            else:
                samples = np.zeros((stream.codec_context.channels or 1, 0), dtype=np.float32)
            collector.chunks.clear()
            collector.held = 0
            rate = collector.rate or stream.codec_context.sample_rate or stream.rate or 0
            return DecodedAudio(
                samples=samples,
                sample_rate=int(rate),
                layout=None if layout is None else layout.name,
                channel_names=names,
                skipped_packets=damage.skipped,
            )

        for frame in decoded_frames(container, [stream], path, damage):
            if isinstance(frame, AudioFrame):
                collector.add(frame)
                if collector.held >= block_samples:
                    decoded_any = True
                    yield block()
        collector.finish()
        if not decoded_any and not collector.chunks and damage.skipped:
            raise NotMediaError(
                f"audio stream {stream.index} could not be decoded "
                f"({damage.skipped} damaged packets)",
                path,
            )
        yield block()


def decode_audio(path: Path | str, stream_index: int | None = None) -> DecodedAudio:
    """Decode the first audio stream of ``path`` (or the one with container index
    ``stream_index``) to float32 ``(channels, samples)`` at its native rate and layout.

    Damaged packets are skipped and counted in ``skipped_packets``; a container that
    breaks off part-way gives the audio before the break. (The whole programme is held:
    :func:`audio_blocks` gives it a block at a time.)

    Raises MediaNotFoundError, MediaPermissionError, EmptyMediaError, NotMediaError (FFmpeg
    cannot read the container, or not one packet of the stream decodes), NoStreamsError (no
    audio stream, or none with that index) and UnsupportedError (no decoder for the codec).
    """
    blocks = list(audio_blocks(path, stream_index))
    last = blocks[-1]
    samples = [b.samples for b in blocks if b.samples.shape[1]]
    return DecodedAudio(
        samples=np.concatenate(samples, axis=1) if samples else last.samples,
        sample_rate=last.sample_rate,
        layout=last.layout,
        channel_names=last.channel_names,
        skipped_packets=last.skipped_packets,
    )


# KSDATAFORMAT_SUBTYPE_*: the format tag, then these 14 bytes
_GUID_TAIL = PCM_SUBTYPE[2:]


def read_pcm_wav(path: Path) -> DecodedAudio | None:
    """Plain PCM or float WAV, at most two channels, read straight into numpy.

    Narration usually arrives as WAV, and decoding it frame by frame through FFmpeg
    costs more than everything else here but the measuring (0.5 s of 3 for 5 minutes).
    The result equals :func:`decode_audio`'s (planar float32, full scale
    1.0). The chunks are read by :func:`handoff.media.riff.read_wav_layout`. Anything unusual
    -- another codec, more channels, a data chunk that runs past the end of the file or
    declares no size -- returns None, and decode_audio reads it.
    """
    reader = pcm_wav_blocks(path)
    if reader is None:
        return None
    samples = np.empty((reader.channels, reader.frames), dtype=np.float32)
    try:
        pos = 0
        for block in reader:
            samples[:, pos : pos + block.samples.shape[1]] = block.samples
            pos += block.samples.shape[1]
    except (OSError, ShortReadError):
        return None
    return DecodedAudio(samples=samples, sample_rate=reader.sample_rate, layout=reader.layout)


class ShortReadError(Exception):
    """A WAV's data chunk ended before its header said (the file changed while read)."""


@dataclass(frozen=True, slots=True)
class PcmWavBlocks:
    """The samples of a plain PCM or float WAV, a block at a time (:func:`pcm_wav_blocks`)."""

    path: Path
    offset: int
    frames: int
    channels: int
    bits: int
    kind: str
    sample_rate: int
    block_samples: int = BLOCK_SAMPLES

    @property
    def layout(self) -> str:
        return "mono" if self.channels == 1 else "stereo"

    def __iter__(self) -> Iterator[DecodedAudio]:
        """Float32 ``(channels, n)`` blocks of ``block_samples`` (the last may be shorter),
        at least one. Raises OSError, or ShortReadError if the data ends early."""
        channels, bits, kind = self.channels, self.bits, self.kind
        align = channels * bits // 8
        step = self.block_samples
        with self.path.open("rb") as f:
            f.seek(self.offset)
            for start in range(0, max(self.frames, 1), step):
                count = max(0, min(step, self.frames - start))
                raw = np.frombuffer(f.read(count * align), dtype=np.uint8)
                if raw.shape[0] != count * align:
                    raise ShortReadError(f"{self.path}: the data chunk ends early")
                if kind == "i24":
                    wide = np.zeros((count * channels, 4), dtype=np.uint8)
                    wide[:, 1:] = raw.reshape(-1, 3)
                    values = wide.reshape(-1).view("<i4").astype(np.float32)
                    values *= np.float32(2.0**-31)
                elif kind[1] == "i":
                    values = raw.view(kind).astype(np.float32)
                    values *= np.float32(1.0 / (1 << (bits - 1)))
                else:
                    values = raw.view(kind).astype(np.float32)
                samples = np.ascontiguousarray(values.reshape(count, channels).T)
                yield DecodedAudio(samples, self.sample_rate, self.layout)


def pcm_wav_blocks(path: Path, block_samples: int = BLOCK_SAMPLES) -> PcmWavBlocks | None:
    """The reader of :func:`read_pcm_wav` a block at a time (bounded memory), or None for
    a file it does not read (then :func:`audio_blocks` decodes it with FFmpeg)."""
    try:
        layout = read_wav_layout(path)
    except OSError:
        return None
    if layout is None or layout.truncated or layout.data_offset is None:
        return None
    fmt, pos, length = layout.fmt, layout.data_offset, layout.data_size
    if fmt is None or len(fmt) < 16 or length is None:
        return None  # no format, or a placeholder data size: FFmpeg reads to the end
    tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == 0xFFFE:
        if len(fmt) < 40 or fmt[26:40] != _GUID_TAIL:
            return None
        tag = struct.unpack("<H", fmt[24:26])[0]
    kinds = {(1, 16): "<i2", (1, 24): "i24", (1, 32): "<i4", (3, 32): "<f4", (3, 64): "<f8"}
    kind = kinds.get((tag, bits))
    if kind is None or channels not in (1, 2) or rate < 1 or align != channels * bits // 8:
        return None
    frames = length // align
    return PcmWavBlocks(Path(path), pos, frames, channels, bits, kind, int(rate), block_samples)
