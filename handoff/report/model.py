"""What the page shows, collected from a delivery's ``report.json`` by a pure function.

:func:`collect` reads no media: it turns the document ``handoff deliver`` wrote
(schema ``handoff.delivery-report/1``, docs/reference/json.md) into frozen views -- the
batch, its segments, their takes (the pick first) -- with every verdict already put in
words. :mod:`handoff.report.assets` then reads each take's media, and
:mod:`handoff.report.page` lays the views out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

from handoff.errors import InputError

__all__ = [
    "SCHEMA",
    "BatchReport",
    "FileFacts",
    "SegmentView",
    "SyncView",
    "TakeView",
    "collect",
]

SCHEMA = "handoff.delivery-report/1"

SyncState = Literal["in", "out", "none"]
SpecState = Literal["pass", "fail", "error", "none"]


@dataclass(frozen=True, slots=True)
class SyncView:
    """A take's sync against its segment's narration, as measured on its master."""

    verdict: SyncState
    score: float | None
    tolerance_ms: float | None
    duration_s: float | None
    audio_offset_ms: float | None
    picture_offset_ms: float | None
    drift_ms_per_min: float | None
    exceeds_at_s: float | None
    """Take time from which the picture is out of tolerance (None: never)."""
    recut_at_s: float | None
    """Take time up to which the take is usable, when a re-cut saves its head."""
    series: tuple[tuple[float, float], ...]
    """(take time s, picture error ms); empty for a take too short to measure a series."""
    reference: Path | None
    """The segment's narration WAV."""
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FileFacts:
    """The probe facts an editor asks about, of one file, as (label, value) rows."""

    role: str
    """``render`` (as received) or ``master``."""
    path: Path
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TakeView:
    """One render of the batch and everything delivered from it."""

    name: str
    """The render's file name (``data-take``)."""
    render: Path
    master: Path | None
    review: Path | None
    segment: int | None
    picked: bool
    delivered: bool
    sync: SyncState
    spec: SpecState
    spec_name: str | None
    failed_rules: tuple[str, ...]
    """Each rule the master breaks, in words."""
    received: str | None
    """How the render came: ``pass`` (already meets the preset), ``fail`` (needs the
    export), None (could not be read)."""
    received_rules: tuple[str, ...]
    problem: str | None
    """Why the render was not delivered, in one line."""
    sync_detail: SyncView | None
    facts: tuple[FileFacts, ...]
    """The render's probe as received (from the journal); the master's is read with the
    media (:mod:`handoff.report.assets`)."""
    made: tuple[str, ...] = ()
    """How the master was made, per stream, in words: ``picture: copy (...)``, ``sound:
    encode -- sample-rate: ...`` (from the export's plan)."""

    @property
    def media(self) -> Path:
        """The file the thumbnails and the sound are taken from: what the editor gets
        (the master), or the render when there is no master."""
        return self.master if self.master is not None else self.render

    @property
    def passes(self) -> bool:
        """Delivered, its master passes its spec, and in sync where it was measured."""
        return self.delivered and self.spec == "pass" and self.sync != "out"


@dataclass(frozen=True, slots=True)
class SegmentView:
    segment: int | None
    """None: the renders with no segment (no manifest, or never measured)."""
    takes: tuple[TakeView, ...]
    """The pick first, then the alternates best first, then the others by name."""
    regenerate: bool
    recut_at_s: float | None

    @property
    def pick(self) -> TakeView | None:
        return next((t for t in self.takes if t.picked), None)

    @property
    def label(self) -> str:
        return "no segment" if self.segment is None else f"segment {self.segment:03d}"


