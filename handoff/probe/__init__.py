"""Stage 1, probe: what a media file holds, read once, as exact facts.

:mod:`~handoff.probe.reader` opens the file and returns a frozen
:class:`~handoff.probe.reader.MediaInfo`; :mod:`~handoff.probe.timing` decides constant
or variable frame rate from the frame times. Nothing here judges the facts against a
delivery spec: that is :mod:`handoff.validate`.
"""

from handoff.probe.reader import AudioInfo, MediaInfo, OtherStream, VideoInfo, probe

__all__ = ["AudioInfo", "MediaInfo", "OtherStream", "VideoInfo", "probe"]
