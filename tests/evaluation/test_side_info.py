"""``analysis=encoder`` (:mod:`vosc.evaluation.side_info`) on the real DAVIS pair at a tiny size: the VOS
network runs once per sequence on the original frames and never at the decoder, the decoded masks are the
encoder's, J&F equals the raw-frame J&F, and every mask bit is counted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from vosc.codecs import IdentityCodec, VVenCCodec, X265Codec
from vosc.codecs.mask_codec import DeflateMaskCodec, X265LosslessMaskCodec
from vosc.codecs.roi import BackgroundBlur, RoiX265Codec
from vosc.config import ConfigError
from vosc.evaluation import side_info
from vosc.evaluation.builders import build_analysis
from vosc.evaluation.report import summary_rows
from vosc.evaluation.side_info import EncoderSideSweep
from vosc.evaluation.sweep import Sweep, Variant
from vosc.inference.segmenter import VideoSegmenter
from vosc.types import OperatingPoint

CODECS = {"none": IdentityCodec(), "x265": X265Codec(), "vvenc": VVenCCodec()}


class _Guard:
    """Counts VOS runs and raises when the VOS network is asked for anything during the decode stage."""

    def __init__(self) -> None:
        self.decoding = False
        self.runs = 0

    def segmenter(self, model: torch.nn.Module, depth: int) -> VideoSegmenter:
        guard = self

        class Guarded(VideoSegmenter):
            def run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                if guard.decoding:
                    raise AssertionError("the VOS network was called in the decode stage")
                guard.runs += 1
                yield from super().run(*args, **kwargs)

        return Guarded(model, depth=depth, max_long_edge=96)


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    from vosc.models.vos_model import VOSModel

    torch.manual_seed(0)
    return VOSModel(d_model=32, ffn_dim=64, num_heads=2, num_layers=2, droppath=0.0).eval()


def _sweep(cls: type, root: Path, data: Path, model: torch.nn.Module, guard: _Guard, ladder: list,
           **kwargs) -> Sweep:
    from vosc.data.sources.davis import DavisSource

    return cls(source=DavisSource(data, split="val"), dataset="davis-mini", model=model,
               make_segmenter=guard.segmenter, codecs=CODECS, ladder=ladder, depths=[2],
               out_root=root / "eval", cache_root=root / "cache", model_fingerprint="tiny", max_frames=4,
               resize_long_edge=112, **kwargs)


def _watch_decoder(monkeypatch: pytest.MonkeyPatch, guard: _Guard) -> list[int]:
    calls = []
    real = side_info.decode_side

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        guard.decoding = True
        calls.append(1)
        try:
            return real(*args, **kwargs)
        finally:
            guard.decoding = False

    monkeypatch.setattr(side_info, "decode_side", watched)
    return calls


@pytest.mark.codec
def test_encoder_mode_segments_at_the_encoder_only(tmp_path: Path, davis_mini: Path,
                                                   tiny_model: torch.nn.Module,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _sweep(Sweep, tmp_path, davis_mini, tiny_model, _Guard(), [OperatingPoint("x265", 42)]).run()  # decoder
    guard = _Guard()
    decodes = _watch_decoder(monkeypatch, guard)
    ladder = [OperatingPoint("none"), OperatingPoint("x265", 42), OperatingPoint("x265", 47)]
    sweep = _sweep(EncoderSideSweep, tmp_path, davis_mini, tiny_model, guard, ladder,
                   mask_codec=X265LosslessMaskCodec())
    sweep.run()
    assert len(decodes) == 4  # 2 sequences x 2 compressed points, each through the decoder
    assert guard.runs == 4  # per sequence: raw frames for `none`, and ONE encoder-side run for both q
    curves = sweep.curves()
    assert set(curves) == {("none", 2, False), ("x265+enc", 2, False)}
    enc, raw = curves[("x265+enc", 2, False)], curves[("none", 2, False)]
    assert enc.label == "x265+enc d2" and [p.q for p in enc.points] == [42, 47]
    for point in enc.points:  # the encoder-mode J&F is the raw-frame J&F of the same model
        assert point.jf == pytest.approx(raw.points[0].jf, abs=1e-12) and point.j == raw.points[0].j
        assert point.extra["analysis"] == "encoder" and point.extra["mask_bpp"] > 0
        assert point.bpp == pytest.approx(point.extra["video_bpp"] + point.extra["mask_bpp"])
    assert enc.points[0].extra["video_bpp"] > enc.points[1].extra["video_bpp"]
    assert enc.points[0].extra["mask_bpp"] == enc.points[1].extra["mask_bpp"]
    assert raw.points[0].extra["analysis"] == "original" == raw.provenance.extra["analysis"]
    assert enc.provenance.extra["analysis"] == "encoder"
    assert enc.provenance.extra["mask_coder"] == "x265-lossless"
    rows = {(r["curve"], r["q"]): r for r in summary_rows([raw, enc])}
    assert rows[("x265+enc d2", 42)]["analysis"] == "encoder" and rows[("x265+enc d2", 42)]["mask_bpp"] > 0
    assert rows[("none d2", None)]["analysis"] == "original" and rows[("none d2", None)]["mask_bpp"] == 0
    assert rows[("x265+enc d2", 42)]["t_d_s"] < rows[("x265+enc d2", 42)]["t_e_s"]
    for seq in ("blackswan", "car-shadow"):
        marker = json.loads(sweep.marker_path(Variant(OperatingPoint("x265", 42), 2), seq).read_text())
        raw_dir = sweep.folder(Variant(OperatingPoint("none"), 2)) / "pred" / seq
        enc_dir = sweep.folder(Variant(OperatingPoint("x265", 42), 2)) / "pred" / seq
        assert "x265+enc/q42/d2" in str(enc_dir)
        pngs = sorted(p.name for p in raw_dir.glob("*.png"))
        assert len(pngs) == 4 and pngs == sorted(p.name for p in enc_dir.glob("*.png"))
        masks = np.stack([np.asarray(Image.open(raw_dir / n)) for n in pngs])
        for name, mask in zip(pngs, masks, strict=True):
            assert np.array_equal(np.asarray(Image.open(enc_dir / name)), mask)
        # the counted mask bits are exactly the bytes of the side-information stream of these masks
        assert marker["mask_bits"] == 8 * len(X265LosslessMaskCodec().encode(masks))
        assert marker["bits"] == marker["video_bits"] + marker["mask_bits"]
        assert marker["encode_cached"]  # the decoder-mode bitstream of x265:42, shared by both modes
        decoder = json.loads((tmp_path / "eval/davis-mini/x265/q42/d2/sequences" / f"{seq}.json").read_text())
        assert decoder["analysis"] == "decoder" and decoder["bits"] == marker["video_bits"]
        rt = marker["runtimes"]
        assert marker["analysis"] == "encoder" and rt["vos"] > 0 and rt["mask_decode"] > 0
        assert rt["t_e"] == pytest.approx(rt["encode"] + rt["prefilter"] + rt["vos"] + rt["mask_encode"])
        assert rt["t_d"] == pytest.approx(rt["decode"] + rt["mask_decode"] + rt["enhance"])
        assert marker["psnr_inside"] is not None and marker["psnr_regions"] == "ground truth"
    again = _sweep(EncoderSideSweep, tmp_path, davis_mini, tiny_model, guard, ladder,
                   mask_codec=X265LosslessMaskCodec())
    again.run()
    assert (again.computed, again.resumed) == (0, 6)
    other = _sweep(EncoderSideSweep, tmp_path, davis_mini, tiny_model, guard, ladder,
                   mask_codec=DeflateMaskCodec("zlib"))
    with pytest.raises(Exception, match="mask_codec"):
        other.run()  # another mask coder: the stale result names the changed input


@pytest.mark.codec
def test_object_aware_encoder_mode(tmp_path: Path, davis_mini: Path, tiny_model: torch.nn.Module) -> None:
    guard = _Guard()
    sweep = _sweep(EncoderSideSweep, tmp_path, davis_mini, tiny_model, guard,
                   [OperatingPoint("none"), OperatingPoint("x265", 37)],
                   roi=RoiX265Codec(margin=2, block=16), prefilter=BackgroundBlur(sigma=2.0, dilate=4))
    sweep.run()
    curves = sweep.curves()
    enc = curves[("x265+enc+roi+blur", 2, False)]
    assert enc.label == "x265+enc+roi+blur d2"
    assert enc.points[0].jf == pytest.approx(curves[("none", 2, False)].points[0].jf, abs=1e-12)
    extra = enc.points[0].extra
    assert extra["psnr_inside"] > extra["psnr_outside"]  # the bits went to the objects
    assert enc.provenance.extra["roi"]["block"] == 16 and enc.provenance.extra["prefilter"]["sigma"] == 2.0


def test_analysis_options_are_checked(tmp_path: Path, davis_mini: Path, tiny_model: torch.nn.Module) -> None:
    node = OmegaConf.create({"mask_codec": {"_target_": "vosc.codecs.mask_codec.FFV1MaskCodec"},
                             "object_aware": "none",
                             "roi": {"_target_": "vosc.codecs.roi.RoiX265Codec"},
                             "blur": {"_target_": "vosc.codecs.roi.BackgroundBlur"}})
    assert build_analysis("decoder", node) == (Sweep, {})
    cls, kwargs = build_analysis("encoder", node)
    assert cls is EncoderSideSweep and kwargs["mask_codec"].label == "ffv1" and kwargs["roi"] is None
    with pytest.raises(ConfigError, match="analysis='both': use decoder"):
        build_analysis("both", node)
    node.object_aware = "roi"
    with pytest.raises(ConfigError, match="object_aware=roi needs analysis=encoder"):
        build_analysis("decoder", node)
    node.object_aware = "boxes"
    with pytest.raises(ConfigError, match="object_aware='boxes': use one of"):
        build_analysis("encoder", node)
    with pytest.raises(ConfigError, match="roi codes x265 only; the ladder also has \\['vvenc'\\]"):
        _sweep(EncoderSideSweep, tmp_path, davis_mini, tiny_model, _Guard(),
               [OperatingPoint("x265", 42), OperatingPoint("vvenc", 42)], roi=RoiX265Codec())


@pytest.mark.codec
def test_encoder_mode_with_enhancer(tmp_path: Path, davis_mini: Path, tiny_model: torch.nn.Module) -> None:
    """The enhancer runs on the decoded video only (PSNR, viewing): the masks and J&F do not change, its time
    is decoder-side, and a non-identity enhancer changes the PSNR-Y."""
    from vosc.evaluation.sweep import EnhancerSpec
    from vosc.models.enhancer import CompressionAwareEnhancer

    torch.manual_seed(0)
    net = CompressionAwareEnhancer("tiny").eval()
    with torch.no_grad():
        net.tail.weight.normal_(0.0, 1e-2)
    sweep = _sweep(EncoderSideSweep, tmp_path, davis_mini, tiny_model, _Guard(), [OperatingPoint("x265", 42)],
                   enhancer=EnhancerSpec(net, "tiny", "fp"), enhancer_mode="both")
    sweep.run()
    curves = sweep.curves()
    plain, enh = curves[("x265+enc", 2, False)].points[0], curves[("x265+enc", 2, True)].points[0]
    assert curves[("x265+enc", 2, True)].label == "x265+enc d2 +tiny"
    assert enh.jf == plain.jf and enh.bpp == plain.bpp and enh.psnr != plain.psnr
    variant = Variant(OperatingPoint("x265", 42), 2, True)
    marker = json.loads(sweep.marker_path(variant, "blackswan").read_text())
    rt = marker["runtimes"]
    assert rt["enhance"] > 0 and rt["t_d"] == pytest.approx(rt["decode"] + rt["mask_decode"] + rt["enhance"])
    assert "x265+enc/q42/d2/enh" in str(sweep.folder(variant))


class _CountingX265(X265Codec):
    """The real x265 codec, counting its decodes."""

    decodes = 0

    def decode_stream(self, bitstream: bytes, num_frames: int, height: int, width: int):  # type: ignore[override]
        type(self).decodes += 1
        return super().decode_stream(bitstream, num_frames, height, width)


def test_a_plain_video_sent_beside_two_mask_streams_is_decoded_once() -> None:
    """Depths share the plain video (only their masks differ): the decoder decodes it once and reports the
    seconds that decode took for each; each depth's masks are decoded from their own stream."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, (3, 32, 48, 3), dtype=np.uint8)
    codec, coder = _CountingX265(), DeflateMaskCodec()
    masks = [np.zeros((3, 32, 48), np.uint8) for _ in range(2)]
    masks[0][:, 4:20, 8:30], masks[1][:, 10:28, 2:40] = 1, 1
    sides = [side_info.encode_side(codec, 37, raw, m, 0.0, (coder.encode(m), 0.0)) for m in masks]
    assert sides[0].video == sides[1].video
    videos: dict = {}
    out = [side_info.decode_side(codec, coder, s, (3, 32, 48), videos) for s in sides]
    assert _CountingX265.decodes == 1
    assert np.array_equal(out[0][0], out[1][0]) and out[0][3]["decode"] == out[1][3]["decode"] > 0
    assert np.array_equal(out[0][1], masks[0]) and np.array_equal(out[1][1], masks[1])
