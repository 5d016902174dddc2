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


def access_unit_bounds(stream: bytes, standard: Standard) -> list[int]:
    """Byte offsets of the access units: ``N + 1`` values from ``0`` to ``len(stream)``.

    Access unit ``i`` is ``stream[bounds[i]:bounds[i + 1]]``; see :func:`access_unit_sizes`.
    """
    sizes = access_unit_sizes(stream, standard)
    return [0, *itertools.accumulate(sizes)]


def nal_type(stream: bytes, payload: int, standard: Standard) -> int:
    """``nal_unit_type`` of the NAL unit whose header starts at ``payload`` (-1 when truncated)."""
    if payload + 1 >= len(stream):
        return -1
    if standard == "hevc":
        return (stream[payload] >> 1) & 0x3F
    return (stream[payload + 1] >> 3) & 0x1F


def random_access_units(stream: bytes, standard: Standard) -> list[int]:
    """Indices of the access units that start at an IRAP picture (decoding can begin there).

    IRAP: HEVC ``nal_unit_type`` 16..23 (BLA, IDR, CRA), VVC 7..9 (IDR_W_RADL, IDR_N_LP, CRA); GDR
    pictures are not counted (they need a recovery period). The low-delay streams of vosc have no
    leading pictures, so decoding from such an access unit reproduces the frames of a full decode.
    """
    irap = range(16, 24) if standard == "hevc" else range(7, 10)
    bounds = access_unit_bounds(stream, standard)
    units = nal_units(stream)
    out: list[int] = []
    au = 0
    seen_vcl = False
    for start, payload in units:
        while au + 1 < len(bounds) - 1 and start >= bounds[au + 1]:
            au, seen_vcl = au + 1, False
        t = nal_type(stream, payload, standard)
        is_vcl = 0 <= t <= (31 if standard == "hevc" else 11)
        if is_vcl and not seen_vcl:
            seen_vcl = True
            if t in irap:
                out.append(au)
    return out


def parameter_sets_before(stream: bytes, offset: int, standard: Standard) -> bytes:
    """The parameter-set NAL units (with start codes) that occur before byte ``offset``, in order.

    HEVC: VPS, SPS, PPS (types 32..34); VVC: VPS, SPS, PPS and prefix APS (types 14..17). Prepended to
    a stream cut at a random-access point, they make it decodable on its own (later sets with the same
    id replace earlier ones, exactly as in the full stream).
    """
    wanted = {32, 33, 34} if standard == "hevc" else {14, 15, 16, 17}
    units = nal_units(stream)
    parts = []
    for (start, payload), nxt in zip(units, [*units[1:], (len(stream), len(stream))], strict=True):
        if start >= offset:
            break
        if nal_type(stream, payload, standard) in wanted:
            parts.append(stream[start : min(nxt[0], offset)])
    return b"".join(parts)


def cut_stream(stream: bytes, first: int, last: int, standard: Standard) -> bytes:
    """Access units ``first..last`` (inclusive) as a self-contained stream.

    ``first`` must be a random-access unit (:func:`random_access_units`); the parameter sets that
    precede it are prepended when ``first > 0``.

    Raises:
        ValueError: ``first``/``last`` out of range or ``first`` is not a random-access unit.
    """
    bounds = access_unit_bounds(stream, standard)
    n = len(bounds) - 1
    if not 0 <= first <= last < n:
        raise ValueError(f"cannot cut access units {first}..{last} from a stream of {n}")
    if first and first not in random_access_units(stream, standard):
        raise ValueError(f"access unit {first} is not a random-access point")
    head = parameter_sets_before(stream, bounds[first], standard) if first else b""
    return head + stream[bounds[first] : bounds[last + 1]]


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
