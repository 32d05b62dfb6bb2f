"""Delivery specs: declarative TOML rules about the facts of a media file.

A spec is data, not code, so users can write their own and the export presets can be
the very specs their outputs are validated against. The format is documented in
``docs/reference/spec-format.md``; the built-in specs live in ``handoff/validate/specs/``.

A rule names a *fact* (``video.fps``, ``audio.integrated_lufs``, ...), an operator and
an expected value, with an explicit tolerance where one applies. Frame rates are
compared as exact fractions: 24000/1001 is not 24.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from handoff.errors import SpecError

__all__ = [
    "COMPLETE_FILE_RULE",
    "FACTS",
    "OPERATORS",
    "Rule",
    "Spec",
    "SpecOption",
    "builtin_spec_names",
    "load_spec",
    "parse_spec",
    "streams_needed",
]

Severity = Literal["error", "warning"]
FactType = Literal["str", "int", "float", "fraction", "bool"]

# Every fact a rule may name, with its type. Kept in one table so a typo in a spec is
# an error at load time, not a silently skipped rule.
FACTS: dict[str, tuple[FactType, str]] = {
    "container": ("str", "short container name: mp4, mov, matroska, webm, wav, ..."),
    "faststart": ("bool", "MP4/MOV index (moov) before the media data"),
    "duration_s": ("float", "programme duration from the packets present, seconds"),
    "truncated": ("bool", "the file is incomplete: cut short, or unreadable part-way"),
    "av_duration_delta_s": ("float", "audio minus video duration, seconds"),
    "video.present": ("bool", "the file has a video stream"),
    "video.codec": ("str", "h264, hevc, prores, vp9, ..."),
    "video.profile": ("str", "codec profile as FFmpeg names it: High, HQ, 4444, ..."),
    "video.width": ("int", "coded width in pixels"),
    "video.height": ("int", "coded height in pixels"),
    "video.sample_aspect_ratio": (
        "fraction",
        "pixel width over height (SAR), e.g. 1 (square) or 4/3; 1 when the file does not say",
    ),
    "video.display_aspect_ratio": (
        "fraction",
        "picture width over height as shown: width x SAR / height, e.g. 16/9",
    ),
    "video.pix_fmt": ("str", "FFmpeg pixel format, e.g. yuv420p, yuv422p10le"),
    "video.bit_depth": ("int", "bits per component"),
    "video.chroma_subsampling": ("str", "4:2:0, 4:2:2 or 4:4:4"),
    "video.fps": ("fraction", "exact frame rate; the average for VFR"),
    "video.frame_rate_mode": ("str", "CFR or VFR, from packet timestamps"),
    "video.frames": ("int", "number of frames"),
    "video.duration_s": ("float", "video duration, seconds"),
    "video.max_keyframe_interval_s": ("float", "longest GOP, seconds (last GOP included)"),
    "video.all_keyframes_idr": ("bool", "H.264: every keyframe is an IDR picture"),
    "video.intra_only": ("bool", "every frame is a keyframe (ProRes, DNxHD, ...)"),
    "video.field_order": ("str", "progressive, or tt/bb/tb/bt (interlaced; missing when unknown)"),
    "video.color_primaries": ("str", "bt709, bt2020, ... (missing when untagged)"),
    "video.color_transfer": ("str", "bt709, smpte2084, ... (missing when untagged)"),
    "video.color_matrix": ("str", "bt709, bt2020nc, ... (missing when untagged)"),
    "video.color_range": ("str", "tv or pc"),
    "video.rotation": ("int", "display rotation, degrees clockwise (as MediaInfo reports it)"),
    "audio.present": ("bool", "the file has an audio stream"),
    "audio.streams": ("int", "number of audio streams"),
    "audio.codec": ("str", "aac, pcm_s24le, pcm_s16le, mp3, opus, ..."),
    "audio.profile": ("str", "codec profile, e.g. LC for AAC-LC"),
    "audio.sample_rate": ("int", "Hz"),
    "audio.channels": ("int", "channel count"),
    "audio.bit_rate": ("int", "average bits per second over the stream"),
    "audio.nominal_bit_rate": (
        "int",
        "the rate the encoder was set to: MP4 esds maxBitrate as FFmpeg writes it, "
        "else the average",
    ),
    "audio.bit_depth": ("int", "PCM bits per sample"),
    "audio.duration_s": ("float", "audio duration, seconds"),
    "audio.dual_mono": ("bool", "two channels carrying the same signal"),
    "audio.silent": ("bool", "nothing above BS.1770's -70 LUFS absolute gate"),
    "audio.mono_content": ("bool", "mono, or two-channel dual-mono"),
    "audio.integrated_lufs": (
        "float",
        "BS.1770-4 integrated loudness; dual-mono measured as its mono content",
    ),
    "audio.true_peak_dbtp": ("float", "true peak, oversampled, dBTP"),
    "audio.leading_silence_s": ("float", "silence before the programme starts, seconds"),
    "audio.trailing_silence_s": ("float", "silence after the programme ends, seconds"),
    "audio.longest_silence_s": (
        "float",
        "the longest silence inside the programme (between its first and last sound), "
        "seconds; a finding says where it starts",
    ),
    "audio.longest_silence_at_s": ("float", "where the longest silence starts, seconds"),
    "audio.floor_switches": (
        "int",
        "how often the floor between words changes between digital silence and room tone "
        "(a gate, or silence pasted in); a finding says where it first does",
    ),
    "audio.floor_switch_at_s": ("float", "where the floor first changes, seconds"),
    "audio.end_level_db": (
        "float",
        "the level of the last 20 ms over the programme's silence threshold, dB: under 0, "
        "the file ends in silence; over it, sound (a reverb tail) is cut off",
    ),
    "audio.first_heard_s": (
        "float",
        "where anything is first heard (10 dB under the silence threshold or louder: a "
        "breath swelling in), seconds",
    ),
    "audio.clock_after_s": (
        "float",
        "seconds from the first sound heard to the first sharp onset (a consonant's burst, a "
        "click: the level rises 20 dB within 10 ms to near the programme's level); missing "
        "when there is none",
    ),
    "audio.speech_rate": (
        "float",
        "syllable nuclei per second of sound (silences left out), over the programme",
    ),
    "audio.pace_change_pct": (
        "float",
        "the largest change of speech rate at a gap between words, 30 s after against 30 s "
        "before, percent of the rate before (+33 where the reading speeds up by a third); "
        "a finding says where",
    ),
    "audio.pace_change_at_s": ("float", "where the speech rate changes most, seconds"),
    "audio.pace_before": ("float", "the speech rate before that point, syllables per second"),
    "audio.pace_after": ("float", "the speech rate after that point, syllables per second"),
}

OPERATORS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "lt",
    "le",
    "gt",
    "ge",
    "between",
    "within",
    "abs_le",
    "present",
)
_NUMERIC_OPS = {"lt", "le", "gt", "ge", "between", "within", "abs_le"}

Value = str | int | float | bool | Fraction


@dataclass(frozen=True, slots=True)
class SpecOption:
    name: str
    default: bool
    help: str


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    fact: str
    op: str
    value: Value | tuple[Value, ...] | None
    severity: Severity = "error"
    tolerance: float = 0.0
    unit: Literal["", "frames"] = ""
    """``frames``: value and tolerance are in video frames, converted with the file's fps."""
    message: str = ""
    when: str | None = None
    """Name of a spec option; with a leading ``!`` the rule applies when it is off."""
    optional: bool = False
    """Skip instead of failing when the fact is missing (e.g. audio rules on a silent file)."""
    skip_if: str | None = None
    """A boolean fact that, when true, makes a failure of this rule moot (checked lazily)."""

    def applies(self, options: Mapping[str, bool]) -> bool:
        if self.when is None:
            return True
        negate = self.when.startswith("!")
        name = self.when.lstrip("!")
        return bool(options.get(name, False)) != negate


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    description: str
    rules: tuple[Rule, ...]
    options: tuple[SpecOption, ...] = ()
    source: str = ""
    export: Mapping[str, Any] = field(default_factory=dict)
    """Encoder settings for ``handoff export`` when the spec doubles as a preset."""

    def resolve_options(self, given: Mapping[str, bool]) -> dict[str, bool]:
        known = {o.name: o.default for o in self.options}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(sorted(known)) or "none"
            raise SpecError(
                f"spec '{self.name}' has no option {', '.join(unknown)} (options: {names})"
            )
        known.update(given)
        return known

    def active_rules(self, options: Mapping[str, bool]) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.applies(options))


