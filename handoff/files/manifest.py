"""The ``prep-audio`` manifest (schema ``handoff.prep-audio/1``): written, read and checked.

This module is the one schema: :mod:`handoff.prep` builds the document from these
dataclasses (:func:`seconds` and :func:`rounded` say how precise each figure is) and
writes it with :func:`write_manifest`; the timeline, ``sync`` and ``selects`` read it
with :func:`load_manifest`, which returns the whole document as frozen dataclasses -- sample
positions as exact integers -- or raises :class:`~handoff.errors.ManifestError` with one
line naming the field::

    cond/manifest.json: segments[2].source_in: must be a whole number of samples from 0
    to master.samples (4410000) (got 1000000000000000000)

Fields are named by their JSON path; array entries count from 0 (``segments[2]`` is the
third entry, whatever its ``index``).

What is required
    Every key that ``prep-audio`` writes (the schema in :mod:`handoff.prep` and
    docs/reference/json.md): ``schema``, ``source``, ``settings`` (with ``limiter`` and
    ``silence``), ``master``, ``segments`` and ``warnings``, with all their keys -- but
    those written since issue 11 (``source.measured_as``, ``source.left_right``,
    ``master.limited_share``, ``master.heavy_limiting``, ``master.loudest_passage``),
    which older manifests lack, and those written since issue 17 (``settings.compress``,
    ``settings.fill_gaps``, ``settings.fade_tails_ms``, the time map ``gaps``), likewise;
    present, they are checked too (``gaps`` in order, apart, each ``removed`` its span's
    length and each ``master_at`` its ``source_start`` less the spans before it). Values
    prep may write as ``null`` may be ``null``: the loudness and true peak of the source,
    the master and each segment (prep writes ``null`` for a level it could not measure),
    ``click_start`` / ``click_end`` (no ``--click``; both or neither) and
    ``cut_in.pause_s`` / ``cut_out.pause_s`` (a cut at the programme's edge). Keys this
    schema does not know are ignored, so the document ``prep-audio --json`` prints (the
    manifest plus ``manifest``, ``out_dir``, ``master.path``, ``segments[].path``,
    ``elapsed_s``) reads as well.

What is checked
    - The file (read by :mod:`handoff.files.jsondoc`): at most :data:`MAX_BYTES`, UTF-8,
      JSON (RFC 8259): no ``NaN`` or ``Infinity`` and no number too large for a float
      (``1e999``), anywhere in the document; integers of at most 30 digits; nesting no
      deeper than the JSON parser allows.
    - Types: integers are JSON integers (not ``true``, not ``5.0``), numbers are finite,
      strings are strings, objects are objects.
    - ``settings.sample_rate``: 8000 to 384000 (prep writes 48000); every sample
      position counts at this rate. ``settings.kind`` voice/music, ``settings.channels``
      dual-mono/mono/stereo, ``settings.bit_depth`` 16/24, ``cut_*.kind`` one of
      start/end/pause/short-pause/quietest.
    - ``master.samples``: 1 sample to 24 hours; ``0 <= source_in <= source_out <=
      master.samples`` and ``0 <= cut_*.position <= master.samples``;
      ``0 <= preroll_start <= preroll_end <= samples`` in the segment file, and
      ``click_start <= click_end <= preroll_start``; channel counts 1 or 2.
    - ``segments``: at least one; each ``index`` a positive integer, no two alike.
    - ``master.file`` and every ``segments[].file``: a plain file name in the manifest's
      folder -- no ``/`` or ``\\``, not ``.`` or ``..``, no NUL, no drive (Windows); the
      name may hold bytes that are not UTF-8 (JSON carries them as ``\\udcXX`` escapes,
      as Python's ``json`` writes them).

Not checked on reading: that the files exist (:meth:`Manifest.check_files` does; the
timeline checks the master when it uses it), and the measured figures beyond their type
(they describe, nothing is computed from them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from handoff.errors import ManifestError
from handoff.files.fsutil import InputGuard, atomic_write_bytes
from handoff.files.jsondoc import DocumentKind, Fields, got, load_json, reject_bad_numbers

__all__ = [
    "CUT_KINDS",
    "MAX_BYTES",
    "SCHEMA",
    "Cut",
    "Gap",
    "Manifest",
    "ManifestCompress",
    "ManifestFillGaps",
    "ManifestLeftRight",
    "ManifestLimiter",
    "ManifestMaster",
    "ManifestPassage",
    "ManifestSettings",
    "ManifestSilence",
    "ManifestSource",
    "Segment",
    "dumps_manifest",
    "load_manifest",
    "master_to_source",
    "parse_manifest",
    "rounded",
    "seconds",
    "section_json",
    "settings_from_json",
    "source_to_master",
    "write_manifest",
]

SCHEMA: Final = "handoff.prep-audio/1"
MAX_BYTES: Final = 16 * 1024 * 1024
"""The largest manifest read (prep writes about 1 kB per segment)."""
CUT_KINDS: Final = ("start", "end", "pause", "short-pause", "quietest", "pace-change")
SAMPLE_RATES: Final = (8000, 384000)
"""Lowest and highest ``settings.sample_rate`` accepted (prep writes 48000)."""
_MAX_MASTER_SECONDS = 24 * 3600


# ---------------------------------------------------------------- the document


@dataclass(frozen=True, slots=True)
class ManifestSource:
    """``source``: the narration as read, before gain."""

    file: str
    """Absolute path, as prep was given it (resolved)."""
    sha256: str
    sample_rate: int
    channels: int
    samples: int
    duration_s: float
    integrated_lufs: float | None
    true_peak_dbtp: float | None
    measured_as: str | None = None
    """Which signal ``integrated_lufs`` is of (None: a manifest from before issue 11)."""
    left_right: ManifestLeftRight | None = None
    """How L and R compare (None: not two channels, or a manifest from before issue 11)."""


@dataclass(frozen=True, slots=True)
class ManifestLeftRight:
    """``source.left_right``: how a two-channel source's L and R compare."""

    verdict: str
    correlation: float | None
    level_difference_db: float | None
    level_swing_db: float


