"""Just enough H.264 bitstream reading to tell an IDR keyframe from an open-GOP one.

A container marks a sample as a sync sample (keyframe) both for IDR pictures and for
I pictures with a recovery-point SEI (x264 with ``open-gop``, many phone encoders).
Editors can only cut cleanly and seek exactly on IDR pictures, so delivery specs ask
for "every keyframe is IDR". The NAL unit type (ITU-T H.264 7.4.1.2, Table 7-1) tells:
type 5 is a slice of an IDR picture, type 1 a slice of a non-IDR picture.
"""

from __future__ import annotations

__all__ = ["avcc_length_size", "nal_unit_types", "packet_is_idr"]

NAL_SLICE = 1
NAL_IDR = 5


def avcc_length_size(extradata: bytes | None) -> int | None:
    """NAL length-prefix size from an avcC record (ISO 14496-15 5.3.3.1); None for Annex B."""
    if not extradata or len(extradata) < 5 or extradata[0] != 1:
        return None  # Annex B extradata starts with a start code, not configurationVersion 1
    return (extradata[4] & 0x03) + 1


def _annexb_types(data: bytes) -> list[int]:
    types: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def _length_prefixed_types(data: bytes, length_size: int) -> list[int]:
    types: list[int] = []
    pos = 0
    end = len(data)
    while pos + length_size < end:
        n = int.from_bytes(data[pos : pos + length_size], "big")
        if n == 0 or pos + length_size + n > end:
            break
        types.append(data[pos + length_size] & 0x1F)
        pos += length_size + n
    return types


def nal_unit_types(data: bytes, length_size: int | None) -> list[int]:
    """The NAL unit types in one access unit, AVCC (length-prefixed) or Annex B."""
    if length_size is None:
        return _annexb_types(data)
    types = _length_prefixed_types(data, length_size)
    # Some muxers store Annex B inside MP4 anyway; fall back when lengths make no sense.
    return types if types else _annexb_types(data)


def packet_is_idr(data: bytes, length_size: int | None) -> bool | None:
    """True for an IDR access unit, False for a non-IDR picture, None if no slice was found."""
    types = nal_unit_types(data, length_size)
    if NAL_IDR in types:
        return True
    if NAL_SLICE in types or 2 in types:  # 2: slice data partition A
        return False
    return None
