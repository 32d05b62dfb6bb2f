"""``handoff timeline``: an editor timeline from clips, a prep-audio manifest or a
selects file."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from handoff.cli.common import EXIT_OK, clear_parts, errors, flagged, flags, say
from handoff.errors import UsageError
from handoff.probe.reader import rate_text
from handoff.timeline import FCPXML_VERSIONS, TimelineBuild
from handoff.timeline import FORMATS as TIMELINE_FORMATS
from handoff.timeline.timecode import ndf_timecode, timecode_at


def render_timeline(build: TimelineBuild, written: Sequence[tuple[str, Path]]) -> str:
    """The layout for people (printed through :func:`say`, which escapes what a terminal
    would obey or mangle in a file name). Positions are the timecodes the editor shows
    (from the start timecode); the duration is a length."""
    s = build.summary()
    rate = build.rate

    def _timecode(frame: int) -> str:
        return timecode_at(s["start_frame"] + frame, rate, drop_frame=build.start.drop_frame)

    lines = [
        f"{s['name']}: {rate_text(rate)}, "
        f"{s['width']}x{s['height']}, 48 kHz, "
        f"{ndf_timecode(s['duration_frames'], math.ceil(rate))} ({s['duration_frames']} "
        f"frames)" + (f" from {_timecode(0)}" if s["start_frame"] else ""),
    ]
    if build.master is not None:
        master_tc = build.master.timecode
        lines.append(
            f"  A1 master (locked)  {build.master.name}  from {_timecode(build.master_start)}"
            + ("" if master_tc is None else f"  source timecode {master_tc.label}")
        )
    else:
        lines.append("  A1 the clips' own audio (locked)")
    for c in s["clips"]:
        seg = "" if c["segment"] is None else f"  segment {c['segment']:03d}"
        trim = ""
        if c["trimmed_head"] or c["trimmed_tail"]:
            trim = f"  trimmed head {c['trimmed_head']} / tail {c['trimmed_tail']}"
        tc = "" if c["timecode"] is None else f"  source timecode {c['timecode']}"
        lines.append(
            f"  V1 {c['index']:3d} {_timecode(c['start'])}-{_timecode(c['end'])}"
            f"  {Path(c['path']).name}{seg}{trim}{tc}"
        )
    lines += [f"  ! {flags(w)}" for w in s["warnings"]]
    lines += [f"  note: {flags(n)}" for n in s["notes"]]
    lines += [f"wrote {fmt}: {path}" for fmt, path in written]
    return "\n".join(lines)


def _timeline_json(data: Any) -> str:
    """JSON text that is valid UTF-8 whatever the file names: a byte of a path that is
    not UTF-8 (a lone surrogate, PEP 383) is written as its ``\\udcXX`` escape, which
    Python's json reads back to the same path."""
    text = json.dumps(flagged(data), indent=2, ensure_ascii=False)
    return "".join(f"\\u{ord(ch):04x}" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


@click.command("timeline")
@click.argument("clips", nargs=-1, required=False, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "formats",
    multiple=True,
    required=True,
    type=click.Choice([*TIMELINE_FORMATS, "all"]),
    help="otio, premiere-xml (FCP7 XML), premiere-otio (Premiere 2025.6+), resolve-otio, "
    "fcpxml (Resolve/Final Cut), or all. Repeat for several.",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="prep-audio's manifest.json: each clip starts where its segment starts in the "
    "master narration (its master is used unless --master is given).",
)
@click.option(
    "--master",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Master narration for A1 (locked). Without a manifest the clips go back to back.",
)
@click.option(
    "--selects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A selects file from `handoff sync --selects` (instead of CLIPS): each segment's "
    "pick on V1, moved by its measured sound offset; the alternates on disabled tracks "
    "(FCPXML: in an audition).",
)
@click.option(
    "--out",
    "out_text",
    type=click.Path(),
    help="Output file (one format), or folder (several, or any path ending in '/'). "
    "Default: NAME.<format suffix> in the current folder.",
)
@click.option("--name", help="Sequence name (default: the master's or first input's name).")
@click.option(
    "--size",
    "size_text",
    metavar="WxH",
    help="Sequence frame size, even sides (e.g. 1920x1080). Default: the clips' most "
    "common size; a tie goes to the largest frame.",
)
@click.option(
    "--start-timecode",
    "start_text",
    metavar="HH:MM:SS:FF",
    default="00:00:00:00",
    show_default=True,
    help="Timecode of the sequence's first frame; many editors and facilities start "
    "programmes at 01:00:00:00. HH:MM:SS;FF is drop-frame (29.97 and 59.94 fps only).",
)
@click.option(
    "--relative",
    is_flag=True,
    help="Name media relative to the timeline file (otio, premiere-otio, resolve-otio). "
    "For OTIO tools and moving projects: neither Premiere nor Resolve documents "
    "resolving a relative path, so expect to relink the media there.",
)
@click.option(
    "--fcpxml-version",
    type=click.Choice(list(FCPXML_VERSIONS)),
    default="1.10",
    show_default=True,
    help="1.10 opens in Resolve 18.5+, 1.11 needs Resolve 19+, 1.9 is for older Resolve "
    "and Final Cut.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace timeline files that already exist (never an input: a clip, the master "
    "or the manifest). Without it an existing file is kept and skipped with a note, and "
    "the others are written; exit 0.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the layout and the files as JSON.")
def timeline_cmd(
    clips: Sequence[Path],
    formats: Sequence[str],
    manifest: Path | None,
    master: Path | None,
    selects: Path | None,
    out_text: str | None,
    name: str | None,
    size_text: str | None,
    start_text: str,
    relative: bool,
    fcpxml_version: str,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write an editor timeline: clips on V1, the master narration locked on A1.

    CLIPS are files or folders (expanded to their video files, ordered by their number
    prefix 001_, 002_, ... then by name). With --manifest from prep-audio, each clip
    starts where its segment starts in the master narration, its pre-roll accounted
    for, so picture meets sound; overlaps are trimmed at the segment boundary. A2 holds
    the clips' own audio, disabled, for reference. Without a master, A1 is the clips'
    own audio, locked. All clips must share one frame rate; the sequence takes it
    (23.976 and 29.97 as NTSC), their most common frame size (or --size) and 48 kHz,
    and starts at --start-timecode in every format.

    With a manifest, a clip shorter or longer than its segment file by more than 1 s
    (10 % for segments over 10 s) is warned about ("!" lines; "warnings" in --json): a
    short one leaves narration without its picture, a long one may belong to another
    segment.

    \b
    Examples:
      handoff timeline renders/ --manifest cond/manifest.json --format premiere-xml
      handoff timeline renders/ --manifest cond/manifest.json --format all --out edit/
      handoff timeline a.mov b.mov --master vo.wav --format resolve-otio --out cut.otio
      handoff timeline --selects selects.json --format all --out edit/
      handoff timeline renders/ --manifest cond/manifest.json --format fcpxml \\
          --start-timecode 01:00:00:00 --size 1920x1080

    FCPXML has no track lock, and Premiere documents none for OTIO: after importing
    those, lock A1 in the editor (premiere-xml and resolve-otio arrive locked).
    Every format asked for is written, or none (an existing file is skipped unless
    --overwrite). Exit 0 when written or skipped, 2 when a clip cannot be used, the
    rates differ, the manifest is wrong, or --size or --start-timecode is malformed
    (or names a frame the rate has not).
    """
    from handoff.timeline import FORMATS, SequenceSettings
    from handoff.timeline.model import parse_size
    from handoff.timeline.output import check_outputs, plan_timeline_files, write_timeline_files
    from handoff.timeline.project import timeline_from_paths
    from handoff.timeline.timecode import parse_timecode

    chosen = list(FORMATS) if "all" in formats else list(dict.fromkeys(formats))
    out = None if out_text is None else Path(out_text)
    # Path() drops a trailing separator: keep what it said ("out/23.976/" is a folder).
    out_is_folder = out_text is not None and out_text.endswith(("/", os.sep))
    with errors():
        check_outputs(chosen, out, relative=relative, out_is_folder=out_is_folder)
        if not clips and selects is None:
            raise UsageError("name the clips (files or folders), or give --selects FILE")
        settings = SequenceSettings(
            size=None if size_text is None else parse_size(size_text),
            start=parse_timecode(start_text),
        )
        build = timeline_from_paths(
            clips, manifest_path=manifest, master_path=master, name=name,
            selects_path=selects, settings=settings,
        )  # fmt: skip
        files = plan_timeline_files(
            build, chosen, out, replace=overwrite, relative=relative,
            fcpxml_version=fcpxml_version, out_is_folder=out_is_folder,
        )  # fmt: skip
        clear_parts([p.parent for _, p in files.targets])
        written = write_timeline_files(build, files)
    build = replace(build, notes=(*build.notes, *files.notes))
    if as_json:
        summary = {
            **build.summary(),
            "files": [{"format": f, "path": str(p.resolve())} for f, p in written],
        }
        click.echo(_timeline_json(summary))
    else:
        say(render_timeline(build, written))
    sys.exit(EXIT_OK)
