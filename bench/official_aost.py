"""The official AOST training step (``yoxu515/aot-benchmark``, branch ``paot``) built from a local export,
for ``bench/train_speed.py --reference`` only (timing and a loss cross-check; nothing of it enters vosc).

The export is the branch's tree (``git archive paot``), kept outside the repository. It is imported as it
is, with the runtime patches the train-parity fixture generator documents (``meta.json``
``reference.runtime_patches``), so that it runs on CPU without its CUDA extension:

* ``networks.layers.attention.GAU`` / ``LocalGAU``: names ``transformer.py`` imports but the branch never
  defines (unused): empty stubs.
* ``MultiheadLocalAttentionV2``: ``enable_corr`` forced to ``False`` (its pure-torch pad + unfold path
  instead of ``spatial_correlation_sampler``, a CUDA extension).
* ``generate_permute_matrix`` as the engine imports it allocates on CUDA: replaced by an identity stack on
  CPU; the engine's ``id_shuffle_matrix`` is set to the fixture's permutation after every
  ``restart_engine`` anyway.

The step is the official trainer's fp32 path (``networks/managers/trainer.py``): ``restart_engine(B, True)``,
``optimizer.zero_grad(set_to_none=True)``, the engine's forward, ``torch.mean``, ``clip_grad_norm_`` (before
``backward`` there, so it clips nothing), ``loss.backward()``, ``optimizer.step()``; the optimiser is the
trainer's AdamW over ``utils.learning.get_trainable_params`` (one group per tensor). Depth settings: the
unmodified ``AOSTEngine`` is scalable supervision over all depths; a single depth ``d`` (which the official
code does not train) decodes and supervises only the first ``d`` LSTT outputs, its mask feeding the memory,
with the official engine's own methods (:func:`_depth_engine`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

REQUIRED = ("configs/default.py", "networks/engines/aost_engine.py", "networks/models/aost.py",
            "utils/learning.py")


def check_export(export: Path) -> None:
    """Raise ``FileNotFoundError`` naming what is missing when ``export`` is not a ``paot`` export."""
    missing = [p for p in REQUIRED if not (Path(export) / p).is_file()]
    if missing:
        raise FileNotFoundError(f"{export}: not an export of yoxu515/aot-benchmark branch paot (missing "
                                f"{', '.join(missing)}); make one with `git --git-dir <mirror> archive paot "
                                f"| tar -x -C DIR`")


def _import_official(export: Path) -> dict[str, ModuleType]:
    """Import the export's modules (top-level ``configs``, ``networks``, ``utils``) with the patches."""
    check_export(export)
    root = str(Path(export).resolve())
    for name in ("configs", "networks", "utils"):
        mod = sys.modules.get(name)
        where = [str(getattr(mod, "__file__", None) or "")] + [str(x) for x in getattr(mod, "__path__", [])]
        if mod is not None and not any(w.startswith(root) for w in where):
            raise RuntimeError(f"a module named {name!r} from elsewhere is already imported ({mod!r})")
    if root not in sys.path:
        sys.path.insert(0, root)
    import importlib

    attention = importlib.import_module("networks.layers.attention")
    for stub in ("GAU", "LocalGAU"):
        if not hasattr(attention, stub):
            setattr(attention, stub, type(stub, (nn.Module,), {}))
    v2 = attention.MultiheadLocalAttentionV2
    if not getattr(v2.__init__, "_vosc_no_corr", False):
        original = v2.__init__

        @functools.wraps(original)
        def init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
            kwargs["enable_corr"] = False
            original(self, *args, **kwargs)

        init._vosc_no_corr = True  # type: ignore[attr-defined]
        v2.__init__ = init
    aot_engine = importlib.import_module("networks.engines.aot_engine")

    def permute_on_cpu(dim: int, num: int, keep_first: bool = True, gpu_id: int = 0) -> Tensor:
        return torch.eye(dim).expand(num, dim, dim).clone()  # replaced by the fixture's matrix

    aot_engine.generate_permute_matrix = permute_on_cpu  # type: ignore[attr-defined]
    return {"config": importlib.import_module("configs.default"),
            "models": importlib.import_module("networks.models"),
            "engines": importlib.import_module("networks.engines"),
            "aost_engine": importlib.import_module("networks.engines.aost_engine"),
            "learning": importlib.import_module("utils.learning")}


