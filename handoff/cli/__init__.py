"""The ``handoff`` command: thin over the library -- parse, call, render.

Exit codes (stable, documented in docs/reference/cli.md):
  0  everything read and passed
  1  a file failed its spec / a job failed
  2  a file could not be read, or the command was used wrongly
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shlex
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from handoff import __version__
from handoff.analysis import loudness
from handoff.errors import (
    HandoffError,
    OutputExistsError,
    UnmeasurableError,
    UsageError,
    describe,
)
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
    export_batch,
    plan_jobs,
)
from handoff.files.find import MediaItem, find_media
from handoff.files.fsutil import (
    InputGuard,
    atomic_write_bytes,
    clear_stale_parts,
    mark_output_folder,
)
from handoff.files.names import shown
from handoff.jobs.processes import Terminated, raise_on_sigterm
from handoff.prep import (
    Cut,
    PrepOptions,
    PrepPlan,
    PrepResult,
    parse_segment_range,
    prep_audio,
)
from handoff.probe.reader import (
    MediaInfo,
    channels_text,
    error_json,
    probe,
    rate_text,
    ratio_str,
    to_json,
)
from handoff.timeline import FCPXML_VERSIONS, TimelineBuild
from handoff.timeline import FORMATS as TIMELINE_FORMATS
from handoff.timeline.timecode import ndf_timecode, timecode_at
from handoff.validate.check import FileReport, exit_code, validate_file
from handoff.validate.spec import builtin_spec_names, builtin_spec_text, load_spec

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def _die(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"handoff: error: {shown(message)}", err=True)
    sys.exit(code)


def _lines(text: str) -> str:
    """Text for people and XML: a file name's control characters and non-UTF-8 bytes as
    escapes (``\\x07``), line by line, so a terminal neither obeys nor mangles them and
    XML can hold them."""
    return "\n".join(shown(line) for line in text.split("\n"))


def _say(text: str) -> None:
    click.echo(_lines(text))


def _interrupted(exc: KeyboardInterrupt) -> NoReturn:
    # 128 + the signal's number, as shells report a process a signal stopped.
    if isinstance(exc, Terminated):
        _die("terminated: finished outputs are kept; no partial file has a final name", 143)
    _die("interrupted: finished outputs are kept; no partial file has a final name", 130)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Library exceptions become one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except HandoffError as exc:
        _die(str(exc))
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except OSError as exc:
        _die(describe(exc))


def _note(text: str) -> None:
    """A note on stderr: stdout stays the report (and valid JSON with --json)."""
    click.echo(f"handoff: note: {shown(text)}", err=True)


def _media(paths: Sequence[Path], outputs: Sequence[Path] = ()) -> list[MediaItem]:
    """The media files the paths name; a note for each output folder left out
    (docs/reference/cli.md, "Re-runs")."""
    found = find_media(paths, outputs=outputs)
    for line in found.notes():
        _note(line)
    return list(found.items)


def _clear_parts(folders: Sequence[Path]) -> None:
    """Before writing: remove the partial files an earlier run that was killed left in
    the output folders (never one a running writer owns), and say so."""
    removed = clear_stale_parts(folders)
    if removed:
        _note(
            f"removed {len(removed)} partial file(s) left by an earlier run that was stopped: "
            + ", ".join(str(p) for p in removed)
        )


_OVERWRITE_HELP = (
    "Replace outputs that already exist. Without it an existing output is kept and "
    "skipped with a note, and the run still exits 0 (see docs/reference/cli.md, Re-runs)."
)


def _skipped(path: Path) -> str:
    return f"skipped {path}: exists (use --overwrite to replace it)"


def _write_json(data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A file name that is not UTF-8 (its bytes kept as surrogates): escape it, so
        # the output stays valid JSON in UTF-8.
        text = json.dumps(data, indent=2)
    click.echo(text)


class _Handoff(click.Group):
    """The command group, with errors of usage in one line like every other error."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        for stream in (sys.stdout, sys.stderr):
            # File names that are not UTF-8 are printed as the bytes they are, not as a
            # UnicodeEncodeError.
            with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
                stream.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            if exc.ctx is not None:
                where = exc.ctx.command_path
            else:  # the option parser raises without a context: name the command given
                given = sys.argv[1:] if args is None else list(args)
                named = next((a for a in given if a in self.commands), None)
                where = "handoff" + (f" {named}" if named else "")
            _die(f"{exc.format_message().rstrip('.')} (see '{where} --help')", exc.exit_code)
        except click.ClickException as exc:
            _die(exc.format_message(), exc.exit_code)
        except click.Abort as exc:
            cause = exc.__context__
            _interrupted(cause if isinstance(cause, KeyboardInterrupt) else KeyboardInterrupt())
        except KeyboardInterrupt as exc:
            _interrupted(exc)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def entry() -> None:
    """The ``handoff`` console script: SIGTERM unwinds like Ctrl-C, so partial files are
    removed and child encoders stopped before the process exits."""
    raise_on_sigterm()
    main()


@click.group("handoff", cls=_Handoff, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="handoff")
def main() -> None:
    """Carry AI-generated video from the generator to the editor.

    \b
    handoff probe FILE...            what a file is: streams, rates, CFR/VFR, GOPs
    handoff validate PATH... --spec  check files against a delivery spec
    handoff export INPUT... --preset editor-ready ProRes/MOV or H.264/MP4, CFR, 48 kHz
    handoff prep-audio IN --out DIR  narration at -16 LUFS / -3 dBTP, cut into segments
    handoff timeline CLIPS --format  Premiere/Resolve timeline, master narration locked
    handoff specs                    list the built-in delivery specs
    handoff demo OUTDIR              make sample media and run everything on it

    Exit codes: 0 all good, 1 a file failed its spec, 2 a file could not be read
    or the command was used wrongly.
    """


