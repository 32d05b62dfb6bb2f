"""Stage 1, probe: what a media file holds, read once, as exact facts.

:mod:`~handoff.probe.reader` opens the file and returns a frozen
:class:`~handoff.probe.reader.MediaInfo`; :mod:`~handoff.probe.timing` decides constant
or variable frame rate from the frame times; :mod:`~handoff.probe.loudness` measures the
first audio stream's loudness (``probe --loudness``). Nothing here judges the facts against a
delivery spec: that is :mod:`handoff.validate`.
"""

from handoff.probe.loudness import LoudnessProbe, probe_loudness
from handoff.probe.reader import (
    AudioInfo,
    MediaInfo,
    OtherStream,
    SourceTimecode,
    VideoInfo,
    probe,
)

__all__ = [
    "AudioInfo",
    "LoudnessProbe",
    "MediaInfo",
    "OtherStream",
    "SourceTimecode",
    "VideoInfo",
    "probe",
    "probe_loudness",
]
