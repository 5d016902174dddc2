"""STCN through the shared per-video loop (Propagator): padding, late objects, more than 10 objects,
include_last, batched videos with different object counts."""

from __future__ import annotations

import pytest
import torch

from vosc.inference.propagator import Propagator
from vosc.models.stcn import STCN
from vosc.models.stcn.network import pad_to_multiple, unpad
from vosc.models.vos_model import VOSModel

H, W = 50, 70  # not multiples of 16: padded to 64 x 80


def tiny(**kw: object) -> STCN:
    torch.manual_seed(0)
    return STCN(key_encoder="resnet18", key_dim=16, value_dim=32, key_comp_dim=32, decoder_dims=(32, 16, 16),
                **kw).eval()


def strips(num: int, first: int = 1) -> torch.Tensor:
    """``(1, 1, H, W)`` ids ``first..first+num-1`` in vertical strips."""
    mask = torch.zeros(1, 1, H, W, dtype=torch.long)
    edges = torch.linspace(0, W, num + 1).long()
    for j in range(num):
        mask[..., 10:40, edges[j]: edges[j + 1]] = first + j
    return mask


def frames(t: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(t, 1, 3, H, W, generator=torch.Generator().manual_seed(seed))


def test_centred_padding() -> None:
    x, pad = pad_to_multiple(torch.ones(1, 1, 241, 433), 16)
    assert x.shape[-2:] == (256, 448) and pad == (7, 8, 7, 8)
    assert torch.equal(unpad(x, pad), torch.ones(1, 1, 241, 433))
    assert x[..., :7, :].abs().sum() == 0 and x[..., -8:, :].abs().sum() == 0
    y, pad = pad_to_multiple(torch.ones(1, 1, 32, 48), 16)
    assert pad == (0, 0, 0, 0) and y.shape[-2:] == (32, 48)


@torch.no_grad()
def test_late_objects_and_more_than_ten(one_torch_thread: None) -> None:
    model = tiny()
    clip = frames(6)
    prop = Propagator(model, long_term_gap=5)
    first = strips(8)
    prop.add_reference(clip[0], first, 8)
    early = prop.step(clip[1])[1]
    assert early.shape == (1, 9, H, W)
    prop.update_memory(torch.softmax(early, 1))
    prop.step(clip[2])
    prop.update_memory(prop._cur.prob)  # gap 5: not memorised
    # frame 3: four new objects (ids 9..12) pasted over the prediction of frame 3
    late = strips(4, first=9)
    pred3 = prop.step(clip[3])[1].argmax(1, keepdim=True)
    merged = torch.where(late > 0, late, pred3)
    prop.add_reference(clip[3], merged, 12)
    assert prop.long_term_frames == 2
    out4 = prop.step(clip[4])[1]
    assert out4.shape == (1, 13, H, W)
    prob = torch.softmax(out4, 1)
    torch.testing.assert_close(prob.sum(1), torch.ones(1, H, W))
    obj_logits = prop._cur.object_logits  # (1, 12, Hp, Wp)
    # the new objects' memory starts at frame 3: a fresh loop from frame 3 gives them the same logits
    fresh = Propagator(model, long_term_gap=5)
    fresh.add_reference(clip[3], merged, 12)
    fresh.step(clip[4])
    torch.testing.assert_close(obj_logits[:, 8:], fresh._cur.object_logits[:, 8:], atol=1e-5, rtol=1e-5)
    # ... while the first eight objects also remember frame 0 (their logits differ from the fresh loop)
    assert (obj_logits[:, :8] - fresh._cur.object_logits[:, :8]).abs().max() > 1e-4


@torch.no_grad()
def test_include_last_keeps_a_temporary_entry(one_torch_thread: None) -> None:
    clip = frames(4, seed=1)
    outs = {}
    for include_last in (False, True):
        model = tiny(include_last=include_last)
        prop = Propagator(model, long_term_gap=2)
        prop.add_reference(clip[0], strips(2), 2)
        prop.step(clip[1])
        prop.update_memory(prop._cur.prob)  # gap 2 not reached: temporary entry only with include_last
        assert (prop.memory.short is not None) == include_last and prop.long_term_frames == 1
        outs[include_last] = prop.step(clip[2])[1]
        prop.update_memory(prop._cur.prob)  # gap 2: long-term, clears the temporary entry
        assert prop.memory.short is None and prop.long_term_frames == 2
    assert (outs[True] - outs[False]).abs().max() > 1e-5


@torch.no_grad()
def test_batched_videos_with_different_object_counts(one_torch_thread: None) -> None:
    model = tiny()
    clip = frames(2, seed=2)[:, 0]  # (T, 3, H, W)
    two, three = strips(2), strips(3)
    batch = Propagator(model, long_term_gap=5)
    batch.add_reference(torch.stack([clip[0], clip[0]]), torch.cat([two, three]), torch.tensor([2, 3]))
    both = batch.step(torch.stack([clip[1], clip[1]]), mask_unused=False)[1]
    alone = Propagator(model, long_term_gap=5)
    alone.add_reference(clip[0:1], two, 2)
    single = alone.step(clip[1:2])[1]
    # video 0 has no third object: it gets probability 0 and the background is that of the 2-object run
    torch.testing.assert_close(both[0, :3], single[0], atol=2e-5, rtol=1e-5)
    assert both.shape == (2, 4, H, W)


def test_training_mode_reads_densely_and_backpropagates(one_torch_thread: None) -> None:
    model = tiny().train()
    clip = frames(3, seed=3)[:, 0]
    prop = Propagator(model, long_term_gap=1)
    prop.add_reference(clip[0:1], strips(2), 2)
    logits = prop.step(clip[1:2])[1]
    prop.update_memory(torch.softmax(logits, 1))  # not detached: the official training backpropagates
    loss = torch.nn.functional.cross_entropy(prop.step(clip[2:3])[1], strips(2)[:, 0])
    loss.backward()
    assert model.value_encoder.net.conv1.weight.grad is not None
    assert model.decoder.pred.weight.grad.abs().sum() > 0


def test_unknown_depth_and_empty_memory() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="depth 2"):
        model.check_depth(2)
    prop = Propagator(model)
    with pytest.raises(RuntimeError, match="add_reference"):
        prop.step(frames(1)[0])