COMPLETE_FILE_RULE = Rule(
    id="complete-file",
    fact="truncated",
    op="eq",
    value=False,
    message="the file is incomplete (cut short, or unreadable part-way): write or download it "
    "again",
)
"""Added to a spec that has no rule on ``truncated`` (the built-in specs carry it)."""


def streams_needed(fact: str) -> tuple[str, ...]:
    """The streams a fact is about; a rule on it means nothing when one is missing."""
    if fact == "av_duration_delta_s":
        return ("video", "audio")
    stream = fact.split(".")[0]
    if stream in ("video", "audio") and fact != f"{stream}.present":
        return (stream,)
    return ()


def _parse_value(raw: Any, kind: FactType, where: str) -> Value:
    if kind == "fraction":
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise SpecError(
                f'{where}: a rate or ratio is a string like "24000/1001" or "16/9", or an integer'
            )
        try:
            return Fraction(raw)
        except (ValueError, ZeroDivisionError):
            raise SpecError(f'{where}: {raw!r} is not a fraction like "24000/1001"') from None
    if kind == "bool":
        if not isinstance(raw, bool):
            raise SpecError(f"{where}: expected true or false, got {raw!r}")
        return raw
    if kind == "str":
        if not isinstance(raw, str):
            raise SpecError(f"{where}: expected a string, got {raw!r}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise SpecError(f"{where}: expected a number, got {raw!r}")
    return raw


def _parse_rule(raw: Any, index: int, option_names: set[str]) -> Rule:
    where = f"rule {index + 1}"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: each [[rules]] entry must be a table")
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise SpecError(f"{where}: missing 'id'")
    where = f"rule '{rid}'"
    allowed = {"id", "fact", "op", "value", "severity", "tolerance", "unit", "message"}
    allowed |= {"when", "optional", "skip_if"}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise SpecError(f"{where}: unknown key(s) {', '.join(extra)}")
    fact = raw.get("fact")
    if fact not in FACTS:
        raise SpecError(f"{where}: unknown fact {fact!r} (see docs/reference/spec-format.md)")
    kind = FACTS[fact][0]
    op = raw.get("op")
    if op not in OPERATORS:
        raise SpecError(f"{where}: unknown op {op!r}; one of {', '.join(OPERATORS)}")
    if op in _NUMERIC_OPS and kind not in ("int", "float", "fraction"):
        raise SpecError(f"{where}: op '{op}' needs a numeric fact, {fact} is {kind}")
    severity = raw.get("severity", "error")
    if severity not in ("error", "warning"):
        raise SpecError(f"{where}: severity must be 'error' or 'warning'")
    tolerance = raw.get("tolerance", 0.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
        raise SpecError(f"{where}: tolerance must be a number >= 0")
    unit = raw.get("unit", "")
    if unit not in ("", "frames"):
        raise SpecError(f"{where}: unit must be 'frames' or absent")
    when = raw.get("when")
    if when is not None and (not isinstance(when, str) or when.lstrip("!") not in option_names):
        raise SpecError(f"{where}: 'when' names no option of this spec: {when!r}")
    value: Value | tuple[Value, ...] | None
    raw_value = raw.get("value")
    if op == "present":
        value = None
    elif raw_value is None:
        raise SpecError(f"{where}: missing 'value'")
    elif op in ("in", "not_in", "between"):
        if not isinstance(raw_value, list) or not raw_value:
            raise SpecError(f"{where}: op '{op}' needs a list value")
        if op == "between" and len(raw_value) != 2:
            raise SpecError(f"{where}: 'between' needs [low, high]")
        value = tuple(_parse_value(v, kind, where) for v in raw_value)
    else:
        value = _parse_value(raw_value, kind, where)
    skip_if = raw.get("skip_if")
    if skip_if is not None and (skip_if not in FACTS or FACTS[skip_if][0] != "bool"):
        raise SpecError(f"{where}: 'skip_if' must name a boolean fact, not {skip_if!r}")
    message = raw.get("message", "")
    optional = raw.get("optional", False)
    if not isinstance(message, str) or not isinstance(optional, bool):
        raise SpecError(f"{where}: 'message' is a string and 'optional' a boolean")
    return Rule(
        id=rid,
        fact=fact,
        op=op,
        value=value,
        severity=severity,
        tolerance=float(tolerance),
        unit=unit,
        message=message,
        when=when,
        optional=optional,
        skip_if=skip_if,
    )


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """A child spec over its base: rules replace by id, tables merge, the rest overrides."""
    merged = {k: v for k, v in base.items() if k not in ("description",)}
    for key, value in child.items():
        if key == "rules":
            rules = list(base.get("rules", []))
            ids = [r.get("id") for r in rules if isinstance(r, dict)]
            for rule in value if isinstance(value, list) else []:
                rid = rule.get("id") if isinstance(rule, dict) else None
                if rid in ids:
                    rules[ids.index(rid)] = rule
                else:
                    rules.append(rule)
                    ids.append(rid)
            merged["rules"] = rules
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    merged.pop("extends", None)
    return merged


def _load_toml(text: str, source: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec {source} is not valid TOML: {exc}") from None
    parent = data.get("extends")
    if parent is None:
        return data
    if not isinstance(parent, str) or parent not in builtin_spec_names():
        known = ", ".join(builtin_spec_names())
        raise SpecError(f"spec {source}: 'extends' must name a built-in spec ({known})")
    if parent in seen:
        raise SpecError(f"spec {source}: 'extends' loops back to '{parent}'")
    base = _load_toml(builtin_spec_text(parent), f"built-in '{parent}'", (*seen, parent))
    return _merge(base, data)


def builtin_spec_text(name: str) -> str:
    """The TOML of the built-in spec ``name``, as shipped (to copy and edit)."""
    return (resources.files("handoff.validate") / "specs" / f"{name}.toml").read_text(
        encoding="utf-8"
    )


def parse_spec(text: str, source: str = "<string>") -> Spec:
    """Parse a spec from TOML text; raise :class:`SpecError` naming what is wrong.

    ``extends = "NAME"`` starts from a built-in spec: rules with the same id replace the
    base's, new ones are added, and tables such as ``[export]`` merge key by key.
    """
    data = _load_toml(text, source)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"spec {source}: missing top-level 'name'")
    options: list[SpecOption] = []
    raw_options = data.get("options", {})
    if not isinstance(raw_options, dict):
        raise SpecError(f"spec {source}: [options] must be a table")
    for oname, odef in raw_options.items():
        if not isinstance(odef, dict) or not isinstance(odef.get("default", False), bool):
            raise SpecError(f"spec {source}: option '{oname}' needs a boolean 'default'")
        options.append(SpecOption(oname, odef.get("default", False), str(odef.get("help", ""))))
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise SpecError(f"spec {source}: no [[rules]]")
    names = {o.name for o in options}
    try:
        rules = tuple(_parse_rule(r, i, names) for i, r in enumerate(raw_rules))
    except SpecError as exc:
        raise SpecError(f"spec {source}: {exc}") from None
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SpecError(f"spec {source}: duplicate rule id(s) {', '.join(dupes)}")
    if not any(r.fact == "truncated" for r in rules):
        # No spec passes a file that is cut short unless it says so in a rule of its own.
        rules = (*rules, COMPLETE_FILE_RULE)
    export = data.get("export", {})
    if not isinstance(export, dict):
        raise SpecError(f"spec {source}: [export] must be a table")
    return Spec(
        name=name,
        description=str(data.get("description", "")),
        rules=rules,
        options=tuple(options),
        source=source,
        export=export,
    )


def builtin_spec_names() -> list[str]:
    folder = resources.files("handoff.validate") / "specs"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_spec(name_or_path: str | Path) -> Spec:
    """A built-in spec by name (``h264-review``) or a user's TOML file by path."""
    text_name = str(name_or_path)
    if text_name in builtin_spec_names():
        return parse_spec(builtin_spec_text(text_name), source=f"built-in '{text_name}'")
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(f"spec file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"cannot read spec file {path}: {exc}") from None
        return parse_spec(text, source=str(path))
    known = ", ".join(builtin_spec_names())
    raise SpecError(f"unknown spec '{text_name}': use a built-in name ({known}) or a .toml file")
