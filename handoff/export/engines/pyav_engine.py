"""The in-process engine: decode, pick, filter, encode and mux with PyAV.

One pass over the source packets in file order feeds both paths, so the output is
interleaved as it is written and memory stays flat on long files.

Picture: every decoded frame has an exact source time (pts x time base). Output frame
``k`` is the decoded frame nearest to the source time of tick ``k`` (plan time model);
a frame that is never chosen is not filtered. The chosen frame goes through one
filter graph (rotate, crop, pixel format) and is encoded with ``pts = k`` in a 1/fps
time base -- set on the frame itself, because the stream's time base changes when the
header is written (measured with PyAV 18: a first attempt wrote every PTS as 0).

Sound: decoded, resampled once to 48 kHz, then placed at the plan's sample offset and
cut or padded to exactly the plan's sample count, in fixed-size encoder frames whose
pts is their sample position.

Copy and retag (the plan's decision, :mod:`handoff.export.decide`): a stream that already
meets the preset is not decoded. Its packets go into the output in file order, untouched,
every pts and dts moved by one constant so the source's first frame (``v0``) is at 0,
in the source's own time base; for a retag each goes through the plan's metadata
bitstream filter first, which rewrites the headers that carry the colour tags and
leaves the slice data alone. AAC is copied packet for packet: its encoder delay rides
on the first packet's negative pts, from which the MP4/MOV muxer writes the edit list
that hides it again (libavformat/movenc.c), so the output presents the source's exact
sample count. PCM of the right format is copied as bytes, cut or padded with digital
silence to the plan's offset and length, so every sample is the source's bit for bit.

Two threads, as the ffmpeg CLI overlaps its stages: a reading thread demuxes, decodes,
chooses, filters and resamples, and hands each frame ready for an encoder through a
small bounded queue to the calling thread, which encodes and muxes in the order the
frames were handed over -- the order a single loop would use, so the file is the same
byte for byte where the encoder is deterministic. PyAV releases the GIL in its codec,
filter-graph, demux and mux calls (PyAV 18: ``with nogil`` around
``avcodec_send_frame``, ``av_buffersink_get_frame``, ``av_read_frame`` and
``av_interleaved_write_frame``), so decoding runs while the encoder works. Measured
before the split on a quiet 2-core machine: 1.32x the ffmpeg CLI's wall time for H.264
at equal CPU time. The caller's thread keeps Ctrl-C and SIGTERM (Python delivers
signals to the main thread only) and stops and joins the reader on every way out.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.resampler import AudioResampler
from av.bitstream import BitStreamFilterContext
from av.filter import Graph
from av.video.frame import PictureType

from handoff.errors import ToolError
from handoff.export.engines import Progress
from handoff.export.plan import AudioPlan, ExportPlan, VideoPlan
from handoff.files.find import open_input
from handoff.media.audio import frame_samples
from handoff.probe.reader import color_codes

__all__ = ["run"]

_PROGRESS_EVERY = 12  # frames between progress callbacks
# Frames (picture or sound) waiting for the encoders: enough to ride over the uneven
# times of x264's frame threads, few enough that memory stays flat (a 1080p 10-bit 4:2:2
# picture is 8 MB).
_QUEUE_FRAMES = 6


def _buffer(graph: Graph, stream: av.VideoStream) -> Any:
    """The graph's source, declared with the colour matrix and range the decoder tags its
    frames with, as the ffmpeg CLI declares them. PyAV's ``add_buffer`` declares neither:
    libavfilter (FFmpeg 7.1 on) then negotiates "unspecified" against BT.709-tagged
    frames, and the scaler the ``format`` filter inserts converted between matrices
    (measured: a BT.709 source's ProRes luma 29 dB from the source's, where the CLI keeps
    it at 66 dB)."""
    cc = stream.codec_context
    options = {
        "video_size": f"{stream.width}x{stream.height}",
        "pix_fmt": stream.format.name,
        "time_base": str(stream.time_base),
        "pixel_aspect": "1/1",
    }
    if cc.colorspace != 2:  # AVCOL_SPC_UNSPECIFIED
        options["colorspace"] = str(cc.colorspace)
    if cc.color_range:  # 0: AVCOL_RANGE_UNSPECIFIED
        options["range"] = str(cc.color_range)
    return graph.add("buffer", **options)


def _graph(stream: av.VideoStream, plan: VideoPlan) -> Graph:
    """rotate -> crop -> pixel format -> pixel shape and colour tags, as one FFmpeg
    filter graph (the ffmpeg engine's, :mod:`handoff.export.engines.ffmpeg_engine`)."""
    graph = Graph()
    nodes = [_buffer(graph, stream)]
    if plan.rotation == 90:
        nodes.append(graph.add("transpose", "clock"))
    elif plan.rotation == 270:
        nodes.append(graph.add("transpose", "cclock"))
    elif plan.rotation == 180:
        nodes += [graph.add("hflip"), graph.add("vflip")]
    if plan.crop is not None:
        c = plan.crop
        nodes.append(graph.add("crop", f"{c.width}:{c.height}:{c.x}:{c.y}"))
    nodes.append(graph.add("format", plan.pix_fmt))
    # Tag, never convert, on the frames themselves: prores_ks writes the colour of the
    # frame it is given into its frame header, not the codec context's (measured with
    # FFmpeg 8: "unspecified" in the header under a BT.709 'colr' box), so the encoder
    # context alone is not enough. Options given by name: "1280:1281" needs no escaping,
    # and max keeps the SAR exact up to H.264's 16-bit VUI fields.
    sar = plan.sample_aspect_ratio
    nodes.append(graph.add("setsar", r=f"{sar.numerator}:{sar.denominator}", max="65535"))
    nodes.append(
        graph.add(
            "setparams",
            range=plan.color_range,
            color_primaries=plan.color_primaries,
            color_trc=plan.color_transfer,
            colorspace=plan.color_matrix,
        )
    )
    nodes.append(graph.add("buffersink"))
    graph.link_nodes(*nodes).configure()
    return graph


@dataclass(frozen=True, slots=True)
class _Encode:
    """One frame for an encoder, with the pts it must carry (``frame`` None: flush).

    The pts travels beside the frame, not on it: a held source frame is handed over
    once per tick as the same object, which must not be retimed while it waits.
    """

    stream: av.VideoStream | av.AudioStream
    frame: av.VideoFrame | av.AudioFrame | None
    pts: int
    time_base: Fraction

    @property
    def last(self) -> bool:
        return self.frame is None

    def encode(self) -> list[av.Packet[Any]]:
        """Stamp the frame and give it to its encoder (on the encoding thread)."""
        frame = self.frame
        if frame is not None:
            frame.pts = self.pts
            frame.time_base = self.time_base
        if isinstance(self.stream, av.VideoStream):
            assert frame is None or isinstance(frame, av.VideoFrame)
            return self.stream.encode(frame)
        assert frame is None or isinstance(frame, av.AudioFrame)
        return self.stream.encode(frame)


@dataclass(frozen=True, slots=True)
class _Mux:
    """A packet ready for the muxer, as it is (``packet`` None: the stream's end)."""

    stream: av.VideoStream | av.AudioStream
    packet: av.Packet[Any] | None

    @property
    def last(self) -> bool:
        return self.packet is None

    def encode(self) -> list[av.Packet[Any]]:
        return [] if self.packet is None else [self.packet]


_Item = _Encode | _Mux
_Send = Callable[[_Item], None]


class _Track(Protocol):
    """What the reading thread feeds one source stream's packets to."""

    def take(self, packet: av.Packet[Any]) -> None: ...

    def done(self) -> bool: ...

    def finish(self) -> None: ...


def _decoded(packet: av.Packet[Any]) -> list[Any]:
    try:
        return packet.decode()
    except av.error.InvalidDataError:
        return []  # a damaged packet: skip it, as a player would


class _Picture:
    """Chooses and filters output frames as source frames arrive, and sends them on."""

    def __init__(
        self, plan: VideoPlan, source: av.VideoStream, stream: av.VideoStream, send: _Send
    ) -> None:
        self.plan = plan
        self.send = send
        self.stream = stream
        self.graph = _graph(source, plan)
        self.time_base = source.time_base or Fraction(1, 90000)
        self.k = 0  # next output tick
        self.prev: tuple[Fraction, av.VideoFrame] | None = None
        self.filtered: tuple[av.VideoFrame, av.VideoFrame] | None = None  # (source, result)
        self.out_tb = Fraction(1) / plan.fps
        self.nominal = Fraction(1, 30)  # source interval guess, only for frames without pts
        self.index = 0

    def _tick_time(self, k: int) -> Fraction:
        return self.plan.source_start + Fraction(k) / self.plan.fps / self.plan.scale

    def _filter(self, frame: av.VideoFrame) -> av.VideoFrame:
        if self.filtered is not None and self.filtered[0] is frame:
            return self.filtered[1]
        self.graph.vpush(frame)
        result = self.graph.vpull()
        # A decoded picture type would make libx264 force a keyframe wherever the
        # source had one (measured: 39 keyframes instead of 5).
        result.pict_type = PictureType.NONE
        self.filtered = (frame, result)
        return result

    def _emit(self, frame: av.VideoFrame) -> None:
        self.send(_Encode(self.stream, self._filter(frame), self.k, self.out_tb))
        self.k += 1

    def add(self, frame: av.VideoFrame) -> None:
        if frame.pts is not None:
            t = frame.pts * self.time_base
        elif self.prev is not None:
            t = self.prev[0] + self.nominal
        else:
            t = self.plan.source_start
        if self.prev is not None and t <= self.prev[0]:
            return  # a repeated or out-of-order timestamp adds nothing to choose from
        while self.k < self.plan.frames:
            target = self._tick_time(self.k)
            if t < target:
                break
            # The tick lies between the previous frame and this one: take the nearer,
            # the earlier on a tie.
            if self.prev is not None and target - self.prev[0] <= t - target:
                self._emit(self.prev[1])
            else:
                self._emit(frame)
        if self.prev is not None:
            self.nominal = t - self.prev[0]
        self.prev = (t, frame)

    def take(self, packet: av.Packet[Any]) -> None:
        for frame in _decoded(packet):
            self.add(frame)

    def done(self) -> bool:
        return self.k >= self.plan.frames

    def finish(self) -> None:
        # Ticks past the last source frame hold it (the last frame's own duration).
        if self.prev is None:
            raise ToolError("no picture could be decoded")
        while self.k < self.plan.frames:
            self._emit(self.prev[1])
        self.send(_Encode(self.stream, None, self.k, self.out_tb))


class _Sound:
    """Places resampled audio at the plan's offset and cuts it to the exact length."""

    def __init__(self, plan: AudioPlan, stream: av.AudioStream, send: _Send) -> None:
        self.plan = plan
        self.stream = stream
        self.send = send
        self.time_base = Fraction(1, plan.sample_rate)
        self.next_pos = plan.offset_samples  # output position of the next incoming sample
        self.written = 0  # samples handed on towards the encoder
        self.encoded = 0  # samples the encoder has been given (its pts)
        self.pending: list[npt.NDArray[np.float32]] = []
        self.pending_n = 0
        self.chunk = stream.codec_context.frame_size or 1024
        formats = stream.codec_context.codec.audio_formats or []
        self.encoder_format = formats[0].name if formats else "fltp"
        self.to_encoder = AudioResampler(
            format=self.encoder_format, layout=plan.layout, rate=plan.sample_rate
        )
        # Packed float, read with handoff.media.audio.frame_samples: the one safe way to read
        # decoded sound into numpy whatever the channel count.
        self.to_48k = AudioResampler(format="flt", layout=plan.layout, rate=plan.sample_rate)
        self.retime_rate: int | None = None

    def set_retime(self, source_rate: int, scale: Fraction) -> None:
        # Stretching the sound with the picture: play the same samples at a lower rate.
        if scale != 1:
            self.retime_rate = round(source_rate / scale)

    def take(self, packet: av.Packet[Any]) -> None:
        for frame in _decoded(packet):
            self.add_frame(frame)

    def done(self) -> bool:
        return self.written + self.pending_n >= self.plan.samples

    def add_frame(self, frame: av.AudioFrame) -> None:
        frame.pts = None  # placement is by sample count, not by the decoder's pts
        if self.retime_rate is not None:
            frame.sample_rate = self.retime_rate
        for converted in self.to_48k.resample(frame):
            self._add(frame_samples(converted))

    def _add(self, samples: npt.NDArray[np.float32]) -> None:
        start = self.next_pos
        self.next_pos += samples.shape[1]
        have = self.written + self.pending_n
        if have >= self.plan.samples:
            return  # already as long as the picture: the rest is cut
        if start > have:  # the sound starts after the picture: silence first
            gap = min(start, self.plan.samples) - have
            self._append(np.zeros((samples.shape[0], gap), dtype=np.float32))
            have += gap
        if start < have:  # before the picture, or overlapping what is written: cut
            samples = samples[:, have - start :]
        room = self.plan.samples - have
        if room <= 0 or samples.shape[1] == 0:
            return
        self._append(samples[:, :room])
        self._encode(final=False)

    def _append(self, block: npt.NDArray[np.float32]) -> None:
        if block.shape[1]:
            self.pending.append(np.ascontiguousarray(block, dtype=np.float32))
            self.pending_n += block.shape[1]

    def _encode(self, final: bool) -> None:
        if self.pending_n < self.chunk and not final:
            return
        data = np.concatenate(self.pending, axis=1) if len(self.pending) > 1 else self.pending[0]
        self.pending, self.pending_n = [], 0
        n = data.shape[1]
        usable = n if final else n - n % self.chunk
        for begin in range(0, usable, self.chunk):
            block = np.ascontiguousarray(data[:, begin : begin + self.chunk])
            self._encode_block(block)
        if usable < n:
            self._append(data[:, usable:])

    def _encode_block(self, block: npt.NDArray[np.float32] | None) -> None:
        """Convert to the encoder's sample format and encode; None flushes the converter."""
        frame = None
        if block is not None:
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.plan.layout)
            frame.sample_rate = self.plan.sample_rate
            # Counted when handed over: the converter may hold samples back.
            self.written += block.shape[1]
        for converted in self.to_encoder.resample(frame):
            self.send(_Encode(self.stream, converted, self.encoded, self.time_base))
            self.encoded += converted.samples

    def finish(self) -> None:
        for converted in self.to_48k.resample(None):
            self._add(frame_samples(converted))
        missing = self.plan.samples - (self.written + self.pending_n)
        if missing > 0:
            channels = self.plan.channels
            self._append(np.zeros((channels, missing), dtype=np.float32))
        if self.pending_n:
            self._encode(final=True)
        self._encode_block(None)
        self.send(_Encode(self.stream, None, self.encoded, self.time_base))


