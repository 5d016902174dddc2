"""lstt_init=propagation: S-LSTT blocks start as the identity on their tokens plus identity embeddings carried
from the memory by feature similarity (label propagation), and stay fully trainable."""

from __future__ import annotations

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
