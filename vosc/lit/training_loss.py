"""The training computation of one batch of clips (what :meth:`VOSModule.training_step` back-propagates).

Kept apart from the Lightning glue so that the parity check against the official engine
(``python -m vosc.checkpoints verify-train``) runs exactly this code. Per batch ``(B, T, 3, H, W)``:

1. Identities are shuffled per sample (background kept): object ``o`` is fed as identity ``perm[b, o]``
   and read back from logit channel ``perm[b, o]``; channels above the sample's object count are masked.
2. Frame 0 is the reference; with a non-zero auxiliary weight it is also decoded from its own memory
   (every supervised depth). Frames ``1..T-1`` are propagated one by one
   (:func:`vosc.inference.propagator.run_clip`); each is decoded at every supervised depth.
3. Memory after frame ``t``: its ground truth, or (``memory_from_pred``) the argmax of the deepest decode,
   with every identity embedding detached (the official ``freeze_id``: no gradient to the ID encoder).
4. Per frame and sample: ``L_t = sum_d alpha^d L_{t,d} / sum_d alpha^d`` (per-sample loss of ``loss_fn``);
   ``aux = mean_b L_0``, ``pred = mean_{t >= 1, b} L_t`` (one mean), ``loss = aux_weight * aux + pred``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from vosc.inference.propagator import Propagator, run_clip
from vosc.losses.segmentation import depth_weights
from vosc.models.base import VOSNetwork

NEG_INF = -1e4  # safe in fp16/bf16 and float32


def shuffle_permutation(num_ids: int, batch: int, generator: torch.Generator | None = None) -> Tensor:
    """Per-sample random permutations of identities ``1..num_ids-1`` with background fixed.

    Args:
        num_ids: Number of identity slots including background (``max_obj + 1``).
        batch: ``B``.
        generator: Optional RNG.

    Returns:
        ``(B, num_ids)`` int64, ``perm[:, 0] == 0``.
    """
    rand = torch.rand(batch, num_ids - 1, generator=generator)
    perm = rand.argsort(dim=1) + 1
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), perm], dim=1)


def apply_permutation(masks: Tensor, perm: Tensor) -> Tensor:
    """Relabel id masks: ``out = perm[b, masks]``.

    Args:
        masks: ``(B, ...)`` int64 ids.
        perm: ``(B, N)`` permutations.

    Returns:
        Same shape as ``masks``.
    """
    b = masks.shape[0]
    flat = masks.reshape(b, -1)
    return torch.gather(perm, 1, flat).reshape(masks.shape)


def unshuffle_logits(logits: Tensor, perm: Tensor, num_objects: Tensor) -> Tensor:
    """Map logits from shuffled to original identities and mask unused identities.

    Args:
        logits: ``(B, N, H, W)`` in the shuffled identity space.
        perm: ``(B, N)`` permutation used for the inputs (original ``k`` -> shuffled ``perm[k]``).
        num_objects: ``(B,)`` objects per sample.

    Returns:
        ``(B, N, H, W)`` float32 logits in the original identity space, ids ``> num_objects`` at ``-1e4``.
    """
    b, n, h, w = logits.shape
    if perm.shape[1] > n:  # a family without identity slots (STCN: 1 + K channels); perm is the identity
        perm = perm[:, :n]
        if bool((perm >= n).any()):
            raise ValueError(f"identity permutation over {n} logit channels maps outside them (shuffle_ids "
                             "needs a family with identity slots)")
    idx = perm.to(logits.device).view(b, n, 1, 1).expand(b, n, h, w)
    out = torch.gather(logits.float(), 1, idx)
    unused = torch.arange(n, device=logits.device).view(1, n) > num_objects.view(b, 1)
    return out.masked_fill(unused.view(b, n, 1, 1), NEG_INF)


@dataclass
class ClipLoss:
    """Everything one training computation produced.

    Attributes:
        loss: ``()`` the value to back-propagate, ``aux_weight * aux_loss + pred_loss``.
        aux_loss: ``()`` mean over samples of the reference frame's loss (0 when it was not decoded).
        pred_loss: ``()`` mean over frames ``1..T-1`` and samples.
        aux_weight: The auxiliary weight used.
        depths: Supervised depths, ascending (the ``D`` axis below).
        depth_loss: ``(T, D, B)`` per-sample loss of frame ``t`` decoded at ``depths[d]`` (row 0: the
            reference; NaN when it was not decoded).
        frame_loss: ``(T, B)`` depth-weighted per-sample loss of each frame.
        logits: Per frame ``{depth: (B, N, H, W)}`` float32 logits in object order at input size, unused
            identities at ``-1e4`` (what the loss saw); frame 0 is ``{}`` when not decoded.
        raw_logits: Per frame ``{depth: (B, N, h, w)}`` the network's logits in identity order at the
            decoder's resolution (AOT: 1/4), before any masking; frame 0 ``{}`` when not decoded.
        perm: ``(B, N)`` the identity permutation (object ``o`` -> identity ``perm[b, o]``).
        memory_from_pred: Whether the memory came from detached predictions.
    """

    loss: Tensor
    aux_loss: Tensor
    pred_loss: Tensor
    aux_weight: float
    depths: list[int]
    depth_loss: Tensor
    frame_loss: Tensor
    logits: list[dict[int, Tensor]] = field(default_factory=list)
    raw_logits: list[dict[int, Tensor]] = field(default_factory=list)
    perm: Tensor | None = None
    memory_from_pred: bool = False


LossFn = Callable[[Tensor, Tensor, int, int], Tensor]


def clip_training_loss(model: VOSNetwork, loss_fn: nn.Module | LossFn, frames: Tensor, masks: Tensor,
                       num_objects: Tensor, perm: Tensor, *, step: int, total_steps: int,
                       depths: Sequence[int], alpha: float, aux_weight: float, memory_from_pred: bool,
                       long_term_gap: int, memory_feedback: str = "argmax") -> ClipLoss:
    """The training loss of a batch of clips (module docstring).

    Args:
        model: The network (train mode as the caller wants it).
        loss_fn: ``loss_fn(logits (B, N, H, W), target (B, 1, H, W), step, total_steps) -> (B,)``.
        frames: ``(B, T, 3, H, W)`` normalised frames, ``T >= 2``.
        masks: ``(B, T, 1, H, W)`` int64 object ids ``0..num_objects[b]``.
        num_objects: ``(B,)``.
        perm: ``(B, N)`` identity permutation (identity for families without identity slots).
        step: The optimisation step (top-k schedule of ``loss_fn``).
        total_steps: Schedule length.
        depths: Supervised depths.
        alpha: Scalable-supervision base.
        aux_weight: Weight of the reference-frame loss (0: the reference is not decoded).
        memory_from_pred: Memory from detached argmax predictions (identity embeddings detached) instead of
            the ground truth.
        long_term_gap: Long-term memory gap.
        memory_feedback: ``"argmax"`` or ``"soft"`` (softmax probabilities with gradient; STCN).

    Returns:
        :class:`ClipLoss`.
    """
    depths = sorted(int(d) for d in depths)
    perm = perm.to(masks.device)
    fed = apply_permutation(masks, perm)  # (B, T, 1, H, W) identities as the network sees them

    def from_prediction(t: int, logits: dict[int, Tensor]) -> Tensor:
        if memory_feedback == "soft":  # probabilities as the network sees them, with gradient
            return torch.softmax(logits[depths[-1]], dim=1)
        deepest = unshuffle_logits(logits[depths[-1]], perm, num_objects)
        return apply_permutation(deepest.detach().argmax(dim=1, keepdim=True), perm)

    prop = Propagator(model, long_term_gap=long_term_gap, mask_unused=False)  # masked after un-shuffling
    previous = model.detach_ids
    model.detach_ids = bool(memory_from_pred)
    try:
        clip = run_clip(prop, frames, fed[:, 0], num_objects, depths, teacher=fed,
                        feedback=from_prediction if memory_from_pred else None,
                        decode_reference=aux_weight > 0)
    finally:
        model.detach_ids = previous
    weights = depth_weights(depths, alpha)
    decoded = [clip.reference or {}] + clip.frames
    logits = [{d: unshuffle_logits(lg[d], perm, num_objects) for d in depths} if lg else {} for lg in decoded]
    per_depth: list[Tensor] = []
    for t, lg in enumerate(logits):
        if not lg:
            per_depth.append(frames.new_full((len(depths), frames.shape[0]), float("nan")))
            continue
        per_depth.append(torch.stack([loss_fn(lg[d], masks[:, t], step, total_steps) for d in depths]))
    depth_loss = torch.stack(per_depth)  # (T, D, B)
    w = torch.tensor([weights[d] for d in depths], dtype=depth_loss.dtype, device=depth_loss.device)
    frame_loss = (depth_loss * w.view(1, -1, 1)).sum(dim=1)  # (T, B)
    pred = frame_loss[1:].mean()
    aux = frame_loss[0].mean() if clip.reference is not None else pred.new_zeros(())
    raw = [clip.raw_reference or {}] + clip.raw_frames
    return ClipLoss(loss=aux_weight * aux + pred, aux_loss=aux, pred_loss=pred, aux_weight=aux_weight,
                    depths=depths, depth_loss=depth_loss, frame_loss=frame_loss, logits=logits,
                    raw_logits=raw, perm=perm, memory_from_pred=bool(memory_from_pred))