@dataclass(frozen=True, slots=True)
class ManifestPassage:
    """``master.loudest_passage``: where the limiter took most off (master samples)."""

    start: int
    end: int
    start_s: float
    end_s: float
    max_reduction_db: float
    limited_s: float


@dataclass(frozen=True, slots=True)
class ManifestLimiter:
    """``settings.limiter``."""

    ceiling_dbtp: float
    attack_ms: float
    hold_ms: float
    release_db_per_s: float
    oversample: int


@dataclass(frozen=True, slots=True)
class ManifestSilence:
    """``settings.silence``: the pause detector."""

    threshold_dbfs: float
    real_pause_s: float
    short_pause_s: float
    lead_in_s: float
    tail_s: float


@dataclass(frozen=True, slots=True)
class ManifestCompress:
    """``settings.compress``: the compressor ``--compress`` ran before the gain."""

    ratio: float
    threshold_dbfs: float
    knee_db: float
    rms_ms: float
    attack_ms: float
    release_ms: float
    max_reduction_db: float


@dataclass(frozen=True, slots=True)
class ManifestFillGaps:
    """``settings.fill_gaps``: ``--fill-gaps`` (the spans removed are ``gaps``)."""

    max_gap_s: float
    crossfade_ms: float


@dataclass(frozen=True, slots=True)
class Gap:
    """``gaps[]``: a span removed from the middle of a long silence (``--fill-gaps``).

    Positions are 48 kHz samples of the source's content (``source_*``) and of the master
    (``master_at``, where ``source_end`` landed: the join)."""

    source_start: int
    source_end: int
    removed: int
    master_at: int
    source_start_s: float
    source_end_s: float
    removed_s: float
    master_at_s: float
    pause_s: float
    """The silence's length before it was shortened."""


def source_to_master(gaps: tuple[Gap, ...], source: int) -> int:
    """A source (48 kHz content) sample's position in the master: ``source`` less every
    span removed before it. A sample inside a removed span maps to that span's join."""
    removed = 0
    for gap in gaps:
        if source < gap.source_start:
            break
        if source < gap.source_end:
            return gap.master_at
        removed += gap.removed
    return source - removed


