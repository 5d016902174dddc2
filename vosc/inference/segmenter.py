"""Video-level semi-supervised segmentation: a whole video in, one id map per frame out.

:class:`VideoSegmenter` drives one :class:`~vosc.inference.objects.GroupedPropagator` (groups of
``max_obj`` objects, each a :class:`~vosc.inference.propagator.Propagator`) per test-time augmentation
(scale x optional horizontal flip), as the official evaluator does:

1. The first frame with a non-empty mask becomes the reference. Frames before it are all background.
2. Every later frame is propagated by every augmentation at the frame's depth; each augmentation's
   merged logits are un-flipped, resized bilinearly to the original size, turned into probabilities
   (softmax) and averaged; the argmax is the prediction.
3. Objects that first appear in frame ``t`` (a mask given for ``t``, YouTube-VOS style) are pasted over
   the prediction and the frame becomes an extra reference frame of every augmentation (new groups are
   created when the object count passes a multiple of ``max_obj``); otherwise each augmentation's own
   prediction updates its memory, in the form the family chooses (``VOSNetwork.memory_mask``): AOT/AOST
   its argmax ids (as the reference evaluator, which keeps augmentations apart), STCN its soft aggregated
   probabilities (as the official STCN inference). A mask for ``t`` that holds an object already known
   re-annotates it: the object's mask in frame ``t`` is exactly the given one (its predicted pixels elsewhere
   become background, logged), and the memory takes it from there.

Object ids may have gaps (YouTube-VOS); internally they are renumbered ``1..K`` in order of appearance
and the output uses the original ids. Frames are consumed one at a time (streaming): nothing but the
propagators' memory is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vosc.inference.objects import GroupedPropagator
from vosc.inference.postprocess import (
    network_size,
    prepare_frame,
    resize_mask,
    restore_logits,
    to_numpy_frame,
    to_numpy_mask,
)
from vosc.inference.propagator import Propagator
from vosc.inference.speed import AMP_CHOICES, autocast
from vosc.models.base import VOSNetwork

log = logging.getLogger(__name__)

__all__ = ["DepthSpec", "FrameResult", "VideoSegmenter"]

DepthSpec = int | Sequence[int] | Callable[[int], int] | None


@dataclass
class FrameResult:
    """Prediction for one frame.

    Attributes:
        index: Frame index in the video.
        mask: ``(H, W)`` uint8 object ids at the original size (original ids, 0 = background).
        object_ids: Original ids of the objects known after this frame, in channel order of ``probs``.
        depth: Depth used for the prediction; ``None`` for frames that were not propagated (frames before
            the first reference and the first reference itself).
        probs: ``(1 + K, H, W)`` float32 probabilities (background first, then ``object_ids``), when asked.
    """

    index: int
    mask: np.ndarray
    object_ids: tuple[int, ...]
    depth: int | None
    probs: np.ndarray | None = None


class VideoSegmenter:
    """Runs a VOS model over whole videos with memory, groups, resizing and test-time augmentation.

    Args:
        model: A :class:`~vosc.models.base.VOSNetwork` (``max_objects``, ``num_depths``, ``stride``,
            ``align_corners``), in eval mode.
        long_term_gap: Long-term memory gap ``δ`` (frames).
        max_long_term: Optional cap on the number of long-term memory frames (FIFO: the oldest
            non-reference frame leaves first; reference frames, including those of late objects, stay).
            Bounds memory on long videos.
        depth: Depth ``n'``: an int for the whole video, a sequence indexed by frame index, or a callable
            ``frame_index -> depth``; ``None`` uses all layers.
        max_long_edge: Cap on the long edge of the network input (before TTA scaling); ``None``: no cap.
        flip_tta: Also run a horizontally flipped copy of every scale and average.
        scales: Test-time scales (each its own memory); ``(1.0,)`` is no multi-scale TTA.
        mask_unused: Mask identities above the number of known objects (never predicted). ``False``
            reproduces the official AOST behaviour; such pixels are then written as background.
        max_short_edge: Optional cap on the short edge (applied before the long-edge cap).
        offload: Keep long-term memory entries in CPU RAM (one working copy on the device).
        amp: Mixed precision of the network: ``"off"``, ``"fp16"`` (CUDA) or ``"bf16"``
            (:func:`vosc.inference.speed.autocast`).
    """

    def __init__(
        self,
        model: VOSNetwork,
        long_term_gap: int = 5,
        max_long_term: int | None = None,
        depth: DepthSpec = None,
        max_long_edge: int | None = 1040,
        flip_tta: bool = False,
        scales: Sequence[float] = (1.0,),
        mask_unused: bool = True,
        max_short_edge: int | None = None,
        offload: bool = False,
        amp: str = "off",
    ) -> None:
        if long_term_gap < 1:
            raise ValueError(f"long_term_gap must be >= 1, got {long_term_gap}")
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"scales must be a non-empty sequence of positive factors, got {scales}")
        self.model = model
        self.long_term_gap = long_term_gap
        self.max_long_term = max_long_term
        self.offload = offload
        if amp not in AMP_CHOICES:
            raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
        self.amp = amp
        self.depth = depth
        self.max_long_edge = max_long_edge
        self.max_short_edge = max_short_edge
        self.flip_tta = flip_tta
        self.scales = tuple(float(s) for s in scales)
        self.mask_unused = mask_unused
        self.num_layers = int(model.num_depths)
        self.group_size: int | None = model.max_objects
        # sides the network size is rounded to: the stride, or any size for a family that pads itself (STCN)
        self.stride = int(model.input_multiple)
        self.align_corners = bool(model.align_corners)
        if isinstance(depth, int):
            self._check_depth(depth, 0)
        if model.training:
            log.warning("VideoSegmenter got a model in training mode (dropout/droppath active); call .eval()")

    # ------------------------------------------------------------------ configuration helpers
    def _check_depth(self, depth: int, index: int) -> int:
        if not isinstance(depth, (int, np.integer)) or not 1 <= int(depth) <= self.num_layers:
            raise ValueError(f"frame {index}: depth must be an int in 1..{self.num_layers}, got {depth!r}")
        return int(depth)

    def depth_at(self, index: int) -> int:
        """Depth used for frame ``index`` (validated against the model's layer count)."""
        spec = self.depth
        if spec is None:
            return self.num_layers
        if isinstance(spec, (int, np.integer)):
            return self._check_depth(spec, index)
        if callable(spec):
            return self._check_depth(spec(index), index)
        if index >= len(spec):
            raise ValueError(f"frame {index}: the per-frame depth list has only {len(spec)} entries")
        return self._check_depth(spec[index], index)

    @property
    def memory_depth(self) -> int:
        """Layers that keep memory: the depth of a per-video depth (an ``n'``-layer model, as the reference
        evaluates AOST at ``n'``), the largest entry of a per-frame list, else all layers."""
        spec = self.depth
        if isinstance(spec, (int, np.integer)):
            return int(spec)
        if spec is not None and not callable(spec) and len(spec) > 0:
            return max(self._check_depth(d, i) for i, d in enumerate(spec))
        return self.num_layers

    def _new_propagator(self) -> Propagator:
        return Propagator(self.model, long_term_gap=self.long_term_gap, max_long_term=self.max_long_term,
                          memory_depth=self.memory_depth, mask_unused=self.mask_unused, offload=self.offload)

    @property
    def augmentations(self) -> list[tuple[float, bool]]:
        """``(scale, flip)`` of every test-time augmentation, in evaluation order."""
        flips = (False, True) if self.flip_tta else (False,)
        return [(s, f) for s in self.scales for f in flips]

    # ------------------------------------------------------------------ main loop
    def segment(
        self,
        frames: Iterable[np.ndarray | torch.Tensor],
        masks: Mapping[int, np.ndarray | torch.Tensor],
        return_probs: bool = False,
    ) -> list[FrameResult]:
        """Run a whole video and collect the results (see :meth:`run`)."""
        return list(self.run(frames, masks, return_probs=return_probs))

    @torch.no_grad()  # not inference_mode: the model caches tensors that training may reuse later
    def run(
        self,
        frames: Iterable[np.ndarray | torch.Tensor],
        masks: Mapping[int, np.ndarray | torch.Tensor],
        return_probs: bool = False,
    ) -> Iterator[FrameResult]:
        """Segment a video frame by frame (a generator: frames are read lazily).

        Args:
            frames: ``(H, W, 3)`` uint8 RGB frames (arrays or tensors), all the same size.
            masks: First-appearance masks ``{frame_index: (H, W) integer ids}``; ids 1..255. A mask may
                re-annotate known objects: each object it holds gets exactly its mask in that frame (the
                object's predicted pixels elsewhere become background; logged), and the frame becomes a
                reference; objects it does not hold keep their prediction.
            return_probs: Also return ``(1 + K, H, W)`` probabilities per frame.

        Yields:
            One :class:`FrameResult` per frame.

        Raises:
            ValueError: A frame or mask of the wrong shape/dtype, a size change within the video, a mask
                index never reached, or a bad depth.
        """
        state = _VideoState(self)
        index = -1
        for index, frame in enumerate(frames):
            with autocast(state.device, self.amp):  # not around the yield: autocast is thread state
                result = state.process(index, frame, masks.get(index), return_probs)
            yield result
        missing = sorted(i for i in masks if i > index)
        if missing:
            raise ValueError(f"masks given for frames {missing}, but the video has only {index + 1} frames")


class _VideoState:
    """Per-video state of :class:`VideoSegmenter` (ids, sizes, one grouped propagator per augmentation)."""

    def __init__(self, seg: VideoSegmenter) -> None:
        self.seg = seg
        self.device = next(seg.model.parameters()).device
        self.ids: list[int] = []  # original ids in internal order (internal id = position + 1)
        self.lut_in = np.zeros(256, dtype=np.int64)  # original -> internal
        self.size: tuple[int, int] | None = None
        self.net_sizes: list[tuple[int, int]] = []
        self.trackers = [GroupedPropagator(seg._new_propagator, seg.group_size, seg.mask_unused)
                         for _ in seg.augmentations]

    # ---------------------------------------------------------------- ids
    def _register(self, mask: np.ndarray) -> np.ndarray:
        """Register the new ids of a first-appearance mask; return it in internal ids ``(H, W)`` int64."""
        for oid in np.unique(mask):
            if oid != 0 and oid not in self.ids:
                self.ids.append(int(oid))
                self.lut_in[oid] = len(self.ids)
        return self.lut_in[mask]

    def _to_original(self, internal: np.ndarray) -> np.ndarray:
        lut = np.zeros(max(int(internal.max(initial=0)) + 1, len(self.ids) + 1), dtype=np.uint8)
        lut[1: len(self.ids) + 1] = self.ids
        return lut[internal]

    # ---------------------------------------------------------------- per frame
    def _check_size(self, index: int, arr: np.ndarray) -> None:
        hw = (int(arr.shape[0]), int(arr.shape[1]))
        if self.size is None:
            self.size = hw
            s = self.seg
            self.net_sizes = [network_size(hw[0], hw[1], s.max_long_edge, s.max_short_edge, scale,
                                           s.stride, s.align_corners) for scale, _ in s.augmentations]
            log.debug("frame size %s -> network sizes %s", hw, self.net_sizes)
        elif hw != self.size:
            raise ValueError(f"frame {index}: size {hw} differs from the first frame's {self.size}")

    def _inputs(self, frame: np.ndarray) -> list[torch.Tensor]:
        return [prepare_frame(frame, size, flip, self.device)
                for size, (_, flip) in zip(self.net_sizes, self.seg.augmentations, strict=True)]

    def _labels(self, label: torch.Tensor) -> list[torch.Tensor]:
        return [resize_mask(label, size, flip).to(self.device)
                for size, (_, flip) in zip(self.net_sizes, self.seg.augmentations, strict=True)]

    def process(self, index: int, frame: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None,
                return_probs: bool) -> FrameResult:
        """Handle one frame (see :meth:`VideoSegmenter.run`)."""
        arr = to_numpy_frame(frame, index)
        self._check_size(index, arr)
        assert self.size is not None
        known = len(self.ids)
        new_label = None
        if mask is not None:
            new_label = torch.from_numpy(self._register(to_numpy_mask(mask, index, self.size)))
        if known == 0:
            return self._reference_only(index, arr, new_label, return_probs)
        depth = self.seg.depth_at(index)
        inputs = self._inputs(arr)
        augs = zip(self.trackers, inputs, self.seg.augmentations, strict=True)
        probs_per_aug = [self._predict(tracker, x, depth, known, flip) for tracker, x, (_, flip) in augs]
        prob = torch.stack(probs_per_aug).mean(dim=0)  # (1+C, H, W)
        pred = prob.argmax(dim=0)
        aug_preds = [p.argmax(dim=0) for p in probs_per_aug] if len(probs_per_aug) > 1 else [pred]
        if new_label is not None and bool(new_label.any()):
            pred, aug_preds = self._paste(index, new_label, known, pred, aug_preds)
            for tracker, x, lab in zip(self.trackers, inputs, self._labels_each(aug_preds), strict=True):
                tracker.add_reference(x, lab, len(self.ids))
        else:
            model = self.seg.model
            for tracker, lab in zip(self.trackers, self._labels_each(aug_preds), strict=True):
                assert tracker.last_logits is not None
                tracker.update_memory(model.memory_mask(tracker.last_logits, lab))  # ids, or soft masks
        return self._result(index, pred, prob, new_label, known, depth, return_probs)

    def _paste(self, index: int, label: torch.Tensor, known: int, pred: torch.Tensor,
               aug_preds: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Paste a mask given for frame ``index`` over the predictions ``(H, W)`` (internal ids).

        An object already known before this frame (``internal id <= known``) is re-annotated: its predicted
        pixels outside the new mask become background, so its mask is the annotation from this frame on.
        """
        redone = torch.unique(label[(label > 0) & (label <= known)])
        if redone.numel():
            log.info("frame %d: objects %s re-annotated: their masks are replaced from this frame on", index,
                     [self.ids[int(i) - 1] for i in redone])
        keep = label == 0

        def paste(p: torch.Tensor) -> torch.Tensor:
            if redone.numel():
                p = torch.where(torch.isin(p, redone), torch.zeros_like(p), p)
            return torch.where(keep, p, label)

        return paste(pred), [paste(p) for p in aug_preds]

    def _labels_each(self, preds: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(preds) == 1:
            return self._labels(preds[0])
        return [resize_mask(p, size, flip).to(self.device)
                for p, size, (_, flip) in zip(preds, self.net_sizes, self.seg.augmentations, strict=True)]

    def _predict(self, tracker: GroupedPropagator, x: torch.Tensor, depth: int, known: int,
                 flip: bool) -> torch.Tensor:
        """Probabilities ``(1 + C, H, W)`` of one augmentation at the original size (``C = K`` if masked)."""
        logits = tracker.step(x, depth).float()
        if self.seg.mask_unused:
            logits = logits[:, : known + 1]
        assert self.size is not None
        logits = restore_logits(logits, self.size, flip, self.seg.align_corners)
        return torch.softmax(logits, dim=1)[0].cpu()

    def _reference_only(self, index: int, arr: np.ndarray, label: torch.Tensor | None,
                        return_probs: bool) -> FrameResult:
        """Frames up to and including the first non-empty mask."""
        assert self.size is not None
        if label is None or not label.any():
            zeros = np.zeros(self.size, dtype=np.uint8)
            probs = np.ones((1, *self.size), dtype=np.float32) if return_probs else None
            return FrameResult(index, zeros, (), None, probs)
        inputs = self._inputs(arr)
        for tracker, x, lab in zip(self.trackers, inputs, self._labels(label), strict=True):
            tracker.add_reference(x, lab, len(self.ids))
        probs = None
        if return_probs:
            probs = torch.nn.functional.one_hot(label, len(self.ids) + 1).permute(2, 0, 1).float().numpy()
        return FrameResult(index, self._to_original(label.numpy()), tuple(self.ids), None, probs)

    def _result(self, index: int, pred: torch.Tensor, prob: torch.Tensor, new_label: torch.Tensor | None,
                known: int, depth: int, return_probs: bool) -> FrameResult:
        internal = pred.numpy()
        if internal.max(initial=0) > len(self.ids):  # only possible with mask_unused=False
            unused = internal > len(self.ids)
            log.warning("frame %d: %d pixels predicted as unused identities, written as background",
                        index, int(unused.sum()))
            internal = np.where(unused, 0, internal)
        probs = None
        if return_probs:
            k = len(self.ids)
            full = torch.zeros(k + 1, *prob.shape[1:])
            c = min(prob.shape[0], k + 1)
            full[:c] = prob[:c]
            if new_label is not None and new_label.any():
                fixed = new_label > 0
                full[:, fixed] = 0.0
                full.scatter_add_(0, new_label.unsqueeze(0), fixed.unsqueeze(0).float())
            probs = full.numpy()
        return FrameResult(index, self._to_original(internal), tuple(self.ids), depth, probs)
