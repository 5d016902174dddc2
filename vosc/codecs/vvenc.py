"""VVC through VVenC, as ``libvvenc`` inside the FFmpeg binary of ``imageio-ffmpeg`` (DESIGN §5).

The encoder configuration is VVenC's ``cfg/experimental/lowdelay_faster.cfg`` (fraunhoferhhi/vvenc,
checked against the tree at v1.14.0-159 "Remove LMCS"; the deprecated, zero-valued LMCS keys of older
copies are left out) passed key by key through ``-vvenc-params`` — FFmpeg cannot take a cfg file. The
file's I/O keys (``BitstreamFile``, ``ReconFile``) and ``QP`` are dropped (QP comes from ``-qp``), and
``Threads=0`` (one core), ``AccessUnitDelimiter=0`` and ``ALFSpeed=0`` are set. Low delay: GOP 8 without
reordering, only the first frame intra. Input is piped as ``yuv420p10le`` (converted in numpy),
output is a raw ``.266`` Annex-B stream. Decoding uses PyAV's ``vvc`` decoder when present, else the
FFmpeg binary with ``-fps_mode passthrough``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Literal

import numpy as np

from vosc.codecs.annexb import access_unit_sizes
from vosc.codecs.base import Codec, CodecError, DecodedStream, Standard
from vosc.codecs.common import pyav_decode
from vosc.codecs.ffmpeg import (
    decode_argv,
    ffmpeg_version,
    find_ffmpeg,
    run_ffmpeg,
    run_ffmpeg_capture,
    slice_qps_from_trace,
    trace_headers_argv,
    vvenc_encode_argv,
)
from vosc.codecs.yuv import crop, pack_planes, rgb_to_yuv420, unpack_planes, yuv420_to_rgb
from vosc.config import ConfigError

#: ``lowdelay_faster.cfg`` of VVenC, in file order, without I/O keys and QP.
LOWDELAY_FASTER: dict[str, str] = {
    "Profile": "auto",
    "IntraPeriod": "-1",
    "DecodingRefreshType": "0",
    "GOPSize": "8",
    "STA": "0",
    "POC0IDR": "1",
    "IntraQPOffset": "-1",
    "PicReordering": "0",
    "LambdaFromQpEnable": "1",
    "Frame1": "B 1 5 -6.5 0.2590 0 0 1.0 0 0 0 0 0 0 0 4 4 1 9 17 25 4 4 1 9 17 25",
    "Frame2": "B 2 4 -6.5 0.2590 0 0 1.0 0 0 0 0 0 0 0 4 4 1 2 10 18 4 4 1 2 10 18",
    "Frame3": "B 3 5 -6.5 0.2590 0 0 1.0 0 0 0 0 0 0 0 4 4 1 3 11 19 4 4 1 3 11 19",
    "Frame4": "B 4 4 -6.5 0.2590 0 0 1.0 0 0 0 0 0 0 0 4 4 1 4 12 20 4 4 1 4 12 20",
    "Frame5": "B 5 5 -6.5 0.2590 0 0 1.0 0 0 0 0 0 0 0 4 4 1 5 13 21 4 4 1 5 13 21",
    "Frame6": "B 6 4 -6.5 0.2590 0 0 1.0 0 0 0 0 0 0 0 4 4 1 6 14 22 4 4 1 6 14 22",
    "Frame7": "B 7 5 -6.5 0.2590 0 0 1.0 0 0 0 0 0 0 0 4 4 1 7 15 23 4 4 1 7 15 23",
    "Frame8": "B 8 1 0.0 0.0 0 0 1.0 0 0 0 0 0 0 0 4 4 1 8 16 24 4 4 1 8 16 24",
    "FastSearch": "4", "SearchRange": "64", "BipredSearchRange": "1", "HadamardME": "1", "FEN": "3",
    "FDM": "1", "NumRefPics": "0", "NumRefPicsSCC": "0",
    "RDOQ": "2", "RDOQTS": "1", "SignHideFlag": "1",
    "LoopFilterOffsetInPPS": "1", "LoopFilterDisable": "0",
    "LoopFilterBetaOffset_div2": "0", "LoopFilterTcOffset_div2": "0",
    "LoopFilterCbBetaOffset_div2": "0", "LoopFilterCbTcOffset_div2": "0",
    "LoopFilterCrBetaOffset_div2": "0", "LoopFilterCrTcOffset_div2": "0",
    "InternalBitDepth": "10", "SEIDecodedPictureHash": "0", "CbQpOffset": "0", "CrQpOffset": "0",
    "SameCQPTablesForAllChroma": "1", "QpInValCb": "17 22 34 42", "QpOutValCb": "17 23 35 39",
    "ReWriteParamSets": "1",
    "CTUSize": "64", "LCTUFast": "1", "DualITree": "1", "MinQTLumaISlice": "4",
    "MinQTChromaISliceInChromaSamples": "2", "MinQTNonISlice": "4", "MaxMTTDepth": "0",
    "MaxMTTDepthI": "0", "MaxNumMergeCand": "4",
    "Affine": "0", "ALF": "1", "ALFSpeed": "2", "ALFUnitSize": "128", "AllowDisFracMMVD": "0",
    "BCW": "0", "BIM": "1", "BIO": "0", "CCALF": "1", "CIIP": "0", "DepQuant": "0", "DMVR": "1",
    "EncDbOpt": "0", "Geo": "0", "IMV": "0", "ISP": "0", "JointCbCr": "0", "LFNST": "0",
    "LMChroma": "1", "MCTF": "2", "MCTFSpeed": "4", "MCTFFutureReference": "0", "MIP": "0",
    "FastMIP": "0", "MMVD": "0", "MRL": "0", "MTS": "0", "MTSImplicit": "1", "PROF": "0", "SAO": "2",
    "SBT": "0", "SbTMVP": "0", "SMVD": "0", "TMVPMode": "1", "UseNonLinearAlfChroma": "0",
    "UseNonLinearAlfLuma": "0",
    "FastSearchSCC": "2", "BDPCM": "2", "IBC": "2", "IBCFastMethod": "6", "TransformSkip": "2",
    "ChromaTS": "0", "TransformSkipLog2MaxSize": "3",
    "QtbttExtraFast": "7", "ContentBasedFastQtbt": "1", "PBIntraFast": "2", "FastQtBtEnc": "1",
    "FastHAD": "1", "FastMrg": "3", "FastLocalDualTreeMode": "1", "FastSubPel": "1",
    "FastIntraTools": "0", "FastInferMerge": "4", "ECU": "2", "IntegerET": "1", "IntraEstDecBit": "3",
    "NumIntraModesFullRD": "1", "ReduceIntraChromaModesFullRD": "1", "FastTTSplit": "0",
    "ReduceFilterME": "2", "SelectiveRDOQ": "2", "FirstPassMode": "4",
}  # fmt: skip

#: Overrides of DESIGN §5 on top of the cfg: one core, no AUD NAL units, ALF on every frame.
VVENC_OVERRIDES: dict[str, str] = {"Threads": "0", "AccessUnitDelimiter": "0", "ALFSpeed": "0"}

Decoder = Literal["auto", "pyav", "ffmpeg"]

#: VVenC fails on pictures smaller than 16x16; smaller inputs are padded (edge replication) and cropped back.
MIN_CODED_SIDE = 16


def coded_size(height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` of the coded pictures: even, and at least ``MIN_CODED_SIDE``."""
    return max(height + height % 2, MIN_CODED_SIDE), max(width + width % 2, MIN_CODED_SIDE)


