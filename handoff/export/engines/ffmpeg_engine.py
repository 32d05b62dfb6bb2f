"""The command-line engine: the same plan, executed by one ``ffmpeg`` process.

The command is built as a filter graph with ``ffmpeg-python``, so the very argv that
runs is the one ``--dry-run`` prints. Every number in it comes from the plan; the
graph only realises the plan's time model (:mod:`handoff.export.plan`). Needs ffmpeg 6.0 or
newer (:data:`MIN_VERSION`; :func:`ffmpeg_binary` says which one runs); measured with
ffmpeg 9.0 (imageio-ffmpeg's build).

Picture. Output frame ``k`` is the source frame nearest to source time
``v0 + (k / fps) / scale``. ffmpeg's ``fps`` filter alone does not choose that way: it
rounds each frame's time to a tick and lets the *later* of two frames that round to
the same tick win, so a VFR frame just before a tick loses to one almost half a tick
after it (measured on a ~30 fps VFR source to 24: 14 of 97 output frames were not the
nearest). So ``setpts`` first re-stamps each frame with the first tick it is nearest
to -- the tick just after the midpoint between it and the frame before, the earlier
frame winning a tie as in the PyAV engine -- and ``fps`` then only fills the ticks in
between. ``-fps_mode cfr`` moved the picture 83 ms against the sound (measured on a
VFR source with a flash and a beep), so the output uses
``-fps_mode passthrough`` and ffmpeg does not re-time the frames the graph made.

Sound. Decoded, resampled once to 48 kHz, placed at the plan's sample offset (silence
before it, or its head cut) and cut or padded to exactly the plan's sample count. The
placement is by sample count, as in the PyAV engine, not by timestamps: ``aresample``'s
``first_pts`` ignores offsets under its 1 ms ``min_comp`` and fills or drops at any
later timestamp jump over 0.1 s, and ``asetpts=PTS-v0/TB`` rounds v0 to the audio time
base.

Copy and retag (the plan's decision, :mod:`handoff.export.decide`). A copied stream is
mapped straight from the input with ``-c copy``; its packets keep their bytes and every
pts and dts moves by the same constant, so the source's first frame is at 0: ``-copyts``
keeps the source's timestamps as they are, and the ``setts`` bitstream filter subtracts
v0 counted in the stream's own time base (``PTS-v0/TB``, rounded to the nearest tick:
exact, as v0 is a timestamp of the picture). ``-ss``, ``-itsoffset`` and
``-output_ts_offset`` would not do: they take microseconds, which are not whole in a
time base of 1/48000 or 1/30000, and without ``-copyts`` ffmpeg moves every stream by the
input's earliest start (the sound's, where it starts first). A retag puts the plan's
metadata filter before ``setts``, and gives the colour tags as options too, which a copy
writes to the container's colour box. AAC is copied with the same shift: its priming
stays at a negative time, which the MP4/MOV muxer hides with an edit list again. PCM of
the output's format is decoded and written again in the same format, with no
resampling, and placed and cut exactly as an encode: every sample is the source's.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import ffmpeg as ffmpeg_lib

from handoff.errors import ToolError
from handoff.export.engines import Progress
from handoff.export.plan import AudioPlan, ExportPlan, VideoPlan
from handoff.jobs.processes import child_preexec

__all__ = [
    "MIN_VERSION",
    "FFmpegBinary",
    "command",
    "ffmpeg_binary",
    "ffmpeg_version",
    "find_ffmpeg",
    "run",
]

ENV_VAR = "HANDOFF_FFMPEG"

# Time base the picture is re-stamped in before frames are chosen. It is a multiple of
# every delivery rate's numerator (24, 30, 24000, 30000), so output ticks are whole
# numbers in it, and of the usual source time bases (MP4 90000, 12800, 15360, 600,
# 24000/30000/48000/44100; Matroska 1000), so source times stay exact in it:
# 2^10 * 3^2 * 5^4 * 7^2, under 2^31 as an AVRational denominator must be.
_FINE_TB = 282_240_000

# A midpoint this close to a tick (in ticks; 40 ns at 24 fps) counts as a tie. It
# absorbs floating-point error in ffmpeg's expression evaluator; a midpoint that near a
# tick and not on it would need timestamps finer than any container writes.
_TIE = "0.000001"

# Lines ffmpeg prints as the consequence of an error, after the line that names it:
# since ffmpeg 7 every thread reports its own end. Matched after the "[ctx @ 0x...]"
# prefixes are removed.
_CASCADE = (
    "task finished with error code",
    "terminating thread with return code",
    "nothing was written into output file",
    "error sending frames to consumers",
    "could not open encoder before eof",
    "error while opening encoder",
    "error opening input file",
    "error opening output file",
    "error while filtering",
    "error while processing the decoded data",
    "conversion failed",
    "exiting normally",
    "error closing file",
)
_CONTEXT = re.compile(r"^(?:\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*)+")


MIN_VERSION = (6, 0)
"""The oldest FFmpeg the engine runs: the command uses ``-display_rotation`` (added in
FFmpeg 6.0), and Debian's 5.1 muxed AAC in MP4 with an edit list that left the sound
11-114 ms short of the picture (measured on the same plans that FFmpeg 9.0 wrote
exactly)."""


@dataclass(frozen=True, slots=True)
class FFmpegBinary:
    """The ffmpeg the engine runs, and where it was found."""

    path: str
    version: str
    """As ``ffmpeg -version`` says it (``9.0.2``, ``5.1.9-0+deb12u1``, ``N-11234-g...``)."""
    found_by: str
    """``HANDOFF_FFMPEG``, ``imageio-ffmpeg`` or ``PATH``."""

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "version": self.version, "found_by": self.found_by}

    def describe(self) -> str:
        return f"ffmpeg {self.version} ({self.found_by}: {self.path})"


_VERSION = re.compile(r"ffmpeg version n?(\d+)\.(\d+)(?:\.\d+)?\S*")


def ffmpeg_version(exe: str) -> tuple[str, tuple[int, int] | None]:
    """(the version text, (major, minor) when it is a release number) of a binary."""
    try:
        out = subprocess.run(
            [exe, "-hide_banner", "-version"],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
            preexec_fn=child_preexec(),
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolError(f"cannot run {exe} -version: {exc}") from exc
    first = out.splitlines()[0] if out else ""
    m = _VERSION.search(first)
    if m is None:
        text = first.removeprefix("ffmpeg version ").split(" ")[0] or "unknown"
        return text, None  # a git build ("N-...") carries no release number
    return m.group(0).removeprefix("ffmpeg version ").removeprefix("n"), (
        int(m.group(1)),
        int(m.group(2)),
    )


def _checked(exe: str, found_by: str, minimum: tuple[int, int]) -> FFmpegBinary:
    text, number = ffmpeg_version(exe)
    if number is not None and number < minimum:
        raise ToolError(
            f"ffmpeg {text} ({found_by}: {exe}) is older than "
            f"{minimum[0]}.{minimum[1]}, which the ffmpeg engine needs (it lacks "
            "-display_rotation, and its MP4 muxing left the sound up to 114 ms short of "
            f"the picture): set {ENV_VAR} to FFmpeg {minimum[0]} or newer, "
            "pip install imageio-ffmpeg, or use --engine pyav"
        )
    return FFmpegBinary(exe, text, found_by)


def ffmpeg_binary() -> FFmpegBinary:
    """The ffmpeg to run, chosen deliberately: ``$HANDOFF_FFMPEG`` if set; else the
    binary of the imageio-ffmpeg wheel (a known build, the one the conformance tests
    run); else ``ffmpeg`` on PATH. Any of them older than :data:`MIN_VERSION` is
    refused with its version and why, not run. (Asked once per process and setting.)"""
    return _binary(os.environ.get(ENV_VAR) or None, os.environ.get("PATH"), MIN_VERSION)


@functools.lru_cache(maxsize=8)
def _binary(override: str | None, path_env: str | None, minimum: tuple[int, int]) -> FFmpegBinary:
    if override:
        found = shutil.which(override)
        if found is None:
            raise ToolError(f"{ENV_VAR}={override} is not an executable ffmpeg")
        return _checked(found, ENV_VAR, minimum)
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        exe = None
    if exe:
        return _checked(str(exe), "imageio-ffmpeg", minimum)
    on_path = shutil.which("ffmpeg")
    if on_path is not None:
        return _checked(on_path, "PATH", minimum)
    raise ToolError(
        f"no ffmpeg found: set {ENV_VAR}, pip install imageio-ffmpeg, or put FFmpeg "
        f"{MIN_VERSION[0]} or newer on PATH (or use --engine pyav)"
    )


def find_ffmpeg() -> str:
    """The path of :func:`ffmpeg_binary`."""
    return ffmpeg_binary().path


def _ratio(x: Fraction) -> str:
    return f"{x.numerator}/{x.denominator}"


def _num(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _near_inf(x: Fraction) -> int:
    """``x`` rounded to the nearest integer, halves away from zero (AV_ROUND_NEAR_INF)."""
    whole = math.floor(abs(x) + Fraction(1, 2))
    return whole if x >= 0 else -whole


def _pts_expression(v: VideoPlan) -> str:
    """setpts expression (time base 1/_FINE_TB): each frame moved to the first output
    tick it is the nearest frame to.

    Between two frames, ticks before their midpoint are nearer the earlier one and ticks
    after it nearer the later one; a tick exactly on it stays with the earlier. So a
    frame starts at the first whole tick after its midpoint with the frame before it.
    """
    # Source time v0 in fine units, rounded as settb rounds the first frame's own pts
    # (libavfilter/settb.c: av_rescale_q, to nearest, halves away from zero), so that
    # frame lands on 0 exactly: v0 is exact in the plan (pts x time base), and for the
    # time bases _FINE_TB holds no rounding happens at all.
    v0 = _near_inf(v.source_start * _FINE_TB)
    shift = f"-{v0}" if v0 > 0 else f"+{-v0}" if v0 < 0 else ""
    to_ticks = v.scale * v.fps / _FINE_TB  # output ticks per fine unit of source time
    tick = Fraction(_FINE_TB) / v.fps  # fine units per output tick (whole at delivery rates)
    midpoint = f"((PTS+PREV_INPTS)/2{shift})*{_num(to_ticks)}"
    nearest = f"(floor({midpoint}+{_TIE})+1)*{_num(tick)}"
    # The first frame keeps its own (scaled) time; fps (start_time=0) holds it over any
    # tick before it, which is the nearest-frame rule there too.
    first = f"(PTS{shift})*{_num(v.scale)}"
    return f"if(isnan(PREV_INPTS),{first},{nearest})"


def _video(source: Any, v: VideoPlan) -> Any:
    # The plan's rotation turns the pixels; a display matrix left on the frames would
    # make ffmpeg write it to the output too, and players would turn the picture again
    # (measured with a video-only graph: a 270-degree matrix on an upright picture).
    stream = source[str(v.source_index)].filter("sidedata", mode="delete", type="DISPLAYMATRIX")
    if v.step > 1:
        # Retime 50 -> 24 keeps every 2nd frame; nearest-frame choice alone would pick
        # the same ones, selecting first halves the work and removes any doubt.
        stream = stream.filter("select", f"not(mod(n,{v.step}))")
    stream = (
        stream.filter("settb", f"1/{_FINE_TB}")
        .filter("setpts", _pts_expression(v))
        .filter("fps", fps=_ratio(v.fps), round="near", start_time=0)
        # Ticks after the last source frame's midpoint with the end of the stream hold
        # that frame: the plan counts frames from the source duration.
        .filter("tpad", stop_mode="clone", stop=v.frames)
        .filter("trim", end_frame=v.frames)
    )
    if v.rotation == 90:
        stream = stream.filter("transpose", "clock")
    elif v.rotation == 270:
        stream = stream.filter("transpose", "cclock")
    elif v.rotation == 180:
        stream = stream.filter("hflip").filter("vflip")
    if v.crop is not None:
        c = v.crop
        stream = stream.filter("crop", c.width, c.height, c.x, c.y)
    # Tag, never convert: the tags go on after the pixel-format conversion, which keeps
    # using the source's own. ffmpeg 7+ takes the encoder's colour and SAR from the
    # frames, and an untagged source overrode -color_primaries & co. (measured: untagged
    # output). setsar's max: its default of 100 would round 1280:1281 to 1:1; 65535 is
    # the H.264 VUI's limit.
    sar = v.sample_aspect_ratio
    return (
        stream.filter("format", v.pix_fmt)
        .filter("setsar", r=f"{sar.numerator}:{sar.denominator}", max=65535)
        .filter(
            "setparams",
            range=v.color_range,
            color_primaries=v.color_primaries,
            color_trc=v.color_transfer,
            colorspace=v.color_matrix,
        )
    )


def _setts(start: Fraction) -> str:
    """The ``setts`` bitstream filter that moves every pts and dts back by ``start``
    seconds, in the time base of the stream it runs on (its ``TB``)."""
    by = f"({start.numerator}/{start.denominator})/TB"
    return f"setts=pts=PTS-{by}:dts=DTS-{by}"


def _copied(source: Any, index: int, start: Fraction, bsf: list[str]) -> tuple[Any, str]:
    """A stream mapped as it is, and the bitstream filters it goes through: ``bsf``,
    then the shift that puts v0 at 0."""
    return source[str(index)], ",".join([*bsf, _setts(start)] if start else bsf)


def _audio(source: Any, plan: ExportPlan, a: AudioPlan) -> Any:
    if a.source_index is None:
        # --add-silence: a lavfi source; only its length matters.
        silence = ffmpeg_lib.input(f"anullsrc=r={a.sample_rate}:cl={a.layout}", f="lavfi")
        stream = silence["a"]
    else:
        stream = source[str(a.source_index)]
        scale = plan.video.scale
        if a.decision.action == "copy":
            pass  # PCM at 48 kHz in the output's format: nothing to convert
        elif scale == 1:
            stream = stream.filter("aresample", osr=a.sample_rate, ochl=a.layout)
        else:
            # Retime: the sound is stretched with the picture by playing its samples
            # slower. Resampling to 48 kHz * scale and then calling that 48 kHz is the
            # same stretch in one resampling step (an integer rate for every retime the
            # planner makes: 25 -> 24 gives 50000 Hz, 25 -> 30000/1001 gives 40040 Hz).
            rate = a.sample_rate * scale
            if rate.denominator != 1:
                raise ToolError(
                    f"cannot retime sound by {scale}: {float(rate):.3f} Hz is not a whole rate",
                    plan.source,
                )
            stream = stream.filter("aresample", osr=rate.numerator, ochl=a.layout).filter(
                "asetrate", a.sample_rate
            )
        # Placement by sample count, not by timestamps: the plan has already turned the
        # source's stream offset into output samples.
        if a.offset_samples > 0:
            stream = stream.filter("adelay", delays=f"{a.offset_samples}S", all=1)
        elif a.offset_samples < 0:
            stream = stream.filter("atrim", start_sample=-a.offset_samples)
    return (
        stream.filter("apad", whole_len=a.samples)
        .filter("atrim", end_sample=a.samples)
        .filter("asetpts", "N/SR/TB")
    )


# ffmpeg-python hashes each node's arguments as UTF-8 text (ffmpeg/_utils.py, get_hash),
# which raises on a file name that is not UTF-8 (Python holds its bytes as surrogates):
# the graph names its files by these stand-ins, replaced in the finished argv.
_SOURCE = "handoff:source"
_OUTPUT = "handoff:output"


def _colour_options(v: VideoPlan) -> dict[str, object]:
    return {
        "color_primaries:v": v.color_primaries,
        "color_trc:v": v.color_transfer,
        "colorspace:v": v.color_matrix,
        "color_range:v": v.color_range,
    }


def _encoded_video(v: VideoPlan) -> dict[str, object]:
    """The output options of an encoded picture."""
    kwargs: dict[str, object] = {
        "c:v": v.codec,
        "pix_fmt": v.pix_fmt,
        "frames:v": v.frames,
        # The graph has made every output frame and its time: no re-timing, no
        # dropping or duplicating by the muxing layer (measured: `-fps_mode cfr -r 24` on
        # a VFR clip shifted its picture 83 ms, two frames, against its sound).
        "fps_mode:v": "passthrough",
        "enc_time_base:v": _ratio(1 / v.fps),
        # The graph tags the frames (setparams); the same tags as encoder options, for
        # an ffmpeg that takes them from there.
        **_colour_options(v),
    }
    for key, value in v.options.items():
        kwargs[f"{key}:v"] = value
    if v.gop is not None:
        kwargs["g:v"] = v.gop
    return kwargs


def command(plan: ExportPlan, out_path: Path, ffmpeg: str = "ffmpeg") -> list[str]:
    """The full ffmpeg argv that writes ``plan`` to ``out_path``. Pure: no I/O."""
    v, a = plan.video, plan.audio
    # -noautorotate: the plan's rotation is applied in the graph, once.
    source = ffmpeg_lib.input(_SOURCE, noautorotate=None)
    kwargs: dict[str, object] = {
        "format": plan.format,
        # No source metadata: an embedded timecode would become a second tmcd track
        # (users of Premiere and Resolve report imports that add source timecode twice).
        # The plan's own timecode is given once, below.
        "map_metadata": -1,
        "map_chapters": -1,
    }
    if v.decision.action == "encode":
        streams = [_video(source, v)]
        kwargs.update(_encoded_video(v))
    else:
        picture, bsf = _copied(
            source, v.source_index, v.source_start, [v.retag.filter_string()] if v.retag else []
        )
        streams = [picture]
        # Every packet (a copy keeps all the frames), and no -frames:v: ffmpeg 7+ then ends
        # the other streams at the copied picture's last timestamp before the shift
        # (its sync queue), which cut an encoded sound 2816 samples short (measured with
        # ffmpeg 9.0 on an MPEG-TS source, whose picture starts at 1.48 s).
        kwargs["c:v"] = "copy"
        if bsf:
            kwargs["bsf:v"] = bsf
        if v.retag is not None:
            # A copy's codec options set its container tags: the colour box ('colr'),
            # which the bitstream filter does not touch, says what the SPS now says.
            kwargs.update(_colour_options(v))
    if plan.timecode is not None:
        # FFmpeg's -timecode sets the output's timecode tag, from which its mov/mp4
        # muxer writes one tmcd track (';' before the frames: drop-frame).
        kwargs["timecode"] = plan.timecode.label
    if a is not None:
        if a.decision.action == "copy" and not a.codec.startswith("pcm_"):
            assert a.source_index is not None
            sound, bsf = _copied(source, a.source_index, v.source_start, [])
            streams.append(sound)
            kwargs["c:a"] = "copy"
            if a.bit_rate:
                # With a copy, -b sets the stream's declared rate only (AudioPlan).
                kwargs["b:a"] = a.bit_rate
            if bsf:
                kwargs["bsf:a"] = bsf
        else:
            streams.append(_audio(source, plan, a))
            kwargs["c:a"] = a.codec
            kwargs["ar:a"] = a.sample_rate
            kwargs["ac:a"] = a.channels
            if a.bit_rate is not None and a.decision.action == "encode":
                kwargs["b:a"] = a.bit_rate
    for key, value in plan.format_options.items():
        kwargs[key] = value
    out = ffmpeg_lib.output(*streams, _OUTPUT, **kwargs)
    # Global options first, where a reader looks for them (ffmpeg-python appends them).
    # -copyts: source timestamps as they are, so the plan's v0 is the first frame's time.
    # -progress: key=value lines on stdout for run() to follow. -y: the caller hands
    # over a fresh temporary file that already exists (mkstemp).
    head = ["-nostdin", "-hide_banner", "-loglevel", "error", "-copyts"]
    head += ["-progress", "pipe:1", "-y"]
    paths = {_SOURCE: str(plan.source), _OUTPUT: str(out_path)}
    return [ffmpeg, *head, *(paths.get(str(x), str(x)) for x in out.get_args())]


def _error_line(stderr: str, returncode: int) -> str:
    """The line of ffmpeg's error output that says what went wrong."""
    lines = [_CONTEXT.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    causes = [line for line in lines if not line.lower().startswith(_CASCADE)]
    # The first cause, not the last line: the lines after it are its consequences.
    if causes:
        return causes[0][:300]
    if lines:
        return lines[-1][:300]
    return f"ffmpeg exited with status {returncode}"


def run(plan: ExportPlan, out_path: Path, progress: Progress | None = None) -> None:
    """Run ffmpeg to write ``plan`` to ``out_path`` (which may exist and is overwritten)."""
    argv = command(plan, out_path, find_ffmpeg())
    total = plan.video.frames
    with tempfile.TemporaryFile() as err:
        try:
            # The encoder dies with this process, even by SIGKILL: no orphan goes on
            # writing into a .part nobody will rename (handoff.jobs.processes).
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                preexec_fn=child_preexec(),
            )
        except OSError as exc:
            raise ToolError(f"cannot run ffmpeg ({argv[0]}): {exc}", plan.source) from exc
        with proc:  # closes the pipe and reaps the process however this ends
            try:
                assert proc.stdout is not None
                _follow(proc.stdout, total, progress)
                returncode = proc.wait()
            except BaseException:
                # Interrupted (Ctrl-C, a failing progress callback): no orphan encoder.
                with contextlib.suppress(OSError):
                    proc.kill()
                raise
        if returncode != 0:
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
            raise ToolError(f"ffmpeg failed: {_error_line(text, returncode)}", plan.source)
    if progress is not None:
        progress(total, total)


def _follow(stdout: IO[bytes], total: int, progress: Progress | None) -> None:
    """Read ``-progress`` key=value lines; report the frame count as it grows."""
    for raw in stdout:
        key, sep, value = raw.decode("ascii", "replace").strip().partition("=")
        if progress is not None and sep and key == "frame" and value.isdigit():
            progress(min(int(value), total), total)