def master_to_source(gaps: tuple[Gap, ...], master: int) -> int:
    """A master sample's position in the source's content (the inverse of
    :func:`source_to_master`): ``master`` plus every span removed at or before it."""
    return master + sum(g.removed for g in gaps if g.master_at <= master)


@dataclass(frozen=True, slots=True)
class ManifestSettings:
    """``settings``: every option prep used."""

    name: str
    kind: str
    channels: str
    target_lufs: float
    true_peak_dbtp: float
    preroll_ms: int
    click: bool
    max_seconds: float
    segment_min_s: float
    segment_max_s: float
    bit_depth: int
    sample_rate: int
    """The rate every sample position of the manifest counts at."""
    limiter: ManifestLimiter
    silence: ManifestSilence
    compress: ManifestCompress | None = None
    """``--compress``; None: not asked (or a manifest from before issue 17)."""
    fill_gaps: ManifestFillGaps | None = None
    """``--fill-gaps``; None: not asked."""
    fade_tails_ms: int | None = None
    """``--fade-tails``; None: not asked."""
    cut_at_pace_change: bool = False
    """``--cut-at-pace-change``; false when not asked (or in a manifest from before it)."""


@dataclass(frozen=True, slots=True)
class ManifestMaster:
    """``master``: the whole narration at the same gain, for the editor's locked track."""

    file: str
    """A file name in the manifest's folder."""
    samples: int
    duration_s: float
    channels: int
    gain_db: float
    integrated_lufs: float | None
    true_peak_dbtp: float | None
    measured_as: str
    limiter_max_reduction_db: float
    limited_s: float
    limited_share: float | None = None
    """Share of the programme limited by over 1 dB (None: before issue 11)."""
    heavy_limiting: bool | None = None
    loudest_passage: ManifestPassage | None = None


@dataclass(frozen=True, slots=True)
class Cut:
    """``segments[].cut_in`` / ``cut_out``: where the segment was cut out of the master."""

    position: int
    """Master sample."""
    position_s: float
    kind: str
    pause_s: float | None


@dataclass(frozen=True, slots=True)
class Segment:
    """``segments[]``: one conditioning segment file."""

    index: int
    """1-based; the number a generated clip's name starts with (``003_...``)."""
    file: str
    """A file name in the manifest's folder."""
    samples: int
    duration_s: float
    channels: int
    source_in: int
    """Master sample where the segment's sound begins (segment sample ``preroll_end``)."""
    source_out: int
    """Master sample after the segment's last one."""
    source_in_s: float
    source_out_s: float
    click_start: int | None
    click_end: int | None
    preroll_start: int
    preroll_end: int
    """Sample in the segment file where its sound begins."""
    integrated_lufs: float | None
    true_peak_dbtp: float | None
    measured_as: str
    cut_in: Cut
    cut_out: Cut


@dataclass(frozen=True, slots=True)
class Manifest:
    """A whole ``manifest.json``, checked."""

    path: Path
    """The manifest file, as it was named."""
    source: ManifestSource
    settings: ManifestSettings
    master: ManifestMaster
    segments: tuple[Segment, ...]
    warnings: tuple[str, ...]
    gaps: tuple[Gap, ...] = ()
    """The time map from the source's content to the master (``--fill-gaps``); empty when
    nothing was removed, and in manifests from before issue 17."""

    def master_position(self, source: int) -> int:
        """:func:`source_to_master` with this manifest's ``gaps``."""
        return source_to_master(self.gaps, source)

    def source_position(self, master: int) -> int:
        """:func:`master_to_source` with this manifest's ``gaps``."""
        return master_to_source(self.gaps, master)

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def sample_rate(self) -> int:
        return self.settings.sample_rate

    @property
    def master_path(self) -> Path:
        """The master narration file (beside the manifest)."""
        return self.folder / self.master.file

    def segment_path(self, segment: Segment) -> Path:
        return self.folder / segment.file

    def to_json(self) -> dict[str, Any]:
        """The document as prep writes it (keys this schema does not know are dropped)."""
        fields = _to_json(self)
        del fields["path"]
        return {"schema": SCHEMA, **fields}

    def missing_files(self) -> list[tuple[str, Path]]:
        """``(field, path)`` of each file the manifest names that is not a file beside it."""
        named = [("master.file", self.master_path)] + [
            (f"segments[{i}].file", self.segment_path(s)) for i, s in enumerate(self.segments)
        ]
        return [(at, p) for at, p in named if not p.is_file()]

    def check_files(self) -> None:
        """Raise :class:`ManifestError` naming the first file the manifest lists that is gone."""
        missing = self.missing_files()
        if missing:
            at, p = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ManifestError(
                f"{at}: {p.name} is not in the manifest's folder {self.folder}{more}", self.path
            )


