"""Export plans: what to do with one input, decided before anything is encoded.

``plan_export`` is a pure function of the probe facts, the preset (a delivery spec
with an ``[export]`` table) and the user's options. The plan is data: ``--dry-run``
prints it, tests compare it, and both engines (PyAV in-process, the ffmpeg CLI)
execute the same plan.

Time model. The output starts at the source's first video frame: source time ``v0``
is output time 0, for picture and sound alike, so whatever offset the source had
between its streams is kept. Output frame ``k`` shows the source frame nearest to
source time ``v0 + (k / fps) / scale`` (``scale`` is 1 except when retiming; on an
exact tie, the earlier frame), and the
sound is resampled once to 48 kHz and padded or trimmed to exactly
``round(frames / fps * 48000)`` samples. (Measured: FFmpeg's ``fps`` filter with
``round=near`` does the same nearest-frame choice and kept a flash frame and a beep
aligned to 0.02 ms, where ``-fps_mode cfr`` shifted the picture 83 ms.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from handoff.errors import InputError, Option, SpecError, Text, UnsupportedError, UsageError
from handoff.export.decide import ENCODE, Decision, Retag, decide_audio, decide_video
from handoff.probe.reader import (
    UNKNOWN_CODEC,
    AudioInfo,
    MediaInfo,
    VideoInfo,
    display_aspect_ratio,
    fraction_str,
    rate_list,
    ratio_str,
    short_rate,
)
from handoff.validate.spec import Spec, streams_needed

__all__ = [
    "AudioPlan",
    "Crop",
    "ExportOptions",
    "ExportPlan",
    "ExportSettings",
    "OutputTimecode",
    "VideoPlan",
    "export_settings",
    "parse_crop",
    "parse_fps",
    "plan_export",
]

OUTPUT_SAMPLE_RATE = 48000
NTSC = {Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)}
EDITOR_RATES = frozenset(
    {Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
     Fraction(50), Fraction(60000, 1001), Fraction(60)}
)  # fmt: skip
"""The frame rates Premiere and Resolve offer for a sequence, and --fps accepts."""
_RATE_ALIASES = {
    "23.976": Fraction(24000, 1001),
    "23.98": Fraction(24000, 1001),
    "29.97": Fraction(30000, 1001),
    "59.94": Fraction(60000, 1001),
}
# Rates that are not a delivery rate and too far from one for nearest-frame conversion
# to go unremarked: the hosted LTX-2 API offers 25 or 50 fps (its documented frame-rate
# choices). Converting them is a decision the user makes: drop frames or retime.
NEEDS_DECISION = {Fraction(25), Fraction(50)}

FpsChoice = Literal["source"] | Fraction
RateConversion = Literal["drop", "retime"]
Conversion = Literal["keep", "nearest", "retime"]


@dataclass(frozen=True, slots=True)
class Crop:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class ExportOptions:
    fps: FpsChoice | None = None
    """None: the preset's ``[export] fps`` if it sets one, else ``source``."""
    rate_conversion: RateConversion | None = None
    crop: tuple[int, int] | Literal["auto", "none"] = "auto"
    """``(W, H)`` centred, ``auto`` (1920x1088 -> 1920x1080, odd sizes to even) or ``none``."""
    add_silence: bool = False
    out_dir: Path | None = None
    overwrite: bool = False
    allow_truncated: bool = False
    """Export what an incomplete (cut short) source holds instead of refusing it."""
    audio_stream: int | None = None
    """Container index of the sound to carry; None: the first audio stream."""
    reencode: bool = False
    """Encode every stream, even one that could be copied as it is."""


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """The ``[export]`` table of a preset, checked."""

    extension: str
    format: str
    video_codec: str
    pix_fmt: str
    audio_codec: str
    gop_seconds: float | None = None
    audio_bit_rate: int | None = None
    fps: Fraction | None = None
    """The output rate when --fps is not given (one of :data:`EDITOR_RATES`)."""
    video_options: Mapping[str, str] = field(default_factory=dict)
    format_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VideoPlan:
    source_index: int
    """Container index of the source video stream."""
    codec: str
    pix_fmt: str
    options: Mapping[str, str]
    """Encoder options, GOP settings included (x264-params with keyint)."""
    gop: int | None
    fps: Fraction
    frames: int
    conversion: Conversion
    step: int
    """Retime: every ``step``-th source frame is used (50 -> 24 uses every 2nd)."""
    scale: Fraction
    """Output duration over source duration: 1, or e.g. 25/24 when retiming 25 -> 24."""
    source_start: Fraction
    """Source time of the first frame (``v0`` of the time model), seconds, exact: the
    probe's pts x time base, never a float."""
    rotation: int
    """Clockwise degrees to turn the decoded picture upright (0, 90, 180, 270)."""
    crop: Crop | None
    width: int
    height: int
    sample_aspect_ratio: Fraction
    """Shape of the output's pixels (SAR), written to the bitstream and the container:
    the source's, turned with the picture (a crop keeps the pixels' shape)."""
    color_primaries: str
    color_transfer: str
    color_matrix: str
    color_range: str
    decision: Decision = ENCODE
    """Copy, retag or encode, and why (:mod:`handoff.export.decide`)."""
    retag: Retag | None = None
    """The metadata bitstream filter of a retag."""

    @property
    def display_aspect_ratio(self) -> Fraction:
        return display_aspect_ratio(self.width, self.height, self.sample_aspect_ratio)