@dataclass(frozen=True, slots=True)
class BatchReport:
    folder: Path
    """The delivery folder as it is now (report.json's paths are rebased onto it)."""
    preset: str | None
    review: str | None
    manifest: Path | None
    segments: tuple[SegmentView, ...]

    @property
    def takes(self) -> tuple[TakeView, ...]:
        return tuple(t for s in self.segments for t in s.takes)

    @property
    def segment_count(self) -> int:
        return sum(s.segment is not None for s in self.segments)

    @property
    def picks(self) -> int:
        return sum(t.picked for t in self.takes)

    @property
    def passes(self) -> int:
        return sum(t.passes for t in self.takes)

    @property
    def failures(self) -> int:
        """Renders not delivered."""
        return sum(not t.delivered for t in self.takes)

    @property
    def out_of_sync(self) -> int:
        return sum(t.sync == "out" for t in self.takes)

    @property
    def to_regenerate(self) -> tuple[SegmentView, ...]:
        return tuple(s for s in self.segments if s.regenerate)

    def next_steps(self) -> tuple[str, ...]:
        """One line per segment to regenerate, with its re-cut point when a take's head
        is usable; or one line saying nothing needs regenerating."""
        lines = []
        for s in self.to_regenerate:
            assert s.segment is not None
            if s.recut_at_s is not None:
                lines.append(
                    f"Regenerate segment {s.segment:03d} from {s.recut_at_s:.2f} s "
                    f"(the best take is in sync up to there)"
                )
            else:
                lines.append(
                    f"Regenerate segment {s.segment:03d} from its start (0.00 s): "
                    "no take is in sync"
                )
        if lines:
            return tuple(lines)
        if self.manifest is None:
            return ("Nothing to regenerate: without a manifest no take was measured against "
                    "its narration.",)  # fmt: skip
        return ("Nothing needs regenerating: every segment has a take in sync.",)


# ------------------------------------------------------------------------------- collect


def collect(document: Mapping[str, Any], folder: Path) -> BatchReport:
    """The views of a ``report.json`` document written into ``folder``.

    Paths under the folder the document was written in are taken as under ``folder``
    now, so a delivery folder that moved as a whole still links its files. Raises
    InputError (one line) for a document that is not a delivery report.
    """
    if not isinstance(document, Mapping) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, Mapping) else None
        raise InputError(
            f"not a delivery report (schema {found!r}, expected {SCHEMA!r}): "
            "give the folder handoff deliver wrote",
            folder / "report.json",
        )
    options = _mapping(document.get("options"))
    renders = document.get("renders")
    if not isinstance(renders, list):
        raise InputError("not a delivery report: it has no list of renders", folder / "report.json")
    was = options.get("out")
    local = _Rebase(PurePath(was) if isinstance(was, str) else None, folder)
    selects = _mapping(document.get("selects"))
    selected = {
        s["segment"]: s
        for s in selects.get("segments", []) or []
        if isinstance(s, Mapping) and isinstance(s.get("segment"), int)
    }

    preset = _text(options.get("preset"))
    takes = [_take(row, local, preset) for row in renders if isinstance(row, Mapping)]
    by_segment: dict[int | None, list[TakeView]] = {}
    for take in takes:
        by_segment.setdefault(take.segment, []).append(take)
    for number in selected:
        by_segment.setdefault(number, [])

    segments = []
    for number in sorted(n for n in by_segment if n is not None):
        chosen = _mapping(selected.get(number))
        order = [chosen.get("pick"), *(chosen.get("alternates") or [])]
        rank = {local.path(p).name: i for i, p in enumerate(order) if isinstance(p, str)}
        members = sorted(
            by_segment[number],
            key=lambda t: (
                not t.picked,
                rank.get(t.master.name if t.master else "", len(rank)),
                t.name,
            ),
        )
        segments.append(
            SegmentView(
                segment=number,
                takes=tuple(members),
                regenerate=bool(chosen.get("regenerate")),
                recut_at_s=_number(chosen.get("recut_at_s")),
            )
        )
    if None in by_segment:
        loose = sorted(by_segment[None], key=lambda t: (not t.picked, t.name))
        segments.append(SegmentView(None, tuple(loose), regenerate=False, recut_at_s=None))
    manifest = options.get("manifest")
    return BatchReport(
        folder=folder,
        preset=preset,
        review=_text(options.get("review")),
        manifest=local.path(manifest) if isinstance(manifest, str) else None,
        segments=tuple(segments),
    )


