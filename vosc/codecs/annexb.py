"""Split a raw Annex-B HEVC/VVC stream into access units (one per coded picture).

Used for per-frame bit accounting when no PyAV parser is at hand (VVC decoded by the FFmpeg binary)
and as an independent check of the parser. Rules (H.265 §7.4.2.4.4, H.266 §7.4.2.4.3, simplified to
single-layer streams):

* The stream is cut at every start code ``00 00 01``; a preceding ``00`` (4-byte start code) belongs
  to the NAL unit that follows. Bytes before the first start code belong to the first access unit.
* After a picture's first VCL NAL unit, a new access unit starts at a prefix non-VCL NAL unit (AUD,
  parameter sets, prefix SEI, HEVC types 41..44/48..55, VVC OPI/DCI/prefix APS/picture header) or at a
  VCL NAL unit that begins a picture (HEVC ``first_slice_segment_in_pic_flag``, VVC
  ``picture_header_in_slice_header_flag``; with a separate picture-header NAL unit that one starts it).
* Suffix NAL units (suffix SEI/APS, end of sequence/bitstream, filler) stay with the current picture.

Every byte is assigned to exactly one access unit, so the sizes sum to ``len(stream)``.
"""

from __future__ import annotations

import itertools
import re
from typing import Literal

Standard = Literal["hevc", "vvc"]

_START = re.compile(b"\x00\x00\x01")
_HEVC_PREFIX = {32, 33, 34, 35, 39, *range(41, 45), *range(48, 56)}
_VVC_PREFIX = {12, 13, 14, 15, 16, 17, 19, 20, 23}


def nal_units(stream: bytes) -> list[tuple[int, int]]:
    """``(start, payload_start)`` of every NAL unit: ``start`` includes the start code (and zero byte)."""
    units = []
    for m in _START.finditer(stream):
        start = m.start() - 1 if m.start() > 0 and stream[m.start() - 1] == 0 else m.start()
        units.append((start, m.end()))
    return units


def _classify(stream: bytes, payload: int, standard: Standard) -> tuple[bool, bool]:
    """``(is_vcl, starts_new_au_if_current_has_vcl)`` of the NAL unit whose header is at ``payload``."""
    if payload + 2 >= len(stream):
        return False, False
    b0, b1, b2 = stream[payload], stream[payload + 1], stream[payload + 2]
    if standard == "hevc":
        nal_type = (b0 >> 1) & 0x3F
        if nal_type <= 31:
            return True, bool(b2 & 0x80)  # first_slice_segment_in_pic_flag
        return False, nal_type in _HEVC_PREFIX
    nal_type = (b1 >> 3) & 0x1F
    if nal_type <= 11:
        return True, bool(b2 & 0x80)  # picture_header_in_slice_header_flag
    return False, nal_type in _VVC_PREFIX


def access_unit_sizes(stream: bytes, standard: Standard) -> list[int]:
    """Byte size of each access unit in decoding order; the sizes sum to ``len(stream)``.

    Args:
        stream: Raw Annex-B bitstream.
        standard: ``"hevc"`` or ``"vvc"``.

    Raises:
        ValueError: No start code in a non-empty stream, or an unknown standard.
    """
    if standard not in ("hevc", "vvc"):
        raise ValueError(f"standard must be 'hevc' or 'vvc', got {standard!r}")
    units = nal_units(stream)
    if not units:
        if stream:
            raise ValueError("no Annex-B start code found in the bitstream")
        return []
    au_starts = [0]
    has_vcl = False
    for start, payload in units:
        is_vcl, starts_au = _classify(stream, payload, standard)
        if has_vcl and starts_au:
            au_starts.append(start)
            has_vcl = False
        has_vcl = has_vcl or is_vcl
    bounds = au_starts + [len(stream)]
    return [b - a for a, b in itertools.pairwise(bounds)]
