"""``handoff export``: editor-ready files, planned, encoded and checked in a batch."""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from handoff.cli.common import (
    OVERWRITE_HELP,
    clear_parts,
    errors,
    flagged,
    flags,
    interrupted,
    media,
    say,
    write_json,
)
from handoff.export.decide import stream_decisions
from handoff.export.plan import (
    ExportOptions,
    check_rate_choice,
    export_settings,
    parse_crop,
    parse_fps,
)
from handoff.export.run import (
    ExportJob,
    ExportResult,
    default_jobs,
    exit_code,
    export_batch,
    plan_jobs,
)
from handoff.validate.spec import load_spec


class _ProgressLine:
    """One status line on a terminal: overall count, then each running file's percent."""

    def __init__(self, jobs: Sequence[ExportJob], enabled: bool) -> None:
        self.names = {j.index: j.source.name for j in jobs}
        self.total = len(jobs)
        self.finished = 0
        self.running: dict[int, float] = {}
        self.enabled = enabled
        self.width = shutil.get_terminal_size((100, 20)).columns - 1

    def _draw(self) -> None:
        if not self.enabled:
            return
        filled = round(20 * self.finished / max(self.total, 1))
        line = f"[{'#' * filled}{'.' * (20 - filled)}] {self.finished}/{self.total}"
        for index, fraction in sorted(self.running.items()):
            line += f"  {self.names[index]} {fraction * 100:3.0f}%"
        click.echo("\r" + line[: self.width].ljust(self.width), nl=False, err=True)

    def progress(self, event: tuple[int, int, int]) -> None:
        index, done, total = event
        self.running[index] = done / total if total else 0.0
        self._draw()

    def result(self, job: ExportJob, result: ExportResult) -> None:
        self.running.pop(job.index, None)
        self.finished += 1
        if self.enabled:
            click.echo("\r" + " " * self.width + "\r", nl=False, err=True)
        say(render_export_result(result))
        self._draw()

    def close(self) -> None:
        if self.enabled:
            click.echo("\r" + " " * self.width + "\r", nl=False, err=True)


def render_export_result(r: ExportResult) -> str:
    head = {
        "done": "done   ",
        "skipped": "skipped",
        "failed": "FAILED ",
        "error": "ERROR  ",
        "planned": "plan   ",
    }
    target = f" -> {r.dest}" if r.dest else ""
    lines = [
        f"{head[r.status]} {r.source}{target}" + (f"  ({r.seconds:.1f} s)" if r.seconds else "")
    ]
    if r.error:
        lines.append(f"        {flags(r.error)}")
    if r.plan is not None:
        lines += [f"        {line}" for line in stream_decisions(flagged(r.plan))]
    lines += [f"        - {flags(n)}" for n in r.notes]
    if r.command:
        lines.append("        equivalent ffmpeg command:")
        lines.append("        " + " ".join(shlex.quote(a) for a in r.command))
    return "\n".join(lines)


