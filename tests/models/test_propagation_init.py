"""lstt_init=propagation: S-LSTT blocks start as the identity on their tokens plus identity embeddings carried
from the memory by feature similarity (label propagation), and stay fully trainable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vosc.config import ConfigError
from vosc.models.vos_model import VOSModel


def _model(init: str) -> VOSModel:
    torch.manual_seed(0)
    return VOSModel(encoder="mobilenetv2_050", d_model=64, ffn_dim=128, num_heads=4, droppath=0.0,
                    freeze_bn=False, freeze_at=0, lstt_init=init)


def test_blocks_start_as_identity_plus_propagated_ids() -> None:
    block = _model("propagation").lstt.block(0).eval()
    size = (4, 6)
    tgt = torch.randn(1, 24, 64)
    pos = torch.zeros(1, 24, 64)
    out, (q, v) = block(tgt, pos, size, id_emb=torch.zeros(1, 24, 64))
    assert torch.allclose(out, tgt, atol=1e-6)  # no identities in the memory: tokens pass unchanged
    assert torch.count_nonzero(v) == 0
    ids = torch.randn(1, 24, 64)
    out, _ = block(tgt, pos, size, id_emb=ids)
    # long-term part: softmax over the frame of the scaled token correlations, applied to the identities
    x = F.layer_norm(tgt, (64,))
    heads = (2.0 * x).view(1, 24, 4, 16).transpose(1, 2)
    long = F.scaled_dot_product_attention(heads, heads, ids.view(1, 24, 4, 16).transpose(1, 2))
    long = long.transpose(1, 2).reshape(1, 24, 64)
    short = out - tgt - long  # the 15x15 window covers the whole 4x6 frame: the same propagation again
    assert torch.allclose(short, long, atol=1e-4)


def test_reference_init_differs_and_every_weight_trains() -> None:
    prop, ref = _model("propagation"), _model("reference")
    assert not torch.equal(prop.lstt.block(0).linear_QV.weight, ref.lstt.block(0).linear_QV.weight)
    assert all(p.requires_grad for p in prop.lstt.parameters())
    frames = torch.randn(1, 3, 65, 65)
    feats = prop.encode(frames)
    out, kv = prop.propagate(feats.tokens, feats.size_2d, 0, 1, id_emb=torch.randn(1, 25, 64))
    out[-1].square().mean().backward()
    grads = {n for n, p in prop.lstt.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert "layers.0.linear_QV.weight" in grads and "layers.0.linear_ID_KV.weight" in grads


def test_unknown_init_and_aot_blocks_are_refused() -> None:
    with pytest.raises(ConfigError, match="model.lstt_init='xavier'"):
        VOSModel(encoder="mobilenetv2_050", d_model=64, ffn_dim=128, lstt_init="xavier")
    with pytest.raises(ConfigError, match="needs S-LSTT blocks"):
        VOSModel(encoder="mobilenetv2_050", block="lstt", d_model=64, ffn_dim=128, lstt_init="propagation")


def test_identity_embeddings_start_distinct() -> None:
    """The reference's ID bank bias makes every identity's embedding nearly the same after AOST's LayerNorm;
    the propagation init removes it, so that label propagation of the embeddings carries the identities."""
    from vosc.models.propagation.init import identity_vectors

    prop = identity_vectors(_model("propagation").id_bank, 11)
    ref = identity_vectors(_model("reference").id_bank, 11)
    cos = lambda e: F.normalize(e, dim=1) @ F.normalize(e, dim=1).t()  # noqa: E731
    off = ~torch.eye(11, dtype=torch.bool)
    assert cos(ref)[off].mean() > 0.9
    assert cos(prop)[off].abs().max() < 0.5
    # unit RMS: LayerNorm's eps is negligible
    assert torch.allclose(prop.square().mean(1), torch.ones(11), atol=0.05)


def _readout_model(num_heads: int = 2) -> VOSModel:
    torch.manual_seed(0)
    return VOSModel(encoder="efficientnet_lite0", pretrained=True, d_model=128, ffn_dim=256,
                    num_heads=num_heads,
                    droppath=0.0, freeze_at=5, encoder_head=False, lstt_init="propagation",
                    decoder_readout=True).eval()


def test_readout_starts_as_label_propagation_of_the_given_mask() -> None:
    """decoder_readout: the untrained model's logits are the readout alone (conv_out starts at zero), and on a
    real photo they give back the mask of the memory frame (the same frame, shifted by 16 pixels)."""
    from skimage import data as skdata

    from vosc.inference.segmenter import VideoSegmenter

    model = _readout_model()
    assert torch.count_nonzero(model.decoder.conv_out.weight) == 0
    img = skdata.chelsea()[:289, :433]  # (289, 433, 3)
    mask = torch.zeros(289, 433, dtype=torch.uint8)
    mask[60:240, 80:300] = 1
    shifted = torch.roll(torch.from_numpy(img), 16, dims=1).numpy()
    moved = torch.roll(mask, 16, dims=1)
    for depth in (1, 2, 3):
        res = VideoSegmenter(model, depth=depth).segment([img, shifted], {0: mask.numpy()})
        pred = torch.from_numpy(res[1].mask) > 0
        iou = (pred & (moved > 0)).sum() / (pred | (moved > 0)).sum()
        assert iou > 0.8, f"depth {depth}: IoU {iou:.3f}"


def test_decoder_with_readout_needs_its_input() -> None:
    model = _readout_model()
    feats = model.encode(torch.randn(1, 3, 65, 65))
    outs, _ = model.propagate(feats.tokens, feats.size_2d, 0, 1, id_emb=torch.randn(1, 25, 128))
    with pytest.raises(ValueError, match="readout_in"):
        model.decoder(torch.randn(1, 256, 5, 5), feats.feats, 0)
    assert model.decode(feats.feats, outs, 1).shape == (1, 11, 17, 17)


def _blackswan_mean_j(model: VOSModel, root: Path, frames: int = 13) -> list[float]:
    """Mean J over frames 1..frames-1 of ``blackswan`` at a 432-pixel long edge, per depth 1/2/3."""
    import cv2
    import numpy as np
    from PIL import Image

    from vosc.inference.segmenter import VideoSegmenter

    def read(path: Path, mask: bool) -> np.ndarray:
        a = np.array(Image.open(path))
        return cv2.resize(a, (432, 243), interpolation=cv2.INTER_NEAREST if mask else cv2.INTER_AREA)

    seq = sorted((root / "JPEGImages" / "480p" / "blackswan").glob("*.jpg"))[:frames]
    masks = sorted((root / "Annotations" / "480p" / "blackswan").glob("*.png"))[:frames]
    gts = [read(p, True) > 0 for p in masks]
    imgs = [read(p, False) for p in seq]
    out = []
    for depth in (1, 2, 3):
        res = VideoSegmenter(model, depth=depth).segment(imgs, {0: gts[0].astype(np.uint8)})
        out.append(float(np.mean([((r.mask > 0) & g).sum() / ((r.mask > 0) | g).sum()
                                  for r, g in zip(res[1:], gts[1:], strict=True)])))
    return out


def test_untrained_model_follows_a_real_object(davis_mini: Path) -> None:
    """The untrained aost_lite0_cpu-style model (2 heads, readout) tracks the swan over 12 frames at every
    depth (measured mean J 0.80; with 8 heads, each matching on 16 channels, the masks shrink away:
    0.25 / 0.19 / 0.16)."""
    jm = _blackswan_mean_j(_readout_model(2), davis_mini)
    assert min(jm) > 0.6, jm