def _shift(start: Fraction, time_base: Fraction | None) -> int:
    """``start`` in ``time_base`` ticks: the constant every copied timestamp is moved by.
    Exact when ``start`` is a timestamp of that stream (the plan's v0 is pts x time base)."""
    return round(start / (time_base or Fraction(1, 90000)))


class _CopyPackets:
    """A stream's packets, untouched, every pts and dts moved by one constant (the
    output starts at the source's first frame), each through ``bsf`` when there is one.

    Packets the container marks discarded (before an edit list's start) are kept: later
    frames may refer to them, and at a negative time the muxer hides them again with
    its own edit list. ``count`` of the others are copied; the rest are left out.
    """

    def __init__(
        self,
        source: av.VideoStream | av.AudioStream,
        stream: av.VideoStream | av.AudioStream,
        start: Fraction,
        count: int | None,
        send: _Send,
        bsf: BitStreamFilterContext | None = None,
    ) -> None:
        self.stream = stream
        self.time_base = source.time_base or Fraction(1, 90000)
        self.shift = _shift(start, source.time_base)
        self.count = count
        self.copied = 0
        self.send = send
        self.bsf = bsf

    def take(self, packet: av.Packet[Any]) -> None:
        if packet.size == 0 or self.done():
            return  # the demuxer's end-of-stream packet, or past the plan's frames
        if not packet.is_discard:
            self.copied += 1
        self._out([packet] if self.bsf is None else self.bsf.filter(packet))

    def _out(self, packets: list[av.Packet[Any]]) -> None:
        for packet in packets:
            if packet.pts is not None:
                packet.pts -= self.shift
            if packet.dts is not None:
                packet.dts -= self.shift
            packet.time_base = self.time_base
            packet.stream = self.stream
            self.send(_Mux(self.stream, packet))

    def done(self) -> bool:
        return self.count is not None and self.copied >= self.count

    def finish(self) -> None:
        if self.bsf is not None:
            self._out(self.bsf.filter(None))  # what the filter still holds
        if self.copied == 0:
            raise ToolError("no packet of the stream to copy")
        self.send(_Mux(self.stream, None))


