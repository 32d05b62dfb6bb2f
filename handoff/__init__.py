"""handoff: carry AI-generated video from the generator to the editor."""

import logging

from handoff.errors import HandoffError, InputError, SpecError
from handoff.probe.reader import AudioInfo, MediaInfo, VideoInfo, probe

__all__ = [
    "AudioInfo",
    "HandoffError",
    "InputError",
    "MediaInfo",
    "SpecError",
    "VideoInfo",
    "__version__",
    "probe",
]

__version__ = "0.1.0"

# A library logs; the application decides what is shown (warnings reach users through
# results and reports, not through Python's last-resort stderr handler).
logging.getLogger("handoff").addHandler(logging.NullHandler())