# ---------------------------------------------------------------- probe


def _fmt_s(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f} s"


def render_probe(info: MediaInfo) -> str:
    lines = [
        f"{info.path}",
        f"  container  {info.container}   duration {_fmt_s(info.duration_s)}   "
        f"{info.size_bytes / 1e6:.2f} MB"
        + (
            f"   faststart {'yes' if info.faststart else 'no'}"
            if info.faststart is not None
            else ""
        ),
    ]
    for v in info.videos:
        rate = rate_text(v.fps, v.frame_rate_mode)
        depth = f"{v.bit_depth}-bit " if v.bit_depth else ""
        lines += [
            f"  video #{v.index}   {v.codec} {v.profile or ''}  {v.width}x{v.height}"
            + (
                f" [SAR {ratio_str(v.sample_aspect_ratio)} DAR {ratio_str(v.display_aspect_ratio)}]"
                if v.display_aspect_ratio is not None
                else ""
            )
            + f"  {v.pix_fmt or '?'} {depth}{v.chroma_subsampling or ''}"
            + (f"  rotation {v.rotation}" if v.rotation else ""),
            f"             {v.frame_rate_mode}  {rate}  {v.frames} frames  "
            f"{_fmt_s(v.duration_s)}  start {_fmt_s(v.start_s)}",
            f"             frame interval min/median/max "
            f"{v.min_frame_interval_s * 1000:.2f}/{v.median_frame_interval_s * 1000:.2f}/"
            f"{v.max_frame_interval_s * 1000:.2f} ms"
            + (f"  ({v.irregular_intervals} irregular)" if v.irregular_intervals else ""),
            f"             keyframes {v.keyframes}  GOP max {_fmt_s(v.max_keyframe_interval_s)} "
            f"mean {_fmt_s(v.mean_keyframe_interval_s)}"
            + (
                ""
                if v.all_keyframes_idr is None
                else f"  all IDR {'yes' if v.all_keyframes_idr else 'NO'}"
            )
            + ("  intra-only" if v.intra_only else ""),
            f"             colour primaries {v.color_primaries or '-'}, transfer "
            f"{v.color_transfer or '-'}, matrix {v.color_matrix or '-'}, range "
            f"{v.color_range or '-'}",
        ]
    for a in info.audios:
        rate = f"{a.bit_rate / 1000:.0f} kb/s" if a.bit_rate else "? kb/s"
        depth = f"  {a.bit_depth}-bit" if a.bit_depth else ""
        lines.append(
            f"  audio #{a.index}   {a.codec} {a.profile or ''}  {a.sample_rate} Hz  "
            f"{channels_text(a.channels, a.layout)}{depth}  {rate}  {_fmt_s(a.duration_s)}  "
            f"start {_fmt_s(a.start_s)}"
            + (f"  priming {a.priming_samples} samples" if a.priming_samples else "")
        )
    lines += [f"  {o.type} #{o.index}   {o.codec}" for o in info.others]
    delta = info.av_duration_delta_s
    if delta is not None:
        lines.append(f"  audio - video duration  {delta * 1000:+.1f} ms")
    lines += [f"  ! {w}" for w in info.warnings]
    return "\n".join(lines)


def loudness_json(info: MediaInfo) -> dict[str, Any] | None:
    """Loudness of the first audio stream, measured as is (as FFmpeg's ebur128 would)."""
    if info.audio is None:
        return None
    return dict(loudness.measure_file(info.path, info.audio.index).to_json())


def render_loudness(data: dict[str, Any] | None) -> str:
    if data is None:
        return "  loudness   (no audio)"

    def show(x: float | None, unit: str) -> str:
        return "-inf" if x is None else f"{x:.1f} {unit}"

    lra = data["loudness_range_lu"]
    line = (
        f"  loudness   {show(data['integrated_lufs'], 'LUFS')}  true peak "
        f"{show(data['true_peak_dbtp'], 'dBTP')}  LRA {'-' if lra is None else f'{lra:.1f} LU'}"
        f"  silence head {data['leading_silence_s']:.3f} s, tail "
        f"{data['trailing_silence_s']:.3f} s"
    )
    if data["dual_mono"]:
        line += f"\n             dual-mono: mono content {show(data['mono_content_lufs'], 'LUFS')}"
    return line


@main.command("probe")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list (schema: docs/reference/json.md)."
)
@click.option(
    "--loudness",
    "with_loudness",
    is_flag=True,
    help="Also decode the first audio stream and measure loudness (BS.1770-4), true peak "
    "and edge silence.",
)
def probe_cmd(files: Sequence[Path], as_json: bool, with_loudness: bool) -> None:
    """Describe media files without decoding them.

    For each FILE (folders expand to the media inside): container, duration, every
    stream; for video the exact frame rate, a CFR/VFR verdict from packet timestamps
    with its evidence, keyframe spacing and whether H.264 keyframes are IDR; for audio
    rate, channels, bit rate and duration; and the audio-minus-video duration.

    \b
    Examples:
      handoff probe clip.mp4
      handoff probe --json renders/ > facts.json
      handoff probe --loudness narration.wav
    """
    results: list[dict[str, Any]] = []
    bad = 0
    for item in _media(files):
        # One file's problem -- foreseen or not -- is that file's ERROR; the rest go on.
        if not isinstance(item, Path):
            path, info, error = item.path or Path(), None, describe(item)
        else:
            path, info, error = item, None, None
            try:
                info = probe(path)
            except Exception as exc:
                error = describe(exc)
        if info is None:
            bad += 1
            results.append(error_json(path, error or "unreadable"))
            if not as_json:
                _say(f"{path}\n  ERROR  {error}")
            continue
        item_json = to_json(info)
        text = render_probe(info)
        if with_loudness:
            try:
                measured = loudness_json(info)
            except UnmeasurableError as exc:  # a fact that cannot exist, not a bad file
                item_json["loudness"] = None
                item_json["warnings"].append(f"loudness not measured: {exc.message}")
                text += f"\n  loudness   not measured: {exc.message}"
            except Exception as exc:
                bad += 1
                message = f"cannot measure loudness: {describe(exc)}"
                item_json.update(ok=False, error=message)
                text += f"\n  ERROR  {message}"
            else:
                item_json["loudness"] = measured
                text += "\n" + render_loudness(measured)
        results.append(item_json)
        if not as_json:
            _say(text)
    if as_json:
        _write_json(results)
    sys.exit(EXIT_ERROR if bad else EXIT_OK)