_PCM = re.compile(r"pcm_[su](8|16|24|32|64)(?:le|be)?|pcm_f(32|64)(?:le|be)")


def pcm_bytes(codec: str) -> int | None:
    """Bytes per sample of a linear PCM codec whose silence is all zero bytes (signed
    integer or float), by FFmpeg's codec name; None for anything else."""
    m = _PCM.fullmatch(codec)
    if m is None or codec.startswith("pcm_u"):
        return None
    return int(m.group(1) or m.group(2)) // 8


class _CopyPcm:
    """PCM of the output's own format, copied as bytes: placed at the plan's offset
    (digital silence before it, or its head cut) and cut or padded to exactly the plan's
    sample count, by sample count as :class:`_Sound` places decoded sound."""

    def __init__(self, plan: AudioPlan, codec: str, stream: av.AudioStream, send: _Send) -> None:
        width = pcm_bytes(codec)
        if width is None:
            raise ToolError(f"{codec} is not PCM that can be copied as bytes")
        self.plan = plan
        self.stream = stream
        self.send = send
        self.frame_bytes = width * plan.channels
        self.chunk = 1024  # samples a packet, as FFmpeg's PCM encoders write them
        self.next_pos = plan.offset_samples
        self.have = 0  # output samples placed (sent or pending)
        self.sent = 0
        self.pending = bytearray()

    def take(self, packet: av.Packet[Any]) -> None:
        if packet.size == 0:
            return
        data = bytes(packet)
        n = len(data) // self.frame_bytes
        start = self.next_pos
        self.next_pos += n
        if self.done():
            return
        if start > self.have:  # the sound starts after the picture: silence first
            gap = min(start, self.plan.samples) - self.have
            self._append(bytes(gap * self.frame_bytes))
        if start < self.have:  # before the picture: its head is cut
            data = data[(self.have - start) * self.frame_bytes :]
        room = self.plan.samples - self.have
        self._append(data[: max(room, 0) * self.frame_bytes])

    def _append(self, data: bytes) -> None:
        self.pending += data
        self.have += len(data) // self.frame_bytes
        size = self.chunk * self.frame_bytes
        while len(self.pending) >= size:
            self._send(bytes(self.pending[:size]))
            del self.pending[:size]

    def _send(self, data: bytes) -> None:
        packet = av.Packet(data)
        n = len(data) // self.frame_bytes
        packet.pts = packet.dts = self.sent
        packet.duration = n
        packet.time_base = Fraction(1, self.plan.sample_rate)
        packet.stream = self.stream
        self.sent += n
        self.send(_Mux(self.stream, packet))

    def done(self) -> bool:
        return self.have >= self.plan.samples

    def finish(self) -> None:
        if self.have < self.plan.samples:
            self._append(bytes((self.plan.samples - self.have) * self.frame_bytes))
        if self.pending:
            self._send(bytes(self.pending))
            self.pending.clear()
        self.send(_Mux(self.stream, None))