@torch.no_grad()
def test_video_segmenter_runs_stcn_with_late_objects_and_twelve_ids(one_torch_thread: None) -> None:
    """VideoSegmenter (unchanged) drives STCN: 8 objects in frame 0, 4 more (ids up to 20) in frame 3; its
    masks and probabilities equal a hand-written loop over the same Propagator protocol, in which STCN's
    memory receives its soft aggregated probabilities (the family's ``memory_mask``, as the official
    inference), not the argmax: a hard-mask loop gives other probabilities."""
    import numpy as np

    from vosc.inference.postprocess import prepare_frame
    from vosc.inference.segmenter import VideoSegmenter

    model = tiny()
    h, w, t = 48, 64, 7  # multiples of 16: the network sees the original size
    rng = np.random.default_rng(0)
    video = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(t)]
    m0 = np.zeros((h, w), np.uint8)
    for j in range(8):
        m0[5:25, j * 8: (j + 1) * 8] = j + 1
    m3 = np.zeros((h, w), np.uint8)
    late_ids = [9, 12, 14, 20]
    for j, oid in enumerate(late_ids):
        m3[30:45, j * 15: (j + 1) * 15] = oid
    # gap 2: frames 2 and 5 enter the long-term memory
    results = list(VideoSegmenter(model, long_term_gap=2).run(video, {0: m0, 3: m3}, return_probs=True))
    assert [r.object_ids for r in results[3:]] == [tuple(range(1, 9)) + tuple(late_ids)] * 4
    assert results[4].probs.shape == (13, h, w)
    assert np.array_equal(results[0].mask, m0)
    assert np.array_equal(results[3].mask[m3 > 0], m3[m3 > 0])

    # the same protocol by hand: frame 3 pasted and re-referenced (ids), other frames enter the memory as
    # soft probabilities (soft=True) or, for contrast, as hard argmax masks (soft=False)
    lut = np.zeros(256, np.int64)
    lut[late_ids] = [9, 10, 11, 12]
    internal_ids = torch.from_numpy(np.where(m3 > 0, lut[m3], 0))[None, None]
    x = [prepare_frame(f, (h, w)) for f in video]
    to_orig = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8] + late_ids)
    worst_hard = 0.0
    for soft in (True, False):
        prop = Propagator(model, long_term_gap=2)
        prop.add_reference(x[0], torch.from_numpy(m0.astype(np.int64))[None, None], 8)
        for i in range(1, t):
            logits = prop.step(x[i])[1]
            pred = logits.argmax(1, keepdim=True)
            if i == 3:
                pred = torch.where(internal_ids > 0, internal_ids, pred)
                prop.add_reference(x[i], pred, 12)
                continue
            prob = torch.softmax(logits, dim=1)
            prop.update_memory(prob if soft else pred)
            if soft:
                assert np.array_equal(results[i].mask, to_orig[pred[0, 0].numpy()]), f"frame {i}"
                assert np.abs(results[i].probs - prob[0].numpy()).max() < 1e-6, f"frame {i}"
            else:
                worst_hard = max(worst_hard, float(np.abs(results[i].probs - prob[0].numpy()).max()))
    assert worst_hard > 1e-5  # the test tells soft from hard memory updates (random weights: small)


