"""VOSModel variants: parameter counts, forward+backward, depth semantics, Propagator memory rules."""

from __future__ import annotations

import pytest
import torch
from conftest import make_clip
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from vosc.config import ConfigError
from vosc.inference.propagator import Propagator
from vosc.models.variants import build_model, conf_dir, model_config, model_names
from vosc.models.vos_model import VOSModel

# DESIGN §4 (AOT/AOST papers, rounded to 10k) and the exact counts of the reference at random init
EXPECTED_PARAMS = {
    "aott": 5_733_843, "aots": 6_997_979, "aotb": 8_262_115, "aotl": 8_262_115, "r50_aotl": 14_909_667,
    "swinb_aotl": 65_398_427, "aost": 8_795_387, "r50_aost": 15_442_939, "swinb_aost": 65_931_699,
    "aost_share": 5_869_275,
}
DESIGN_MILLIONS = {"aott": 5.73, "aots": 7.00, "aotb": 8.26, "aotl": 8.26, "r50_aotl": 14.91,
                   "swinb_aotl": 65.40, "aost": 8.80, "r50_aost": 15.44, "aost_share": 5.87}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _size(name: str) -> tuple[int, int]:
    return (32, 48) if name.startswith("swinb") else (49, 65)


def test_every_variant_is_one_config_file_and_build_model_composes_it_like_hydra() -> None:
    """``conf/model/<name>.yaml`` is the only definition of a variant: ``build_model`` composes exactly what
    ``train.py model=<name>`` composes, for every file (derived variants through their defaults)."""
    names = model_names()
    assert set(EXPECTED_PARAMS) | {"aost_cpu", "aost_small", "aost_tiny", "stcn", "stcn_small"} <= set(names)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for name in names:
            hydra_cfg = compose("train", overrides=[f"model={name}"]).model
            assert model_config(name) == hydra_cfg, name
    assert model_config("aost_cpu").encoder == "mobilenetv2_050"
    assert model_config("aost_cpu").block == "slstt"  # inherited from aost.yaml


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_variant_params_forward_backward(name: str) -> None:
    """Hydra YAML builds the variant; exact parameter count; forward at every depth + backward on CPU:
    finite, every trainable parameter gets a gradient, frozen ones (encoder stem + first stage) none."""
    torch.manual_seed(0)
    model = instantiate(model_config(name))
    assert isinstance(model, VOSModel)
    count = n_params(model)
    assert count == EXPECTED_PARAMS[name]
    if name in DESIGN_MILLIONS:
        assert round(count / 1e6, 2) == DESIGN_MILLIONS[name]
    model.train()
    frames, masks = make_clip(*_size(name), t=2)
    prop = Propagator(model, long_term_gap=1)
    depths = list(range(1, model.num_layers + 1)) if model.scalable else [model.num_layers]
    ref_out = prop.add_reference(frames[:, 0], masks[:, 0], 2, depths=depths[-1])
    assert ref_out is not None and ref_out[depths[-1]].shape == (1, 11, *_size(name))
    out = prop.step(frames[:, 1], depths)
    assert sorted(out) == depths
    assert all(o.shape == (1, 11, *_size(name)) for o in out.values())
    loss = sum(torch.nn.functional.cross_entropy(o, masks[:, 1, 0]) for o in out.values())
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{pname} got no gradient"
            assert torch.isfinite(p.grad).all(), pname
        else:
            assert p.grad is None, f"frozen {pname} got a gradient"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("encoder.net.") for n in frozen)


def _run(model: VOSModel, depth: int, frames: torch.Tensor, masks: torch.Tensor, memory_depth: int,
         gap: int = 1) -> list[torch.Tensor]:
    prop = Propagator(model, long_term_gap=gap, memory_depth=memory_depth, mask_unused=False)
    prop.add_reference(frames[:, 0], masks[:, 0], 2)
    outs = []
    for t in range(1, frames.shape[1]):
        outs.append(prop.step(frames[:, t], depth)[depth])
        prop.update_memory(masks[:, t])
    return outs


