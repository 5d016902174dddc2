"""Enhancer networks: identity at initialisation, shapes, causality of the temporal window, sizes,
conditioning inputs and input validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from vosc.models.enhancer import (
    CompressionAwareEnhancer,
    IdentityEnhancer,
    enhance_batch,
    imagenet_denormalize,
    imagenet_normalize,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "model" / "enhancer"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clip(b: int = 2, t: int = 4, h: int = 37, w: int = 53, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _randomise_tail(model: CompressionAwareEnhancer) -> None:
    torch.manual_seed(1)
    torch.nn.init.normal_(model.tail.weight, std=0.05)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_sizes_match_the_design() -> None:
    assert 45_000 <= _count(CompressionAwareEnhancer("tiny")) <= 55_000
    assert 750_000 <= _count(CompressionAwareEnhancer("base")) <= 850_000


@pytest.mark.parametrize("name,kind,params", [("identity", IdentityEnhancer, 0),
                                              ("cae_tiny", CompressionAwareEnhancer, 53_735),
                                              ("cae_base", CompressionAwareEnhancer, 810_843)])
def test_hydra_configs_instantiate(name: str, kind: type, params: int) -> None:
    model = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
    assert type(model) is kind and _count(model) == params


@pytest.mark.parametrize("size", ["tiny", "base"])
@pytest.mark.parametrize("hw", [(37, 53), (64, 64), (1, 1)])
def test_identity_at_initialisation_exactly(size: str, hw: tuple[int, int]) -> None:
    model = CompressionAwareEnhancer(size)
    clip = _clip(h=hw[0], w=hw[1])
    q = torch.tensor([42, 32])
    out = model(clip, ["x265", "vvenc"], q, torch.full((2, 4), 40.0), torch.tensor([[0, 1, 1, 2]] * 2))
    assert out.shape == clip.shape and torch.equal(out, clip)
    norm = imagenet_normalize(clip)
    assert torch.equal(model.enhance(norm, ["none", "x265"], torch.tensor([-1, 42])), norm)


def test_identity_enhancer_returns_input() -> None:
    clip = _clip()
    model = IdentityEnhancer()
    assert model(clip, ["x265"] * 2) is clip
    assert model.enhance(clip, ["none"] * 2) is clip
    assert torch.equal(model.residual(clip, ["none"] * 2), torch.zeros_like(clip))


def test_normalisation_helpers_round_trip() -> None:
    clip = _clip()
    assert torch.allclose(imagenet_denormalize(imagenet_normalize(clip)), clip, atol=1e-6)
    assert torch.allclose(imagenet_normalize(torch.full((1, 3, 1, 1), 0.485))[0, 0], torch.zeros(1, 1))


def test_window_is_causal_and_repeats_the_first_frame() -> None:
    model = CompressionAwareEnhancer("tiny").eval()
    _randomise_tail(model)
    clip = _clip(b=1, t=5, h=32, w=32)
    cond = (["x265"], torch.tensor([42]))
    with torch.no_grad():
        res = model.residual(clip, *cond)
        changed = clip.clone()
        changed[:, 3] = torch.rand_like(changed[:, 3])
        res2 = model.residual(changed, *cond)
        first = model.enhance_window(clip[:, [0, 0, 0]], torch.tensor([1]), torch.tensor([42.0]),
                                     torch.tensor([3]))
        third = model.enhance_window(clip[:, [0, 1, 2]], torch.tensor([1]), torch.tensor([42.0]),
                                     torch.tensor([3]))
    assert torch.equal(res[:, :3], res2[:, :3])  # frames before t=3 do not see frame 3
    assert not torch.allclose(res[:, 3], res2[:, 3]) and not torch.allclose(res[:, 4], res2[:, 4])
    assert torch.allclose(res[:, 0], first, atol=1e-6)
    assert torch.allclose(res[:, 2], third, atol=1e-6)
    single = model.residual(clip[:, :1], *cond)
    assert torch.allclose(single[:, 0], res[:, 0], atol=1e-6)


def test_enhance_matches_forward_in_normalised_space() -> None:
    model = CompressionAwareEnhancer("tiny").eval()
    _randomise_tail(model)
    clip = _clip()
    args = (["x265", "vvenc"], torch.tensor([42, 37]))
    with torch.no_grad():
        out01 = model(clip, *args)
        out_norm = model.enhance(imagenet_normalize(clip), *args)
    assert not torch.allclose(out01, clip)
    assert torch.allclose(imagenet_denormalize(out_norm), out01, atol=1e-5)


def test_every_conditioning_input_reaches_the_output() -> None:
    model = CompressionAwareEnhancer("tiny").eval()
    _randomise_tail(model)
    clip = _clip(b=1)
    with torch.no_grad():
        ref = model(clip, ["x265"], torch.tensor([42]))
        variants = [model(clip, ["vvenc"], torch.tensor([42])),
                    model(clip, ["x265"], torch.tensor([30])),
                    model(clip, ["x265"], torch.tensor([-1])),
                    model(clip, ["x265"], torch.tensor([42]), torch.full((1, 4), 30.0)),
                    model(clip, ["x265"], torch.tensor([42]), None, torch.zeros(1, 4, dtype=torch.long))]
        same = [model(clip, torch.tensor([1]), torch.tensor([42])),
                model(clip, ["x265"], torch.tensor([42]), torch.full((1, 4), float("nan"))),
                model(clip, ["x265"], torch.tensor([42]), None, torch.full((1, 4), -1))]
    for v in variants:
        assert (v - ref).abs().max() > 1e-6
    for s in same:  # index form of the codec, invalid per-frame QPs -> nominal, -1 type -> unknown
        assert torch.equal(s, ref)


def test_bad_inputs_raise_specific_errors() -> None:
    model = CompressionAwareEnhancer("tiny")
    clip = _clip(b=2, t=3)
    with pytest.raises(ValueError, match="unknown codec name"):
        model(clip, ["x264", "x265"])
    with pytest.raises(ValueError, match="2 codec entries for a batch of 2|got 1 codec"):
        model(clip, ["x265"])
    with pytest.raises(ValueError, match="frame_qps shape"):
        model(clip, ["x265"] * 2, torch.tensor([1, 2]), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="frame type ids"):
        model(clip, ["x265"] * 2, None, None, torch.full((2, 3), 7))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(clip[:, 0], ["x265"] * 2)
    with pytest.raises(ValueError, match="unknown size"):
        CompressionAwareEnhancer("huge")


def test_gradients_flow_after_the_first_update() -> None:
    torch.manual_seed(0)
    model = CompressionAwareEnhancer("tiny")
    clip = _clip(b=1, t=2, h=24, w=24)
    target = _clip(b=1, t=2, h=24, w=24, seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def grads() -> dict[str, torch.Tensor]:
        opt.zero_grad(set_to_none=False)
        (model(clip, ["x265"], torch.tensor([42])) - target).abs().mean().backward()
        return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

    first = grads()
    assert first["tail.weight"].abs().sum() > 0
    # the zero tail blocks the rest at initialisation
    assert {n for n, g in first.items() if g.abs().sum() > 0} == {"tail.weight", "tail.bias"}
    tail_before = model.tail.weight.detach().clone()
    opt.step()  # the first update: the tail is no longer zero
    assert not torch.equal(model.tail.weight, tail_before)
    second = grads()
    # every parameter now gets a gradient, except what this batch does not select: the unknown-QP vector (the
    # QP is known) and the embedding rows of other codecs and picture types
    dead = {n for n, _ in model.named_parameters()} - {n for n, g in second.items() if g.abs().sum() > 0}
    assert dead == {"cond.qp_unknown"}
    codec_rows = second["cond.codec.weight"].abs().sum(1)
    assert int((codec_rows > 0).sum()) == 1


def test_enhance_batch_uses_the_batch_conditioning() -> None:
    from vosc.types import VOSBatch

    model = CompressionAwareEnhancer("tiny").eval()
    _randomise_tail(model)
    clip = imagenet_normalize(_clip(b=1, t=3, h=16, w=16))
    batch = VOSBatch(frames=clip, masks=torch.zeros(1, 3, 1, 16, 16, dtype=torch.long),
                     num_objects=torch.ones(1, dtype=torch.long), codec=["vvenc"], q=torch.tensor([37]),
                     bits=torch.zeros(1, dtype=torch.long), sequences=["s"],
                     frame_qps=torch.full((1, 3), 39.0), frame_types=torch.tensor([[0, 1, 1]]))
    with torch.no_grad():
        expected = model.enhance(clip, ["vvenc"], torch.tensor([37]), torch.full((1, 3), 39.0),
                                 torch.tensor([[0, 1, 1]]))
        assert torch.equal(enhance_batch(model, batch), expected)
