"""STCN network: parameter count, shapes, the stable top-k readout, batch-norm mode, configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from vosc.models.stcn import STCN
from vosc.models.stcn.readout import affinity, topk_weights, weighted_readout

CONF = Path(__file__).resolve().parents[2] / "conf"


def _small() -> STCN:
    torch.manual_seed(0)
    return STCN(key_encoder="resnet18", key_dim=16, value_dim=32, key_comp_dim=32, decoder_dims=(32, 16, 16))


def test_parameter_count_equals_official() -> None:
    model = STCN()
    assert sum(p.numel() for p in model.parameters()) == 54_434_180
    state = model.state_dict()
    assert len(state) == 405
    assert sum(k.endswith("num_batches_tracked") for k in state) == 58


@pytest.mark.parametrize("name,params", [("stcn", 54_434_180), ("stcn_small", 8_748_940)])
def test_configs_instantiate(name: str, params: int) -> None:
    with initialize_config_dir(str(CONF), version_base=None):
        cfg = compose("train.yaml", overrides=[f"model={name}"])
    model = instantiate(cfg.model)
    assert isinstance(model, STCN)
    assert sum(p.numel() for p in model.parameters()) == params


def test_shapes_and_object_batching(one_torch_thread: None) -> None:
    model = _small().eval()
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(2, 3, 64, 96, generator=g)
    masks = (torch.rand(2, 3, 64, 96, generator=g) > 0.7).float()
    with torch.no_grad():
        feats = model.encode_key(frames)
        assert feats.k16.shape == (2, 16, 4, 6) and feats.f8.shape == (2, 128, 8, 12)
        values = model.encode_value(frames, feats.f16, masks)
        assert values.shape == (2, 3, 32, 4, 6)
        # object 1 of video 1 alone, with the others' mask given explicitly: same value
        others = masks[1:2, [0, 2]].sum(1, keepdim=True)
        one = model.value_encoder(frames[1:2], feats.f16[1:2], masks[1:2, 1:2], others)
        torch.testing.assert_close(values[1, 1], one[0], atol=1e-5, rtol=1e-5)
        out = model.segment(feats, feats.k16.flatten(2), values.flatten(3), top_k=5)
    assert out["logits"].shape == (2, 4, 64, 96)
    assert out["object_logits_4x"].shape == (2, 3, 16, 24)
    # per-object decoding batched == one object at a time (video 0, object 2)
    with torch.no_grad():
        first = feats.__class__(*(getattr(feats, f)[:1] for f in ("k16", "f16_thin", "f16", "f8", "f4")))
        solo = model.segment(first, feats.k16[:1].flatten(2), values[:1, 2:3].flatten(3), top_k=5)
    torch.testing.assert_close(solo["object_logits"][0, 0], out["object_logits"][0, 2], atol=1e-5, rtol=1e-5)
    prob = torch.softmax(out["logits"], dim=1)
    expect_bg = torch.prod(1 - torch.sigmoid(out["object_logits"]), dim=1).clamp(1e-7, 1 - 1e-7)
    assert torch.all(prob.argmax(1) == torch.cat([expect_bg[:, None], torch.sigmoid(out["object_logits"])
                                                  .clamp(1e-7, 1 - 1e-7)], 1).argmax(1))


def test_topk_softmax_is_stable_where_the_official_form_overflows() -> None:
    g = torch.Generator().manual_seed(2)
    mk, qk = torch.randn(1, 64, 50, generator=g) * 30, torch.randn(1, 64, 7, generator=g) * 30
    aff = affinity(mk, qk)
    assert aff.abs().max() > 100  # exp() overflows float32 beyond ~88
    values, _ = torch.topk(aff, 20, dim=1)
    assert torch.isnan(values.exp() / values.exp().sum(1, keepdim=True)).any()  # the official form
    weights, idx = topk_weights(aff, 20)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(1, 7))
    torch.testing.assert_close(weights, torch.softmax(values, dim=1))
    # affinity = -|k - q|^2 / sqrt(C) + |q|^2 / sqrt(C): the top-k are the nearest keys
    dist = ((mk[0, :, :, None] - qk[0, :, None, :]) ** 2).sum(0)
    assert torch.equal(idx[0].sort(0).values, dist.topk(20, dim=0, largest=False).indices.sort(0).values)
    torch.testing.assert_close(aff[0], (-dist + (qk[0] ** 2).sum(0)) / math.sqrt(64), atol=1e-2, rtol=1e-4)


def test_sparse_topk_readout_equals_dense_masked_softmax() -> None:
    g = torch.Generator().manual_seed(3)
    aff = torch.randn(2, 40, 12, generator=g)
    mv = torch.randn(2, 3, 8, 40, generator=g)
    w, idx = topk_weights(aff, 5)
    dense = torch.zeros_like(aff).scatter_(1, idx, w)
    torch.testing.assert_close(weighted_readout(mv, w, idx), weighted_readout(mv, dense, None))
    forced_w, forced_idx = topk_weights(aff, None, indices=idx.flip(1))
    torch.testing.assert_close(weighted_readout(mv, forced_w, forced_idx), weighted_readout(mv, w, idx))
    full, none = topk_weights(aff, 40)
    assert none is None and torch.allclose(full, torch.softmax(aff, 1))


def test_training_mode_keeps_batch_norm_statistics() -> None:
    model = _small().train()
    assert model.training and model.decoder.training
    assert not model.key_encoder.net.bn1.training and not model.value_encoder.net.bn1.training
    before = model.key_encoder.net.bn1.running_mean.clone()
    feats = model.encode_key(torch.randn(1, 3, 32, 32))
    feats.k16.sum().backward()
    assert torch.equal(model.key_encoder.net.bn1.running_mean, before)
    assert model.key_encoder.net.bn1.weight.grad is not None  # affine parameters train
    free = STCN(key_encoder="resnet18", key_dim=16, value_dim=32, key_comp_dim=32, decoder_dims=(32, 16, 16),
                freeze_bn_stats=False).train()
    assert free.key_encoder.net.bn1.training


@pytest.mark.parametrize("dims", [(32, 16, 16), (64, 16, 16)])  # with and without the projection skip
def test_decoder_shares_the_frame_half_of_its_first_block(dims: tuple[int, int, int]) -> None:
    """The decoder's first block runs the frame's ``f16_thin`` half once per frame and broadcasts it over
    the objects; the result equals the block on the concatenation ``cat(readout, f16_thin)`` per object."""
    from vosc.models.stcn.modules import Decoder

    torch.manual_seed(0)
    dec = Decoder(in_dim=64, dims=dims, skip_dims=(8, 8)).eval()
    b, k, h, w = 2, 3, 4, 5
    readout, thin = torch.randn(b * k, 32, h, w), torch.randn(b, 32, h, w)
    f8, f4 = torch.randn(b, 8, 2 * h, 2 * w), torch.randn(b, 8, 4 * h, 4 * w)
    with torch.no_grad():
        logits, logits_4x = dec(readout, thin, f8, f4)
        x16 = torch.cat([readout, thin.repeat_interleave(k, dim=0)], dim=1)
        x = dec.up_8_4(f4, dec.up_16_8(f8, dec.compress(x16)))
        expected_4x = dec.pred(torch.relu(x))
    assert logits.shape == (b * k, 1, 16 * h, 16 * w) and logits_4x.shape == (b * k, 1, 4 * h, 4 * w)
    torch.testing.assert_close(logits_4x, expected_4x, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="5 per-object maps for 2 frames"):
        dec(readout[:5], thin, f8, f4)


def test_value_fusion_shares_the_frame_half_of_its_first_block() -> None:
    """The value encoder's fusion convolves the frame's key features once per frame (not per object); the
    values equal the fusion of the per-object concatenation, with and without autograd."""
    from vosc.models.stcn.modules import FeatureFusionBlock

    torch.manual_seed(0)
    fuser = FeatureFusionBlock(24 + 40, 32)
    b, k, h, w = 2, 3, 5, 6
    x, f16 = torch.randn(b * k, 24, h, w), torch.randn(b, 40, h, w)
    cat = torch.cat([x, f16.repeat_interleave(k, dim=0)], dim=1)
    with torch.no_grad():
        y = fuser.block1(cat)
        expected = fuser.block2(y + fuser.attention(y))
        torch.testing.assert_close(fuser(x, f16), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fuser(x, f16.repeat_interleave(k, dim=0)), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fuser(x, f16), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("top_k", [1, 5, 20])
def test_query_major_topk_readout_equals_the_memory_major_form(top_k: int) -> None:
    """Inference reads the memory query-major (fused affinity, top-k along the contiguous axis); it equals
    the memory-major form of training and parity checks, and the official dense form, for several videos."""
    from vosc.models.stcn.readout import topk_readout

    torch.manual_seed(top_k)
    b, k_obj, c_k, c_v, n, m = 2, 3, 16, 8, 60, 35
    mk, qk, mv = torch.randn(b, c_k, n), torch.randn(b, c_k, m), torch.randn(b, k_obj, c_v, n)
    expected = weighted_readout(mv, *topk_weights(affinity(mk, qk), top_k))
    torch.testing.assert_close(topk_readout(mk, mv, qk, top_k), expected, atol=1e-5, rtol=1e-5)
    aff = affinity(mk, qk)  # the official: dense weights, zero outside the top-k, one bmm
    vals, idx = aff.topk(top_k, dim=1)
    dense = torch.zeros_like(aff).scatter_(1, idx, torch.softmax(vals, dim=1))
    torch.testing.assert_close(topk_readout(mk, mv, qk, top_k), (mv.flatten(1, 2) @ dense).view_as(expected),
                               atol=1e-5, rtol=1e-5)


def test_winograd_inference_equals_direct_and_keeps_keys_exact(one_torch_thread: None) -> None:
    """CPU inference takes the Winograd path in the value encoder, key compression and decoder (not in the
    key path: keys are bit-equal to the direct network's); logits agree with the direct network."""
    from vosc.models.winograd import WinogradConv2d

    def build(tile: int | None) -> STCN:
        torch.manual_seed(0)
        return STCN(key_encoder="resnet18", key_dim=16, value_dim=64, key_comp_dim=64,
                    decoder_dims=(64, 32, 32), winograd_tile=tile).eval()

    fast, direct = build(4), build(None)
    assert not any(isinstance(m, WinogradConv2d) for m in fast.key_encoder.modules())
    wino = [m for m in fast.modules() if isinstance(m, WinogradConv2d)]
    assert len(wino) >= 10 and all(m.tile == 4 for m in wino)
    taken: list[bool] = []
    for m in wino:
        m.register_forward_hook(lambda _m, _i, out: taken.append(out.is_contiguous(
            memory_format=torch.channels_last) and not out.is_contiguous()))
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(1, 3, 96, 128, generator=g)
    masks = (torch.rand(1, 3, 96, 128, generator=g) > 0.6).float()
    outs = []
    with torch.no_grad():
        for net in (fast, direct):
            feats = net.encode_key(frames)
            values = net.encode_value(frames, feats.f16, masks)
            outs.append((feats.k16, net.segment(feats, feats.k16.flatten(2), values.flatten(3), top_k=5)))
    assert taken and all(taken)
    assert torch.equal(outs[0][0], outs[1][0])  # keys
    torch.testing.assert_close(outs[0][1]["object_logits"], outs[1][1]["object_logits"], atol=1e-4, rtol=1e-4)


def test_bad_winograd_tile_names_the_config_key() -> None:
    with pytest.raises(ValueError, match=r"model\.winograd_tile must be one of \[2, 4, 6\].*got 5"):
        STCN(key_encoder="resnet18", key_dim=16, value_dim=32, key_comp_dim=32, decoder_dims=(32, 16, 16),
             winograd_tile=5)