@dataclass(frozen=True, slots=True)
class AudioPlan:
    codec: str
    sample_rate: int
    channels: int
    layout: str
    bit_rate: int | None
    """The encoder's target; for a copied AAC stream, the rate its source declares (its
    esds maxBitrate), which the output declares again; None: the muxer's average."""
    samples: int
    """Exact length of the output audio: round(frames / fps * 48000)."""
    source_index: int | None
    """Container index of the source audio stream; None writes silence (--add-silence)."""
    source_rate: int | None
    source_start: Fraction
    """Source time of the first audio sample, seconds, exact."""
    offset_samples: int
    """Where that first sample lands in the output, in output samples (may be negative)."""
    decision: Decision = ENCODE
    """Copy or encode, and why (:mod:`handoff.export.decide`)."""


@dataclass(frozen=True, slots=True)
class OutputTimecode:
    """The start timecode of the output's first frame, at the output rate."""

    label: str
    """``HH:MM:SS:FF``, drop-frame ``HH:MM:SS;FF``: what the muxer is given."""
    frame: int
    """The frame count the label names at the plan's rate."""
    drop_frame: bool
    start: Fraction
    """Seconds since midnight, exact: ``frame / fps``."""


@dataclass(frozen=True, slots=True)
class ExportPlan:
    source: Path
    dest: Path
    preset: str
    format: str
    format_options: Mapping[str, str]
    video: VideoPlan
    audio: AudioPlan | None
    notes: tuple[str, ...]
    not_carried: tuple[str, ...] = ()
    """The source's streams the output leaves out, described (also in the notes)."""
    timecode: OutputTimecode | None = None
    """The output's start timecode: the source's, moved with the plan's in point and
    counted at the output rate; None when the source has none."""

    @property
    def duration(self) -> Fraction:
        return self.video.frames / self.video.fps

    def to_json(self) -> dict[str, Any]:
        v, a = self.video, self.audio
        return {
            "source": str(self.source),
            "dest": str(self.dest),
            "preset": self.preset,
            "format": self.format,
            "format_options": dict(self.format_options),
            "video": {
                "source_index": v.source_index,
                "codec": v.codec,
                "pix_fmt": v.pix_fmt,
                "options": dict(v.options),
                "gop": v.gop,
                "fps": f"{v.fps.numerator}/{v.fps.denominator}",
                "frames": v.frames,
                "conversion": v.conversion,
                "step": v.step,
                "scale": f"{v.scale.numerator}/{v.scale.denominator}",
                "source_start_s": float(v.source_start),
                "source_start_s_exact": fraction_str(v.source_start),
                "rotation": v.rotation,
                "crop": None
                if v.crop is None
                else {"x": v.crop.x, "y": v.crop.y, "width": v.crop.width, "height": v.crop.height},
                "width": v.width,
                "height": v.height,
                "sample_aspect_ratio": fraction_str(v.sample_aspect_ratio),
                "display_aspect_ratio": fraction_str(v.display_aspect_ratio),
                "color": {
                    "primaries": v.color_primaries,
                    "transfer": v.color_transfer,
                    "matrix": v.color_matrix,
                    "range": v.color_range,
                },
                "decision": v.decision.to_json(),
                "retag": None if v.retag is None else v.retag.to_json(),
            },
            "audio": None
            if a is None
            else {
                "codec": a.codec,
                "sample_rate": a.sample_rate,
                "channels": a.channels,
                "layout": a.layout,
                "bit_rate": a.bit_rate,
                "samples": a.samples,
                "source_index": a.source_index,
                "source_rate": a.source_rate,
                "source_start_s_exact": fraction_str(a.source_start),
                "offset_samples": a.offset_samples,
                "decision": a.decision.to_json(),
            },
            "timecode": None
            if self.timecode is None
            else {
                "label": self.timecode.label,
                "frame": self.timecode.frame,
                "drop_frame": self.timecode.drop_frame,
                "start_s_exact": fraction_str(self.timecode.start),
            },
            "duration_s": float(self.duration),
            "duration_s_exact": fraction_str(self.duration),
            "notes": list(self.notes),
            "not_carried": list(self.not_carried),
        }