def _video_stream(out: av.container.OutputContainer, plan: VideoPlan) -> av.VideoStream:
    stream = out.add_stream(plan.codec, rate=plan.fps)
    assert isinstance(stream, av.VideoStream)
    stream.width, stream.height = plan.width, plan.height
    stream.pix_fmt = plan.pix_fmt
    stream.time_base = Fraction(1) / plan.fps
    cc = stream.codec_context
    cc.time_base = Fraction(1) / plan.fps
    if plan.gop is not None:
        cc.gop_size = plan.gop
    # Tag, never convert: these only label the pixels (the H.264 VUI, the MOV/MP4 colr
    # and pasp boxes, which the muxer takes from the encoder's context).
    codes = color_codes(
        plan.color_primaries, plan.color_transfer, plan.color_matrix, plan.color_range
    )
    cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = codes
    cc.sample_aspect_ratio = plan.sample_aspect_ratio
    cc.thread_count = 0
    # Frame threads, as the ffmpeg CLI runs its encoders (AVCodecContext's default
    # thread_type is FRAME|SLICE; PyAV 18 sets SLICE alone on every context it opens).
    # libx264 turns SLICE alone into x264's sliced threads (libavcodec/libx264.c:
    # b_sliced_threads = thread_type == FF_THREAD_SLICE): every picture cut into one
    # slice per thread, a different and larger bitstream than the CLI's, encoded with
    # less overlap. prores_ks measured 25.0 s with slices, 17.6 s with frame threads.
    cc.thread_type = "FRAME"
    stream.options = dict(plan.options)
    return stream


