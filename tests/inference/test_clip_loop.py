"""The one clip loop (``run_clip``) and the model-family interface it drives (``VOSNetwork``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from vosc.inference.propagator import Propagator, run_clip
from vosc.models.base import Memory, VOSNetwork
from vosc.models.variants import build_model
from vosc.models.vos_model import VOSModel


def _clip(t: int = 4, size: int = 49) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    masks = torch.zeros(1, t, 1, size, size, dtype=torch.long)
    for i in range(t):
        masks[0, i, 0, 5 + i: 25 + i, 5:25] = 1
        masks[0, i, 0, 30:45, 20 + i: 40 + i] = 2
    return torch.randn(1, t, 3, size, size, generator=g) + masks.float(), masks


def test_models_never_import_inference() -> None:
    root = Path(__file__).resolve().parents[2] / "vosc" / "models"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("vosc.inference")]
    assert not offenders


def test_aot_family_reports_its_capacity_and_depths(tiny_aost: VOSModel) -> None:
    assert isinstance(tiny_aost, VOSNetwork)
    assert (tiny_aost.stride, tiny_aost.max_objects, tiny_aost.num_depths) == (16, 10, 3)
    assert tiny_aost.align_corners is True and tiny_aost.decode_depths == (1, 2, 3)
    aot = build_model("aots", d_model=32, num_heads=2, ffn_dim=64)
    assert aot.decode_depths == (2,) and aot.num_depths == 2
    with pytest.raises(TypeError, match="run_clip"):
        tiny_aost(torch.zeros(1, 3, 33, 33))


@torch.no_grad()
def test_interface_calls_equal_the_propagator(tiny_aost: VOSModel) -> None:
    """encode/write/read/upsample by hand give what the Propagator gives (shapes as documented)."""
    frames, masks = _clip()
    memory = Memory(depth=3)
    memory.num_objects = torch.tensor([2])
    tiny_aost.write(memory, tiny_aost.encode(frames[:, 0]), masks[:, 0], reference=True, long_term=True)
    feats = tiny_aost.encode(frames[:, 1])
    raw = tiny_aost.read(memory, feats, [1, 3])
    assert sorted(raw) == [1, 3] and raw[3].shape == (1, 11, 13, 13)
    prop = Propagator(tiny_aost, mask_unused=False)
    prop.add_reference(frames[:, 0], masks[:, 0], 2)
    out = prop.step(frames[:, 1], [1, 3])
    torch.testing.assert_close(tiny_aost.upsample(raw[3], (49, 49)), out[3])
    with pytest.raises(RuntimeError, match="read"):
        tiny_aost.write(memory, tiny_aost.encode(frames[:, 2]), masks[:, 2], reference=False, long_term=False)
    with pytest.raises(ValueError, match="memory_depth"):
        tiny_aost.read(_one_layer_memory(tiny_aost, frames, masks), feats, [2])


def _one_layer_memory(model: VOSModel, frames: torch.Tensor, masks: torch.Tensor) -> Memory:
    memory = Memory(depth=1)
    model.write(memory, model.encode(frames[:, 0]), masks[:, 0], reference=True, long_term=True)
    return memory


def test_memory_cap_keeps_references() -> None:
    memory = Memory(depth=1, max_long_term=2)
    for i, ref in enumerate([True, False, False, True, False]):
        memory.push_long(i, ref)
    assert [e for _, e in memory.long] == [3, 0]  # references are never dropped; non-references go first
    with pytest.raises(ValueError, match="max_long_term"):
        Memory(depth=1, max_long_term=0)


@torch.no_grad()
def test_teacher_forcing_and_autoregression_write_what_they_say(tiny_aost: VOSModel) -> None:
    frames, masks = _clip(t=4)
    teacher = run_clip(Propagator(tiny_aost, long_term_gap=1), frames, masks[:, 0], 2, 3, teacher=masks)
    assert len(teacher.frames) == 3 and teacher.reference is None
    seen = []

    def gt(t: int, logits: dict[int, torch.Tensor]) -> torch.Tensor:
        seen.append(t)
        return masks[:, t]

    fed = run_clip(Propagator(tiny_aost, long_term_gap=1), frames, masks[:, 0], 2, 3, feedback=gt)
    assert seen == [1, 2, 3]
    for a, b in zip(teacher.frames, fed.frames, strict=False):
        torch.testing.assert_close(a[3], b[3])
    pred = run_clip(Propagator(tiny_aost, long_term_gap=1), frames, masks[:, 0], 2, 3,
                    feedback=lambda t, lg: lg[3].argmax(1, keepdim=True))
    torch.testing.assert_close(pred.frames[0][3], teacher.frames[0][3])  # same memory up to frame 1
    assert not torch.allclose(pred.frames[2][3], teacher.frames[2][3])  # then predictions differ from GT
    with pytest.raises(ValueError, match="teacher"):
        run_clip(Propagator(tiny_aost), frames, masks[:, 0], 2)


@torch.no_grad()
def test_last_write_and_reference_decoding_follow_the_gap(tiny_aost: VOSModel) -> None:
    frames, masks = _clip(t=3)
    prop = Propagator(tiny_aost, long_term_gap=2)
    run_clip(prop, frames, masks[:, 0], 2, teacher=masks)
    assert prop.long_term_frames == 1 and prop.frame_step == 2  # frame 2 (gap 2) not written: last frame
    prop = Propagator(tiny_aost, long_term_gap=2)
    run_clip(prop, frames, masks[:, 0], 2, teacher=masks, write_last=True)
    assert prop.long_term_frames == 2
    prop = Propagator(tiny_aost, long_term_gap=2)
    out = run_clip(prop, frames, masks[:, 0], 2, [2, 3], teacher=masks, decode_reference=True)
    assert out.reference is not None and sorted(out.reference) == [2, 3]
    # decoding the reference is not a step (official engine): frame 1 is 1 < gap 2 after the reference
    assert prop.long_term_frames == 1 and prop.frame_step == 2
    prop = Propagator(tiny_aost, long_term_gap=2)
    ref_only = run_clip(prop, frames, masks[:, 0], 2, [2, 3], teacher=masks, decode_reference=True,
                        write_last=True)
    assert prop.long_term_frames == 2  # frame 2 is 2 after the reference
    assert ref_only.raw_reference is not None
    assert ref_only.raw_reference[3].shape[-1] == (frames.shape[-1] - 1) // 4 + 1  # decoder resolution
    assert len(ref_only.raw_frames) == 2
