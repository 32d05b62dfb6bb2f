"""Per stream, what an export does with its source: copy, retag or encode.

An encode of a master is a generation lost; copying a stream that already meets the
preset keeps it bit for bit and takes a fraction of the time. The decision is a pure
function of the probe facts, the preset and the plan's own choices (rate, crop,
rotation, colour tags), and says in words which rule forced an encode:

- **copy**: the packets go into the new container untouched, their timestamps moved by
  one constant (the output starts at the source's first frame);
- **retag**: as copy, through one of FFmpeg's metadata bitstream filters, which rewrite
  the colour description in the headers and nothing else (``h264_metadata`` and
  ``hevc_metadata`` the SPS VUI, H.273 code points; ``prores_metadata`` the frame
  header);
- **encode**: decoded and encoded again, as before.

Sound is copied when its codec, rate, channels and the preset's rules on them pass and
its length is the picture's; PCM of the right format is copied sample for sample and
cut or padded to the picture's exact length (a cut of PCM loses nothing); AAC whose
length differs is encoded, as an AAC frame cannot be cut to the sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from handoff.errors import Option, Text
from handoff.probe.reader import AudioInfo, MediaInfo, VideoInfo
from handoff.validate.check import Finding, check_probe_facts
from handoff.validate.spec import Spec

__all__ = ["ENCODE", "Decision", "Retag", "StreamAction", "decide_audio", "decide_video"]

StreamAction = Literal["copy", "retag", "encode"]

# The codec each encoder of the presets writes (an encoder is not a codec: libx264
# writes h264).
_WRITES = {
    "libx264": "h264",
    "libx265": "hevc",
    "prores_ks": "prores",
    "prores_aw": "prores",
    "prores": "prores",
    "dnxhd": "dnxhd",
    "aac": "aac",
    "libfdk_aac": "aac",
}

# H.273 (ITU-T, "Coding-independent code points for video signal type identification")
# code points of the names FFmpeg gives the tags, as h264_metadata/hevc_metadata take them.
_PRIMARIES = {"bt709": 1, "bt470m": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "bt2020": 9}
_TRANSFER = {"bt709": 1, "bt470m": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7,
             "linear": 8, "bt2020-10": 14, "bt2020-12": 15, "smpte2084": 16,
             "arib-std-b67": 18}  # fmt: skip
_MATRIX = {"bt709": 1, "fcc": 4, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "bt2020nc": 9,
           "bt2020c": 10}  # fmt: skip
_METADATA_FILTER = {"h264": "h264_metadata", "hevc": "hevc_metadata", "prores": "prores_metadata"}


@dataclass(frozen=True, slots=True)
class Decision:
    """What is done with one stream, and why."""

    action: StreamAction
    why: str
    """In words: what passed, or what forced the encode."""
    rule: str | None = None
    """What decided an encode: the preset rule's id, a planner condition (``frame-rate``,
    ``crop``, ``rotation``, ``pixel-format``, ``timestamps``, ``length``,
    ``colour-tags``) or ``--reencode``; None for a copy or retag."""

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "rule": self.rule, "why": self.why}


ENCODE = Decision("encode", "")
"""A plan made before the decision: encode."""

# The option named as each interface names it (``--reencode`` on the command line).
_ASKED = Text("asked for (", Option("reencode", True), ")")


@dataclass(frozen=True, slots=True)
class Retag:
    """A metadata bitstream filter and its options, as FFmpeg's ``-bsf:v`` takes them."""

    name: str
    options: Mapping[str, str] = field(default_factory=dict)

    def filter_string(self) -> str:
        """``name=key=value:key=value`` (FFmpeg's filter-option syntax)."""
        opts = ":".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.name}={opts}" if opts else self.name

    def to_json(self) -> dict[str, Any]:
        return {"filter": self.name, "options": dict(self.options)}