def _audio_stream(out: av.container.OutputContainer, plan: AudioPlan) -> av.AudioStream:
    stream = out.add_stream(plan.codec, rate=plan.sample_rate, layout=plan.layout)
    assert isinstance(stream, av.AudioStream)
    if plan.bit_rate:
        stream.bit_rate = plan.bit_rate
    return stream


def run(plan: ExportPlan, out_path: Path, progress: Progress | None = None) -> None:
    """Write ``plan`` to ``out_path`` (which may exist and is overwritten)."""
    try:
        _run(plan, out_path, progress)
    except av.error.FFmpegError as exc:
        # str(exc) carries every option passed to the codec; the reason is enough here.
        reason = exc.strerror or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename and exc.filename != str(plan.source) else ""
        raise ToolError(f"export failed: {reason}{where}", plan.source) from exc


def _copied_video_stream(
    out: av.container.OutputContainer, plan: VideoPlan, source: av.VideoStream
) -> tuple[av.VideoStream, BitStreamFilterContext | None]:
    """The output stream of a copied picture: the source's codec parameters (extradata
    included) and time base; for a retag, the metadata filter's output parameters, whose
    extradata carries the rewritten headers."""
    stream = out.add_stream_from_template(source)
    assert isinstance(stream, av.VideoStream)
    bsf = None
    if plan.retag is not None:
        bsf = BitStreamFilterContext(plan.retag.filter_string(), source, stream)
        # The container's colour box (MOV/MP4 'colr') is written from the stream's
        # parameters, which the filter leaves as the source's: the plan's tags there too.
        cc = stream.codec_context
        codes = color_codes(
            plan.color_primaries, plan.color_transfer, plan.color_matrix, plan.color_range
        )
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = codes
    # The stream's frame rate: the mov/mp4 muxer counts a timecode track's frames by it
    # (libavformat/movenc.c refuses the header's 90000 "fps" of a bare time base).
    stream.codec_context.framerate = plan.fps
    return stream, bsf


