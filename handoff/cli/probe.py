"""``handoff probe``: what a file is, without decoding it (``--loudness`` decodes the
first audio stream)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from handoff.cli.common import EXIT_ERROR, EXIT_OK, flags, media, say, write_json
from handoff.errors import Text, describe
from handoff.probe.loudness import probe_loudness
from handoff.probe.reader import (
    MediaInfo,
    channels_text,
    error_json,
    probe,
    rate_text,
    ratio_str,
    timecode_text,
    to_json,
)


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
    if info.timecode is not None:
        lines.append(f"  timecode  {timecode_text(info.timecode)}")
    delta = info.av_duration_delta_s
    if delta is not None:
        lines.append(f"  audio - video duration  {delta * 1000:+.1f} ms")
    lines += [f"  ! {flags(w)}" for w in info.warnings]
    return "\n".join(lines)


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


@click.command("probe")
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
    for item in media(files):
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
                say(f"{path}\n  ERROR  {flags(error or '')}")
            continue
        item_json = to_json(info)
        text = render_probe(info)
        if with_loudness:
            try:
                found = probe_loudness(info)
            except Exception as exc:
                bad += 1
                message = Text("cannot measure loudness: ", describe(exc))
                item_json.update(ok=False, error=message)
                text += f"\n  ERROR  {flags(message)}"
            else:
                item_json["loudness"] = found.to_json()
                if info.audio is not None and found.not_measured is not None:
                    # A fact that cannot exist (too low a rate), not a bad file.
                    reason = found.not_measured
                    item_json["warnings"].append(Text("loudness not measured: ", reason))
                    text += f"\n  loudness   not measured: {flags(reason)}"
                else:
                    text += "\n" + render_loudness(found.to_json())
        results.append(item_json)
        if not as_json:
            say(text)
    if as_json:
        write_json(results)
    sys.exit(EXIT_ERROR if bad else EXIT_OK)