def vvenc_params(extra: Mapping[str, object] | None = None) -> dict[str, str]:
    """The full ``-vvenc-params`` dictionary: lowdelay_faster + overrides + ``extra``."""
    params = {**LOWDELAY_FASTER, **VVENC_OVERRIDES}
    for key, value in (extra or {}).items():
        if key.lower() == "qp":
            raise ConfigError("set the VVenC QP through q, not through vvenc_params")
        params[key] = str(value)
    return params


def _pyav_has_vvc() -> bool:
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        return False
    return "vvc" in av.codecs_available


class VVenCCodec(Codec):
    """VVenC (libvvenc in FFmpeg) at a fixed QP with the low-delay faster configuration.

    Args:
        ffmpeg_path: FFmpeg executable; ``None`` uses ``imageio_ffmpeg.get_ffmpeg_exe()``.
        decoder: ``"pyav"`` (in-process ``vvc``), ``"ffmpeg"`` (subprocess) or ``"auto"`` (PyAV if it
            has a ``vvc`` decoder).
        extra_params: Additional/overriding VVenC keys (not ``QP``).
        timeout: Seconds allowed per FFmpeg call.
    """

    name = "vvenc"
    q_range = (0, 63)
    standard: Standard = "vvc"

    def __init__(
        self,
        ffmpeg_path: str | None = None,
        decoder: Decoder = "auto",
        extra_params: dict[str, object] | None = None,
        timeout: float = 600.0,
    ) -> None:
        if decoder not in ("auto", "pyav", "ffmpeg"):
            raise ConfigError(f"vvenc decoder must be 'auto', 'pyav' or 'ffmpeg', got {decoder!r}")
        self.ffmpeg_path = ffmpeg_path
        self.decoder = decoder
        self.vvenc_params = vvenc_params(extra_params)
        self.timeout = float(timeout)

    @property
    def exe(self) -> str:
        """The FFmpeg executable (raises :class:`EncoderNotFoundError` when missing)."""
        return find_ffmpeg(self.ffmpeg_path)

    def params(self) -> dict[str, object]:
        """Everything that changes the bitstream (cache keys, provenance)."""
        return {
            "qpa": 0,
            "pix_fmt": "yuv420p10le",
            "vvenc_params": dict(self.vvenc_params),
            "yuv": "bt601-limited-numpy",
            "min_coded_side": MIN_CODED_SIDE,
        }

    def _encode(self, frames: np.ndarray, q: int) -> bytes:
        """Encode ``(T, H, W, 3)`` uint8 RGB to a raw VVC (``.266``) Annex-B stream."""
        h, w = frames.shape[1:3]
        ch, cw = coded_size(h, w)
        padded = np.pad(frames, [(0, 0), (0, ch - h), (0, cw - w), (0, 0)], mode="edge")
        raw = pack_planes(*rgb_to_yuv420(padded, bit_depth=10))
        argv = vvenc_encode_argv(self.exe, cw, ch, q, self.vvenc_params)
        stream = run_ffmpeg(argv, stdin=raw, timeout=self.timeout)
        if not stream:
            raise CodecError(f"vvenc produced an empty bitstream for {frames.shape} at q={q}")
        return stream

    def stream_qps(self, bitstream: bytes) -> list[float] | None:
        """Slice QP of each picture, read from the bitstream's slice headers (FFmpeg ``trace_headers``).

        With ``-qpa 0`` VVenC codes every picture at one QP (its slice QP): the base QP plus the
        intra / GOP-position offsets and QP-offset model of the low-delay configuration. Decoding
        order equals display order (no picture reordering).
        """
        if self.vvenc_params.get("PicReordering", "0") != "0":
            return None
        _, stderr = run_ffmpeg_capture(
            trace_headers_argv(self.exe, "vvc"), stdin=bitstream, timeout=self.timeout
        )
        return [float(q) for q in slice_qps_from_trace(stderr.decode(errors="replace"))]

    def decode_stream(self, bitstream: bytes, num_frames: int, height: int, width: int) -> DecodedStream:
        """Decode to RGB with per-frame access-unit sizes (PyAV) — see :func:`pyav_decode` — and the
        per-frame slice QPs (:meth:`stream_qps`).

        With the FFmpeg decoder, per-frame sizes come from :func:`vosc.codecs.annexb.access_unit_sizes`
        (identical to PyAV's parser on VVenC streams) and picture types are unknown.
        """
        dec = self._decode_frames(bitstream, num_frames, height, width)
        qps = self.stream_qps(bitstream)
        if qps is not None and len(qps) != num_frames:
            raise CodecError(f"vvenc: {len(qps)} slice QPs in the stream, expected {num_frames}")
        dec.frame_qps = qps
        return dec

    def decode_pictures(self, bitstream: bytes, num_frames: int, height: int, width: int) -> DecodedStream:
        """:meth:`decode_stream` without the slice-QP pass (``frame_qps`` is ``None``)."""
        return self._decode_frames(bitstream, num_frames, height, width)

    def _decode_frames(self, bitstream: bytes, num_frames: int, height: int, width: int) -> DecodedStream:
        use_pyav = self.decoder == "pyav" or (self.decoder == "auto" and _pyav_has_vvc())
        if use_pyav:
            return pyav_decode("vvc", bitstream, num_frames, height, width, coded_size(height, width))
        ph, pw = coded_size(height, width)
        raw = run_ffmpeg(decode_argv(self.exe, "vvc", "yuv420p10le"), stdin=bitstream, timeout=self.timeout)
        try:
            y, u, v = unpack_planes(raw, num_frames, ph, pw, bit_depth=10)
        except ValueError as exc:
            raise CodecError(f"vvenc: FFmpeg decode returned the wrong amount of data: {exc}") from exc
        frames = crop(yuv420_to_rgb(y, u, v, bit_depth=10), height, width)
        sizes = access_unit_sizes(bitstream, "vvc")
        if len(sizes) != num_frames:
            raise CodecError(f"vvenc: {len(sizes)} access units in the stream, expected {num_frames}")
        return DecodedStream(frames=frames, frame_bytes=sizes)

    def decode(self, bitstream: bytes, num_frames: int, height: int, width: int) -> np.ndarray:
        """Decode to ``(num_frames, height, width, 3)`` uint8 RGB."""
        return self._decode_frames(bitstream, num_frames, height, width).frames

    def version(self) -> str:
        """``libvvenc <version> / ffmpeg <version>`` of the binary in use."""
        return _vvenc_version(self.exe, self.timeout)


@functools.lru_cache(maxsize=4)
def _vvenc_version(exe: str, timeout: float) -> str:
    """Encode one 16x16 frame at ``-loglevel verbose`` and read libvvenc's version line."""
    argv = vvenc_encode_argv(exe, 16, 16, 51, vvenc_params())
    argv[argv.index("-loglevel") + 1] = "verbose"
    raw = pack_planes(*rgb_to_yuv420(np.full((1, 16, 16, 3), 128, np.uint8), bit_depth=10))
    _, stderr = run_ffmpeg_capture(argv, stdin=raw, timeout=timeout)
    m = re.search(r"libvvenc version: (\S+)", stderr.decode(errors="replace"))
    return f"libvvenc {m.group(1) if m else 'unknown'} / ffmpeg {ffmpeg_version(exe)}"