def _depth_engine(base: Any, depths: Sequence[int] | None) -> Any:
    """``AOSTEngine`` itself (``depths`` None: every depth), or a subclass whose ``generate_loss_mask``
    decodes and supervises the one depth ``depths[0]`` (LSTT outputs ``1..d``) with the official methods."""
    if depths is None:
        return base
    if len(depths) != 1:
        raise ValueError(f"the official side runs one depth or all of them, not {list(depths)}")
    depth = int(depths[0])

    class OneDepthEngine(base):
        def generate_loss_mask(self: Any, gt_mask: Tensor, step: int, return_prob: bool = False) -> Any:
            out = list(self.curr_lstt_output)  # set by the official forward
            out[0] = out[0][:depth]
            self.curr_lstt_output = out
            self.decode_current_logits()
            loss = self.calculate_current_loss(gt_mask, step)
            if return_prob:
                mask, prob = self.predict_current_mask(return_prob=True)
                return loss, mask, prob
            return loss, self.predict_current_mask()

    return OneDepthEngine


class OfficialStep:
    """One official training iteration on a train-parity fixture's batch, repeatable.

    Args:
        export: The ``paot`` export folder.
        fixture: The train-parity fixture folder (``checkpoint.pth``, ``batch.pt``, ``meta.json``).
        step: The training ``step`` (aux weight, top-k, memory source as the official trainer sets them).
        depths: ``None``: scalable supervision (the official ``AOSTEngine``); ``[d]``: depth ``d`` only.
        crop: Optional ``S'``: use the top-left ``S' x S'`` of the batch (a smaller, faster batch).
    """

    def __init__(self, export: Path, fixture: Path, step: int, depths: Sequence[int] | None = None,
                 crop: int | None = None) -> None:
        mods = _import_official(Path(export))
        cfg = mods["config"].DefaultEngineConfig(model="aost")
        cfg.TRAIN_LSTT_DROPPATH = 0.0  # as the fixture (DropPath off)
        self.cfg = cfg
        with contextlib.redirect_stdout(io.StringIO()):  # the official builders print
            self.model = mods["models"].build_vos_model(cfg.MODEL_VOS, cfg)
            engine_cls = _depth_engine(mods["aost_engine"].AOSTEngine, depths)
            self.engine = engine_cls(self.model, gpu_id=0, long_term_mem_gap=cfg.TRAIN_LONG_TERM_MEM_GAP)
            ckpt = torch.load(Path(fixture) / "checkpoint.pth", map_location="cpu")
            self.state = {k: v.float() for k, v in ckpt["state_dict"].items()}  # float16 in the file
            self.model.load_state_dict(self.state, strict=True)
            params = mods["learning"].get_trainable_params(
                model=self.engine, base_lr=cfg.TRAIN_LR, use_frozen_bn=cfg.MODEL_FREEZE_BN,
                weight_decay=cfg.TRAIN_WEIGHT_DECAY, exclusive_wd_dict=cfg.TRAIN_WEIGHT_DECAY_EXCLUSIVE,
                no_wd_keys=cfg.TRAIN_WEIGHT_DECAY_EXEMPTION)
        self.optimizer = torch.optim.AdamW(params, lr=cfg.TRAIN_LR, weight_decay=cfg.TRAIN_WEIGHT_DECAY)
        batch = torch.load(Path(fixture) / "batch.pt", map_location="cpu", weights_only=False)
        frames, labels = batch["all_frames"].float(), batch["all_labels"]
        if crop is not None:
            frames, labels = frames[..., :crop, :crop].contiguous(), labels[..., :crop, :crop].contiguous()
        self.frames, self.labels = frames, labels.int()
        self.batch_size = int(batch["batch_size"])
        self.obj_nums = [int(n) for n in batch["obj_nums"]]
        self.shuffle = batch["id_shuffle_matrix"].float()
        self.step = int(step)
        self.use_prev_pred = self.step >= int(cfg.TRAIN_SEQ_TRAINING_START_RATIO * cfg.TRAIN_TOTAL_STEPS)
        self.engine.train()

    def reset_weights(self) -> None:
        """Back to the fixture's checkpoint, with a fresh optimiser state."""
        self.model.load_state_dict(self.state, strict=True)
        self.optimizer.state.clear()

    def __call__(self) -> float:
        """One iteration (forward, backward, AdamW step, as the official fp32 trainer); returns the loss."""
        self.engine.restart_engine(self.batch_size, True)
        self.engine.id_shuffle_matrix = self.shuffle
        self.optimizer.zero_grad(set_to_none=True)
        loss, _, _, _ = self.engine(self.frames, self.labels, self.batch_size, obj_nums=self.obj_nums,
                                    step=self.step, tf_board=False, use_prev_pred=self.use_prev_pred,
                                    enable_prev_frame=False, use_prev_prob=False)
        loss = torch.mean(loss)
        torch.nn.utils.clip_grad_norm_(self.engine.parameters(), self.cfg.TRAIN_CLIP_GRAD_NORM)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