@dataclass(frozen=True, slots=True)
class _Rebase:
    was: PurePath | None
    now: Path

    def path(self, text: str) -> Path:
        p = PurePath(text)
        if not p.is_absolute():
            return self.now / p  # selects.json's paths are relative to the folder
        if self.was is not None and p.is_relative_to(self.was):
            return self.now / p.relative_to(self.was)
        return Path(p)


def _take(row: Mapping[str, Any], local: _Rebase, preset: str | None) -> TakeView:
    render = local.path(str(row.get("render", "")))
    records = _mapping(row.get("records"))
    receive = _mapping(records.get("receive"))
    master = _mapping(records.get("master"))
    review = _mapping(records.get("review"))
    sync_record = _mapping(records.get("sync"))
    received_result = _mapping(receive.get("result"))
    probe = _mapping(received_result.get("probe"))
    received_validation = _mapping(received_result.get("validation"))
    master_validation = _mapping(_mapping(master.get("result")).get("validation"))
    sync = _sync(_mapping(_mapping(sync_record.get("result")).get("sync")), local)

    spec: SpecState = "none"
    if master_validation.get("status") in ("pass", "fail", "error"):
        spec = master_validation["status"]
    if master.get("status") == "error" or receive.get("status") == "error":
        spec = "error"
    verdict = row.get("sync_verdict")
    sync_state: SyncState = verdict if verdict in ("in", "out") else "none"
    delivered = row.get("state") != "failed"
    reason = _text(row.get("reason"))
    if master_validation.get("status") == "error" and reason is None:
        reason = _text(master_validation.get("error"))
    facts = (FileFacts("render", render, probe_rows(probe)),) if probe.get("ok") else ()
    return TakeView(
        name=render.name,
        render=render,
        master=_first_output(master, local),
        review=_first_output(review, local),
        segment=sync.segment if sync is not None else None,
        picked=bool(row.get("picked")),
        delivered=delivered,
        sync=sync_state,
        spec=spec,
        spec_name=(
            _text(master_validation.get("spec")) or _text(received_validation.get("spec")) or preset
        ),
        failed_rules=broken_rules(master_validation),
        received=_text(received_validation.get("status")),
        received_rules=broken_rules(received_validation),
        problem=None if delivered and spec != "error" else (reason or "not delivered"),
        sync_detail=sync.view if sync is not None else None,
        facts=facts,
        made=made_words(_mapping(_mapping(master.get("result")).get("export")).get("plan")),
    )


def made_words(plan: Any) -> tuple[str, ...]:
    """What an export's plan (``ExportPlan.to_json``, kept in the journal) did with each
    stream, and why, as ``handoff export`` says it."""
    from handoff.export.decide import stream_decisions

    return tuple(stream_decisions(plan)) if isinstance(plan, Mapping) else ()


@dataclass(frozen=True, slots=True)
class _Sync:
    segment: int | None
    view: SyncView


def _sync(result: Mapping[str, Any], local: _Rebase) -> _Sync | None:
    if not result:
        return None
    picture = _mapping(result.get("picture"))
    audio = _mapping(result.get("audio"))
    series = []
    for point in picture.get("series") or []:
        if isinstance(point, Sequence) and len(point) == 2:
            t, ms = _number(point[0]), _number(point[1])
            if t is not None and ms is not None:
                series.append((t, ms))
    reference = result.get("reference")
    verdict = result.get("verdict")
    segment = result.get("segment")
    return _Sync(
        segment=segment if isinstance(segment, int) and not isinstance(segment, bool) else None,
        view=SyncView(
            verdict=verdict if verdict in ("in", "out") else "none",
            score=_number(result.get("score")),
            tolerance_ms=_number(result.get("tolerance_ms")),
            duration_s=_number(result.get("duration_s")),
            audio_offset_ms=_number(audio.get("audio_offset_ms")),
            picture_offset_ms=_number(picture.get("picture_offset_ms")),
            drift_ms_per_min=_number(picture.get("picture_drift_ms_per_min")),
            exceeds_at_s=_number(picture.get("drift_exceeds_at_s")),
            recut_at_s=_number(result.get("recut_at_s")),
            series=tuple(series),
            reference=local.path(reference) if isinstance(reference, str) else None,
            notes=tuple(str(n) for n in result.get("notes") or []),
        ),
    )