def parse_fps(text: str) -> FpsChoice:
    """An editor's frame rate (23.976, 24, 25, 29.97, 30, 50, 59.94, 60; also as
    ``24000/1001``) or ``source``."""
    t = text.strip().lower()
    if t == "source":
        return "source"
    rate = _rate_of(t)
    if rate is None:
        raise UsageError(Text(Option("fps", text), f": use {rate_list(EDITOR_RATES)} or source"))
    return rate


def _rate_of(text: str) -> Fraction | None:
    try:
        rate = _RATE_ALIASES.get(text) or Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return rate if rate in EDITOR_RATES else None


def preset_rates(spec: Spec) -> tuple[frozenset[Fraction] | None, tuple[str, ...]]:
    """The frame rates a spec's own rules accept (with its options at their defaults, as
    ``handoff validate`` checks), and the ids of those rules; None when no rule limits
    the rate."""
    accepted: frozenset[Fraction] | None = None
    ids: list[str] = []
    for rule in spec.active_rules(spec.resolve_options({})):
        if rule.fact != "video.fps" or rule.severity != "error" or rule.op not in ("in", "eq"):
            continue
        values = rule.value if isinstance(rule.value, tuple) else (rule.value,)
        rates = frozenset(v for v in values if isinstance(v, Fraction))
        accepted = rates if accepted is None else accepted & rates
        ids.append(rule.id)
    return accepted, tuple(ids)


def check_rate_choice(
    spec: Spec, settings: ExportSettings, fps: FpsChoice | None
) -> frozenset[Fraction]:
    """The rates an export with this preset may write; raises UsageError when the rate
    asked for (``--fps``, else the preset's ``[export] fps``) is not one of them -- the
    output would fail the preset's own rule, so no input is worth reading."""
    accepted, rule_ids = preset_rates(spec)
    allowed = EDITOR_RATES if accepted is None else accepted & EDITOR_RATES
    if not allowed:
        raise UsageError(f"'{spec.name}' accepts no editor frame rate ({rate_list(EDITOR_RATES)})")
    target = fps if fps is not None else settings.fps
    if isinstance(target, Fraction) and target not in allowed:
        said: str | Option = (
            Option("fps", short_rate(target))
            if fps is not None
            else f"its [export] fps {short_rate(target)}"
        )
        raise UsageError(
            Text(
                said,
                f": '{spec.name}' accepts {rate_list(allowed)} fps "
                f"(rule {', '.join(rule_ids)}), so the output would fail it -- choose one of "
                "those, or a spec that allows this rate (docs/howto/custom-spec.md)",
            )
        )
    return allowed


def requires_sound(spec: Spec) -> str | None:
    """The id of the first of the spec's rules that fails a file without sound (with its
    options at their defaults), or None."""
    for rule in spec.active_rules(spec.resolve_options({})):
        if rule.severity != "error":
            continue
        if rule.fact == "audio.present" and rule.op == "eq" and rule.value is True:
            return rule.id
        if "audio" in streams_needed(rule.fact) and not rule.optional:
            return rule.id
    return None


def parse_crop(text: str) -> tuple[int, int] | Literal["auto", "none"]:
    t = text.strip().lower()
    if t in ("auto", "none"):
        return "auto" if t == "auto" else "none"
    w, sep, h = t.partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) <= 0 or int(h) <= 0:
        raise UsageError(
            Text(Option("crop", text), ": expected WIDTHxHEIGHT (e.g. 1920x1080), auto or none")
        )
    return int(w), int(h)