@torch.no_grad()
def test_depth_k_equals_k_layer_model() -> None:
    torch.manual_seed(1)
    full = build_model("aost").eval()
    frames, masks = make_clip(49, 65, t=3)
    for k in (1, 2):
        small = build_model("aost", num_layers=k).eval()
        own = small.state_dict()
        small.load_state_dict({n: v for n, v in full.state_dict().items() if n in own}, strict=True)
        a = _run(full, k, frames, masks, memory_depth=3)
        b = _run(small, k, frames, masks, memory_depth=k)
        for x, y in zip(a, b, strict=False):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_depth_switching_keeps_full_depth_memory() -> None:
    torch.manual_seed(2)
    model = build_model("aost").eval()
    frames, masks = make_clip(49, 65, t=3)
    ref = Propagator(model, long_term_gap=1)
    sw = Propagator(model, long_term_gap=1)
    for p in (ref, sw):
        p.add_reference(frames[:, 0], masks[:, 0], 2)
    a1 = ref.step(frames[:, 1], [1, 3])
    b1 = sw.step(frames[:, 1], 1)  # shallow step; memory completed lazily in update_memory
    torch.testing.assert_close(a1[1], b1[1])
    for p in (ref, sw):
        p.update_memory(masks[:, 1])
    torch.testing.assert_close(ref.step(frames[:, 2], 3)[3], sw.step(frames[:, 2], 3)[3], atol=1e-5,
                               rtol=1e-5)


@torch.no_grad()
def test_long_term_gap_cap_and_unused_id_masking() -> None:
    model = build_model("aott").eval()
    frames, masks = make_clip(33, 33, t=6)
    prop = Propagator(model, long_term_gap=2, max_long_term=2)
    prop.add_reference(frames[:, 0], masks[:, 0], 2)
    counts = []
    for t in range(1, 6):
        out = prop.step(frames[:, t])[1]
        assert out.shape == (1, 11, 33, 33)
        assert int(out.argmax(1).max()) <= 2 and float(out[:, 3:].max()) <= -1e4 + 1
        prop.update_memory(out.argmax(1, keepdim=True))
        counts.append(prop.long_term_frames)
    assert counts == [1, 2, 2, 2, 2]  # frames 2 and 4 joined; cap keeps the reference + newest
    raw = Propagator(model, mask_unused=False)
    raw.add_reference(frames[:, 0], masks[:, 0], 2)
    assert float(raw.step(frames[:, 1])[1][:, 3:].max()) > -100


def test_bad_arguments_raise() -> None:
    model = build_model("aott")
    with pytest.raises(ValueError, match="decodes only at its full depth"):
        build_model("aots").check_depth(1)
    with pytest.raises(RuntimeError, match="add_reference"):
        Propagator(model).step(torch.zeros(1, 3, 33, 33))
    with pytest.raises(ValueError, match="max_obj"):
        Propagator(model).add_reference(torch.zeros(1, 3, 33, 33),
                                        torch.zeros(1, 1, 33, 33, dtype=torch.long), 11)
    with pytest.raises(ConfigError, match=r"model='aot-xl' is unknown.*valid choices: \[.*'aost'"):
        build_model("aot-xl")
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['layers'\]"):
        build_model("aott", layers=2)


def test_training_after_inference_mode_use() -> None:
    """Caches built under ``torch.inference_mode`` (evaluation) must not break a later training step."""
    model = build_model("aost", num_layers=1)
    frames, masks = make_clip(37, 53, t=2)
    with torch.inference_mode():
        prop = Propagator(model)
        prop.add_reference(frames[:, 0], masks[:, 0], 2)
        prop.step(frames[:, 1])
    model.train()
    prop = Propagator(model)
    prop.add_reference(frames[:, 0], masks[:, 0], 2)
    prop.step(frames[:, 1])[1].sum().backward()
    assert model.lstt.layers[0].short_term_attn.relative_emb_v.grad is not None