def _run(plan: ExportPlan, out_path: Path, progress: Progress | None) -> None:
    with open_input(plan.source) as src:
        vin = src.streams[plan.video.source_index]
        assert isinstance(vin, av.VideoStream)
        vin.thread_type = "AUTO"  # measured: decode 0.79 s -> 0.50 s
        ain: av.AudioStream | None = None
        if plan.audio is not None and plan.audio.source_index is not None:
            found = src.streams[plan.audio.source_index]
            assert isinstance(found, av.AudioStream)
            ain = found
        with av.open(
            str(out_path), "w", format=plan.format, options=dict(plan.format_options)
        ) as out:
            handover = _Handover()
            tracks: dict[int, _Track] = {}
            picture: _Track
            if plan.video.decision.action == "encode":
                vout = _video_stream(out, plan.video)
                picture = _Picture(plan.video, vin, vout, handover.put)
            else:
                vout, bsf = _copied_video_stream(out, plan.video, vin)
                start = plan.video.source_start
                picture = _CopyPackets(vin, vout, start, plan.video.frames, handover.put, bsf)
            tracks[vin.index] = picture
            if plan.timecode is not None:
                # FFmpeg's mov/mp4 muxer writes a tmcd track from the video stream's
                # timecode tag (libavformat/movenc.c), counting at the stream's rate.
                vout.metadata["timecode"] = plan.timecode.label
            sound = _sound_track(out, plan, ain, handover.put)
            if sound is not None and ain is not None:
                tracks[ain.index] = sound
            reader = threading.Thread(
                target=handover.produce,
                args=(lambda: _read(src, tracks, picture, sound),),
                name="handoff-pyav-read",
                daemon=True,  # never keeps the interpreter alive, should a join be cut short
            )
            reader.start()
            try:
                _encode(handover, out, vout, plan.video.frames, progress)
            finally:
                # Every way out (done, an error on either side, Ctrl-C, SIGTERM) stops the
                # reader and waits for it before the containers it reads are closed.
                handover.stop(reader)