def _failed(findings: tuple[Finding, ...]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def _said(failed: list[Finding]) -> str:
    return "; ".join(f"{f.rule}: {f.fact} is {f.actual}, expected {f.expected}" for f in failed)


def decide_video(
    info: MediaInfo,
    spec: Spec,
    *,
    encoder: str,
    pix_fmt: str,
    conversion: str,
    rotation: int,
    cropped: bool,
    tags: tuple[str, str, str],
    reencode: bool,
    options: Mapping[str, bool] | None = None,
) -> tuple[Decision, Retag | None]:
    """Copy, retag or encode the picture. ``tags``: the (primaries, transfer, matrix) the
    plan writes; ``conversion``, ``rotation``, ``cropped``: the plan's own choices."""
    v = info.video
    assert v is not None
    if reencode:
        return Decision("encode", _ASKED, "--reencode"), None
    writes = _WRITES.get(encoder)
    if writes is None or v.codec != writes:
        return Decision(
            "encode", f"the source is {v.codec}; '{spec.name}' is {writes or encoder}", "codec"
        ), None
    if conversion != "keep":
        what = "variable" if v.frame_rate_mode != "CFR" else f"{v.fps}"
        return Decision(
            "encode", f"the frame rate changes (source {what} fps): frames are chosen anew",
            "frame-rate",
        ), None  # fmt: skip
    if rotation:
        return Decision(
            "encode", f"turned {rotation} degrees upright (display matrix)", "rotation"
        ), None
    if cropped:
        # The H.264/HEVC sequence header could crop at display time (H.264 7.4.2.1.1,
        # FFmpeg's h264_metadata crop_*), but the crop here is centred: 1088 -> 1080 takes
        # 4 rows from the top, and decoders that apply a crop's size but not its offset
        # exist (Windows Media Foundation's H.264 decoder: TigerVNC pull request 1480);
        # how Premiere and Resolve read a top offset is not documented, so it is encoded.
        return Decision(
            "encode", "cropped (a centred crop is new pixels: it needs an encode)", "crop"
        ), None
    if v.field_order != "progressive":
        said = "not known" if v.field_order is None else f"interlaced ({v.field_order})"
        return Decision(
            "encode", f"scan order {said}; copied pictures must be progressive", "scan-order"
        ), None
    failed = _failed(check_probe_facts(info, spec, lambda r: r.fact.startswith("video."), options))
    if failed:
        return Decision("encode", _said(failed), failed[0].rule), None
    if v.pix_fmt != pix_fmt:
        return Decision(
            "encode", f"pixel format {v.pix_fmt}; '{spec.name}' is {pix_fmt}", "pixel-format"
        ), None
    if not _keeps_timestamps(v):
        return Decision(
            "encode",
            f"its clock ({v.time_base} s) puts frames {v.min_frame_interval} to "
            f"{v.max_frame_interval} s apart: copied, they would read as variable frame rate",
            "timestamps",
        ), None
    return _colour_decision(v, writes, tags)


# The MOV/MP4 muxer writes a video track in the source's time base when its denominator
# is at least 10000 and doubles a coarser one until it is (libavformat/movenc.c,
# mov_init): a copy's timestamps are kept as they are, on a finer tick.
_FINE_CLOCK = 10000


def _keeps_timestamps(v: VideoInfo) -> bool:
    """Whether the copied timestamps still read as constant frame rate in the output.

    A CFR stream on a coarse clock steps by whole ticks around the frame duration (24
    fps at 1/1000 s, as Matroska writes it: 41 and 42 ms), which a reader forgives as
    one tick of its own clock. Copied into MP4 the steps stay and the tick becomes 1/16000
    s (measured with FFmpeg 8/9: the output read as VFR and failed its preset's
    frame-rate-mode rule). So either every step is the same, or the clock is already
    one the output keeps."""
    if v.min_frame_interval == v.max_frame_interval:
        return True
    return v.time_base.numerator == 1 and v.time_base.denominator >= _FINE_CLOCK


def _colour_decision(
    v: VideoInfo, codec: str, tags: tuple[str, str, str]
) -> tuple[Decision, Retag | None]:
    have = (v.color_primaries, v.color_transfer, v.color_matrix)
    if have == tags:
        return Decision("copy", "every rule of the preset passes as it is"), None
    name = _METADATA_FILTER.get(codec)
    if name is None:
        return Decision(
            "encode", f"colour tags to write and no metadata filter for {codec}", "colour-tags"
        ), None
    if codec == "prores":
        # prores_metadata takes FFmpeg's names (color_primaries=bt709, ...).
        keys = ("color_primaries", "color_trc", "colorspace")
        opts = {k: t for k, h, t in zip(keys, have, tags, strict=True) if h != t}
    else:
        keys = ("colour_primaries", "transfer_characteristics", "matrix_coefficients")
        tables = (_PRIMARIES, _TRANSFER, _MATRIX)
        opts = {}
        for key, table, h, t in zip(keys, tables, have, tags, strict=True):
            if h == t:
                continue
            if t not in table:
                return Decision(
                    "encode", f"colour tag {t} has no H.273 code point here", "colour-tags"
                ), None
            opts[key] = str(table[t])
    wrote = ", ".join(f"{k}={v}" for k, v in opts.items())
    return Decision("retag", f"only the colour tags are missing: {wrote}"), Retag(name, opts)


def decide_audio(
    info: MediaInfo,
    a: AudioInfo | None,
    spec: Spec,
    *,
    encoder: str,
    channels: int,
    offset_samples: int,
    source_samples: int,
    total_samples: int,
    reencode: bool,
    retimed: bool = False,
    options: Mapping[str, bool] | None = None,
) -> Decision:
    """Copy or encode the sound. ``offset_samples``/``source_samples``: where the
    source's sound lands in the output and how long it is, at 48 kHz; ``total_samples``:
    the picture's exact length; ``retimed``: the picture is slowed or sped up (25 -> 24
    keeps every frame), and the sound is stretched with it."""
    if a is None:
        return Decision("encode", "no sound in the source: silence is written", "audio-present")
    if reencode:
        return Decision("encode", _ASKED, "--reencode")
    if retimed:
        # Every sample plays at another rate: a stretch is new samples, even in PCM.
        return Decision("encode", "stretched with the retimed picture", "frame-rate")
    writes = _WRITES.get(encoder, encoder)
    if a.codec != writes:
        return Decision("encode", f"the source is {a.codec}; '{spec.name}' is {writes}", "codec")
    if a.sample_rate != 48000:
        return Decision("encode", f"{a.sample_rate} Hz; 48000 Hz is written", "sample-rate")
    if a.channels != channels:
        return Decision("encode", f"{a.channels} channels; {channels} are written", "channels")
    failed = _failed(
        check_probe_facts(
            info, spec, lambda r: r.fact.startswith("audio.") and r.fact != "audio.streams", options
        )
    )
    if failed:
        return Decision("encode", _said(failed), failed[0].rule)
    end = offset_samples + source_samples
    if offset_samples == 0 and end == total_samples:
        return Decision("copy", "every rule of the preset passes and its length is the picture's")
    if writes.startswith("pcm_"):
        moved = []
        if offset_samples:
            where = "of silence before it" if offset_samples > 0 else "cut from its start"
            moved.append(f"{abs(offset_samples)} sample(s) {where}")
        if end != total_samples:
            where = "of silence after it" if end < total_samples else "cut from its end"
            moved.append(f"{abs(total_samples - end)} sample(s) {where}")
        return Decision("copy", "PCM copied sample for sample; " + ", ".join(moved))
    return Decision(
        "encode",
        f"its length is not the picture's ({end - total_samples:+d} samples at 48 kHz, "
        f"starting at {offset_samples:+d}); {a.codec} cannot be cut to the sample without "
        "an encode",
        "length",
    )


def stream_decisions(plan: Mapping[str, Any]) -> list[str]:
    """What a plan (as ``ExportPlan.to_json`` has it, its options named as the caller
    names them: :func:`handoff.cli.common.flagged`) does with each stream, and why:
    ``picture: copy (...)``, ``picture: retag with h264_metadata (...)``, ``sound:
    encode -- sample-rate: 44100 Hz; 48000 Hz is written``."""
    out = []
    for word, key in (("picture", "video"), ("sound", "audio")):
        stream: Any = plan.get(key)
        if not isinstance(stream, Mapping):
            continue
        # A plan read back from a file someone kept (a delivery's report.json) may lack
        # what this one writes: a stream without a decision says nothing.
        decision = stream.get("decision")
        if not isinstance(decision, Mapping):
            continue
        action, rule, why = decision.get("action"), decision.get("rule"), str(decision.get("why"))
        rule = rule if isinstance(rule, str) else None
        if action == "encode":
            # The why of a failed preset rule already starts with the rule's id; --reencode
            # names itself.
            named = rule is None or rule.startswith("--") or why.startswith(f"{rule}:")
            out.append(f"{word}: encode -- {why if named else f'{rule}: {why}'}")
        elif action == "retag":
            retag = stream.get("retag")
            bsf = retag.get("filter") if isinstance(retag, Mapping) else None
            out.append(f"{word}: retag with {bsf or 'a bitstream filter'} ({why})")
        else:
            out.append(f"{word}: {action} ({why})")
    return out
