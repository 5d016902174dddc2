"""VideoSegmenter wiring on a tiny random AOST: references, new objects, groups, depths, sizes, TTA.

The expected results are built independently from bare :class:`Propagator` objects following the
official protocol (per-group softmax, background product, inverse sigmoid, bilinear upsampling to the
original size, argmax; new objects pasted and their frame made an extra reference).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vosc.inference import Propagator, VideoSegmenter
from vosc.inference.postprocess import network_size, prepare_frame, resize_mask

H, W = 67, 95  # odd on purpose: the network sees 65 x 97


def make_video(num_frames: int = 5, seed: int = 0, height: int = H, width: int = W) -> list[np.ndarray]:
    """Moving blocky random texture, ``num_frames`` frames of ``(height, width, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height // 4 + 2, width // 4 + 2, 3)).astype(np.uint8)
    big = np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))
    return [np.ascontiguousarray(big[t % 3: t % 3 + height, (2 * t) % 5: (2 * t) % 5 + width])
            for t in range(num_frames)]


def boxes_mask(boxes: dict[int, tuple[int, int, int, int]], height: int = H, width: int = W) -> np.ndarray:
    """``(height, width)`` uint8 mask with ``id: (y0, y1, x0, x1)`` rectangles."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for oid, (y0, y1, x0, x1) in boxes.items():
        mask[y0:y1, x0:x1] = oid
    return mask


def _local(label: torch.Tensor, g: int) -> torch.Tensor:
    inside = (label > 10 * g) & (label <= 10 * g + 10)
    return torch.where(inside, label - 10 * g, 0)


@torch.no_grad()
def protocol(model, frames, masks, depths):
    """Independent statement of the expected per-frame id maps (ids already 1..K, no TTA)."""
    size = network_size(H, W)
    props: list[Propagator] = []
    num, out = 0, []

    def add_refs(x: torch.Tensor, label: torch.Tensor) -> None:
        while len(props) * 10 < num:
            props.append(Propagator(model, long_term_gap=5))
        for g, p in enumerate(props):
            p.add_reference(x, _local(label, g), min(10, num - 10 * g))

    for t, frame in enumerate(frames):
        x = prepare_frame(frame, size)
        given = None if masks.get(t) is None else torch.from_numpy(masks[t].astype(np.int64))
        if num == 0:
            num = int(given.max())
            add_refs(x, resize_mask(given, size))
            out.append(given.numpy())
            continue
        probs = []
        for p in props:
            p.step(x, depths=list(range(1, model.num_layers + 1)))  # every depth; pick the frame's
            probs.append(torch.softmax(p.mask_logits(p.last_logits_4x[depths[t]]), dim=1))
        if len(props) == 1:
            merged = p.mask_logits(p.last_logits_4x[depths[t]])
        else:
            bg = torch.stack([q[:, 0] for q in probs], 1).prod(1, keepdim=True)
            q = torch.cat([bg] + [q[:, 1:] for q in probs], 1).clamp(1e-5, 1 - 1e-5)
            merged = torch.log(q) - torch.log1p(-q)
        up = F.interpolate(merged[:, : num + 1], size=(H, W), mode="bilinear", align_corners=True)
        pred = torch.softmax(up, 1).argmax(1)[0]
        if given is not None and given.any():
            pred = torch.where(given > 0, given, pred)
            num = max(num, int(given.max()))
            add_refs(x, resize_mask(pred, size))
        else:
            label = resize_mask(pred, size)
            for g, p in enumerate(props):
                p.update_memory(_local(label, g))
        out.append(pred.numpy())
    return out


def test_mid_video_object_becomes_a_reference(tiny_aost):
    frames = make_video(5)
    first = boxes_mask({1: (10, 40, 10, 45)})
    later = boxes_mask({5: (35, 60, 55, 90)})  # id 5: gaps in ids are kept in the output
    results = VideoSegmenter(tiny_aost).segment(frames, {0: first, 2: later}, return_probs=True)
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.object_ids for r in results] == [(1,)] * 2 + [(1, 5)] * 3
    assert [r.probs.shape[0] for r in results] == [2, 2, 3, 3, 3]
    assert all(5 not in r.mask for r in results[:2])
    assert np.array_equal(results[2].mask[later > 0], later[later > 0])
    np.testing.assert_allclose(results[2].probs[2][later > 0], 1.0)
    expected = protocol(tiny_aost, frames, {0: first, 2: np.where(later > 0, 2, 0)}, [3] * 5)
    for r, e in zip(results, expected, strict=True):
        assert np.array_equal(r.mask, np.where(e == 2, 5, e).astype(np.uint8)), f"frame {r.index}"
    assert (results[3].mask == 5).any() or (expected[3] != 2).all()


def test_frames_before_the_first_mask_are_background(tiny_aost):
    frames = make_video(3)
    results = VideoSegmenter(tiny_aost).segment(frames, {1: boxes_mask({2: (5, 30, 5, 30)})})
    assert not results[0].mask.any() and results[0].object_ids == () and results[0].depth is None
    assert results[1].depth is None and results[2].depth == 3


def test_twelve_objects_use_two_groups_with_soft_aggregation(tiny_aost):
    frames = make_video(4, seed=1)
    boxes = {i + 1: (4 + 15 * (i // 4), 16 + 15 * (i // 4), 4 + 22 * (i % 4), 20 + 22 * (i % 4))
             for i in range(12)}
    mask = boxes_mask(boxes)
    results = VideoSegmenter(tiny_aost).segment(frames, {0: mask})
    expected = protocol(tiny_aost, frames, {0: mask}, [3] * 4)
    for r, e in zip(results, expected, strict=True):
        assert r.object_ids == tuple(range(1, 13))
        assert np.array_equal(r.mask, e.astype(np.uint8)), f"frame {r.index}"


def test_per_frame_depth_list_and_callable(tiny_aost):
    frames = make_video(5, seed=2)
    mask = boxes_mask({1: (10, 40, 10, 45), 2: (35, 60, 55, 90)})
    depths = [3, 1, 2, 1, 3]
    by_list = VideoSegmenter(tiny_aost, depth=depths).segment(frames, {0: mask})
    by_call = VideoSegmenter(tiny_aost, depth=lambda t: depths[t]).segment(frames, {0: mask})
    expected = protocol(tiny_aost, frames, {0: mask}, depths)
    assert [r.depth for r in by_list] == [None, 1, 2, 1, 3]
    for a, b, e in zip(by_list, by_call, expected, strict=True):
        assert np.array_equal(a.mask, e) and np.array_equal(b.mask, e), f"frame {a.index}"
    prop = VideoSegmenter(tiny_aost, long_term_gap=3, max_long_term=2, depth=2)._new_propagator()
    assert (prop.long_term_gap, prop.max_long_term, prop.memory_depth) == (3, 2, 2)  # n'-layer model
    assert VideoSegmenter(tiny_aost, depth=depths)._new_propagator().memory_depth == 3
    shallow = VideoSegmenter(tiny_aost, depth=1).segment(frames, {0: mask}, return_probs=True)
    deep = VideoSegmenter(tiny_aost, depth=3).segment(frames, {0: mask}, return_probs=True)
    assert not np.allclose(shallow[1].probs, deep[1].probs)  # the depth really changes the network
    with pytest.raises(ValueError, match="frame 1: depth must be an int in 1..3"):
        VideoSegmenter(tiny_aost, depth=[3, 4]).segment(frames[:2], {0: mask})
    with pytest.raises(ValueError, match="frame 2: the per-frame depth list has only 2 entries"):
        VideoSegmenter(tiny_aost, depth=[3, 3]).segment(frames[:3], {0: mask})


def test_unused_identities_are_never_predicted(tiny_aost, caplog):
    frames = make_video(3, seed=3)
    mask = boxes_mask({1: (10, 40, 10, 45), 2: (35, 60, 55, 90)})
    bias = tiny_aost.decoder.conv_out.bias
    saved = bias.detach().clone()
    try:
        with torch.no_grad():
            bias[7] += 50.0  # identity 7 would win every pixel if it were not masked
        masked = VideoSegmenter(tiny_aost).segment(frames, {0: mask}, return_probs=True)
        with caplog.at_level(logging.WARNING, logger="vosc.inference.segmenter"):
            raw = VideoSegmenter(tiny_aost, mask_unused=False).segment(frames, {0: mask}, return_probs=True)
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    for r in masked[1:]:
        assert set(np.unique(r.mask)) <= {0, 1, 2} and r.probs.shape[0] == 3
        assert r.mask.any()
    assert not raw[1].mask.any()  # identity 7 won everywhere and is written as background
    assert "unused identities" in caplog.text


@pytest.mark.parametrize(
    ("hw", "kwargs", "net"), [((67, 95), {}, (65, 97)), ((71, 133), {"max_long_edge": 80}, (49, 81))]
)
def test_output_at_original_size(tiny_aost, hw, kwargs, net):
    frames = make_video(3, seed=4, height=hw[0], width=hw[1])
    mask = boxes_mask({1: (5, 30, 5, 40)}, *hw)
    seg = VideoSegmenter(tiny_aost, **kwargs)
    assert network_size(*hw, max_long_edge=seg.max_long_edge) == net
    results = seg.segment((torch.from_numpy(f) for f in frames), {0: mask}, return_probs=True)
    assert all(r.mask.shape == hw and r.mask.dtype == np.uint8 and r.probs.shape == (2, *hw) for r in results)
    np.testing.assert_allclose(results[-1].probs.sum(0), 1.0, atol=1e-5)


def test_flip_tta_is_mirror_equivariant_and_multiscale_runs(tiny_aost):
    frames = make_video(4, seed=5, height=65, width=97)  # network size: no resampling, exact mirror
    mask = boxes_mask({1: (10, 40, 10, 45), 2: (35, 60, 55, 90)}, 65, 97)
    seg = VideoSegmenter(tiny_aost, flip_tta=True)
    assert seg.augmentations == [(1.0, False), (1.0, True)]
    res = seg.segment(frames, {0: mask}, return_probs=True)
    mirrored = seg.segment([f[:, ::-1] for f in frames], {0: mask[:, ::-1]}, return_probs=True)
    plain = VideoSegmenter(tiny_aost).segment(frames, {0: mask}, return_probs=True)
    for a, b in zip(res, mirrored, strict=True):
        np.testing.assert_allclose(a.probs, b.probs[:, :, ::-1], atol=1e-6)
        assert np.array_equal(a.mask, b.mask[:, ::-1])
    assert not np.allclose(res[1].probs, plain[1].probs)
    ms = VideoSegmenter(tiny_aost, flip_tta=True, scales=(1.0, 0.6)).segment(frames, {0: mask})
    assert len(ms) == 4 and all(r.mask.shape == (65, 97) for r in ms)


def test_bad_inputs_name_the_frame(tiny_aost):
    frames = make_video(3)
    mask = boxes_mask({1: (10, 40, 10, 45)})
    with pytest.raises(ValueError, match="frame 1: size"):
        VideoSegmenter(tiny_aost).segment([frames[0], frames[1][:-2]], {0: mask})
    with pytest.raises(ValueError, match="mask of frame 0: shape"):
        VideoSegmenter(tiny_aost).segment(frames, {0: mask[:-1]})
    with pytest.raises(ValueError, match=r"masks given for frames \[7\]"):
        VideoSegmenter(tiny_aost).segment(frames, {0: mask, 7: mask})