def test_family_decides_what_enters_the_memory(tiny_aost: VOSModel) -> None:
    """``memory_mask``: AOT/AOST keep the loop's ids (unchanged behaviour), STCN its soft probabilities; a
    GroupedPropagator refuses probabilities for more than one group."""
    from vosc.inference.objects import GroupedPropagator

    logits = torch.randn(1, 4, 8, 8)
    ids = logits.argmax(1, keepdim=True)
    assert tiny_aost.memory_mask(logits, ids) is ids
    assert torch.allclose(tiny().memory_mask(logits, ids), torch.softmax(logits, dim=1))
    grouped = GroupedPropagator(lambda: Propagator(tiny_aost, long_term_gap=5), tiny_aost.max_objects)
    mask = torch.zeros(1, 1, 33, 33, dtype=torch.long)
    for j in range(11):  # 11 objects: two groups of AOST's 10 identities
        mask[..., 3 * j: 3 * j + 3, :] = j + 1
    with torch.no_grad():
        grouped.add_reference(torch.randn(1, 3, 33, 33), mask, 11)
        grouped.step(torch.randn(1, 3, 33, 33), 1)
    with pytest.raises(ValueError, match="cannot be split over 2 groups"):
        grouped.update_memory(torch.rand(1, 12, 33, 33))


@torch.no_grad()
def test_video_segmenter_keeps_the_frame_size_and_stcn_pads(one_torch_thread: None) -> None:
    """A 50x70 video is fed at 50x70 (no resize to multiples of 16); the key encoder sees it padded to
    64x80."""
    import numpy as np

    from vosc.inference.segmenter import VideoSegmenter

    model = tiny()
    seen: list[tuple[int, int]] = []
    hook = model.key_encoder.register_forward_pre_hook(
        lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    rng = np.random.default_rng(1)
    video = [rng.integers(0, 255, (H, W, 3), dtype=np.uint8) for _ in range(3)]
    first = strips(3)[0, 0].numpy().astype(np.uint8)
    try:
        results = list(VideoSegmenter(model, long_term_gap=5).run(video, {0: first}))
    finally:
        hook.remove()
    assert seen and set(seen) == {(64, 80)}
    assert all(r.mask.shape == (H, W) for r in results)
