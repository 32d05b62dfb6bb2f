"""handoff: carry AI-generated video from the generator to the editor."""

from handoff.errors import HandoffError, InputError, SpecError
from handoff.probe import AudioInfo, MediaInfo, VideoInfo, probe

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