def broken_rules(validation: Mapping[str, Any]) -> tuple[str, ...]:
    """Each rule a validation result says is broken, in words: ``container: mp4, expected
    mov -- a ProRes master is a QuickTime .mov``. Warnings do not break a rule."""
    lines = []
    for f in validation.get("findings") or []:
        if not isinstance(f, Mapping) or f.get("severity") not in ("error", None):
            continue
        rule = f.get("rule") or f.get("fact") or "rule"
        actual, expected = f.get("actual"), f.get("expected")
        parts = []
        if actual is not None or expected is not None:
            parts.append(f"{_shown(actual)}, expected {_shown(expected)}")
        if f.get("message"):
            parts.append(str(f["message"]))
        lines.append(f"{rule}: " + " -- ".join(parts) if parts else str(rule))
    return tuple(lines)


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value)
    return str(value)


def probe_rows(probe: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The facts of ``probe --json`` an editor asks about, in words."""
    rows: list[tuple[str, str]] = []
    container = probe.get("container")
    if container:
        rows.append(("container", str(container)))
    video = _mapping(probe.get("video"))
    if video:
        size = f"{video.get('width')}x{video.get('height')}"
        rows.append(("picture", f"{video.get('codec')} {video.get('profile') or ''}".strip()
                     + f", {size}, {video.get('pix_fmt')}"))  # fmt: skip
        fps = video.get("fps")
        mode = video.get("frame_rate_mode")
        rate = f"{fps} fps" if fps else "unknown"
        if isinstance(video.get("fps_float"), float | int):
            rate = f"{float(video['fps_float']):.3f}".rstrip("0").rstrip(".") + " fps"
        rows.append(("frame rate", f"{rate} ({mode})" if mode else rate))
        if video.get("frames") is not None:
            rows.append(("frames", str(video["frames"])))
        if video.get("intra_only"):
            rows.append(("GOP", "every frame a keyframe (intra-only)"))
        elif video.get("max_keyframe_interval_s") is not None:
            rows.append((
                "GOP",
                f"{video.get('keyframes')} keyframe(s), at most "
                f"{float(video['max_keyframe_interval_s']):.2f} s apart",
            ))  # fmt: skip
    else:
        rows.append(("picture", "none"))
    audio = _mapping(probe.get("audio"))
    if audio:
        length = _number(audio.get("duration_s"))
        rows.append((
            "sound",
            f"{audio.get('codec')}, {audio.get('sample_rate')} Hz, "
            f"{audio.get('channels')} channel(s)"
            + ("" if length is None else f", {length:.3f} s"),
        ))  # fmt: skip
    else:
        rows.append(("sound", "none"))
    duration = _number(probe.get("duration_s"))
    if duration is not None:
        rows.append(("duration", f"{duration:.3f} s"))
    timecode = _mapping(probe.get("timecode"))
    rows.append(("timecode", str(timecode.get("label")) if timecode else "none"))
    if probe.get("size_bytes") is not None:
        rows.append(("size", f"{int(probe['size_bytes']):,} bytes"))
    return tuple(rows)


def _first_output(record: Mapping[str, Any], local: _Rebase) -> Path | None:
    if record.get("status") != "done":
        return None
    outputs = record.get("outputs") or []
    return local.path(outputs[0]) if outputs and isinstance(outputs[0], str) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
