"""Lightning module of VOS training: sequential clip training with scalable supervision, validation J&F.

Training step over a clip ``(B, T, 3, H, W)`` (frame 0 = reference): :meth:`VOSModule.training_loss`, i.e.
:func:`vosc.lit.training_loss.clip_training_loss` (identity shuffling, the clip loop, the per-frame loss
``sum_d alpha^d L_d / sum_d alpha^d``, ``loss = aux_w * aux + pred``); the auxiliary weight is
``aux_weight * max(A - step, 0) / A`` with ``A = aux_ratio * total_steps + 1e-5``; the memory comes from
the ground truth before ``seq_switch_ratio * total_steps`` and from detached full-depth predictions (with
detached identity embeddings) afterwards. ``python -m vosc.checkpoints verify-train`` checks this
computation against the official engine. A non-finite loss raises :class:`NonFiniteLossError` naming the
step, batch and sequences.

Validation runs every clip separately at each depth (memory from that depth's own predictions, as in
inference) and reports DAVIS J&F per depth (``val/J&F_d{d}``; ``val/J&F`` = deepest) and ``val/bpp``.

Joint fine-tuning with an enhancer (DESIGN §8, stage 3): with ``enhancer`` set, the decoded frames pass
through :func:`vosc.models.enhancer.enhance_batch` before the propagator, in training (gradients reach
both networks) and validation (chunked over time, each chunk seeing its two previous frames). The
enhancer's parameters form one more AdamW group (``enhancer_lr``, ``enhancer_weight_decay``); being a
sub-module it is averaged by the EMA callback and saved in the checkpoint (``enhancer.*`` keys, loadable
by :func:`vosc.lit.enhancer_module.load_enhancer_weights`). Without an enhancer nothing changes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from vosc.config import ConfigError
from vosc.inference.propagator import Propagator, run_clip
from vosc.lit.training_loss import (
    NEG_INF,
    ClipLoss,
    apply_permutation,
    clip_training_loss,
    shuffle_permutation,
    unshuffle_logits,
)
from vosc.losses.segmentation import SegmentationLoss
from vosc.models.base import VOSNetwork
from vosc.types import VOSBatch
from vosc.utils.optim import DEFAULT_NO_DECAY_KEYS, WarmupPolyLR, param_groups

log = logging.getLogger(__name__)

MAX_MASK_ID = 255  # the most objects a uint8 id mask holds
__all__ = ["NEG_INF", "NonFiniteLossError", "VOSModule", "apply_permutation", "shuffle_permutation",
           "unshuffle_logits"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names step, batch and sequences."""