def section_json(section: object) -> dict[str, Any]:
    """A section of the manifest (one of this module's dataclasses) as prep writes it."""
    out = _to_json(section)
    if not isinstance(out, dict):
        raise TypeError(f"not a manifest section: {section!r}")
    return out


def _to_json(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {name: _to_json(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


# ---------------------------------------------------------------- writing


def seconds(samples: int, rate: int) -> float:
    """A sample position or count as the ``*_s`` fields give it: seconds to 1 us."""
    return round(samples / rate, 6)


def rounded(value: float | None, digits: int) -> float | None:
    """A measured figure as written: ``digits`` decimals, or null when not finite (a level
    of digital silence is -inf, which JSON cannot carry)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def settings_from_json(obj: dict[str, Any]) -> ManifestSettings:
    """``settings`` from the dict prep keeps them in (keys as written)."""
    nested = ("limiter", "silence", "compress", "fill_gaps")
    flat = {k: v for k, v in obj.items() if k not in nested}
    compress, fill = obj.get("compress"), obj.get("fill_gaps")
    return ManifestSettings(
        **flat,
        limiter=ManifestLimiter(**obj["limiter"]),
        silence=ManifestSilence(**obj["silence"]),
        compress=ManifestCompress(**compress) if compress is not None else None,
        fill_gaps=ManifestFillGaps(**fill) if fill is not None else None,
    )


def dumps_manifest(manifest: Manifest) -> bytes:
    """The file's bytes: indented JSON, ASCII (other characters escaped), no NaN."""
    return (json.dumps(manifest.to_json(), indent=2, allow_nan=False) + "\n").encode("utf-8")


def write_manifest(manifest: Manifest, *, replace: bool, guard: InputGuard | None = None) -> None:
    """Write ``manifest`` to ``manifest.path`` atomically (it appears whole or not at all)."""
    atomic_write_bytes(manifest.path, dumps_manifest(manifest), replace=replace, guard=guard)


# ---------------------------------------------------------------- reading


def load_manifest(path: Path | str) -> Manifest:
    """Read and check a ``prep-audio`` manifest; :class:`ManifestError` names what is wrong."""
    path = Path(path)
    return parse_manifest(load_json(path, _KIND), path)


def parse_manifest(data: object, path: Path | str) -> Manifest:
    """Check an already parsed document (``path`` names it in errors and locates its files).

    Numbers must be Python ``int`` / finite ``float``, as :func:`json.loads` gives them.
    """
    path = Path(path)
    reject_bad_numbers(data, ManifestError, path)
    return _Reader(path).manifest(data)


def _too_big(size: int) -> str:
    return (
        f"{size} bytes is larger than any manifest ({MAX_BYTES // (1024 * 1024)} MiB at most): "
        "not a prep-audio manifest"
    )


_KIND: Final = DocumentKind(
    error=ManifestError,
    name="manifest",
    not_one="not a prep-audio manifest",
    folder="is a folder, not a manifest file",
    max_bytes=MAX_BYTES,
    too_big=_too_big,
    too_deep="not a prep-audio manifest: nested too deeply to read (prep writes 4 levels)",
)

_TEXT = "a non-empty string"

# Keys prep-audio writes since issue 11: a manifest written before lacks them (it reads as
# before); when present they are checked like every other key.
_SINCE_ISSUE_11: Final = frozenset(
    {"measured_as", "left_right", "limited_share", "heavy_limiting", "loudest_passage"}
)


def _has(obj: dict[str, object], key: str) -> bool:
    """A key of :data:`_SINCE_ISSUE_11` is in this section."""
    return key in _SINCE_ISSUE_11 and key in obj


class _Reader(Fields):
    """Reads one document; every check names its field's JSON path."""

    def __init__(self, path: Path) -> None:
        super().__init__(ManifestError, path, writer="prep-audio")
        self.path = path

    # ------------------------------------------------------------ fields

    def file_name(self, obj: dict[str, object], key: str, where: str) -> str:
        """A plain file name in the manifest's folder: no path leads anywhere else."""
        value, at = self.field(obj, key, where)
        if not isinstance(value, str):
            self.fail(at, f"must be a file name (got {got(value)})")
        native = Path(value)
        if (
            not value
            or value in (".", "..")
            or any(c in value for c in "/\\\x00")
            or native.anchor  # on Windows, "C:x.wav" is on another drive
            or len(native.parts) != 1
        ):
            self.fail(
                at,
                "must be a plain file name in the manifest's folder, without a folder, "
                f"'..' or a drive (got {got(value)})",
            )
        return value

    # ------------------------------------------------------------ sections

    def manifest(self, data: object) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError(
                f'not a prep-audio manifest (expected a JSON object with "schema": '
                f'"{SCHEMA}", got {got(data)})',
                self.path,
            )
        schema = data.get("schema")
        if schema != SCHEMA:
            family = SCHEMA.rsplit("/", 1)[0] + "/"
            if isinstance(schema, str) and schema.startswith(family):
                self.fail("schema", f"{got(schema)} is a version this handoff does not read "
                                    f'(it reads "{SCHEMA}")')  # fmt: skip
            raise ManifestError(
                f'not a prep-audio manifest (expected "schema": "{SCHEMA}", got '
                f"{got(schema) if 'schema' in data else 'none'})",
                self.path,
            )
        source = self.source(*self.child(data, "source", ""))
        settings = self.settings(*self.child(data, "settings", ""))
        master = self.master(*self.child(data, "master", ""), settings.sample_rate)
        segments = self.items(
            data, "segments", "", lambda v, at: self.segment(v, at, master.samples)
        )
        if not segments:
            self.fail("segments", "must list at least one segment (got an empty array)")
        seen: dict[int, int] = {}
        for i, seg in enumerate(segments):
            if seg.index in seen:
                self.fail(
                    f"segments[{i}].index",
                    f"{seg.index} is also the index of segments[{seen[seg.index]}]: "
                    "each segment has its own",
                )
            seen[seg.index] = i
        return Manifest(
            path=self.path,
            source=source,
            settings=settings,
            master=master,
            segments=segments,
            warnings=self.items(data, "warnings", "", self.warning),
            gaps=self.gaps(data, master.samples) if "gaps" in data else (),
        )

    def gaps(self, data: dict[str, object], master_samples: int) -> tuple[Gap, ...]:
        """``gaps``: in order, apart, each ``removed`` its span's length and each
        ``master_at`` its ``source_start`` less what the spans before it removed."""
        n = "a whole number of samples"
        removed_before = 0
        last_end = 0

        def one(value: object, at: str) -> Gap:
            nonlocal removed_before, last_end
            obj = self.obj(value, at)
            start = self.integer(obj, "source_start", at, last_end, None, n,
                                 lo_name="the previous gap's source_end")  # fmt: skip
            end = self.integer(obj, "source_end", at, start + 1, None, n)
            removed = self.integer(obj, "removed", at, end - start, end - start, n,
                                   lo_name="source_end - source_start",
                                   hi_name="source_end - source_start")  # fmt: skip
            master_at = self.integer(obj, "master_at", at, start - removed_before,
                                     start - removed_before, n,
                                     lo_name="source_start less the gaps before",
                                     hi_name="source_start less the gaps before")  # fmt: skip
            if master_at > master_samples:
                self.fail(f"{at}.master_at", f"is past master.samples ({master_samples})")
            removed_before += removed
            last_end = end
            return Gap(
                source_start=start,
                source_end=end,
                removed=removed,
                master_at=master_at,
                source_start_s=self.number(obj, "source_start_s", at, non_negative=True),
                source_end_s=self.number(obj, "source_end_s", at, non_negative=True),
                removed_s=self.number(obj, "removed_s", at, non_negative=True),
                master_at_s=self.number(obj, "master_at_s", at, non_negative=True),
                pause_s=self.number(obj, "pause_s", at, non_negative=True),
            )

        return self.items(data, "gaps", "", one)

    def source(self, obj: dict[str, object], at: str) -> ManifestSource:
        sha = self.string(obj, "sha256", at, _TEXT)
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            self.fail(f"{at}.sha256", f"must be 64 lower-case hex digits (got {got(sha)})")
        return ManifestSource(
            file=self.string(obj, "file", at, _TEXT),
            sha256=sha,
            sample_rate=self.integer(obj, "sample_rate", at, 1, None, "a rate in Hz"),
            channels=self.integer(obj, "channels", at, 1, None),
            samples=self.integer(obj, "samples", at, 0, None),
            duration_s=self.number(obj, "duration_s", at, non_negative=True),
            integrated_lufs=self.opt_number(obj, "integrated_lufs", at),
            true_peak_dbtp=self.opt_number(obj, "true_peak_dbtp", at),
            measured_as=self.string(obj, "measured_as", at, _TEXT) if _has(obj, "measured_as")
            else None,
            left_right=self.left_right(*self.child(obj, "left_right", at))
            if _has(obj, "left_right") and obj["left_right"] is not None
            else None,
        )  # fmt: skip

    def left_right(self, obj: dict[str, object], at: str) -> ManifestLeftRight:
        return ManifestLeftRight(
            verdict=self.choice(obj, "verdict", at, ("same", "one-sided", "different")),
            correlation=self.opt_number(obj, "correlation", at),
            level_difference_db=self.opt_number(obj, "level_difference_db", at),
            level_swing_db=self.number(obj, "level_swing_db", at, non_negative=True),
        )

    def settings(self, obj: dict[str, object], at: str) -> ManifestSettings:
        preroll, preroll_at = self.field(obj, "preroll_ms", at)
        # A whole number of milliseconds; prep accepts 150.0 for 150 and writes it as given.
        if (
            isinstance(preroll, bool)
            or not isinstance(preroll, int | float)
            or preroll != int(preroll)
            or not 0 <= preroll <= 1000
        ):
            self.fail(preroll_at, f"must be a whole number from 0 to 1000 (got {got(preroll)})")
        segment_min = self.number(obj, "segment_min_s", at, positive=True)
        segment_max = self.number(obj, "segment_max_s", at, positive=True)
        if segment_max < segment_min:
            self.fail(
                f"{at}.segment_max_s",
                f"must not be less than segment_min_s ({segment_min:g}) (got {segment_max:g})",
            )
        lo, hi = SAMPLE_RATES
        return ManifestSettings(
            name=self.string(obj, "name", at, _TEXT),
            kind=self.choice(obj, "kind", at, ("voice", "music")),
            channels=self.choice(obj, "channels", at, ("dual-mono", "mono", "stereo")),
            target_lufs=self.number(obj, "target_lufs", at),
            true_peak_dbtp=self.number(obj, "true_peak_dbtp", at),
            preroll_ms=int(preroll),
            click=self.boolean(obj, "click", at),
            max_seconds=self.number(obj, "max_seconds", at, positive=True),
            segment_min_s=segment_min,
            segment_max_s=segment_max,
            bit_depth=self.choice_int(obj, "bit_depth", at, (16, 24)),
            sample_rate=self.integer(obj, "sample_rate", at, lo, hi, "a sample rate in Hz"),
            limiter=self.limiter(*self.child(obj, "limiter", at)),
            silence=self.silence(*self.child(obj, "silence", at)),
            compress=self.compress(*self.child(obj, "compress", at))
            if obj.get("compress") is not None
            else None,
            fill_gaps=self.fill_gaps(*self.child(obj, "fill_gaps", at))
            if obj.get("fill_gaps") is not None
            else None,
            fade_tails_ms=self.integer(obj, "fade_tails_ms", at, 1, 500, "whole milliseconds")
            if obj.get("fade_tails_ms") is not None
            else None,
            cut_at_pace_change=self.boolean(obj, "cut_at_pace_change", at)
            if "cut_at_pace_change" in obj
            else False,
        )

    def compress(self, obj: dict[str, object], at: str) -> ManifestCompress:
        ratio = self.number(obj, "ratio", at, positive=True)
        if not 1.0 < ratio <= 4.0:
            self.fail(f"{at}.ratio", f"must be over 1 and at most 4 (got {got(ratio)})")
        return ManifestCompress(
            ratio=ratio,
            threshold_dbfs=self.number(obj, "threshold_dbfs", at),
            knee_db=self.number(obj, "knee_db", at, non_negative=True),
            rms_ms=self.number(obj, "rms_ms", at, positive=True),
            attack_ms=self.number(obj, "attack_ms", at, positive=True),
            release_ms=self.number(obj, "release_ms", at, positive=True),
            max_reduction_db=self.number(obj, "max_reduction_db", at, non_negative=True),
        )

    def fill_gaps(self, obj: dict[str, object], at: str) -> ManifestFillGaps:
        return ManifestFillGaps(
            max_gap_s=self.number(obj, "max_gap_s", at, positive=True),
            crossfade_ms=self.number(obj, "crossfade_ms", at, non_negative=True),
        )

    def choice_int(
        self, obj: dict[str, object], key: str, where: str, choices: tuple[int, ...]
    ) -> int:
        value, at = self.field(obj, key, where)
        if isinstance(value, bool) or not isinstance(value, int) or value not in choices:
            shown = " or ".join(map(str, choices))
            self.fail(at, f"must be {shown} (got {got(value)})")
        return value

    def limiter(self, obj: dict[str, object], at: str) -> ManifestLimiter:
        return ManifestLimiter(
            ceiling_dbtp=self.number(obj, "ceiling_dbtp", at),
            attack_ms=self.number(obj, "attack_ms", at, non_negative=True),
            hold_ms=self.number(obj, "hold_ms", at, non_negative=True),
            release_db_per_s=self.number(obj, "release_db_per_s", at, positive=True),
            oversample=self.integer(obj, "oversample", at, 1, 64),
        )

    def silence(self, obj: dict[str, object], at: str) -> ManifestSilence:
        return ManifestSilence(
            threshold_dbfs=self.number(obj, "threshold_dbfs", at),
            real_pause_s=self.number(obj, "real_pause_s", at, non_negative=True),
            short_pause_s=self.number(obj, "short_pause_s", at, non_negative=True),
            lead_in_s=self.number(obj, "lead_in_s", at, non_negative=True),
            tail_s=self.number(obj, "tail_s", at, non_negative=True),
        )

    def master(self, obj: dict[str, object], at: str, sample_rate: int) -> ManifestMaster:
        file = self.file_name(obj, "file", at)
        longest = sample_rate * _MAX_MASTER_SECONDS
        samples = self.integer(
            obj, "samples", at, 1, longest, "a whole number of samples", hi_name="24 hours"
        )
        return ManifestMaster(
            file=file,
            samples=samples,
            duration_s=self.number(obj, "duration_s", at, non_negative=True),
            channels=self.integer(obj, "channels", at, 1, 2),
            gain_db=self.number(obj, "gain_db", at),
            integrated_lufs=self.opt_number(obj, "integrated_lufs", at),
            true_peak_dbtp=self.opt_number(obj, "true_peak_dbtp", at),
            measured_as=self.string(obj, "measured_as", at, _TEXT),
            limiter_max_reduction_db=self.number(obj, "limiter_max_reduction_db", at),
            limited_s=self.number(obj, "limited_s", at, non_negative=True),
            limited_share=self.number(obj, "limited_share", at, non_negative=True)
            if _has(obj, "limited_share")
            else None,
            heavy_limiting=self.boolean(obj, "heavy_limiting", at)
            if _has(obj, "heavy_limiting")
            else None,
            loudest_passage=self.passage(*self.child(obj, "loudest_passage", at), samples)
            if _has(obj, "loudest_passage") and obj["loudest_passage"] is not None
            else None,
        )

    def passage(self, obj: dict[str, object], at: str, master_samples: int) -> ManifestPassage:
        n = "a whole number of samples"
        start = self.integer(obj, "start", at, 0, master_samples, n, hi_name="master.samples")
        return ManifestPassage(
            start=start,
            end=self.integer(obj, "end", at, start, master_samples, n, lo_name="start",
                             hi_name="master.samples"),
            start_s=self.number(obj, "start_s", at, non_negative=True),
            end_s=self.number(obj, "end_s", at, non_negative=True),
            max_reduction_db=self.number(obj, "max_reduction_db", at, non_negative=True),
            limited_s=self.number(obj, "limited_s", at, non_negative=True),
        )  # fmt: skip

    def segment(self, value: object, at: str, master_samples: int) -> Segment:
        obj = self.obj(value, at)
        n = "a whole number of samples"
        index = self.integer(obj, "index", at, 1, None, "a whole number")
        file = self.file_name(obj, "file", at)
        samples = self.integer(obj, "samples", at, 1, None, n)
        duration_s = self.number(obj, "duration_s", at, non_negative=True)
        channels = self.integer(obj, "channels", at, 1, 2)
        source_in = self.integer(obj, "source_in", at, 0, master_samples, n,
                                 hi_name="master.samples")  # fmt: skip
        source_out = self.integer(obj, "source_out", at, source_in, master_samples, n,
                                  lo_name="source_in", hi_name="master.samples")  # fmt: skip
        source_in_s = self.number(obj, "source_in_s", at, non_negative=True)
        source_out_s = self.number(obj, "source_out_s", at, non_negative=True)
        preroll_start = self.integer(obj, "preroll_start", at, 0, samples, n, hi_name="samples")
        preroll_end = self.integer(obj, "preroll_end", at, preroll_start, samples, n,
                                   lo_name="preroll_start", hi_name="samples")  # fmt: skip
        # The click sits before the pre-roll's silence: [click][silence][sound].
        click_start = self.opt_integer(obj, "click_start", at, 0, preroll_start, n,
                                       hi_name="preroll_start")  # fmt: skip
        click_end = self.opt_integer(obj, "click_end", at, click_start or 0, preroll_start, n,
                                     hi_name="preroll_start")  # fmt: skip
        if (click_start is None) != (click_end is None):
            self.fail(f"{at}.click_end", "click_start and click_end are both null or both set")
        return Segment(
            index=index,
            file=file,
            samples=samples,
            duration_s=duration_s,
            channels=channels,
            source_in=source_in,
            source_out=source_out,
            source_in_s=source_in_s,
            source_out_s=source_out_s,
            click_start=click_start,
            click_end=click_end,
            preroll_start=preroll_start,
            preroll_end=preroll_end,
            integrated_lufs=self.opt_number(obj, "integrated_lufs", at),
            true_peak_dbtp=self.opt_number(obj, "true_peak_dbtp", at),
            measured_as=self.string(obj, "measured_as", at, _TEXT),
            cut_in=self.cut(*self.child(obj, "cut_in", at), master_samples),
            cut_out=self.cut(*self.child(obj, "cut_out", at), master_samples),
        )

    def cut(self, obj: dict[str, object], at: str, master_samples: int) -> Cut:
        return Cut(
            position=self.integer(obj, "position", at, 0, master_samples,
                                  "a whole number of samples", hi_name="master.samples"),
            position_s=self.number(obj, "position_s", at, non_negative=True),
            kind=self.choice(obj, "kind", at, CUT_KINDS),
            pause_s=self.opt_number(obj, "pause_s", at),
        )  # fmt: skip

    def warning(self, value: object, at: str) -> str:
        if not isinstance(value, str):
            self.fail(at, f"must be a string (got {got(value)})")
        return value
