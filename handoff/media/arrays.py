"""The numpy array types the media and analysis code passes around, named once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["Float32Array", "FloatArray", "Int64Array"]

FloatArray = npt.NDArray[np.float64]
"""Analysis figures: float64, where sums over an hour of samples must not lose bits."""
Float32Array = npt.NDArray[np.float32]
"""Samples as decoded and written: float32, ``(channels, samples)`` or one channel."""
Int64Array = npt.NDArray[np.int64]
"""Sample tables, offsets and counts."""