def export_settings(spec: Spec) -> ExportSettings:
    """The preset's encoder settings; a spec without an ``[export]`` table is no preset."""
    raw = dict(spec.export)
    if not raw:
        raise SpecError(f"spec '{spec.name}' has no [export] table, so it is not an export preset")
    required = ("extension", "format", "video_codec", "pix_fmt", "audio_codec")
    missing = [k for k in required if not isinstance(raw.get(k), str)]
    if missing:
        raise SpecError(f"spec '{spec.name}': [export] needs {', '.join(missing)}")

    def str_table(key: str) -> dict[str, str]:
        table = raw.get(key, {})
        if not isinstance(table, dict):
            raise SpecError(f"spec '{spec.name}': [export.{key}] must be a table")
        return {str(k): str(v) for k, v in table.items()}

    gop = raw.get("gop_seconds")
    bit_rate = raw.get("audio_bit_rate")
    if gop is not None and (not isinstance(gop, int | float) or gop <= 0):
        raise SpecError(f"spec '{spec.name}': gop_seconds must be a positive number")
    if bit_rate is not None and (not isinstance(bit_rate, int) or bit_rate <= 0):
        raise SpecError(f"spec '{spec.name}': audio_bit_rate must be a positive integer")
    raw_fps = raw.get("fps")
    fps = None
    if raw_fps is not None:
        fps = None if isinstance(raw_fps, bool) else _rate_of(str(raw_fps).strip())
        if fps is None:
            raise SpecError(
                f"spec '{spec.name}': [export] fps = {raw_fps!r}: use one of "
                f'{rate_list(EDITOR_RATES)} (a string for NTSC rates: "23.976" or "24000/1001")'
            )
    return ExportSettings(
        extension=raw["extension"],
        format=raw["format"],
        video_codec=raw["video_codec"],
        pix_fmt=raw["pix_fmt"],
        audio_codec=raw["audio_codec"],
        gop_seconds=None if gop is None else float(gop),
        audio_bit_rate=bit_rate,
        fps=fps,
        video_options=str_table("video_options"),
        format_options=str_table("format_options"),
    )


def _rate_name(rate: Fraction) -> str:
    if rate.denominator == 1:
        return f"{rate.numerator}"
    if rate.denominator == 1001:
        return f"{float(rate):.3f} ({rate.numerator}/1001)"
    return f"{float(rate):.3f}"


def _needs_decision(src: Fraction, target: Fraction) -> bool:
    """25 or 50 fps to a rate that is not a whole multiple or fraction of it: frames must
    be dropped unevenly or the programme retimed, and that is the user's choice."""
    if src not in NEEDS_DECISION or src == target:
        return False
    return (src / target).denominator != 1 and (target / src).denominator != 1


def _choose_rate(
    v: VideoInfo,
    spec: Spec,
    settings: ExportSettings,
    options: ExportOptions,
    notes: list[str],
) -> tuple[Fraction, Conversion, int, Fraction]:
    """Target rate, how frames are chosen, the retime step and scale.

    The rates the preset's own rules accept bound every choice: an output at any other
    rate would fail the check it must pass before it is kept."""
    src = v.fps
    cfr = v.frame_rate_mode == "CFR"
    allowed = check_rate_choice(spec, settings, options.fps)
    offer = rate_list(allowed)
    choice = options.fps if options.fps is not None else (settings.fps or "source")
    if choice == "source":
        if cfr and src in allowed:
            return src, "keep", 1, Fraction(1)
        if cfr and src in NEEDS_DECISION:
            raise UsageError(
                Text(
                    f"source is {_rate_name(src)} fps, which '{spec.name}' does not accept: "
                    "choose ",
                    Option("fps"),
                    f" ({offer}) and ",
                    Option("rate_conversion", "drop"),
                    " (keep the duration, drop frames) or retime (slow picture and sound together)",
                )
            )
        if not cfr:
            # A VFR recording is nominally one rate (phones, screen recorders: 24 or 30):
            # take the nearest the preset accepts, on a log scale, if the average is
            # within 10 % of it.
            whole = sorted(r for r in allowed if r.denominator == 1) or sorted(allowed)
            target = min(whole, key=lambda r: abs(math.log(src / r)))
            if abs(math.log(src / target)) > math.log(1.1):
                raise UsageError(
                    Text(
                        f"variable frame rate averaging {float(src):.2f} fps is not near "
                        f"{rate_list(frozenset(whole))}: choose ",
                        Option("fps"),
                        f" ({offer})",
                    )
                )
            notes.append(
                f"VFR source averaging {float(src):.3f} fps -> CFR {_rate_name(target)} fps "
                "(each output frame is the source frame nearest in time)"
            )
            return target, "nearest", 1, Fraction(1)
        raise UsageError(
            Text(
                f"source is {_rate_name(src)} fps, which '{spec.name}' does not accept: choose ",
                Option("fps"),
                f" ({offer})",
            )
        )
    target = choice
    if cfr and src == target:
        return target, "keep", 1, Fraction(1)
    if cfr and _needs_decision(src, target):
        if options.rate_conversion is None:
            raise UsageError(
                Text(
                    f"source is {_rate_name(src)} fps and the target {_rate_name(target)}: add ",
                    Option("rate_conversion", "drop"),
                    " (keep the duration, drop or repeat frames) or retime (keep every "
                    "frame, stretch picture and sound together)",
                )
            )
        if options.rate_conversion == "retime":
            step = max(1, round(src / target))
            scale = src / (step * target)
            notes.append(
                f"retimed {_rate_name(src)} -> {_rate_name(target)} fps: "
                + ("every frame kept" if step == 1 else f"every {step}th frame kept")
                + f", picture and sound {float(scale):.4f}x as long "
                f"(sound resampled, so its pitch moves by {-12 * math.log2(float(scale)):+.2f} "
                "semitones)"
            )
            return target, "retime", step, scale
        notes.append(
            Text(
                f"{_rate_name(src)} -> {_rate_name(target)} fps by nearest frame (",
                Option("rate_conversion", "drop"),
                "): duration kept, frames dropped or repeated",
            )
        )
        return target, "nearest", 1, Fraction(1)
    # --rate-conversion only matters for 25/50 fps sources; a batch that gives it for
    # them says nothing on every other file.
    what = "VFR" if not cfr else f"{_rate_name(src)} fps"
    notes.append(
        f"{what} -> CFR {_rate_name(target)} fps (each output frame is the source frame "
        "nearest in time)"
    )
    return target, "nearest", 1, Fraction(1)