class VOSModule(L.LightningModule):
    """Trains a :class:`~vosc.models.vos_model.VOSModel` (AOT / AOST) on clips of (decoded) frames.

    Args:
        model: The network; if ``None``, built from ``model_config`` (a Hydra node with ``_target_``).
        model_config: Plain-dict model config stored in the checkpoint so that
            ``VOSModule.load_from_checkpoint(path)`` can rebuild the network.
        loss: Per-frame segmentation loss (default 0.5 bootstrapped CE + 0.5 soft Jaccard).
        alpha: Scalable-supervision base (``> 0``; ``inf`` = deepest only).
        depths: Supervised depths; ``None`` = ``1..num_layers`` for S-LSTT, ``[num_layers]`` for LSTT.
        val_depths: Depths evaluated in validation; ``None`` = the supervised depths.
        lr: Peak learning rate.
        min_lr: Final learning rate of the poly schedule.
        weight_decay: AdamW weight decay (not on biases, norms, position tables).
        encoder_lr_ratio: Encoder learning-rate factor.
        warmup_ratio: Share of the steps used for linear warm-up.
        lr_power: Poly exponent.
        lr_milestones: Shares of the steps at which the rate is multiplied by ``lr_gamma`` (step decay
            instead of poly, the official STCN schedule); ``None``: poly.
        lr_gamma: Step-decay factor.
        betas: AdamW betas.
        no_decay_keys: Name substrings exempt from weight decay.
        seq_switch_ratio: Share of the steps after which the memory uses the predictions.
        memory_feedback: How a prediction enters the memory: ``"argmax"`` (detached ids, AOT) or ``"soft"``
            (the softmax probabilities, not detached: the official STCN training).
        aux_weight: Initial weight of the reference-frame auxiliary loss (0 disables it).
        aux_ratio: The auxiliary weight reaches 0 after ``aux_ratio * total_steps`` steps.
        train_long_term_gap: Long-term memory gap while training (reference: 2).
        val_long_term_gap: Long-term memory gap in validation (reference: 5).
        shuffle_ids: Shuffle identities per sample while training; ``None`` (default): when the model family
            has identity slots (AOT/AOST yes, STCN no).
        total_steps: Total steps for the schedules; ``None`` = the trainer's estimate.
        seed: Base of the per-step RNG seeding (identity shuffling, DropPath) for exact resumption.
        vis_frames: Frames of the first validation clip kept for image logging (0 disables).
        enhancer: Optional enhancer (:class:`vosc.models.enhancer.Enhancer`) applied to the decoded frames
            before the propagator and trained jointly; ``None`` = no enhancement (plain VOS training).
        enhancer_config: Plain-dict enhancer config (``_target_``) used when ``enhancer`` is ``None``, stored
            in the checkpoint so that ``load_from_checkpoint`` rebuilds the enhancer.
        enhancer_ckpt: Initial enhancer weights: an ``EnhancerModule`` (stage 1/2) or stage-3 checkpoint.
        enhancer_lr: Peak learning rate of the enhancer (``None`` = ``lr``; same warm-up/poly schedule).
        enhancer_weight_decay: AdamW weight decay of the enhancer's parameters.
        enhancer_chunk: Frames enhanced at once in validation (memory bound on long clips).
    """

    hparams: Any  # Lightning's AttributeDict of the constructor arguments (read as attributes)

    def __init__(
        self,
        model: nn.Module | None = None,
        model_config: dict[str, Any] | None = None,
        loss: nn.Module | None = None,
        alpha: float = 2.0,
        depths: Sequence[int] | None = None,
        val_depths: Sequence[int] | None = None,
        lr: float = 2e-4,
        min_lr: float = 2e-5,
        weight_decay: float = 0.07,
        encoder_lr_ratio: float = 0.1,
        warmup_ratio: float = 0.05,
        lr_power: float = 0.9,
        lr_milestones: Sequence[float] | None = None,
        lr_gamma: float = 0.1,
        betas: Sequence[float] = (0.9, 0.999),
        no_decay_keys: Sequence[str] = DEFAULT_NO_DECAY_KEYS,
        seq_switch_ratio: float = 0.5,
        memory_feedback: str = "argmax",
        aux_weight: float = 1.0,
        aux_ratio: float = 1.0,
        train_long_term_gap: int = 2,
        val_long_term_gap: int = 5,
        shuffle_ids: bool | None = None,
        total_steps: int | None = None,
        seed: int = 0,
        vis_frames: int = 5,
        enhancer: nn.Module | None = None,
        enhancer_config: dict[str, Any] | None = None,
        enhancer_ckpt: str | None = None,
        enhancer_lr: float | None = None,
        enhancer_weight_decay: float = 0.0,
        enhancer_chunk: int = 8,
    ) -> None:
        super().__init__()
        # the initial enhancer weights are in the state dict afterwards: the path is provenance only
        self.save_hyperparameters(ignore=["model", "loss", "enhancer", "enhancer_ckpt"])
        self.enhancer = self._build_enhancer(enhancer, enhancer_config, enhancer_ckpt)
        self.enhancer_init = None if enhancer_ckpt is None else str(enhancer_ckpt)
        if enhancer_chunk < 1:
            raise ConfigError(f"lit.enhancer_chunk must be >= 1, got {enhancer_chunk}")
        if model is None:
            if model_config is None:
                raise ConfigError("VOSModule needs `model` or `model_config`")
            from hydra.utils import instantiate

            from vosc.models.encoder.pretrained import weights_from_checkpoint

            model = instantiate(weights_from_checkpoint(model_config))  # weights: from the checkpoint
        if not isinstance(model, VOSNetwork):
            raise ConfigError(f"lit: model {type(model).__name__} is not a vosc.models.base.VOSNetwork "
                              "(a model family: encode/write/read)")
        self.model: VOSNetwork = model
        self.loss_fn = loss if loss is not None else SegmentationLoss()
        num_layers = int(model.num_depths)
        scalable = tuple(model.decode_depths) == tuple(range(1, num_layers + 1))
        self.depths = self._check_depths(depths, num_layers, scalable, "lit.depths")
        self.val_depths = (self._check_depths(val_depths, num_layers, True, "lit.val_depths") if val_depths
                           else self.depths)
        if not (alpha > 0):
            raise ConfigError(f"lit.alpha={float(alpha)} must be > 0 (or inf for deepest-only supervision)")
        self.alpha = float(alpha)
        if memory_feedback not in ("argmax", "soft"):
            raise ConfigError(f"lit.memory_feedback={memory_feedback!r}; valid choices: ['argmax', 'soft']")
        if not 0.0 <= seq_switch_ratio <= 1.0:
            raise ConfigError(f"lit.seq_switch_ratio must be in [0, 1], got {seq_switch_ratio}")
        # identity slots incl. background: the family's capacity, or every id of a uint8 mask (unbounded)
        self.num_ids = (MAX_MASK_ID if model.max_objects is None else int(model.max_objects)) + 1
        if shuffle_ids is None:
            shuffle_ids = model.max_objects is not None
        self.shuffle_ids = bool(shuffle_ids)
        if shuffle_ids and model.max_objects is None:
            raise ConfigError(f"lit.shuffle_ids=true needs a model family with identity slots; "
                              f"{type(model).__name__} decodes objects separately: set lit.shuffle_ids=false")
        self.vis_sample: dict[str, Any] | None = None
        self._val_stats: dict[int, dict[str, list[Any]]] = {}
        self._val_bpp: list[tuple[str, float]] = []

    # ------------------------------------------------------------------ configuration checks
    @staticmethod
    def _build_enhancer(
        enhancer: nn.Module | None, config: dict[str, Any] | None, ckpt: str | None
    ) -> nn.Module | None:
        if enhancer is None and config is not None:
            from hydra.utils import instantiate

            enhancer = instantiate(config)
        if ckpt is not None:
            if enhancer is None:
                raise ConfigError(f"lit.enhancer_ckpt={ckpt} is set but the module has no enhancer")
            from vosc.lit.enhancer_module import load_enhancer_weights

            load_enhancer_weights(enhancer, ckpt)  # type: ignore[arg-type]
            log.info("enhancer initialised from %s", ckpt)
        return enhancer

    @staticmethod
    def _check_depths(depths: Sequence[int] | None, num_layers: int, scalable: bool, key: str) -> list[int]:
        valid = list(range(1, num_layers + 1))
        if depths is None:
            return valid if scalable else [num_layers]
        out = sorted({int(d) for d in depths})
        bad = [d for d in out if d not in valid]
        if bad or not out:
            raise ConfigError(f"{key}={list(depths)}: depth(s) {bad} exceed model.num_layers={num_layers}; "
                              f"valid choices: {valid}")
        if not scalable and out != [num_layers]:
            raise ConfigError(
                f"{key}={out}: an LSTT (AOT) model is trained at its full depth only; "
                f"valid choice: [{num_layers}]"
            )
        return out

    @property
    def total_steps(self) -> int:
        """Schedule length: ``hparams.total_steps`` or the trainer's number of optimiser steps."""
        if self.hparams.total_steps:
            return int(self.hparams.total_steps)
        trainer = self._trainer
        if trainer is None:
            return 1
        if trainer.max_steps and trainer.max_steps > 0:
            return int(trainer.max_steps)
        est = trainer.estimated_stepping_batches
        return int(est) if math.isfinite(est) else 1

    @property
    def switch_step(self) -> int:
        """First step whose memory comes from detached predictions."""
        return int(self.hparams.seq_switch_ratio * self.total_steps)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        """AdamW with the reference's parameter groups and a per-step warm-up + poly schedule."""
        hp = self.hparams
        groups = param_groups(
            self.model,
            hp.weight_decay,
            encoder_lr_ratio=hp.encoder_lr_ratio,
            encoder_prefix=getattr(self.model, "encoder_prefixes", "encoder."),
            no_decay_keys=tuple(hp.no_decay_keys),
        )
        groups += self._enhancer_groups()
        opt = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas))
        sched = WarmupPolyLR(
            opt,
            total_steps=self.total_steps,
            base_lr=hp.lr,
            min_lr=hp.min_lr,
            warmup_ratio=hp.warmup_ratio,
            power=hp.lr_power,
            switch_step=self.switch_step,
            milestones=hp.lr_milestones,
            gamma=hp.lr_gamma,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def _enhancer_groups(self) -> list[dict[str, Any]]:
        """One AdamW group for the enhancer's trainable parameters (empty without an enhancer)."""
        if self.enhancer is None:
            return []
        params = [p for p in self.enhancer.parameters() if p.requires_grad]
        if not params:
            return []
        hp = self.hparams
        lr = float(hp.enhancer_lr) if hp.enhancer_lr is not None else float(hp.lr)
        return [
            {
                "params": params,
                "weight_decay": float(hp.enhancer_weight_decay),
                "lr_ratio": lr / float(hp.lr),
                "freeze_after_switch": False,
                "name": "enhancer",
            }
        ]

    def enhance(self, batch: VOSBatch, chunk: int | None = None) -> Tensor:
        """The frames fed to the propagator: ``batch.frames`` or, with an enhancer, the enhanced frames.

        Args:
            batch: Clips; ``frames`` ``(B, T, 3, H, W)`` ImageNet-normalised decoded frames.
            chunk: Enhance ``chunk`` frames at a time (each chunk sees its two previous frames as context);
                ``None`` = the whole clip at once (training: gradients flow through every frame).

        Returns:
            ``(B, T, 3, H, W)`` ImageNet-normalised frames.
        """
        if self.enhancer is None:
            return batch.frames
        from vosc.models.enhancer import enhance_batch

        t = batch.frames.shape[1]
        if chunk is None or chunk >= t:
            return enhance_batch(self.enhancer, batch)  # type: ignore[arg-type]
        out = []
        for start in range(0, t, chunk):
            end, lo = min(start + chunk, t), max(0, start - 2)
            qps = None if batch.frame_qps is None else batch.frame_qps[:, lo:end]
            types = None if batch.frame_types is None else batch.frame_types[:, lo:end]
            part = self.enhancer.enhance(batch.frames[:, lo:end], batch.codec, batch.q, qps, types)  # type: ignore[operator]
            out.append(part[:, start - lo:])
        return torch.cat(out, dim=1)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Seed the RNG from (seed, step, rank) so that a resumed run draws the same numbers."""
        s = (int(self.hparams.seed) * 1_000_003 + self.global_step * 1009 + self.global_rank) % (2**63 - 1)
        torch.manual_seed(s)

    # ------------------------------------------------------------------ training
    def _propagator(self, gap: int) -> Propagator:
        # identities are masked by this module after un-shuffling (the propagator would mask shuffled ids)
        return Propagator(self.model, long_term_gap=gap, mask_unused=False)

    def aux_weight_at(self, step: int) -> float:
        """Weight of the reference-frame auxiliary loss at ``step``: ``w * max(A - step, 0) / A`` with
        ``A = aux_ratio * total_steps + 1e-5`` (the official formula)."""
        hp = self.hparams
        span = hp.aux_ratio * self.total_steps + 1e-5
        if hp.aux_weight <= 0 or hp.aux_ratio * self.total_steps <= 0:
            return 0.0
        return float(hp.aux_weight) * max(span - step, 0.0) / span

    def training_loss(self, batch: VOSBatch, step: int, perm: Tensor | None = None) -> ClipLoss:
        """The training computation of ``batch`` at optimisation step ``step`` (what :meth:`training_step`
        back-propagates; :mod:`vosc.lit.training_loss`).

        Args:
            batch: Clips; ``frames`` ``(B, T, 3, H, W)``, ``masks`` ``(B, T, 1, H, W)``.
            step: Step of the schedules (top-k, auxiliary weight, memory source).
            perm: ``(B, N)`` identity permutation; ``None`` draws one (``shuffle_ids``) or uses the identity.

        Returns:
            :class:`~vosc.lit.training_loss.ClipLoss`.
        """
        frames, masks = self.enhance(batch), batch.masks
        b = frames.shape[0]
        if perm is None:
            perm = shuffle_permutation(self.num_ids, b) if self.shuffle_ids else (
                torch.arange(self.num_ids).expand(b, -1).clone()
            )
        return clip_training_loss(
            self.model, self.loss_fn, frames, masks, batch.num_objects, perm, step=step,
            total_steps=self.total_steps, depths=self.depths, alpha=self.alpha,
            aux_weight=self.aux_weight_at(step), memory_from_pred=step >= self.switch_step,
            long_term_gap=int(self.hparams.train_long_term_gap),
            memory_feedback=str(self.hparams.memory_feedback))

    def training_step(self, batch: VOSBatch, batch_idx: int) -> Tensor:
        """Sequential training over the clip; returns the scalable-supervision loss."""
        out = self.training_loss(batch, self.global_step)
        loss, aux = out.loss, out.aux_loss
        depth_loss = {d: out.depth_loss[1:, i].mean() for i, d in enumerate(out.depths)}
        self._check_finite(loss, depth_loss, aux, batch, batch_idx)
        logs: dict[str, Tensor | float] = {f"train/loss_d{d}": v.detach() for d, v in depth_loss.items()}
        logs.update({"train/loss": loss.detach(), "train/aux_loss": aux.detach(),
                     "train/aux_weight": out.aux_weight})
        logs["train/memory_from_pred"] = float(out.memory_from_pred)
        logs["train/bpp"] = batch.bpp.float().mean()
        b = batch.frames.shape[0]
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=b, prog_bar=False)
        self.log("loss", loss.detach(), on_step=True, prog_bar=True, logger=False, batch_size=b)
        return loss

    def _check_finite(
        self, loss: Tensor, depth_loss: dict[int, Tensor], aux: Tensor, batch: VOSBatch, idx: int
    ) -> None:
        if torch.isfinite(loss):
            return
        parts = {f"depth {d}": float(v.detach()) for d, v in depth_loss.items()} | {
            "aux": float(aux.detach())
        }
        raise NonFiniteLossError(
            f"non-finite training loss {float(loss)} at step {self.global_step}, batch {idx}, "
            f"epoch {self.current_epoch}, sequences {list(batch.sequences)}; per-term values {parts}"
        )

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def predict_clip(self, frames: Tensor, first_mask: Tensor, num_objects: Tensor, depth: int) -> Tensor:
        """Semi-supervised inference of clips at one depth (memory from this depth's own predictions).

        Sizing follows :class:`~vosc.inference.segmenter.VideoSegmenter` (and so ``evaluate.py``): frames are
        resized (bicubic) to :func:`~vosc.inference.postprocess.network_size` (sides ``16k + 1`` for
        ``align_corners`` models), the first mask with nearest-neighbour sampling; logits are resized back
        bilinearly to the original size before the argmax, and each prediction re-enters the memory as the
        family's :meth:`~vosc.models.base.VOSNetwork.memory_mask` of it (AOT: the ids resized to the network
        size; STCN: its soft probabilities). Validation J&F and evaluation J&F of the same weights therefore
        agree.

        Args:
            frames: ``(B, T, 3, H, W)`` normalised frames.
            first_mask: ``(B, 1, H, W)`` int64 ids of frame 0.
            num_objects: ``(B,)``.
            depth: Inference depth.

        Returns:
            ``(B, T, H, W)`` int64 predicted ids (frame 0 = the given mask).
        """
        from vosc.inference.postprocess import network_size

        h, w = frames.shape[-2:]
        align = bool(self.model.align_corners)
        nh, nw = network_size(h, w, None, None, 1.0, int(self.model.input_multiple), align)

        def to_net(x: Tensor, mode: str) -> Tensor:
            if (nh, nw) == (h, w):
                return x
            if mode == "nearest":
                return F.interpolate(x.float(), size=(nh, nw), mode="nearest").long()
            return F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False)

        ident = torch.arange(self.num_ids, device=frames.device).expand(frames.shape[0], -1)
        preds = [first_mask[:, 0]]

        def from_prediction(t: int, logits: dict[int, Tensor]) -> Tensor:
            lg = unshuffle_logits(logits[depth], ident, num_objects)
            if (nh, nw) != (h, w):
                lg = F.interpolate(lg, size=(h, w), mode="bilinear", align_corners=align)
            pred = lg.argmax(dim=1, keepdim=True)
            preds.append(pred[:, 0])
            return self.model.memory_mask(logits[depth], to_net(pred, "nearest"))  # ids, or STCN's soft masks

        net_frames = torch.stack([to_net(frames[:, i], "bicubic") for i in range(frames.shape[1])], dim=1)
        run_clip(self._propagator(self.hparams.val_long_term_gap), net_frames, to_net(first_mask, "nearest"),
                 num_objects, [depth], feedback=from_prediction)
        return torch.stack(preds, dim=1)

    def on_validation_epoch_start(self) -> None:
        """Reset the per-sequence accumulators."""
        self._val_stats = {d: {} for d in self.val_depths}
        self._val_bpp = []
        self.vis_sample = None

    def validation_step(self, batch: VOSBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Predict each clip at each validation depth; store per-object J and F by sequence."""
        from vosc.metrics.jf import evaluate_sequence

        has_mask = batch.extras.get("has_mask")
        if has_mask is not None and not bool(has_mask.all()):
            raise ValueError(
                f"validation sequences {list(batch.sequences)} lack ground truth for some frames; J&F needs "
                "fully annotated sequences (use DAVIS or the synthetic set for validation)"
            )
        frames = self.enhance(batch, int(self.hparams.enhancer_chunk))
        preds = {
            d: self.predict_clip(frames, batch.masks[:, 0], batch.num_objects, d) for d in self.val_depths
        }
        gts = batch.masks[:, :, 0].cpu().numpy()
        for j, name in enumerate(batch.sequences):
            n = int(batch.num_objects[j])
            for d in self.val_depths:
                seq = evaluate_sequence(gts[j], preds[d][j].cpu().numpy(), sequence=name, num_objects=n)
                self._val_stats[d][f"{dataloader_idx}/{name}"] = seq.object_stats()
            self._val_bpp.append((f"{dataloader_idx}/{name}", float(batch.bpp[j])))
        if batch_idx == 0 and self.hparams.vis_frames > 0:
            k = int(self.hparams.vis_frames)
            raw = batch.raw_frames[0, :k].detach().cpu() if batch.raw_frames is not None else None
            self.vis_sample = {
                "frames": batch.frames[0, :k].detach().cpu(),
                "masks": batch.masks[0, :k].detach().cpu(),
                "raw_frames": raw,
                "preds": {d: p[0, :k].detach().cpu() for d, p in preds.items()},
                "enhanced_frames": frames[0, :k].detach().cpu() if self.enhancer is not None else None,
                "sequence": batch.sequences[0],
            }

    def _gather(self, obj: Any) -> list[Any]:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            out: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(out, obj)
            return out
        return [obj]

    def on_validation_epoch_end(self) -> None:
        """De-duplicate sequences across ranks (padding of the distributed sampler) and log J&F per depth."""
        from vosc.metrics.jf import aggregate_objects

        stats: dict[int, dict[str, Any]] = {d: {} for d in self.val_depths}
        for part in self._gather(self._val_stats):
            for d, per_seq in part.items():
                stats[d].update(per_seq)
        bpp = {}
        for part in self._gather(self._val_bpp):
            bpp.update(dict(part))
        logs: dict[str, float] = {}
        for d in self.val_depths:
            objs = [o for name in sorted(stats[d]) for o in stats[d][name]]
            if not objs:
                continue
            res = aggregate_objects(objs).global_
            logs[f"val/J&F_d{d}"] = res["J&F-Mean"]
            logs[f"val/J_d{d}"] = res["J-Mean"]
            logs[f"val/F_d{d}"] = res["F-Mean"]
        if logs:
            deepest = max(d for d in self.val_depths if f"val/J&F_d{d}" in logs)
            logs["val/J&F"] = logs[f"val/J&F_d{deepest}"]
        if bpp:
            logs["val/bpp"] = sum(bpp.values()) / len(bpp)
        self.log_dict(logs, sync_dist=False, rank_zero_only=False)
        self.val_results = logs

    # ------------------------------------------------------------------ checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the depths and the vosc format version next to the weights."""
        checkpoint["vosc"] = {"format": 1, "depths": list(self.depths), "val_depths": list(self.val_depths)}
        if self.enhancer is not None:
            checkpoint["vosc"]["enhancer"] = {
                "class": type(self.enhancer).__name__,
                "init": self.enhancer_init,
            }