# ---------------------------------------------------------------- validate


def _parse_options(raw: Sequence[str], allow_ntsc: bool) -> dict[str, bool]:
    options: dict[str, bool] = {}
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep:
            value = "true"
        low = value.strip().lower()
        if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            _die(f"--option {item}: the value must be true or false")
        options[name.strip()] = low in ("true", "1", "yes", "on")
    if allow_ntsc:
        options["allow_ntsc"] = True
    return options


def render_report(report: FileReport) -> str:
    head = {"pass": "PASS ", "fail": "FAIL ", "error": "ERROR"}[report.status]
    lines = [f"{head}  {report.path}"]
    if report.error:
        lines.append(f"       {report.error}")
    for f in report.findings:
        mark = "x" if f.severity == "error" else "!"
        lines.append(
            f"       {mark} {f.rule}: expected {f.expected}, got {f.actual}"
            + (f" -- {f.message}" if f.message else "")
        )
    lines += [f"       note: {n}" for n in report.notes]
    return "\n".join(lines)


def junit_xml(reports: Sequence[FileReport], spec_name: str) -> bytes:
    """JUnit XML: one testcase per file, a failure per failed file, an error per unreadable."""
    from lxml import etree

    failures = sum(r.status == "fail" for r in reports)
    errors = sum(r.status == "error" for r in reports)
    suites = etree.Element("testsuites")
    suite = etree.SubElement(
        suites,
        "testsuite",
        name=f"handoff validate --spec {spec_name}",
        tests=str(len(reports)),
        failures=str(failures),
        errors=str(errors),
    )
    for r in reports:
        # XML 1.0 holds no control character and no lone surrogate (a file name's bytes
        # that are not UTF-8): both appear as escapes, as on the terminal.
        case = etree.SubElement(suite, "testcase", classname=spec_name, name=_lines(str(r.path)))
        if r.status == "error":
            el = etree.SubElement(case, "error", message=_lines(r.error or "unreadable"))
            el.text = _lines(r.error or "unreadable")
        elif r.status == "fail":
            failed = [f for f in r.findings if f.severity == "error"]
            message = "; ".join(f"{f.rule}: got {f.actual}" for f in failed)
            el = etree.SubElement(case, "failure", message=_lines(message))
            el.text = _lines(
                "\n".join(
                    f"{f.rule}: expected {f.expected}, got {f.actual} -- {f.message}"
                    for f in failed
                )
            )
        warnings = [f for f in r.findings if f.severity == "warning"]
        if warnings or r.notes:
            out = etree.SubElement(case, "system-out")
            out.text = _lines(
                "\n".join([f"warning {f.rule}: {f.message}" for f in warnings] + list(r.notes))
            )
    return bytes(etree.tostring(suites, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _check_report_path(report: Path, inputs: Sequence[MediaItem]) -> None:
    """A report file (JUnit) must be a file, and never one of the files it reports on."""
    if report.is_dir():
        raise UsageError("--junit names a folder; give a file name such as report.xml", report)
    InputGuard(i for i in inputs if isinstance(i, Path)).check(report)


@main.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--spec",
    "spec_name",
    required=True,
    metavar="NAME|FILE",
    help="A built-in spec (see 'handoff specs') or a TOML spec file.",
)
@click.option(
    "--option",
    "raw_options",
    multiple=True,
    metavar="NAME=BOOL",
    help="Set a spec option, e.g. --option allow_ntsc=false (24 or 30 fps only). "
    "Repeatable; 'handoff specs' lists each spec's options and defaults.",
)
@click.option(
    "--allow-ntsc",
    is_flag=True,
    help="Shorthand for --option allow_ntsc=true (the built-in specs' default; kept for "
    "scripts written when it was not).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON report (docs/reference/json.md)."
)
@click.option(
    "--junit",
    type=click.Path(path_type=Path, readable=False),
    help="Also write a JUnit XML report to this file (for CI); an earlier report there is "
    "replaced.",
)
def validate_cmd(
    paths: Sequence[Path],
    spec_name: str,
    raw_options: Sequence[str],
    allow_ntsc: bool,
    as_json: bool,
    junit: Path | None,
) -> None:
    """Check media files against a delivery spec.

    Folders expand recursively to the media files inside. Each file gets PASS, FAIL
    (with every rule it breaks: expected, actual, why) or ERROR (unreadable). One bad
    file never stops the others.

    \b
    Exit codes: 0 all pass; 1 any file fails; 2 any file is unreadable, or the spec
    or options are wrong.
    \b
    Examples:
      handoff validate renders/ --spec h264-review
      handoff validate narration/*.wav --spec ltx2-audio --json
      handoff validate masters/ --spec prores-master --junit report.xml
      handoff validate out.mp4 --spec ./my-spec.toml
    """
    with _errors():
        spec = load_spec(spec_name)
        options = spec.resolve_options(_parse_options(raw_options, allow_ntsc))
        items = _media(paths)
        if junit is not None:
            _check_report_path(junit, items)
    reports: list[FileReport] = []
    for item in items:
        if isinstance(item, Path):
            report = validate_file(item, spec, options)
        else:
            report = FileReport(item.path or Path(), spec.name, "error", error=describe(item))
        reports.append(report)
        if not as_json:
            _say(render_report(report))
    code = exit_code(reports)
    counts = {s: sum(r.status == s for r in reports) for s in ("pass", "fail", "error")}
    if as_json:
        _write_json(
            {
                "spec": spec.name,
                "options": options,
                "summary": {"files": len(reports), **counts},
                "exit_code": code,
                "files": [r.to_json() for r in reports],
            }
        )
    else:
        click.echo(
            f"\n{len(reports)} file(s) against '{spec.name}': {counts['pass']} pass, "
            f"{counts['fail']} fail, {counts['error']} error"
        )
    if junit is not None:
        with _errors():
            # A report of this run replaces one of an earlier run: it is the point of it.
            atomic_write_bytes(junit, junit_xml(reports, spec.name), replace=True)
    sys.exit(code)


# ---------------------------------------------------------------- export


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
        _say(render_export_result(result))
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
        lines.append(f"        {r.error}")
    lines += [f"        - {n}" for n in r.notes]
    if r.command:
        lines.append("        equivalent ffmpeg command:")
        lines.append("        " + " ".join(shlex.quote(a) for a in r.command))
    return "\n".join(lines)


@main.command("export")
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
    "--dry-run", is_flag=True, help="Print each plan and its ffmpeg command; write nothing."
)
@click.option("--overwrite", is_flag=True, help=_OVERWRITE_HELP)
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
    with _errors():
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
        )
        check_rate_choice(spec, settings, options.fps)
        sources = _media(inputs, outputs=[out_dir])
        if not dry_run:
            _clear_parts([out_dir])
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
            _say(render_export_result(r))
    try:
        results = export_batch(
            planned,
            1 if dry_run else workers,
            on_progress=display.progress,
            on_result=None if as_json else display.result,
        )
    except KeyboardInterrupt as exc:
        display.close()
        _interrupted(exc)
    display.close()
    everything = refused + results
    statuses = ("done", "skipped", "failed", "error", "planned")
    counts = {s: sum(r.status == s for r in everything) for s in statuses}
    code = EXIT_ERROR if counts["error"] else EXIT_FAIL if counts["failed"] else EXIT_OK
    if as_json:
        _write_json(
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


# ---------------------------------------------------------------- prep-audio


def render_prep(result: PrepResult) -> str:
    m, src = result.master, result.source
    source_line = f"  source   {src.integrated_lufs:.2f} LUFS ({src.measured_as})"
    if src.left_right is not None:
        lr = src.left_right
        corr = "-" if lr.correlation is None else f"{lr.correlation:.2f}"
        source_line += f"; L/R {lr.verdict} (correlation {corr})"
    limiter_line = (
        f"  gain {m.gain_db:+.2f} dB, limiter at most {m.limiter_max_reduction_db:.1f} dB"
    )
    if m.loudest_passage is not None:
        limiter_line += (
            f", {m.limited_share:.1%} of the programme over 1 dB, hardest at "
            f"{m.loudest_passage.describe()}"
        )
    lines = [
        f"{src.path}: {src.sample_rate} Hz, {src.channels} ch, "
        f"{src.samples / src.sample_rate:.1f} s",
        source_line,
        limiter_line,
        f"  master   {m.path.name}: {m.samples / 48000:.2f} s, {m.integrated_lufs:.2f} LUFS "
        f"({m.measured_as}), {m.true_peak_dbtp:.2f} dBTP",
    ]
    for seg in result.segments:
        lines.append(
            f"  segment  {seg.path.name}: {seg.samples / 48000:.2f} s, "
            f"{seg.integrated_lufs:.2f} LUFS, {seg.true_peak_dbtp:.2f} dBTP, source "
            f"{seg.source_in / 48000:.2f}-{seg.source_out / 48000:.2f} s"
        )
    lines += [f"  ! {w}" for w in result.warnings]
    lines.append(f"  manifest {result.manifest_path}")
    for report in result.failed:
        lines.append(render_report(report))
    if result.failed:
        lines.append(
            f"{len(result.failed)} of {len(result.checks)} segment(s) do not pass "
            f"'{result.checks[0].spec}' with these targets: the input cannot be conditioned "
            "as asked (files kept for inspection)"
        )
    return "\n".join(lines)


def _cut_text(cut: Cut) -> str:
    at = f"{cut.position / 48000:.2f} s"
    if cut.kind in ("pause", "short-pause"):
        return f"{at} in a {cut.pause_s:.2f} s {cut.kind}"
    if cut.kind == "quietest":
        return f"{at} at the quietest point (no pause)"
    return f"{at} ({cut.kind})"


def render_prep_plan(plan: PrepPlan, out_dir: Path) -> str:
    """``prep-audio --dry-run``: what would be written, and why there."""
    m, src, o = plan.master, plan.source, plan.options
    head = f"pre-roll {o.preroll_ms} ms" + (", click" if o.click else "")
    source_line = (
        f"  source   {src.integrated_lufs:.2f} LUFS ({src.measured_as}), "
        f"{src.true_peak_dbtp:.2f} dBTP"
    )
    if src.left_right is not None:
        lr = src.left_right
        corr = "-" if lr.correlation is None else f"{lr.correlation:.2f}"
        source_line += f"; L/R {lr.verdict} (correlation {corr})"
    lines = [
        f"{src.path}: {src.sample_rate} Hz, {src.channels} ch, "
        f"{src.samples / src.sample_rate:.1f} s",
        source_line,
        f"  gain {m.gain_db:+.2f} dB, limiter ceiling "
        f"{plan.settings['limiter']['ceiling_dbtp']:.2f} dBTP, at most "
        f"{m.limiter_max_reduction_db:.1f} dB off a peak",
        f"  master   {m.path.name}: {m.samples / 48000:.2f} s, {m.integrated_lufs:.2f} LUFS "
        f"({m.measured_as}), {m.true_peak_dbtp:.2f} dBTP",
        f"  silence  under {plan.settings['silence']['threshold_dbfs']:.1f} dBFS; each "
        f"segment: {head}, then its sound",
    ]
    for seg in plan.segments:
        lines.append(
            f"  segment  {seg.file}: {seg.samples / 48000:.2f} s, source "
            f"{seg.source_in / 48000:.2f}-{seg.source_out / 48000:.2f} s, "
            f"{seg.true_peak_dbtp:.2f} dBTP; cut in {_cut_text(seg.cut_in)}, "
            f"out {_cut_text(seg.cut_out)}"
        )
    lines += [f"  ! {w}" for w in plan.all_warnings()]
    lines.append(
        f"dry run: would write {len(plan.segments)} segment(s), the master and "
        f"{plan.manifest_file} into {out_dir}; nothing written"
    )
    return "\n".join(lines)


@main.command("prep-audio")
@click.argument("source", type=click.Path(path_type=Path, readable=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the segments, the master and manifest.json.",
)
@click.option("--name", help="Base name of the outputs (default: the input's stem).")
@click.option(
    "--kind",
    type=click.Choice(["voice", "music"]),
    default="voice",
    show_default=True,
    help="voice: mono content (two channels are averaged, with a warning when they "
    "carry different sound); music: keeps its stereo.",
)
@click.option(
    "--channels",
    type=click.Choice(["dual-mono", "mono", "stereo"]),
    help="How to write it (default: dual-mono for voice -- LTX-2 rejects mono -- "
    "stereo for music). stereo keeps L and R apart (two voices on two mics) and is "
    "measured as stereo.",
)
@click.option(
    "--target-lufs",
    type=float,
    default=-16.0,
    show_default=True,
    help="Integrated loudness (of the mono content for dual-mono).",
)
@click.option(
    "--true-peak", type=float, default=-3.0, show_default=True, help="True-peak ceiling, dBTP."
)
@click.option(
    "--preroll-ms",
    type=int,
    default=150,
    show_default=True,
    help="Silence before the first sound (100-200 ms recommended).",
)
@click.option(
    "--click",
    "click_",
    is_flag=True,
    help="A short sync click at the very head, before the pre-roll (its position "
    "goes in the manifest so it can be muted later).",
)
@click.option(
    "--max-seconds",
    type=float,
    default=120.0,
    show_default=True,
    help="Longer inputs are cut into segments.",
)
@click.option(
    "--segment-seconds",
    default="60-90",
    show_default=True,
    metavar="MIN-MAX",
    help="Target segment length range; cuts fall at natural pauses.",
)
@click.option("--bit-depth", type=click.Choice(["24", "16"]), default="24", show_default=True)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace outputs that already exist. Without it a run that would make again what "
    "OUT already holds (same input, name and settings) is skipped with a note, exit 0; "
    "outputs made otherwise are refused, exit 2.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Decode, measure and plan -- gain, limiter ceiling, cuts and the pause each falls "
    "in, the segments' source ranges -- and print the plan; write nothing. With --json, "
    "the plan as JSON (schema handoff.prep-plan/1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest (with paths) as JSON.")
def prep_audio_cmd(
    source: Path,
    out_dir: Path,
    name: str | None,
    kind: str,
    channels: str | None,
    target_lufs: float,
    true_peak: float,
    preroll_ms: int,
    click_: bool,
    max_seconds: float,
    segment_seconds: str,
    bit_depth: str,
    overwrite: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Condition narration (or music) for audio-conditioned generation.

    Writes 48 kHz PCM WAVs at -16 LUFS integrated and at most -3 dBTP -- one linear
    gain, plus a look-ahead true-peak limiter only where the gain would pass the
    ceiling -- with silence trimmed and a pre-roll added. Inputs longer than
    --max-seconds are cut at natural pauses into numbered segments (001_NAME.wav,
    ...); NAME_master.wav is the whole narration at the same gain for the editor;
    manifest.json says where every segment came from.

    The source's loudness is printed with what it measures: "mono content: L+R
    averaged" for stereo voice, "stereo: BS.1770 sum of L and R" for stereo kept as
    stereo (identical channels would read 3 dB more that way, so they are measured as
    one). When L and R carry different sound (correlation under 0.5 over the speech, or
    the louder side swinging by more than 10 dB: two voices on two mics) and they are
    mixed to mono, a warning says so; --channels stereo keeps them apart. Heavy
    limiting -- more than 6 dB off a peak, or more than 5 % of the programme limited by
    over 1 dB -- is a warning naming the loudest passage (HH:MM:SS.ss). Both are in
    the manifest (source.left_right, master.heavy_limiting, master.loudest_passage).

    \b
    Examples:
      handoff prep-audio narration.mp3 --out cond/
      handoff prep-audio take3.wav --out cond/ --name intro --click
      handoff prep-audio score.flac --out cond/ --kind music
      handoff prep-audio two_mics.wav --out cond/ --channels stereo
      handoff prep-audio narration.mp3 --out cond/ --dry-run   # the plan, nothing written

    Every segment is checked as written against 'ltx2-audio' with the targets asked
    (--target-lufs, --true-peak, --max-seconds; stereo output drops its mono-content
    rule). Exit 0 when all pass; 1 when one does
    not (an input that cannot reach the targets, e.g. a DC offset); 2 when the input
    cannot be used (unreadable, silent, too short) or options are wrong.
    """
    from handoff.prep import made_before, prepare

    with _errors():
        seg_min, seg_max = parse_segment_range(segment_seconds)
        options = PrepOptions(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            channels=channels,  # type: ignore[arg-type]
            target_lufs=target_lufs,
            true_peak=true_peak,
            preroll_ms=preroll_ms,
            click=click_,
            max_seconds=max_seconds,
            segment_min=seg_min,
            segment_max=seg_max,
            bit_depth=16 if bit_depth == "16" else 24,
            overwrite=overwrite,
        )
        if dry_run:
            _, plan = prepare(source, options)
            if as_json:
                _write_json(plan.to_json())
            else:
                _say(render_prep_plan(plan, out_dir))
            sys.exit(EXIT_OK)
        earlier = None if overwrite else made_before(source, out_dir, options)
        if earlier is not None:
            _note(
                f"skipped: {earlier.path} and the files it lists were made from this input "
                "with these settings already (use --overwrite to make them again)"
            )
            if as_json:
                where = str(earlier.path.resolve())
                _write_json({**earlier.to_json(), "manifest": where, "skipped": True})
            sys.exit(EXIT_OK)
        _clear_parts([out_dir])
        result = prep_audio(source, out_dir, options)
        mark_output_folder(out_dir, [source])
    if as_json:
        _write_json(result.to_json())
    else:
        _say(render_prep(result))
    sys.exit(EXIT_FAIL if result.failed else EXIT_OK)


# ---------------------------------------------------------------- specs


@main.command("specs")
@click.argument("name", required=False)
def specs_cmd(name: str | None) -> None:
    """List the built-in delivery specs, or print one (NAME) as TOML to copy and edit."""
    with _errors():
        if name:
            spec = load_spec(name)
            if name in builtin_spec_names():
                click.echo(builtin_spec_text(name), nl=False)
            else:
                click.echo(f"{spec.name}: {spec.description}")
            return
        for n in builtin_spec_names():
            spec = load_spec(n)
            click.echo(f"{n:15s} {spec.description}")
            for o in spec.options:
                click.echo(
                    f"{'':15s}   option {o.name} (default {str(o.default).lower()}): {o.help}"
                )


# ---------------------------------------------------------------- timeline


def render_timeline(build: TimelineBuild, written: Sequence[tuple[str, Path]]) -> str:
    """The layout for people (printed through :func:`_say`, which escapes what a terminal
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
        lines.append(
            f"  A1 master (locked)  {build.master.name}  from {_timecode(build.master_start)}"
        )
    else:
        lines.append("  A1 the clips' own audio (locked)")
    for c in s["clips"]:
        seg = "" if c["segment"] is None else f"  segment {c['segment']:03d}"
        trim = ""
        if c["trimmed_head"] or c["trimmed_tail"]:
            trim = f"  trimmed head {c['trimmed_head']} / tail {c['trimmed_tail']}"
        lines.append(
            f"  V1 {c['index']:3d} {_timecode(c['start'])}-{_timecode(c['end'])}"
            f"  {Path(c['path']).name}{seg}{trim}"
        )
    lines += [f"  ! {w}" for w in s["warnings"]]
    lines += [f"  note: {n}" for n in s["notes"]]
    lines += [f"wrote {fmt}: {path}" for fmt, path in written]
    return "\n".join(lines)


# Characters no file name of ours carries: Windows' reserved ones (and '/'), and what
# handoff.files.names replaces in a name (controls, bytes that were not UTF-8, U+FFFD).
_NOT_IN_FILE_NAMES = '/\\:*?"<>|\ufffd'


def _timeline_outputs(
    formats: Sequence[str], out: Path | None, name: str, notes: list[str]
) -> list[tuple[str, Path]]:
    """(format, file) for each format: ``--out`` itself for one format and a file name,
    else NAME.<suffix> in ``--out`` (or the current folder), NAME cut to fit the file
    system (said in ``notes``)."""
    from handoff.files.names import fit_file_name, xml_text

    if len(formats) == 1 and out is not None and not out.is_dir() and out.suffix:
        return [(formats[0], out)]
    safe = "".join("_" if ch in _NOT_IN_FILE_NAMES else ch for ch in xml_text(name))
    safe = safe.strip() or "timeline"
    longest = max((TIMELINE_FORMATS[f].suffix for f in formats), key=len)
    fitted = fit_file_name(safe, longest) or "timeline"
    if fitted != safe:
        notes.append(f"file names cut to {len(fitted)} characters of the sequence name")
    folder = Path() if out is None else out
    return [(f, folder / f"{fitted}{TIMELINE_FORMATS[f].suffix}") for f in formats]


def _publish_timelines(
    files: Sequence[tuple[Path, bytes]], *, replace: bool, guard: InputGuard
) -> None:
    """Write every file or none: when one fails, the ones this run already published are
    removed again (with ``replace``, the earlier files they replaced stay replaced)."""
    from handoff.files.fsutil import atomic_write_bytes

    published: list[Path] = []
    try:
        for path, data in files:
            atomic_write_bytes(path, data, replace=replace, guard=guard)
            published.append(path)
    except BaseException:
        for path in published:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


def _timeline_json(data: Any) -> str:
    """JSON text that is valid UTF-8 whatever the file names: a byte of a path that is
    not UTF-8 (a lone surrogate, PEP 383) is written as its ``\\udcXX`` escape, which
    Python's json reads back to the same path."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return "".join(f"\\u{ord(ch):04x}" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


@main.command("timeline")
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
    type=click.Path(path_type=Path),
    help="Output file (one format), or folder (several). Default: NAME.<format suffix> "
    "in the current folder.",
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
    help="Name media relative to the timeline file (otio, premiere-otio, resolve-otio), "
    "for projects that move between machines.",
)
@click.option(
    "--fcpxml-version",
    type=click.Choice(list(FCPXML_VERSIONS)),
    default="1.10",
    show_default=True,
    help="1.10 opens in Resolve 18.5+, 1.11 needs Resolve 19+.",
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
    out: Path | None,
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
    from handoff.files.fsutil import InputGuard
    from handoff.timeline import FORMATS, SequenceSettings, check_relative, render
    from handoff.timeline.model import parse_size
    from handoff.timeline.project import timeline_from_paths
    from handoff.timeline.timecode import parse_timecode

    chosen = list(FORMATS) if "all" in formats else list(dict.fromkeys(formats))
    with _errors():
        if len(chosen) > 1 and out is not None and out.suffix and not out.is_dir():
            raise UsageError(f"several formats need --out to be a folder, not {out}")
        if relative:
            check_relative(chosen)
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
        targets = _timeline_outputs(chosen, out, build.timeline.name, build.notes)
        # Inputs are never written over, --overwrite or not.
        guard = InputGuard(build.inputs)
        for _, path in targets:
            guard.check(path)
        if not overwrite:
            kept = [t for t in targets if t[1].exists() or t[1].is_symlink()]
            build.notes += [_skipped(p) for _, p in kept]
            targets = [t for t in targets if t not in kept]
        _clear_parts([p.parent for _, p in targets])
        # Every format is rendered before anything is written: a name or a path one
        # format cannot hold stops the run with nothing written.
        files = [
            (
                path,
                render(
                    build.timeline,
                    fmt,
                    relative_to=path.parent.resolve() if relative else None,
                    fcpxml_version=fcpxml_version,
                ),
            )
            for fmt, path in targets
        ]
        _publish_timelines(files, replace=overwrite, guard=guard)
        written = list(targets)
    build.notes += [f"{f}: {FORMATS[f].lock}" for f in chosen if not FORMATS[f].arrives_locked]
    if as_json:
        summary = {
            **build.summary(),
            "files": [{"format": f, "path": str(p.resolve())} for f, p in written],
        }
        click.echo(_timeline_json(summary))
    else:
        _say(render_timeline(build, written))
    sys.exit(EXIT_OK)


# ---------------------------------------------------------------- sync


def _ms(x: float | None, digits: int = 1) -> str:
    """Signed, without a "-0.0" for a figure that rounds to nothing."""
    if x is None:
        return "-"
    shown_value = round(x, digits)
    return f"{shown_value + 0.0 if shown_value else 0.0:+.{digits}f}"


def render_sync(results: Sequence[Any]) -> str:
    """The terminal table of ``handoff sync``: one row per take, then its notes."""
    from handoff.sync.measure import TakeSync

    rows: list[TakeSync] = list(results)
    width = min(40, max([len(shown(r.name)) for r in rows] + [4]))
    head = (
        f"{'take':<{width}}  seg  {'sound late':>10}  {'sound stretch':>13}  "
        f"{'picture late':>12}  {'picture drift':>13}  {'out at':>7}  {'score':>5}  verdict"
    )
    lines = [head]
    for r in rows:
        name = shown(r.name)
        name = name if len(name) <= width else name[: width - 1] + "~"
        seg = "-" if r.segment is None else f"{r.segment:03d}"
        if r.status != "ok":
            lines.append(f"{name:<{width}}  {seg:>3}  ERROR: {r.error}")
            continue
        a, p = r.audio, r.picture
        sound = "not narr." if a is None or not a.matched else f"{_ms(a.offset_ms)} ms"
        stretch = "-" if a is None or a.drift_ppm is None else f"{_ms(a.drift_ppm, 0)} ppm"
        pic = "-" if p is None else f"{_ms(p.offset_ms)} ms"
        drift = (
            "-" if p is None or p.drift_ms_per_min is None else f"{_ms(p.drift_ms_per_min)} ms/min"
        )
        out_at = "-" if p is None or p.exceeds_at_s is None else f"{p.exceeds_at_s:.1f} s"
        score = "-" if r.score is None else f"{r.score:.1f}"
        lines.append(
            f"{name:<{width}}  {seg:>3}  {sound:>10}  {stretch:>13}  {pic:>12}  {drift:>13}  "
            f"{out_at:>7}  {score:>5}  {r.verdict}"
        )
    for r in rows:
        extra = list(r.notes)
        if r.slate is not None:
            s = r.slate
            parts = [f"click at {s.click_s * 1000:.2f} ms"]
            if s.audio_offset_ms is not None:
                parts.append(f"sound late {s.audio_offset_ms:+.2f} ms (sample-exact)")
            if s.picture_offset_ms is not None:
                parts.append(f"picture late {s.picture_offset_ms:+.1f} ms (to the frame)")
            extra.append("slate: " + ", ".join(parts))
        if r.audio is not None and r.audio.note and not r.audio.matched:
            extra.append(r.audio.note)
        if extra:
            lines.append(f"{shown(r.name)}:")
            lines += [f"  - {n}" for n in extra]
    return "\n".join(lines)


@main.command("sync")
@click.argument("takes", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--reference",
    type=click.Path(path_type=Path, readable=False),
    help="The narration every take was conditioned on (WAV or any audio file).",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, readable=False),
    help="prep-audio's manifest.json: each take is measured against the segment its "
    "name starts with (002_... -> segment 2).",
)
@click.option(
    "--tolerance-ms",
    type=click.FloatRange(min=0, min_open=True, max=10_000),
    help="Largest picture error allowed, in ms. Default: one frame of each take.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Takes measured side by side (worker processes). Default: the cores available.",
)
@click.option(
    "--selects",
    "selects_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a selects file (needs --manifest): per segment the best take, the "
    "alternates in order, and the segments to regenerate. Edit it, then "
    "`handoff timeline --selects FILE`.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the selects file if it exists. Without it an existing one is kept and "
    "skipped with a note (the takes are still measured; the exit code is theirs).",
)
@click.option(
    "--dry-run", is_flag=True, help="Show which take goes with which narration; measure nothing."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON report (docs/reference/json.md)."
)
def sync_cmd(
    takes: Sequence[Path],
    reference: Path | None,
    manifest: Path | None,
    tolerance_ms: float | None,
    jobs: int | None,
    selects_out: Path | None,
    overwrite: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Measure each take's sync: its sound against the narration, its picture against
    its sound, and where it drifts out of tolerance.

    TAKES are files or folders (expanded to the media inside). Every take is measured
    against --reference, or with --manifest against its own segment. For each take:

    \b
      sound late     the take's sound against the narration (GCC-PHAT, to ~0.01 ms),
                     and its stretch in ppm; "not narr." when it is other sound
      picture late   the picture against the take's own sound (picture change vs
                     loudness change; about a frame on real footage), and its drift
      out at         where the error first exceeds the tolerance, with a re-cut
                     point (a pause in the narration before it) in the notes
      score          0-100, higher is better: errors weighted as viewers notice them
                     (ITU-R BT.1359: sound early from 45 ms, sound late from 125 ms)

    A take that starts with a click (prep-audio --click) and a flash or cut is also
    measured from it, sample-exact; the notes say so.

    With --selects FILE (and --manifest) the takes of each segment are ranked by score
    into a selects file: the pick, the alternates, and the segments where no take is
    within tolerance (to regenerate, from the re-cut point). It is plain JSON: swap a
    pick by hand, then `handoff timeline --selects FILE` places each pick shifted by
    its measured sound offset, with the alternates beside it.

    \b
    Examples:
      handoff sync renders/ --manifest cond/manifest.json
      handoff sync renders/ --manifest cond/manifest.json --selects selects.json
      handoff sync take1.mp4 take2.mp4 --reference narration.wav --json
      handoff sync renders/ --manifest cond/manifest.json --tolerance-ms 20 --jobs 2

    Exit codes: 0 every take within the tolerance; 1 any take out of it (or its sound
    is not the narration); 2 a take or its narration could not be read (the others are
    still measured), or the command was used wrongly.
    """
    from handoff.files.find import check_readable
    from handoff.files.manifest import load_manifest
    from handoff.sync.measure import exit_code, plan_sync, run_sync, sync_json

    with _errors():
        if (reference is None) == (manifest is None):
            raise UsageError("give --reference WAV or --manifest manifest.json (one of them)")
        if reference is not None:
            check_readable(reference)
        if selects_out is not None and manifest is None:
            raise UsageError("--selects needs --manifest (selects are made per segment)")
        loaded = None if manifest is None else load_manifest(manifest)
        plan = plan_sync(
            _media(takes), reference=reference, manifest=loaded, tolerance_ms=tolerance_ms
        )
    if dry_run:
        if as_json:
            _write_json(plan.to_json())
        else:
            for job in plan.jobs:
                against = job.problem or f"against {job.reference}"
                _say(f"{job.take}: {against}")
        sys.exit(EXIT_OK)
    guard = None
    if selects_out is not None:
        with _errors():
            inputs = [j.take for j in plan.jobs] + [j.reference for j in plan.jobs if j.reference]
            guard = InputGuard([*inputs, *([manifest] if manifest else [])])
            guard.check(selects_out)
            if not overwrite and (selects_out.exists() or selects_out.is_symlink()):
                _note(_skipped(selects_out))
                selects_out = None
            else:
                _clear_parts([selects_out.parent])
    workers = jobs or default_jobs()
    try:
        results = run_sync(plan, jobs=workers)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    code = exit_code(results)
    document = sync_json(plan, results)
    picked: dict[str, Any] | None = None
    if selects_out is not None:
        from handoff.sync.selects import selects_from_sync, write_selects

        with _errors():
            picked = selects_from_sync(document, relative_to=selects_out.parent)
            try:
                write_selects(selects_out, picked, replace=overwrite, guard=guard)
            except OutputExistsError:  # another run wrote it while this one measured
                _note(_skipped(selects_out))
                picked = None
    if as_json:
        _write_json({**document, "exit_code": code})
    else:
        _say(render_sync(results))
        counts = {v: sum(r.verdict == v for r in results) for v in ("in", "out", "error")}
        click.echo(
            f"\n{len(results)} take(s): {counts['in']} in sync, {counts['out']} out, "
            f"{counts['error']} could not be measured"
        )
        if picked is not None and selects_out is not None:
            _say(render_selects(picked, selects_out))
    sys.exit(code)


def render_selects(picked: dict[str, Any], path: Path) -> str:
    """What the selects file says, one line a segment."""
    lines = [f"selects -> {path}"]
    for seg in picked["segments"]:
        pick = shown(Path(seg["pick"]).name)
        alts = len(seg["alternates"])
        line = f"  {seg['segment']:03d}: {pick}" + (f" (+{alts} alternate(s))" if alts else "")
        if seg["regenerate"]:
            at = seg["recut_at_s"]
            line += "  REGENERATE" + (f" from {at:.1f} s" if at is not None else " (whole segment)")
        lines.append(line)
    for item in picked["unplaced"]:
        lines.append(f"  not placed: {shown(Path(item['path']).name)}: {item['reason']}")
    return "\n".join(lines)


# ---------------------------------------------------------------- demo


@main.command("demo")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
def demo_cmd(outdir: Path) -> None:
    """Make small sample media in OUTDIR and run every capability on it.

    Nothing is downloaded: the clips and the narration are synthesised with PyAV.
    Prints what it made and what each step found; exits non-zero if a step did not
    give the verdict it should. Run again into the same OUTDIR, it makes its media
    anew and replaces its own earlier outputs (partial files a killed run left there
    are removed first).
    """
    from handoff.demo import run_demo

    with _errors():
        ok = run_demo(outdir, echo=click.echo)
    sys.exit(EXIT_OK if ok else EXIT_FAIL)


if __name__ == "__main__":  # pragma: no cover
    main()