def _crop(width: int, height: int, option: ExportOptions, notes: list[str]) -> Crop | None:
    if option.crop == "none":
        return None
    why: str | Option
    if option.crop == "auto":
        if (width, height) == (1920, 1088):
            w, h = 1920, 1080
            why = "LTX-2 pads 1080 to 1088"
        elif width % 2 or height % 2:
            w, h = width - width % 2, height - height % 2
            why = "4:2:0 and ProRes need even sizes"
        else:
            return None
    else:
        w, h = option.crop
        why = Option("crop")
        if w > width or h > height:
            raise UsageError(
                Text(Option("crop", f"{w}x{h}"), f" is larger than the picture ({width}x{height})")
            )
    # Centred; offsets even so 4:2:0 chroma stays aligned with luma.
    x = (width - w) // 2 // 2 * 2
    y = (height - h) // 2 // 2 * 2
    notes.append(Text(f"cropped {width}x{height} -> {w}x{h} at ({x}, {y}), centred (", why, ")"))
    return Crop(x, y, w, h)


def _pixel_shape(
    v: VideoInfo, rotation: int, width: int, height: int, notes: list[str]
) -> Fraction:
    """The output's SAR. Pixels keep their shape: a crop cuts whole pixels, so the SAR
    stays and the picture shows width x SAR / height; a quarter turn stands each pixel
    on its side, so the SAR inverts (FFmpeg's transpose filter does the same). A
    source that states no SAR is written square (1:1), as players show it."""
    sar = v.sample_aspect_ratio
    if rotation in (90, 270):
        sar = 1 / sar
    if sar != 1:
        dar = display_aspect_ratio(width, height, sar)
        notes.append(
            f"non-square pixels kept: SAR {ratio_str(sar)}, so the {width}x{height} picture "
            f"shows {ratio_str(dar)} ({float(dar):.3f}:1)"
        )
    return sar


_FAMILY = {
    # matrix/primaries name -> (primaries, transfer, matrix) of that family, by H.273.
    "bt709": ("bt709", "bt709", "bt709"),
    "smpte170m": ("smpte170m", "smpte170m", "smpte170m"),
    "bt470bg": ("bt470bg", "smpte170m", "bt470bg"),
    "bt2020nc": ("bt2020", "bt709", "bt2020nc"),
    "bt2020": ("bt2020", "bt709", "bt2020nc"),
}


def _colour(v: VideoInfo, notes: list[str]) -> tuple[str, str, str, str]:
    """Tag, never convert: keep the source's tags, fill what is missing."""
    have = (v.color_primaries, v.color_transfer, v.color_matrix)
    family = _FAMILY.get(v.color_matrix or "") or _FAMILY.get(v.color_primaries or "")
    defaults = family or _FAMILY["bt709"]
    tags = tuple(h or d for h, d in zip(have, defaults, strict=True))
    rng = v.color_range or "tv"
    if all(h is None for h in have):
        notes.append(
            "untagged colour tagged BT.709 (primaries, transfer, matrix); pixels untouched"
        )
    elif any(h is None for h in have):
        filled = [
            n for n, h in zip(("primaries", "transfer", "matrix"), have, strict=True) if not h
        ]
        notes.append(f"missing colour tags ({', '.join(filled)}) filled from {tags[2]}")
    return tags[0], tags[1], tags[2], rng


