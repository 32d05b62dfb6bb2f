"""Checking media against a delivery spec.

A spec violation is a *result* (a finding), not an exception; an unreadable file is a
result too (status ``error``), so one bad file never stops a batch. Expensive facts --
loudness, true peak, silence -- are measured only when an active rule asks for them,
and then with one decode of the first audio stream.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av.error

from handoff.analysis import loudness
from handoff.analysis.narration import NarrationFacts
from handoff.errors import UnmeasurableError, describe
from handoff.probe.reader import (
    UNKNOWN_CODEC,
    MediaInfo,
    is_truncated,
    probe,
    rate_list,
    rate_text,
)
from handoff.validate.spec import Rule, Spec, Value, streams_needed

__all__ = ["FileReport", "Finding", "check_probe_facts", "exit_code", "validate_file"]

log = logging.getLogger(__name__)

Status = Literal["pass", "fail", "error"]

# Absorbs binary floating-point noise in comparisons (2.0000000000000004 <= 2.0).
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: Literal["error", "warning"]
    fact: str
    expected: str
    actual: str
    message: str


@dataclass(frozen=True, slots=True)
class FileReport:
    path: Path
    spec: str
    status: Status
    findings: tuple[Finding, ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = ()
    checked: int = 0
    measurements: Mapping[str, Any] = field(default_factory=dict)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "spec": self.spec,
            "status": self.status,
            "error": self.error,
            "checked": self.checked,
            "findings": [
                {
                    "rule": f.rule,
                    "severity": f.severity,
                    "fact": f.fact,
                    "expected": f.expected,
                    "actual": f.actual,
                    "message": f.message,
                }
                for f in self.findings
            ],
            "notes": list(self.notes),
            "measurements": dict(self.measurements),
        }


class _Facts:
    """Facts of one file, with the audio measurements computed on first use."""

    def __init__(self, info: MediaInfo, *, measure: bool = True) -> None:
        self.info = info
        self.notes: list[str] = []
        self._audio: dict[str, Any] | None = None
        if not measure:
            # Facts only: every measured fact reads as missing, so no media is decoded.
            self._audio = dict.fromkeys(_MEASURED - {"audio.mono_content"})

    def _measure_audio(self) -> dict[str, Any]:
        if self._audio is None:
            a = self.info.audio
            assert a is not None
            try:
                # Decoded and measured a block at a time: memory does not grow with length.
                measured = loudness.measure_file(self.info.path, a.index)
            except UnmeasurableError as exc:
                # Not a broken file: the measured facts are missing, and rules on them
                # fail saying so.
                self.notes.append(f"audio not measured: {exc.message}")
                self._audio = dict.fromkeys(_MEASURED - {"audio.mono_content"})
                return self._audio
            report = measured.report(dual_mono_as_mono=True)
            self._audio = {
                "audio.silent": not math.isfinite(report.integrated_lufs),
                "audio.dual_mono": report.dual_mono,
                "audio.integrated_lufs": report.integrated_lufs,
                "audio.true_peak_dbtp": report.true_peak_dbtp,
                "audio.leading_silence_s": measured.leading_silence_s,
                "audio.trailing_silence_s": measured.trailing_silence_s,
                **_narration_facts(measured.narration),
            }
        return self._audio

    def get(self, name: str) -> Value | None:
        info = self.info
        v, a = info.video, info.audio
        simple: dict[str, Callable[[], Value | None]] = {
            "container": lambda: info.container,
            "faststart": lambda: info.faststart,
            "duration_s": lambda: info.duration_s,
            "truncated": lambda: is_truncated(info),
            "av_duration_delta_s": lambda: info.av_duration_delta_s,
            "video.present": lambda: v is not None,
            "audio.present": lambda: a is not None,
            "audio.streams": lambda: len(info.audios),
        }
        if name in simple:
            return simple[name]()
        stream, _, attr = name.partition(".")
        if stream == "video":
            if v is None:
                return None
            return getattr(v, attr)  # type: ignore[no-any-return]
        if a is None:
            return None
        if name == "audio.nominal_bit_rate":
            return a.declared_max_bit_rate or a.bit_rate
        if a.codec == UNKNOWN_CODEC and name in _MEASURED:
            return None  # nothing to decode: the rule reports the fact missing
        if name == "audio.mono_content":
            return a.channels == 1 or (a.channels == 2 and bool(self.get("audio.dual_mono")))
        if name == "audio.dual_mono" and a.channels != 2:
            return False
        if name in _MEASURED:
            value = self._measure_audio().get(name)
            if name == "audio.integrated_lufs" and self._audio_is_dual_mono(value):
                # The one figure dual-mono changes: said where a rule reads it.
                self._note(
                    "dual-mono audio: loudness measured as its mono content "
                    "(a standard stereo meter reads about 3 LU higher)"
                )
            if isinstance(value, float) and not math.isfinite(value):
                return value  # -inf: silence; reported as such, and fails a level rule
            return value
        return getattr(a, attr)  # type: ignore[no-any-return]

    def _audio_is_dual_mono(self, integrated: Value | None) -> bool:
        measured = self._audio or {}
        finite = isinstance(integrated, float) and math.isfinite(integrated)
        return finite and bool(measured.get("audio.dual_mono"))

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def measurements(self) -> dict[str, Any]:
        if self._audio is None:
            return {}
        out: dict[str, Any] = {}
        for k, val in self._audio.items():
            if isinstance(val, float):
                out[k] = round(val, 3) if math.isfinite(val) else None
            else:
                out[k] = val
        return out


def _narration_facts(n: NarrationFacts | None) -> dict[str, Any]:
    """The facts of :mod:`handoff.analysis.narration`, and where each happens."""
    if n is None:
        return {}
    longest = n.longest
    return {
        "audio.longest_silence_s": 0.0 if longest is None else n.seconds(longest.length),
        "audio.longest_silence_at_s": None if longest is None else n.seconds(longest.start),
        "audio.floor_switches": n.floor_switches,
        "audio.floor_switch_at_s": None if n.first_switch is None else n.seconds(n.first_switch),
        "audio.end_level_db": n.end_level_db,
        "audio.first_heard_s": None if n.first_heard is None else n.seconds(n.first_heard),
        "audio.clock_after_s": n.clock_after_s,
        "audio.speech_rate": n.speech_rate,
        "audio.pace_change_pct": None if n.pace is None else 100.0 * n.pace.change,
        "audio.pace_change_at_s": None if n.pace is None else n.seconds(n.pace.at),
        "audio.pace_before": None if n.pace is None else n.pace.before,
        "audio.pace_after": None if n.pace is None else n.pace.after,
    }


def _clock_shown(shown: str, facts: _Facts) -> str | None:
    first = facts.get("audio.first_heard_s")
    if not isinstance(first, float):
        return None
    if facts.get("audio.clock_after_s") is None:
        return f"no sharp onset after the first sound heard at {first:.3f} s"
    return f"{shown} after the first sound heard at {first:.3f} s"


def _pace_shown(shown: str, facts: _Facts) -> str | None:
    at, before, after = (facts.get(f"audio.pace_{k}") for k in ("change_at_s", "before", "after"))
    change = facts.get("audio.pace_change_pct")
    if not all(isinstance(v, float) for v in (at, before, after, change)):
        return None
    return f"{change:+.1f} % at {at:.3f} s ({before:.2f} -> {after:.2f} syllables/s)"


def _at(key: str, said: str) -> Callable[[str, _Facts], str | None]:
    def located(shown: str, facts: _Facts) -> str | None:
        at = facts.get(key)
        return said.format(shown=shown, at=at) if isinstance(at, float) else None

    return located


# A measured fact's place in the programme, said with its value in a finding.
_LOCATED: dict[str, Callable[[str, _Facts], str | None]] = {
    "audio.longest_silence_s": _at("audio.longest_silence_at_s", "{shown} from {at:.3f} s"),
    "audio.floor_switches": _at("audio.floor_switch_at_s", "{shown}, the first at {at:.3f} s"),
    "audio.clock_after_s": _clock_shown,
    "audio.pace_change_pct": _pace_shown,
}

# Facts measured by decoding the audio (once, on first use): the narration's are the keys
# _narration_facts gives.
_MEASURED = frozenset(
    {
        *_narration_facts(NarrationFacts(1, ())),
        "audio.silent",
        "audio.dual_mono",
        "audio.mono_content",
        "audio.integrated_lufs",
        "audio.true_peak_dbtp",
        "audio.leading_silence_s",
        "audio.trailing_silence_s",
    }
)


def _unit_of(fact: str) -> str:
    """The unit a fact is shown in, read from its name."""
    for suffix, unit in (
        ("_s", " s"),
        ("_lufs", " LUFS"),
        ("_dbtp", " dBTP"),
        ("sample_rate", " Hz"),
        ("bit_rate", " b/s"),
        ("fps", " fps"),
        ("_pct", " %"),
        ("_db", " dB"),
    ):
        if fact.endswith(suffix):
            return unit
    return ""


def _show(value: Value | None, unit: str = "") -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Fraction) and unit == " fps":
        return rate_text(value)
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return f"{value.numerator}{unit}"
        if value.denominator in (1001, 1000):
            return f"{value}{unit}"
        return f"{value} (~{float(value):.3f}){unit}"  # an average, e.g. of a VFR stream
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-inf" if value < 0 else "inf"
        return f"{value:.4f}".rstrip("0").rstrip(".") + unit
    return f"{value}{unit}"


def _expected(rule: Rule, scale: float, unit_word: str) -> str:
    v = rule.value
    unit = "" if unit_word else _unit_of(rule.fact)
    tol = (
        f" (tolerance {rule.tolerance:g}{unit_word or _unit_of(rule.fact)})"
        if rule.tolerance
        else ""
    )
    if rule.op == "present":
        return "present"
    if isinstance(v, tuple):
        if rule.op == "between":
            return f"{_show(v[0])} to {_show(v[1], unit)}{unit_word}{tol}"
        if unit == " fps" and all(isinstance(x, Fraction) for x in v):
            items = rate_list([x for x in v if isinstance(x, Fraction)])
        else:
            items = ", ".join(_show(x) for x in v)
        return ("one of " if rule.op == "in" else "none of ") + items + unit
    words = {
        "eq": "",
        "ne": "not ",
        "lt": "< ",
        "le": "<= ",
        "gt": "> ",
        "ge": ">= ",
        "abs_le": "|x| <= ",
    }
    if rule.op == "within":
        return f"{_show(v)} +/- {rule.tolerance:g}{unit_word or unit}"
    frames = ""
    if rule.unit == "frames" and scale:
        frames = f" ({float(v) * scale:.4f} s)" if isinstance(v, int | float) else ""
    return f"{words[rule.op]}{_show(v, unit)}{unit_word}{frames}{tol}"


def _passes(rule: Rule, actual: Value, scale: float) -> bool:
    v = rule.value
    op = rule.op
    if op == "in":
        assert isinstance(v, tuple)
        return actual in v
    if op == "not_in":
        assert isinstance(v, tuple)
        return actual not in v
    if isinstance(actual, str | bool) or not isinstance(actual, int | float | Fraction):
        if op == "eq":
            return actual == v
        if op == "ne":
            return actual != v
        return False
    tol = rule.tolerance * scale
    x = actual
    if op == "between":
        assert isinstance(v, tuple)
        lo, hi = (float(b) * scale for b in v)
        return lo - tol - _EPS <= float(x) <= hi + tol + _EPS
    assert not isinstance(v, tuple | str | bool) and v is not None
    if isinstance(x, Fraction) and isinstance(v, Fraction) and not tol and op in ("eq", "ne"):
        return (x == v) == (op == "eq")  # exact rate comparison: 24000/1001 is not 24
    target = float(v) * scale
    fx = float(x)
    if op == "eq":
        return abs(fx - target) <= tol + _EPS
    if op == "ne":
        return abs(fx - target) > tol + _EPS
    if op == "lt":
        return fx < target + tol
    if op == "le":
        return fx <= target + tol + _EPS
    if op == "gt":
        return fx > target - tol
    if op == "ge":
        return fx >= target - tol - _EPS
    if op == "within":
        return abs(fx - target) <= rule.tolerance * scale + _EPS
    if op == "abs_le":
        return abs(fx) <= target + tol + _EPS
    raise AssertionError(op)


def _check(rule: Rule, facts: _Facts, spec_rule_facts: set[str]) -> Finding | bool | None:
    """A finding when the rule fails; False when skipped; None when it passes."""
    for stream in streams_needed(rule.fact):
        if not facts.get(f"{stream}.present"):
            if f"{stream}.present" in spec_rule_facts or rule.optional:
                return False  # the presence rule already says it, once
            return Finding(
                rule.id,
                rule.severity,
                rule.fact,
                _expected(rule, 0.0, ""),
                f"no {stream} stream",
                rule.message or f"{rule.fact}: the file has no {stream} stream",
            )
    scale = 1.0
    unit_word = ""
    if rule.unit == "frames":
        v = facts.info.video
        if v is None or not v.fps:
            return False
        scale = float(1 / v.fps)
        unit_word = " frame" if rule.value == 1 else " frames"
    actual = facts.get(rule.fact)
    if rule.op == "present":
        ok = actual is not None
    elif actual is None:
        if rule.optional:
            return False
        ok = False
    else:
        ok = _passes(rule, actual, scale)
    if ok:
        return None
    if rule.skip_if is not None and facts.get(rule.skip_if):
        facts.notes.append(f"{rule.id} not checked: {rule.skip_if} is true")
        return False
    shown = _show(actual, _unit_of(rule.fact))
    if rule.fact == "truncated" and facts.info.truncated is not None:
        shown = facts.info.truncated  # what is missing, not just "true"
    elif rule.unit == "frames" and isinstance(actual, float) and scale:
        shown = f"{actual:.4f} s ({actual / scale:.2f} frames)"
    if rule.fact in _LOCATED:
        shown = _LOCATED[rule.fact](shown, facts) or shown
    return Finding(
        rule.id,
        rule.severity,
        rule.fact,
        _expected(rule, scale, unit_word),
        shown,
        rule.message or f"{rule.fact} is {shown}",
    )


def validate_info(
    info: MediaInfo, spec: Spec, options: Mapping[str, bool] | None = None
) -> FileReport:
    """Check probed facts against a spec (measures audio when a rule needs it)."""
    resolved = spec.resolve_options(options or {})
    rules = spec.active_rules(resolved)
    facts = _Facts(info)
    findings: list[Finding] = []
    present_rules = {r.fact for r in rules if r.fact.endswith(".present")}
    checked = 0
    for rule in rules:
        result = _check(rule, facts, present_rules)
        if result is False:
            continue
        checked += 1
        if isinstance(result, Finding):
            findings.append(result)
    failed = any(f.severity == "error" for f in findings)
    return FileReport(
        path=info.path,
        spec=spec.name,
        status="fail" if failed else "pass",
        findings=tuple(findings),
        notes=tuple(facts.notes),
        checked=checked,
        measurements=facts.measurements(),
    )


def check_probe_facts(
    info: MediaInfo,
    spec: Spec,
    wanted: Callable[[Rule], bool],
    options: Mapping[str, bool] | None = None,
) -> tuple[Finding, ...]:
    """The findings of the spec's rules that ``wanted`` picks, from the probe facts
    alone: pure, no media read (a rule on a measured fact -- loudness, silence -- fails
    as missing; a ``skip_if`` on one does not skip). For planners deciding what an
    output can take from its source as it is."""
    rules = [r for r in spec.active_rules(spec.resolve_options(options or {})) if wanted(r)]
    facts = _Facts(info, measure=False)
    present_rules = {r.fact for r in rules if r.fact.endswith(".present")}
    found = (_check(rule, facts, present_rules) for rule in rules)
    return tuple(f for f in found if isinstance(f, Finding))


def validate_file(
    path: Path | str, spec: Spec, options: Mapping[str, bool] | None = None
) -> FileReport:
    """Probe and check one file; an unusable file gives status ``error``, never an exception.

    Spec errors (unknown option) still raise: they are the caller's mistake, not the file's.
    """
    spec.resolve_options(options or {})
    path = Path(path)
    try:
        info = probe(path)
        return validate_info(info, spec, options)
    except av.error.FFmpegError as exc:
        # Damage FFmpeg meets only while decoding (e.g. the audio for a loudness rule).
        error = f"cannot decode: {describe(exc)}"
    except Exception as exc:
        # Whatever else goes wrong with this file is this file's ERROR: the batch, its
        # summary and its JUnit report go on.
        error = describe(exc)
    return FileReport(path=path, spec=spec.name, status="error", error=error)


def exit_code(reports: Iterable[FileReport]) -> int:
    """0 when all pass, 1 when any fails, 2 when any file could not be read."""
    statuses = {r.status for r in reports}
    if "error" in statuses:
        return 2
    if "fail" in statuses:
        return 1
    return 0
