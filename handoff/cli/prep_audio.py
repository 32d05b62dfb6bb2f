"""``handoff prep-audio``: narration levelled, trimmed and cut into segments for
audio-conditioned generation (``--dry-run`` prints the plan)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from handoff.cli.common import EXIT_FAIL, EXIT_OK, clear_parts, errors, flags, note, say, write_json
from handoff.cli.validate import render_report
from handoff.files.fsutil import mark_output_folder
from handoff.prep import (
    Cut,
    PrepOptions,
    PrepPlan,
    PrepResult,
    parse_ratio,
    parse_segment_range,
    prep_audio,
)
from handoff.prep.shape import Gap


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
        *_shaping_lines(result.settings, result.gaps),
    ]
    for seg in result.segments:
        lines.append(
            f"  segment  {seg.path.name}: {seg.samples / 48000:.2f} s, "
            f"{seg.integrated_lufs:.2f} LUFS, {seg.true_peak_dbtp:.2f} dBTP, source "
            f"{seg.source_in / 48000:.2f}-{seg.source_out / 48000:.2f} s"
        )
    lines += [f"  ! {flags(w)}" for w in result.warnings]
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


def _shaping_lines(settings: dict[str, Any], gaps: tuple[Gap, ...]) -> list[str]:
    """What --compress, --fill-gaps and --fade-tails do (nothing when none was asked)."""
    lines: list[str] = []
    comp = settings.get("compress")
    if comp is not None:
        lines.append(
            f"  compress {comp['ratio']:g}:1 over {comp['threshold_dbfs']:.1f} dBFS (soft knee "
            f"{comp['knee_db']:g} dB), at most {comp['max_reduction_db']:.1f} dB off, before "
            "the gain"
        )
    fill = settings.get("fill_gaps")
    if fill is not None:
        if not gaps:
            lines.append(f"  gaps     no silence over {fill['max_gap_s']:g} s: nothing removed")
        for gap in gaps:
            lines.append(f"  gap      {gap.describe()} (source time)")
    fade = settings.get("fade_tails_ms")
    if fade:
        lines.append(f"  tails    each segment fades out over its last {fade} ms")
    return lines


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
    lines += _shaping_lines(plan.settings, plan.gaps)
    for seg in plan.segments:
        lines.append(
            f"  segment  {seg.file}: {seg.samples / 48000:.2f} s, source "
            f"{seg.source_in / 48000:.2f}-{seg.source_out / 48000:.2f} s, "
            f"{seg.true_peak_dbtp:.2f} dBTP; cut in {_cut_text(seg.cut_in)}, "
            f"out {_cut_text(seg.cut_out)}"
        )
    lines += [f"  ! {flags(w)}" for w in plan.all_warnings()]
    lines.append(
        f"dry run: would write {len(plan.segments)} segment(s), the master and "
        f"{plan.manifest_file} into {out_dir}; nothing written"
    )
    return "\n".join(lines)


@click.command("prep-audio")
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
    "--compress",
    metavar="N:1",
    help="Gently compress the speech before levelling (N from over 1 to 4; 2:1 is what "
    "LTX-2 conditioning wants: light, even level, no pumping). The threshold is the "
    "median short-term level of the speaking parts, with a 6 dB soft knee, 10 ms attack "
    "and 200 ms release, one gain for all channels; nothing moves in time, and loudness "
    "and true peak are still levelled to their targets afterwards. Off by default.",
)
@click.option(
    "--fill-gaps",
    is_flag=True,
    help="Shorten every silence inside the narration longer than --max-gap-s to exactly "
    "that (the middle of the silence is removed, the join crossfaded over 5 ms; words are "
    "never touched): long silences inside a segment invite LTX-2 to drift. The master "
    "is the shortened programme; the manifest's 'gaps' maps source time to master time.",
)
@click.option(
    "--max-gap-s",
    type=float,
    default=1.5,
    show_default=True,
    help="The longest silence --fill-gaps keeps, seconds (0.1-60; 1.5 is the ltx2-audio "
    "internal-silence limit).",
)
@click.option(
    "--fade-tails",
    "fade_tails",
    type=int,
    default=0,
    metavar="MS",
    help="Fade each segment's end over MS ms (0-500) with a raised-cosine curve, keeping "
    "at least MS ms after the last sound so the fade does not touch the word: a reverb or "
    "room tail is faded out rather than cut off, and LTX-2 does not hear the cut as an "
    "event. (A cut in a pause shorter than the tail, or a file that stops in its sound, "
    "leaves less room: the fade then reaches into it.) Default: a 40 ms tail with a 10 ms "
    "fade.",
)
@click.option(
    "--cut-at-pace-change",
    is_flag=True,
    help="Start a new segment wherever the speech rate changes by more than 25 % (syllables "
    "per second of speech, 30 s before against 30 s after a gap between words): LTX-2 "
    "settles on one pace, so one segment read at two speeds drifts through the other. "
    "Cuts there even when the programme would fit one segment or the pieces fall outside "
    "--segment-seconds (each such cut is named, with the two rates).",
)
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
    compress: str | None,
    fill_gaps: bool,
    max_gap_s: float,
    fade_tails: int,
    cut_at_pace_change: bool,
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

    with errors():
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
            compress=parse_ratio(compress) if compress is not None else None,
            fill_gaps=fill_gaps,
            max_gap_s=max_gap_s,
            fade_tails_ms=fade_tails,
            cut_at_pace_change=cut_at_pace_change,
        )
        if dry_run:
            _, plan = prepare(source, options)
            if as_json:
                write_json(plan.to_json())
            else:
                say(render_prep_plan(plan, out_dir))
            sys.exit(EXIT_OK)
        earlier = None if overwrite else made_before(source, out_dir, options)
        if earlier is not None:
            note(
                f"skipped: {earlier.path} and the files it lists were made from this input "
                "with these settings already (use --overwrite to make them again)"
            )
            if as_json:
                where = str(earlier.path.resolve())
                write_json({**earlier.to_json(), "manifest": where, "skipped": True})
            sys.exit(EXIT_OK)
        clear_parts([out_dir])
        result = prep_audio(source, out_dir, options)
        mark_output_folder(out_dir, [source])
    if as_json:
        write_json(result.to_json())
    else:
        say(render_prep(result))
    sys.exit(EXIT_FAIL if result.failed else EXIT_OK)