def _sound_track(
    out: av.container.OutputContainer,
    plan: ExportPlan,
    source: av.AudioStream | None,
    send: _Send,
) -> _Track | None:
    """What writes the output's sound, as the plan decided: a copy (AAC packets as
    they are, PCM as bytes placed and cut) or an encode (silence without a source)."""
    a = plan.audio
    if a is None:
        return None
    codec = source.codec_context.name if source is not None else ""
    if a.decision.action == "copy" and source is not None and not codec.startswith("pcm_"):
        stream = out.add_stream_from_template(source)
        assert isinstance(stream, av.AudioStream)
        if a.bit_rate:
            stream.codec_context.bit_rate = a.bit_rate  # the rate declared (AudioPlan)
        return _CopyPackets(source, stream, plan.video.source_start, None, send)
    if a.decision.action == "copy" and source is not None and pcm_bytes(codec) is not None:
        stream = out.add_stream_from_template(source)
        assert isinstance(stream, av.AudioStream)
        return _CopyPcm(a, codec, stream, send)
    # An encode; or PCM in another layout (planar, unsigned), placed through the decoder.
    sound = _Sound(a, _audio_stream(out, a), send)
    if a.source_rate:
        sound.set_retime(a.source_rate, plan.video.scale)
    return sound


def _read(
    src: av.container.InputContainer,
    tracks: dict[int, _Track],
    picture: _Track,
    sound: _Track | None,
) -> None:
    """The reading thread: demux and hand each packet to its stream's track (which
    decodes, chooses, filters and resamples, or copies); they hand frames over."""
    streams = [src.streams[i] for i in tracks]
    for packet in src.demux(streams):
        tracks[packet.stream.index].take(packet)
        if picture.done() and (sound is None or sound.done()):
            break
    picture.finish()
    if sound is not None:
        sound.finish()


def _encode(
    handover: _Handover,
    out: av.container.OutputContainer,
    vout: av.VideoStream,
    frames: int,
    progress: Progress | None,
) -> None:
    """The calling thread: encode and mux each item in the order it was handed over."""
    done = 0
    while (item := handover.get()) is not None:
        for packet in item.encode():
            out.mux(packet)
        if item.stream is vout and progress is not None:
            if item.last:
                progress(done, frames)
            else:
                done += 1
                if done % _PROGRESS_EVERY == 0:
                    progress(min(done, frames), frames)


class _StoppedError(Exception):
    """The encoding side has stopped: the reading thread ends without a word."""


class _Handover:
    """The bounded queue between the reading thread and the encoding thread.

    The reader ends by handing over None (done) or the exception that stopped it, which
    the encoding side raises as its own.
    """

    def __init__(self) -> None:
        self.items: queue.Queue[_Item | BaseException | None] = queue.Queue(_QUEUE_FRAMES)
        self.stopped = threading.Event()

    def put(self, item: _Item | BaseException | None) -> None:
        if self.stopped.is_set():
            raise _StoppedError
        self.items.put(item)

    def produce(self, read: Callable[[], None]) -> None:
        try:
            read()
            self.put(None)
        except _StoppedError:
            pass
        except BaseException as exc:  # carried over to the caller's thread, raised there
            with contextlib.suppress(_StoppedError):
                self.put(exc)

    def get(self) -> _Item | None:
        item = self.items.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self, reader: threading.Thread) -> None:
        """Stop the reader and wait for it, emptying the queue it may be waiting on."""
        self.stopped.set()
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                self.items.get(timeout=0.05)
        reader.join()