@click.command("export")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--preset",
    "preset",
    required=True,
    metavar="NAME|FILE",
    help="A delivery spec with export settings: h264-review, prores-master (422 HQ), "
    "prores-proxy, prores-lt, prores-422, prores-4444, or your own TOML.",
)
@click.option(
    "--fps",
    "fps_text",
    default=None,
    metavar="RATE|source",
    help="Output frame rate: 23.976, 24, 25, 29.97, 30, 50, 59.94 or 60, as long as the "
    "preset accepts it (the built-in presets: 23.976, 24, 29.97, 30). 'source' keeps a "
    "source already at an accepted rate and takes a VFR source to the nearest one. "
    "Default: the preset's [export] fps if it sets one, else source.",
)
@click.option(
    "--rate-conversion",
    type=click.Choice(["drop", "retime"]),
    help="For 25/50 fps sources going to a rate that does not divide them: drop (keep the "
    "duration, drop or repeat frames) or retime (keep every frame; picture and sound "
    "stretch together).",
)
@click.option(
    "--crop",
    "crop_text",
    default="auto",
    show_default=True,
    metavar="WxH|auto|none",
    help="Centre crop. auto turns LTX-2's 1920x1088 into 1920x1080 and odd sizes even.",
)
@click.option(
    "--add-silence",
    is_flag=True,
    help="Give a source without audio a silent track (without it, such a source fails a "
    "preset that requires sound).",
)
@click.option(
    "--audio-stream",
    type=click.IntRange(min=0),
    default=None,
    metavar="INDEX",
    help="The source's audio stream to carry, by its index in 'handoff probe' (audio #N). "
    "Default: the first. The report names every stream left out.",
)
@click.option(
    "--allow-truncated",
    is_flag=True,
    help="Export what an incomplete (cut short) source holds; without it such a source is refused.",
)
@click.option(
    "--reencode",
    is_flag=True,
    help="Encode every stream, even one that already meets the preset and would otherwise "
    "be copied as it is (or only have its colour tags rewritten). --dry-run shows, per "
    "stream, which it would be and why.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("handoff-export"),
    show_default=True,
    help="Folder for the outputs (names keep the input's stem).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Files in parallel processes (default: the number of cores).",
)
@click.option(
    "--engine",
    type=click.Choice(["pyav", "ffmpeg"]),
    default="pyav",
    show_default=True,
    help="pyav encodes in-process; ffmpeg runs the ffmpeg CLI: $HANDOFF_FFMPEG if set, else "
    "imageio-ffmpeg's binary, else the ffmpeg on PATH -- FFmpeg 6.0 or newer (older ones "
    "are refused, naming their version). The report says which binary ran.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print each plan -- for picture and sound, copy, retag or encode and why -- and "
    "its ffmpeg command; write nothing.",
)
@click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON report (docs/reference/json.md)."
)
def export_cmd(
    inputs: Sequence[Path],
    preset: str,
    fps_text: str,
    rate_conversion: str | None,
    crop_text: str,
    add_silence: bool,
    audio_stream: int | None,
    allow_truncated: bool,
    reencode: bool,
    out_dir: Path,
    jobs: int | None,
    engine: str,
    dry_run: bool,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write editor-ready files: CFR, 48 kHz, 2-second GOPs, sound aligned to the sample.

    Each INPUT (folders expand to the media inside) is probed, planned and encoded to
    a temporary file beside its destination, checked with the same rules as
    'handoff validate OUTPUT --spec PRESET' (and its sound's length to the sample),
    and only then renamed into place; a source's streams that are not carried (a second
    audio stream, timecode, subtitles) are named in the report. A failing input is
    reported and the others go on; an existing output is skipped unless --overwrite;
    inputs are never written over.
    A folder inside an input folder that holds outputs (this run's --out, or a folder
    an earlier run wrote into) is not read as input.

    \b
    Examples:
      handoff export renders/ --preset h264-review --fps 24
      handoff export clip.mp4 --preset prores-master --out masters/
      handoff export api_clips/ --preset h264-review --fps 24 --rate-conversion retime
      handoff export clip.mp4 --preset h264-review --dry-run

    Exit codes: 0 every input exported (or skipped as existing); 1 any input failed;
    2 any input could not be read (or is incomplete), or the command was used wrongly.
    """
    with errors():
        spec = load_spec(preset)
        settings = export_settings(spec)
        options = ExportOptions(
            fps=None if fps_text is None else parse_fps(fps_text),
            rate_conversion=rate_conversion,  # type: ignore[arg-type]
            crop=parse_crop(crop_text),
            add_silence=add_silence,
            audio_stream=audio_stream,
            out_dir=out_dir,
            overwrite=overwrite,
            allow_truncated=allow_truncated,
            reencode=reencode,
        )
        check_rate_choice(spec, settings, options.fps)
        sources = media(inputs, outputs=[out_dir])
        if not dry_run:
            clear_parts([out_dir])
        planned, refused = plan_jobs(
            sources,
            preset,
            options,
            engine,  # type: ignore[arg-type]
            dry_run=dry_run,
        )
    workers = jobs or default_jobs()
    display = _ProgressLine(planned, enabled=not as_json and sys.stderr.isatty() and not dry_run)
    for r in refused:
        if not as_json:
            say(render_export_result(r))
    try:
        results = export_batch(
            planned,
            1 if dry_run else workers,
            on_progress=display.progress,
            on_result=None if as_json else display.result,
        )
    except KeyboardInterrupt as exc:
        display.close()
        interrupted(exc)
    display.close()
    everything = refused + results
    statuses = ("done", "skipped", "failed", "error", "planned")
    counts = {s: sum(r.status == s for r in everything) for s in statuses}
    code = exit_code(everything)
    if as_json:
        write_json(
            {
                "preset": spec.name,
                "engine": engine,
                "summary": {"inputs": len(everything), **counts},
                "exit_code": code,
                "files": [r.to_json() for r in everything],
            }
        )
    else:
        parts = [f"{n} {s}" for s, n in counts.items() if n]
        click.echo(f"\n{len(everything)} input(s) with '{spec.name}': " + ", ".join(parts))
    sys.exit(code)