def _video_options(settings: ExportSettings, gop: int | None) -> dict[str, str]:
    opts = dict(settings.video_options)
    if gop is not None and settings.video_codec == "libx264":
        keyint = f"keyint={gop}:min-keyint={gop}"
        extra = opts.get("x264-params", "")
        opts["x264-params"] = f"{keyint}:{extra}" if extra else keyint
    return opts


def destination(source: Path, settings: ExportSettings, out_dir: Path | None) -> Path:
    """Output path: the input's stem with the preset's extension, in ``out_dir``."""
    folder = out_dir if out_dir is not None else source.parent
    return folder / f"{source.stem}{settings.extension}"


def plan_export(
    info: MediaInfo, spec: Spec, options: ExportOptions, dest: Path | None = None
) -> ExportPlan:
    """Decide how to export one probed input with a preset. Raises UsageError/UnsupportedError."""
    settings = export_settings(spec)
    v = info.video
    if v is None:
        raise UnsupportedError("no video stream: export makes picture deliverables", info.path)
    notes: list[str] = []
    if info.truncated is not None:
        if not options.allow_truncated:
            raise InputError(
                Text(
                    f"incomplete source ({info.truncated}): exporting it would hide what is "
                    "missing -- export it again from the generator, or pass ",
                    Option("allow_truncated", True),
                    " to export what it holds",
                ),
                info.path,
            )
        notes.append(
            Text(
                "incomplete source exported as it is (",
                Option("allow_truncated", True),
                f"): {info.truncated}",
            )
        )
    if v.codec == UNKNOWN_CODEC or v.width is None or v.height is None or v.pix_fmt is None:
        what = (
            "a codec FFmpeg cannot identify"
            if v.codec == UNKNOWN_CODEC
            else "no frame size or pixel format (no decodable picture data)"
        )
        raise UnsupportedError(
            f"video stream #{v.index} has {what}: it cannot be decoded", info.path
        )
    a = _chosen_audio(info, options.audio_stream)
    sound_rule = requires_sound(spec)
    if a is None and not options.add_silence and sound_rule is not None:
        raise UsageError(
            Text(
                f"the source has no sound and '{spec.name}' requires it (rule {sound_rule}): pass ",
                Option("add_silence", True),
                " to give the output a silent track",
            )
        )
    if a is not None and (a.codec == UNKNOWN_CODEC or not a.sample_rate or not a.channels):
        raise UnsupportedError(
            f"audio stream #{a.index} has a codec FFmpeg cannot identify: its sound cannot be "
            "decoded",
            info.path,
        )
    fps, conversion, step, scale = _choose_rate(v, spec, settings, options, notes)

    if conversion == "keep":
        frames = v.frames
    elif conversion == "retime":
        frames = -(-v.frames // step)
    else:
        frames = max(1, round(v.duration * fps))
    gop = None
    if settings.gop_seconds is not None:
        # Two seconds of frames at the nominal rate: 48 at 24 and 23.976, 60 at 30/29.97.
        gop = max(1, round(settings.gop_seconds * round(fps)))

    rotation = v.rotation % 360
    if rotation:
        notes.append(f"turned {rotation} degrees clockwise to stand upright (display matrix)")
    upright_w, upright_h = (v.height, v.width) if rotation in (90, 270) else (v.width, v.height)
    crop = _crop(upright_w, upright_h, options, notes)
    width, height = (crop.width, crop.height) if crop else (upright_w, upright_h)
    sar = _pixel_shape(v, rotation, width, height, notes)
    primaries, transfer, matrix, rng = _colour(v, notes)
    decision, retag = decide_video(
        info,
        spec,
        encoder=settings.video_codec,
        pix_fmt=settings.pix_fmt,
        conversion=conversion,
        rotation=rotation,
        cropped=crop is not None,
        tags=(primaries, transfer, matrix),
        reencode=options.reencode,
    )

    video = VideoPlan(
        source_index=v.index,
        codec=settings.video_codec,
        pix_fmt=settings.pix_fmt,
        options=_video_options(settings, gop),
        gop=gop,
        fps=fps,
        frames=frames,
        conversion=conversion,
        step=step,
        scale=scale,
        source_start=v.start,
        rotation=rotation,
        crop=crop,
        width=width,
        height=height,
        sample_aspect_ratio=sar,
        color_primaries=primaries,
        color_transfer=transfer,
        color_matrix=matrix,
        color_range=rng,
        decision=decision,
        retag=retag,
    )

    total = round(Fraction(frames) / fps * OUTPUT_SAMPLE_RATE)
    audio: AudioPlan | None = None
    if a is not None and a.sample_rate and a.channels:
        channels = a.channels if a.channels in (1, 2) else 2
        if a.channels > 2:
            notes.append(f"{a.channels}-channel audio ({a.layout}) down-mixed to stereo")
        if a.sample_rate != OUTPUT_SAMPLE_RATE:
            notes.append(f"audio {a.sample_rate} Hz -> {OUTPUT_SAMPLE_RATE} Hz, resampled once")
        offset = round((a.start - video.source_start) * scale * OUTPUT_SAMPLE_RATE)
        source_samples = round(a.duration * scale * OUTPUT_SAMPLE_RATE)
        end = offset + source_samples
        if offset > 0:
            notes.append(f"audio starts {offset / 48:.1f} ms after the picture: silence before it")
        elif offset < 0:
            notes.append(f"audio starts {-offset / 48:.1f} ms before the picture: trimmed")
        if end != total:
            verb = "padded with silence" if end < total else "trimmed"
            notes.append(
                f"audio {verb} by {abs(total - end) / 48:.1f} ms to exactly {total} samples "
                f"({frames} frames at {_rate_name(fps)} fps)"
            )
        decision = decide_audio(
            info,
            a,
            spec,
            encoder=settings.audio_codec,
            channels=channels,
            offset_samples=offset,
            source_samples=source_samples,
            total_samples=total,
            reencode=options.reencode,
            retimed=scale != 1,
        )
        bit_rate = settings.audio_bit_rate
        if decision.action == "copy" and not settings.audio_codec.startswith("pcm_"):
            # A copy is the source's encode: it keeps the rate that encode was set to.
            # FFmpeg's MP4 muxer declares max(the stream's bit rate, its average) as the
            # esds maxBitrate (libavformat/movenc.c, calculate_mpeg4_bit_rates), and a
            # copied stream's bit rate is the average the demuxer read: without this the
            # copy of a 192 kb/s AAC that averages 108 kb/s would declare 108 kb/s.
            bit_rate = a.declared_max_bit_rate
        audio = AudioPlan(
            codec=settings.audio_codec,
            sample_rate=OUTPUT_SAMPLE_RATE,
            channels=channels,
            layout="mono" if channels == 1 else "stereo",
            bit_rate=bit_rate,
            samples=total,
            source_index=a.index,
            source_rate=a.sample_rate,
            source_start=a.start,
            offset_samples=offset,
            decision=decision,
        )
    elif options.add_silence:
        notes.append(f"no audio in the source: {total} samples of stereo silence added")
        audio = AudioPlan(
            codec=settings.audio_codec,
            sample_rate=OUTPUT_SAMPLE_RATE,
            channels=2,
            layout="stereo",
            bit_rate=settings.audio_bit_rate,
            samples=total,
            source_index=None,
            source_rate=None,
            source_start=video.source_start,
            offset_samples=0,
            decision=decide_audio(
                info, None, spec, encoder=settings.audio_codec, channels=2, offset_samples=0,
                source_samples=0, total_samples=total, reencode=options.reencode,
            ),
        )  # fmt: skip
    else:
        notes.append(f"no audio in the source, and none written ('{spec.name}' allows that)")

    timecode = _output_timecode(info, video, notes)
    left_out = _not_carried(info, v.index, None if a is None else a.index, timecode is not None)
    notes += [Text("not carried: ", what) for what in left_out]
    return ExportPlan(
        source=info.path,
        dest=dest if dest is not None else destination(info.path, settings, options.out_dir),
        preset=spec.name,
        format=settings.format,
        format_options=dict(settings.format_options),
        video=video,
        audio=audio,
        notes=tuple(notes),
        not_carried=tuple(left_out),
        timecode=timecode,
    )


def _output_timecode(info: MediaInfo, video: VideoPlan, notes: list[str]) -> OutputTimecode | None:
    """The source's timecode moved to the output's first frame, at the output rate.

    A timecode label is a frame counter, not a clock: at 23.976 fps 01:00:00:00 is
    3603.6 s after midnight (SMPTE ST 12-1 counts 24 labels a second of 1.001 s). So
    the label is what is kept, as an editor conforming footage expects:

    - at the source's own rate, the first output frame keeps its label exactly;
    - at another rate with the same timebase (23.976 <-> 24, 29.97 <-> 30), the same
      frame count, so the same label (01:00:00:00 stays 01:00:00:00; reading it as a
      clock would move it to 01:00:03:14);
    - a retime (every frame kept) keeps the label when its frames field exists at the
      output rate (25 fps 00:00:10:20 retimed to 24 stays 00:00:10:20);
    - otherwise the label keeps its hours, minutes and seconds and its frames field is
      scaled to the output's timebase (25 fps 00:00:10:20 is 10.8 s in the label, frame
      259.2 at 24: 00:00:10:19, the nearest, with a note).

    Drop-frame is kept where the output rate has it. The output starts at source time
    ``video.source_start``; frames trimmed from the head move the label on."""
    # Imported here: handoff.timeline's package imports the probe (see probe.reader).
    from handoff.timeline.timecode import (
        DROP_FRAME_RATES,
        Timecode,
        smpte_label,
        timebase,
        timecode_at,
    )

    tc, v = info.timecode, info.video
    if tc is None or v is None or tc.origin == "bext" or tc.frame is None or tc.rate is None:
        return None
    out_rate = video.fps
    drop = tc.drop_frame and out_rate in DROP_FRAME_RATES
    # The first output frame's label at the source rate (the head trimmed, if any).
    first = tc.frame + round((video.source_start - v.start) * tc.rate)
    hh, mm, ss, ff = (int(x) for x in re.split("[:;]", timecode_at(first, tc.rate,
                                                 drop_frame=tc.drop_frame)))  # fmt: skip
    source_base, out_base = timebase(tc.rate), timebase(out_rate)
    rounded = False
    why: str | None = None
    if source_base != out_base:
        if video.conversion == "retime" and ff < out_base:
            why = "the first frame's label, kept through the retime"
        else:
            exact = Fraction(ff * out_base, source_base)
            ff, rounded = round(exact), exact.denominator != 1
            why = f"its frames field counted at {_rate_name(out_rate)} fps"
    if out_rate == tc.rate:
        frame = first
    elif drop:
        # A drop-frame label skips frames 00-01 (00-03 at 59.94) at most minute starts;
        # such a label is the minute's first frame that exists.
        ff = max(ff, DROP_FRAME_RATES[out_rate] if ss == 0 and mm % 10 else 0)
        frame = Timecode(hh, mm, ss, min(ff, out_base - 1), drop_frame=True).frame_at(out_rate)
    else:
        frame = Timecode(hh, mm, ss, 0).frame_at(out_rate) + ff  # ff == timebase rolls on
    label = smpte_label(frame, out_rate, drop_frame=drop)  # the form FFmpeg's muxers read
    if label == tc.label:
        notes.append(f"timecode {label} kept (written as a timecode track)")
    else:
        notes.append(
            f"source timecode {tc.label} written as {label}"
            + ("" if why is None else f" ({why}{', the nearest frame' if rounded else ''})")
        )
    return OutputTimecode(label=label, frame=frame, drop_frame=drop, start=frame / out_rate)


def _chosen_audio(info: MediaInfo, index: int | None) -> AudioInfo | None:
    """The sound to carry: the audio stream at container index ``index``, or the first."""
    if index is None:
        return info.audio
    for a in info.audios:
        if a.index == index:
            return a
    have = ", ".join(f"#{a.index} ({_audio_name(a)})" for a in info.audios)
    raise UsageError(
        Text(
            Option("audio_stream", str(index)),
            ": no such audio stream; "
            + (f"the source has {have}" if have else "the source has no sound"),
        )
    )


def _audio_name(a: AudioInfo) -> str:
    channels = f"{a.channels} ch" if a.channels else "? ch"
    layout = f" {a.layout}" if a.layout and a.layout not in ("mono", "stereo") else ""
    return f"{a.codec}, {channels}{layout}"


def _not_carried(
    info: MediaInfo, video_index: int, audio_index: int | None, timecode: bool
) -> list[str]:
    """Every stream of the source the output leaves out, described for the notes (a
    timecode track is not left out when the output is given its timecode)."""
    out = [
        f"video #{x.index} ({x.codec}, {x.width}x{x.height}): only stream #{video_index} "
        "is exported"
        for x in info.videos
        if x.index != video_index
    ]
    out += [
        Text(
            f"audio #{x.index} ({_audio_name(x)}): choose it with ",
            Option("audio_stream", str(x.index)),
        )
        for x in info.audios
        if x.index != audio_index
    ]
    kinds = {"data": "data", "subtitle": "subtitles", "attachment": "attachment"}
    out += [
        f"{kinds.get(x.type, x.type)} #{x.index} ({x.codec})"
        + (" -- a timecode track" if x.codec == "tmcd" else "")
        for x in info.others
        if not (timecode and x.codec == "tmcd")
    ]
    return out
