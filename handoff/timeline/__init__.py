"""Editor timelines: one OTIO model (:mod:`.model`), one writer per format.

``render(timeline, fmt)`` returns the bytes of a file in one of :data:`FORMATS`.
``Manifest`` and ``load_manifest`` are :mod:`handoff.files.manifest`'s, re-exported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import opentimelineio as otio

from handoff.errors import Option, Text, UsageError
from handoff.files.manifest import Manifest, load_manifest
from handoff.timeline.model import (
    SequenceSettings,
    Source,
    TimelineBuild,
    build_timeline,
    source_from_info,
)

__all__ = [
    "FCPXML_VERSIONS",
    "FORMATS",
    "Format",
    "Manifest",
    "SequenceSettings",
    "Source",
    "TimelineBuild",
    "build_timeline",
    "check_relative",
    "load_manifest",
    "render",
    "source_from_info",
]

# 1.9 for Resolve 18 before 18.5 and older Final Cut: nothing handoff writes changed
# between the 1.9, 1.10 and 1.11 DTDs (the files differ only in their version attribute;
# the tests validate each against its own DTD). Resolve 18.5 reads up to 1.10
# (auto-editor issue #367); 1.11 needs Resolve 19.
FCPXML_VERSIONS = ("1.9", "1.10", "1.11")


@dataclass(frozen=True, slots=True)
class Format:
    name: str
    suffix: str
    """Default file suffix (which also says the editor: NAME.premiere.xml)."""
    editor: str
    arrives_locked: bool
    """Whether the editor opens the master track locked."""
    lock: str
    """How the master track's lock reaches the editor."""
    relative: bool
    """Whether media may be referenced by a path relative to the timeline file."""


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("otio", ".otio", "any OTIO reader", True,
               "A1 locked (metadata.handoff.locked)", True),
        Format("premiere-xml", ".premiere.xml", "Premiere Pro (FCP7 XML)", True,
               "A1 locked", False),
        Format("premiere-otio", ".premiere.otio", "Premiere Pro 2025.6+ (OTIO)", False,
               "A1 lock recorded in metadata.handoff; Premiere documents no OTIO lock key, "
               "so lock A1 after import (or use premiere-xml)", True),
        Format("resolve-otio", ".resolve.otio", "DaVinci Resolve (OTIO)", True,
               "A1 locked (Resolve_OTIO.Locked)", True),
        Format("fcpxml", ".fcpxml", "DaVinci Resolve / Final Cut (FCPXML)", False,
               "FCPXML has no track lock: lock A1 after import", False),
    )
}  # fmt: skip


def check_relative(formats: Iterable[str]) -> None:
    """Refuse ``--relative`` for formats that must name media by absolute URL."""
    absolute_only = [f for f in formats if not FORMATS[f].relative]
    if absolute_only:
        raise UsageError(
            Text(
                Option("relative_to"),
                f": {', '.join(absolute_only)} must name media by absolute URL; use it with "
                + ", ".join(f.name for f in FORMATS.values() if f.relative),
            )
        )


def render(
    timeline: otio.schema.Timeline,
    fmt: str,
    *,
    relative_to: Path | None = None,
    fcpxml_version: str = "1.10",
) -> bytes:
    """The file of format ``fmt`` for the timeline. ``relative_to``: the folder the file
    will be written in, to reference media relative to it (formats that allow it)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown timeline format {fmt!r} (one of: {', '.join(FORMATS)})")
    if relative_to is not None:
        check_relative([fmt])
    if fmt in ("otio", "premiere-otio", "resolve-otio"):
        from handoff.timeline.otio_formats import write_otio

        data: bytes = write_otio(timeline, fmt, relative_to=relative_to)
        return data
    if fmt == "premiere-xml":
        from handoff.timeline.xmeml import write_xmeml

        return write_xmeml(timeline)
    from handoff.timeline.fcpxml import write_fcpxml

    return write_fcpxml(timeline, version=fcpxml_version)
