"""The OTIO flavours: plain OTIO, OTIO for Premiere (2025.6+) and OTIO for Resolve.

All three are the model timeline serialised by OTIO's own ``otio_json`` writer; they
differ in how media is named and in the application metadata each editor reads:

- ``otio``: ``file://`` URLs (OTIO's convention); the lock is ``metadata.handoff.locked``.
- ``premiere-otio``: ``file://`` URLs and ``PremierePro_OTIO`` metadata in the shape
  Premiere's own OTIO export gives it (see :func:`_premiere_clip`): sequence settings
  on the stack, channel type and count on audio tracks, and on every clip a
  ``LinkID`` -- shared by a clip's picture and its own sound, and by nothing else --
  with the channel metadata on audio clips. Premiere documents no track-lock key for
  OTIO: the lock is carried in ``metadata.handoff.locked`` only, and ``premiere-xml``
  is the format whose lock Premiere honours.
- ``resolve-otio``: bare absolute paths, as Resolve's own export writes them, and
  Resolve's track metadata, so the master track reads ``{"Resolve_OTIO": {"Locked": true}}``.
  A bare path is text, and OTIO's JSON holds UTF-8 text only: a media file whose name
  is not UTF-8 is refused (rename it) before anything is written. The URL flavours
  carry such a name's bytes percent-encoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import opentimelineio as otio

from handoff.errors import InputError
from handoff.files.names import is_utf8, shown
from handoff.timeline.model import META, clip_path, rate_of
from handoff.timeline.paths import file_url, relative_path, relative_url

__all__ = ["write_otio"]


def _media_url(path: Path, flavour: str, relative_to: Path | None) -> str:
    if flavour == "resolve-otio":
        return str(path) if relative_to is None else relative_path(path, relative_to)
    return file_url(path) if relative_to is None else relative_url(path, relative_to)


def _check_bare_paths(timeline: otio.schema.Timeline) -> None:
    """Refuse media whose path cannot be written as a bare path in UTF-8 JSON."""
    bad = sorted({p for c in timeline.find_clips() if not is_utf8(p := clip_path(c))})
    if not bad:
        return
    why = (
        "resolve-otio names media by a bare path, and OTIO's JSON holds UTF-8 text only; "
        "the other formats carry the bytes in a URL"
    )
    if len(bad) == 1:
        what = "file name" if not is_utf8(Path(bad[0]).name) else "folder name in its path"
        raise InputError(f"{what} is not valid UTF-8: rename it ({why})", bad[0])
    listed = ", ".join(shown(Path(b).name) for b in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    raise InputError(f"{len(bad)} media file names are not valid UTF-8 ({listed}{more}): "
                     f"rename them ({why})")  # fmt: skip


def _channel_type(channels: int) -> str:
    return "Mono" if channels == 1 else "Stereo"


class _LinkIDs:
    """Premiere's ``LinkID``: one per linked clip. Premiere fuses clips whose LinkIDs
    match into one linked clip (auto-editor's Premiere OTIO export gave an overlay its
    own id after Premiere fused it with unrelated sound, WyattBlue/auto-editor PR
    #1249), so a clip's picture and its own sound share one, and every other clip --
    the master, each alternate -- gets its own. Numbered from 1 in track order."""

    __slots__ = ("ids",)

    def __init__(self) -> None:
        self.ids: dict[tuple[str, int], str] = {}

    def __call__(self, cmeta: dict[str, Any]) -> str:
        role = str(cmeta.get("role"))
        # Picture and clip sound of clip N share the key; the master (index 0) and
        # the alternates (numbered after the picks) never meet another clip's key.
        key = ("master" if role == "master" else "clip", int(cmeta.get("index") or 0))
        return self.ids.setdefault(key, str(len(self.ids) + 1))


def _premiere_clip(cmeta: dict[str, Any], link_id: str, *, audio: bool) -> dict[str, Any]:
    """A clip's ``PremierePro_OTIO`` metadata as Premiere's own OTIO export writes it.

    Evidence (Adobe publishes no schema): the Premiere clip quoted in
    OpenTimelineIO/raven issue #154 ("Standard way to reference audio channels", 2026)
    carries ``AudioChannels`` {``ChannelType``, ``SecondaryAssignments``: [{
    ``SecondaryChannelIndex``}]}; exporters modelled on Premiere's files
    (auto-editor's ``src/exports/otio.nim``; a Premiere export "Pr_Ice_Test.otio"
    transcribed by another project) add ``LinkID`` as a string, and
    ``OriginalChannelGroupIndex`` and ``SourceClipIndex`` as 0, on picture and sound
    alike. What the indices mean beyond 0, and how Premiere lays out a file of more
    than two channels, is not known (docs/howto/editor-handoff.md says so)."""
    out: dict[str, Any] = {}
    if audio:
        channels = max(1, int(cmeta.get("audio_channels") or 1))
        out["AudioChannels"] = {
            "ChannelType": _channel_type(channels),
            "SecondaryAssignments": [{"SecondaryChannelIndex": c} for c in range(channels)],
        }
    out["LinkID"] = link_id
    out["OriginalChannelGroupIndex"] = 0
    out["SourceClipIndex"] = 0
    return out


def write_otio(
    timeline: otio.schema.Timeline, flavour: str = "otio", *, relative_to: Path | None = None
) -> bytes:
    """Serialise the model timeline as ``otio``, ``premiere-otio`` or ``resolve-otio``."""
    if flavour == "otio" and relative_to is None:
        # The model already names media by file:// URL: nothing to change, nothing to copy.
        plain: str = otio.adapters.write_to_string(timeline, "otio_json")
        return plain.encode("utf-8")
    if flavour == "resolve-otio":
        _check_bare_paths(timeline)
    tl: otio.schema.Timeline = timeline.deepcopy()
    meta = tl.metadata[META]
    rate = rate_of(tl)
    link_ids = _LinkIDs()
    if flavour == "premiere-otio":
        tl.metadata["PremierePro_OTIO"] = {"MetadataVersion": "1.0"}
        tl.tracks.metadata["PremierePro_OTIO"] = {
            "VideoFrameRate": float(rate),
            "VideoResolution": {"width": meta["width"], "height": meta["height"]},
            "PixelAspectRatio": {"numerator": 1.0, "denominator": 1.0},
            "AudioFrameRate": float(meta["sample_rate"]),
        }
    elif flavour == "resolve-otio":
        tl.metadata["Resolve_OTIO"] = {"Resolve OTIO Meta Version": "1.0"}

    for track in tl.tracks:
        tmeta = track.metadata[META]
        audio = track.kind == otio.schema.TrackKind.Audio
        if flavour == "resolve-otio":
            info: dict[str, Any] = {"Locked": bool(tmeta["locked"])}
            if audio:
                info["Audio Type"] = _channel_type(int(tmeta["channels"]))
                info["SoloOn"] = False
            track.metadata["Resolve_OTIO"] = info
        elif flavour == "premiere-otio" and audio:
            channels = int(tmeta["channels"])
            track.metadata["PremierePro_OTIO"] = {
                "AudioChannels": {
                    "ChannelType": _channel_type(channels),
                    "NumberOfChannels": channels,
                }
            }
        for item in track:
            if not isinstance(item, otio.schema.Clip):
                continue
            cmeta = item.metadata[META]
            path = Path(clip_path(item))
            item.media_reference.target_url = _media_url(path, flavour, relative_to)
            if flavour == "resolve-otio":
                clip_info: dict[str, Any] = {}
                if audio:
                    clip_info["Channels"] = [
                        {"Source Channel ID": c, "Source Track ID": 0}
                        for c in range(int(cmeta["audio_channels"] or 1))
                    ]
                item.metadata["Resolve_OTIO"] = clip_info
            elif flavour == "premiere-otio":
                item.metadata["PremierePro_OTIO"] = _premiere_clip(
                    cmeta, link_ids(cmeta), audio=audio
                )
    text: str = otio.adapters.write_to_string(tl, "otio_json")
    return text.encode("utf-8")
