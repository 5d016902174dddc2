"""Reproduce a ``train-parity`` fixture (one official AOT/AOST training step) with vosc's training code.

Protocol and tolerances: ``shared/fixtures/train-parity/README.md``. The fixture's official checkpoint is
loaded strictly into the vosc model (DropPath off, ``train()`` mode, float32), and
:meth:`vosc.lit.vos_module.VOSModule.training_loss` (the computation ``training_step`` back-propagates) runs
on the fixture's batch with its identity permutation and ``step``; the schedules (auxiliary weight, top-k,
memory source) are vosc's own, configured with the official values of ``meta.json`` and checked against the
case. After ``loss.backward()`` every gradient is mapped to its official name and compared.

Modes (:data:`MODES`):

* ``official``: the gradients as the official fp32 engine leaves them. Its gradient clipping runs before
  ``backward()`` and so does nothing (DESIGN §4, a reference defect vosc does not reproduce).
* ``vosc``: vosc's clipping after ``backward()`` (the trainer's ``gradient_clip_val``, global L2 norm),
  compared with the official gradients times the coefficient the official AMP path applies (``meta.json``
  ``clip_coefficient_at_max_norm_5``, recomputed for another norm).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from vosc.checkpoints.official import convert_key, load_official
from vosc.lit.training_loss import ClipLoss
from vosc.lit.vos_module import VOSModule
from vosc.losses.segmentation import SegmentationLoss, top_k_count
from vosc.models.variants import build_model
from vosc.models.vos_model import VOSModel
from vosc.types import VOSBatch

log = logging.getLogger(__name__)

FORMAT = "vosc-aot-train-parity/1"
MODES = ("official", "vosc")
LOSS_TOL = 1e-5
LOGIT_TOL = 1e-4
GLOBAL_GRAD_TOL = 1e-3  # |g - g_ref|_2 of the stored full gradients, relative to the global norm
ABS_GRAD_TOL = 1e-9  # the absolute term of every gradient bound, relative to the global norm
DEFAULT_CLIP_NORM = 5.0  # conf/trainer/default.yaml gradient_clip_val


def _load(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"train-parity fixture file missing: {path}")
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return torch.load(path, map_location="cpu", weights_only=False)


def is_train_fixture(fixture_dir: Path) -> bool:
    """Whether ``fixture_dir`` holds a train-parity fixture (its ``expected.pt`` has cases and gradients)."""
    meta = Path(fixture_dir) / "meta.json"
    return meta.is_file() and str(json.loads(meta.read_text()).get("format", "")) == FORMAT


def fixture_batch(batch: dict[str, Any]) -> tuple[VOSBatch, Tensor]:
    """The fixture's ``batch.pt`` as a :class:`VOSBatch` and its permutation.

    Returns:
        ``(batch, id_perm)``: frames ``(B, T, 3, S, S)`` (rows ``t*B + b`` of ``all_frames``), masks
        ``(B, T, 1, S, S)`` int64, and ``id_perm`` ``(B, 11)`` int64.
    """
    b, t = int(batch["batch_size"]), int(batch["frames"])
    frames = batch["all_frames"].float()
    s = frames.shape[-1]
    frames = frames.view(t, b, 3, s, s).transpose(0, 1).contiguous()
    masks = batch["all_labels"].long().view(t, b, 1, s, s).transpose(0, 1).contiguous()
    names = [str(x.get("sequence", f"sample{i}")) if isinstance(x, dict) else f"sample{i}"
             for i, x in enumerate(batch.get("samples", [{}] * b))]
    vb = VOSBatch(frames=frames, masks=masks, num_objects=torch.tensor([int(n) for n in batch["obj_nums"]]),
                  codec=["none"] * b, q=torch.full((b,), -1), bits=torch.zeros(b, dtype=torch.long),
                  sequences=names)
    return vb, batch["id_perm"].long()


def build_module(expected: dict[str, Any], meta: dict[str, Any], checkpoint: Path) -> VOSModule:
    """The vosc model with the official weights (strict) and a :class:`VOSModule` with the official
    training settings of ``meta.json`` (``reference.config_values``)."""
    cfg = meta.get("reference", {}).get("config_values", {})
    name = str(expected["model"])
    model = cast(VOSModel, build_model(name, pretrained=False, droppath=0.0))
    report = load_official(model, checkpoint, strict=True)
    log.info("loaded %s into model=%s (%d reference keys ignored)", checkpoint, name, len(report.ignored))
    weights = [float(w) for w in expected["layer_loss_weights"]]
    alpha = weights[1] / weights[0] if len(weights) > 1 else 2.0
    loss = SegmentationLoss(top_k_percent=float(cfg.get("TRAIN_TOP_K_PERCENT_PIXELS", 0.15)),
                            hard_mining_ratio=float(cfg.get("TRAIN_HARD_MINING_RATIO", 0.5)))
    # AOT (one decoded depth): the fixture may number it 1; vosc trains an LSTT model at its full depth
    depths = [int(d) for d in expected["depths"]] if model.scalable else None
    module = VOSModule(
        model=model, loss=loss, alpha=alpha, depths=depths,
        total_steps=int(cfg.get("TRAIN_TOTAL_STEPS", 100000)),
        seq_switch_ratio=float(cfg.get("TRAIN_SEQ_TRAINING_START_RATIO", 0.5)),
        aux_weight=float(cfg.get("TRAIN_AUX_LOSS_WEIGHT", 1.0)),
        aux_ratio=float(cfg.get("TRAIN_AUX_LOSS_RATIO", 1.0)),
        train_long_term_gap=int(cfg.get("TRAIN_LONG_TERM_MEM_GAP", 2)))
    module.train()
    return module


def _name_map(module: VOSModule, expected: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Official parameter name -> vosc name, and the failures of the trainable/frozen split."""
    model = cast(VOSModel, module.model)
    params = dict(model.named_parameters())
    mapping, problems = {}, []
    official = list(expected["trainable_parameters"]) + list(expected["frozen_parameters"])
    for name in official:
        own = convert_key(name, model.encoder.name)
        if own is None or own not in params:
            problems.append(f"{name}: no vosc parameter ({own})")
            continue
        mapping[name] = own
    trainable = set(expected["trainable_parameters"])
    for name, own in mapping.items():
        if params[own].requires_grad != (name in trainable):
            side = "official trains it, vosc freezes it" if name in trainable else \
                "official freezes it, vosc trains it"
            problems.append(f"{name} ({own}): {side}")
    extra = sorted(set(params) - set(mapping.values()))
    problems += [f"vosc parameter {n}: not in the official model" for n in extra]
    return mapping, problems


def _max_abs(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _outputs(module: VOSModule, out: ClipLoss, batch: VOSBatch, step: int, num_classes: int
             ) -> dict[str, Tensor]:
    """vosc's values in the fixture's layout: ``logits_4x (T, D, B, C, h, w)`` in object order, ``masks
    (T, B, S, S)``, ``ce``/``jaccard``/``topk_k (T, D, B)`` (the terms of the loss that was back-propagated,
    recomputed from the logits it saw)."""
    perm = cast(Tensor, out.perm)
    masks = batch.masks
    loss_fn = cast(SegmentationLoss, module.loss_fn)
    total = module.total_steps
    s = masks.shape[-1]
    k = top_k_count(loss_fn.ratio(step, total), s * s)
    logits, preds, ce, jac = [], [], [], []
    with torch.no_grad():
        for t, raw in enumerate(out.raw_logits):
            idx = perm[:, :num_classes]
            logits.append(torch.stack([torch.stack([raw[d][b, idx[b]] for b in range(idx.shape[0])])
                                       for d in out.depths]))
            preds.append(out.logits[t][out.depths[-1]].argmax(dim=1).to(torch.uint8))
            terms = [loss_fn.terms(out.logits[t][d], masks[:, t], step, total) for d in out.depths]
            ce.append(torch.stack([x["ce"] for x in terms]))
            jac.append(torch.stack([x["jaccard"] for x in terms]))
    t_total, n_depths, b = out.depth_loss.shape
    return {"logits_4x": torch.stack(logits), "masks": torch.stack(preds), "ce": torch.stack(ce),
            "jaccard": torch.stack(jac), "topk_k": torch.full((t_total, n_depths, b), k, dtype=torch.long)}


def _grad_checks(grads: dict[str, Tensor | None], case: dict[str, Any], trainable: list[str],
                 sample_index: dict[str, Tensor], scale: float) -> dict[str, Any]:
    """README gradient criteria; ``scale`` multiplies the official gradients (clipping in ``vosc`` mode).

    Returns:
        ``{"global_rel", "worst_tensor", "worst_ratio", "grad_none_vosc", "grad_none_official", "failures"}``;
        ratios ``<= 1`` pass.
    """
    g_norm = float(case["grad_global_norm"]) * scale
    abs_tol = ABS_GRAD_TOL * g_norm
    failures: list[str] = []
    none_vosc = sorted(n for n in trainable if grads.get(n) is None)
    none_ref = sorted(case["grad_none"])
    if none_vosc != none_ref:
        failures.append(f"tensors without gradient: vosc {none_vosc}, official {none_ref}")
    sq, worst, worst_name = 0.0, 0.0, ""
    full, norms, absmax = case["grads"], case["grad_norm"], case["grad_abs_max"]
    for name in trainable:
        g = grads.get(name)
        if g is None or name not in norms:
            continue
        tol = float(case["grad_tol_rel"][name])
        flat = g.double().flatten()
        elem_bound = tol * float(absmax[name]) * scale + abs_tol
        if name in full:
            ref = full[name].double().flatten() * scale
            d2 = float((flat - ref).pow(2).sum())
            sq += d2
            ratios = [math.sqrt(d2) / (tol * float(ref.norm()) + abs_tol),
                      float((flat - ref).abs().max()) / elem_bound]
        else:
            ref_norm = float(norms[name]) * scale
            ratios = [abs(float(flat.norm()) - ref_norm) / (tol * ref_norm + abs_tol)]
        if name in case["grad_sample"]:
            idx = sample_index[name].long()
            sample = case["grad_sample"][name].double() * scale
            ratios.append(float((flat[idx] - sample).abs().max()) / elem_bound)
        ratio = max(ratios)
        if ratio > 1:
            failures.append(f"{name}: gradient outside tolerance (ratio {ratio:.3g} to the bound)")
        if ratio > worst:
            worst, worst_name = ratio, name
    global_rel = math.sqrt(sq) / g_norm if g_norm > 0 else 0.0
    if global_rel > GLOBAL_GRAD_TOL:
        failures.append(f"stored gradients together: |g - g_ref| = {global_rel:.3g} G > {GLOBAL_GRAD_TOL} G")
    return {"global_rel": global_rel, "worst_tensor": worst_name, "worst_ratio": worst,
            "grad_none_vosc": none_vosc, "grad_none_official": none_ref, "failures": failures}


def _schedule(module: VOSModule, case: dict[str, Any], step: int) -> list[str]:
    """vosc's schedules at ``step`` against the case's settings (auxiliary weight, top-k, memory source)."""
    loss_fn = cast(SegmentationLoss, module.loss_fn)
    problems = []
    if abs(module.aux_weight_at(step) - float(case["aux_weight"])) > 1e-12:
        problems.append(f"aux weight {module.aux_weight_at(step)!r} vs official {case['aux_weight']!r}")
    if abs(loss_fn.ratio(step, module.total_steps) - float(case["topk_fraction"])) > 1e-12:
        problems.append(f"top-k fraction {loss_fn.ratio(step, module.total_steps)!r} vs official "
                        f"{case['topk_fraction']!r}")
    if (step >= module.switch_step) != bool(case["use_prev_pred"]):
        problems.append(f"memory from predictions: vosc {step >= module.switch_step}, official "
                        f"{bool(case['use_prev_pred'])}")
    return problems


def _compare_values(ours: dict[str, Tensor], out: ClipLoss, case: dict[str, Any]) -> dict[str, Any]:
    """Losses, logits and masks against the case (README tolerances)."""
    res: dict[str, Any] = {
        "loss_diff": abs(float(out.loss.detach()) - float(case["loss"])),
        "aux_loss_diff": abs(float(out.aux_loss.detach()) - float(case["aux_loss"])),
        "pred_loss_diff": abs(float(out.pred_loss.detach()) - float(case["pred_loss"])),
        "frame_loss_diff": _max_abs(out.frame_loss.detach(), case["frame_loss"]),
        "depth_loss_diff": _max_abs(out.depth_loss.detach(), case["depth_loss"]),
        "ce_diff": _max_abs(ours["ce"], case["ce"]),
        "jaccard_diff": _max_abs(ours["jaccard"], case["jaccard"]),
        "topk_k_equal": bool(torch.equal(ours["topk_k"], case["topk_k"].long())),
        "logits_diff": _max_abs(ours["logits_4x"], case["logits_4x"]),
    }
    ok = case["near_tie"] == 0
    res["mask_mismatched_pixels"] = int(((ours["masks"] != case["masks"]) & ok).sum())
    res["mask_compared_pixels"] = int(ok.sum())
    keys = ("loss_diff", "aux_loss_diff", "pred_loss_diff", "frame_loss_diff", "depth_loss_diff", "ce_diff",
            "jaccard_diff")
    failures = [f"{k} {res[k]:.3g} > {LOSS_TOL}" for k in keys if not res[k] <= LOSS_TOL]
    if not res["logits_diff"] <= LOGIT_TOL:
        failures.append(f"logits_diff {res['logits_diff']:.3g} > {LOGIT_TOL}")
    if not res["topk_k_equal"]:
        failures.append("top-k pixel counts differ")
    if res["mask_mismatched_pixels"]:
        failures.append(f"{res['mask_mismatched_pixels']} mask pixels differ outside near_tie")
    res["failures"] = failures
    return res


def run_case(module: VOSModule, batch: VOSBatch, perm: Tensor, expected: dict[str, Any], name: str,
             mapping: dict[str, str], mode: str = "official", clip_norm: float = DEFAULT_CLIP_NORM
             ) -> dict[str, Any]:
    """One case: vosc's training computation, ``backward()``, (``vosc`` mode) clipping, and the comparison."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}; valid: {list(MODES)}")
    case = expected["cases"][name]
    step = int(case["step"])
    schedule = _schedule(module, case, step)
    module.zero_grad(set_to_none=True)
    out = module.training_loss(batch, step, perm)
    out.loss.backward()
    scale = 1.0
    if mode == "vosc":  # vosc clips after backward; the official AMP path would apply this coefficient
        with_grad = [p for p in module.model.parameters() if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(with_grad, clip_norm)
        scale = min(1.0, clip_norm / (float(case["grad_global_norm"]) + 1e-6))
    params = dict(module.model.named_parameters())
    trainable = list(expected["trainable_parameters"])
    grads = {off: params[own].grad for off, own in mapping.items() if off in set(trainable)}
    ours = _outputs(module, out, batch, step, int(case["logits_4x"].shape[3]))
    res = _compare_values(ours, out, case)
    grad = _grad_checks(grads, case, trainable, expected["grad_sample_index"], scale)
    res.update({"step": step, "memory": "predicted" if out.memory_from_pred else "ground truth",
                "aux_weight": out.aux_weight, "grad_scale": scale, "grad": grad, "schedule": schedule})
    res["failures"] = schedule + res["failures"] + grad["failures"]
    res["passed"] = not res["failures"]
    module.zero_grad(set_to_none=True)
    return res


def verify_train_fixture(fixture_dir: Path, mode: str = "official", cases: list[str] | None = None,
                         clip_norm: float = DEFAULT_CLIP_NORM) -> dict[str, Any]:
    """Verify one train-parity fixture folder (``checkpoint.pth``, ``batch.pt``, ``expected.pt``,
    ``meta.json``).

    Returns:
        ``{"model", "mode", "split_failures", "cases": {name: {...}}, "passed"}``.
    """
    fixture_dir = Path(fixture_dir)
    expected = _load(fixture_dir / "expected.pt")
    meta = _load(fixture_dir / "meta.json")
    if str(expected.get("format", "")) != FORMAT:
        raise ValueError(f"{fixture_dir / 'expected.pt'}: format {expected.get('format')!r}, "
                         f"expected {FORMAT}")
    batch, perm = fixture_batch(_load(fixture_dir / "batch.pt"))
    module = build_module(expected, meta, fixture_dir / "checkpoint.pth")
    mapping, split = _name_map(module, expected)
    names = list(expected["cases"]) if not cases else [c for c in expected["cases"] if c in cases]
    if not names:
        raise ValueError(f"{fixture_dir}: none of the cases {cases} is in {list(expected['cases'])}")
    results = {}
    for name in names:
        results[name] = run_case(module, batch, perm, expected, name, mapping, mode, clip_norm)
        log.info("%s %s: %s", fixture_dir.name, name, "pass" if results[name]["passed"] else
                 "; ".join(results[name]["failures"]))
    return {"fixture": fixture_dir.name, "model": str(expected["model"]), "mode": mode,
            "split_failures": split, "cases": results,
            "passed": not split and all(r["passed"] for r in results.values())}


def fixture_dirs(root: Path) -> list[Path]:
    """``root`` itself when it is a fixture, else its sub-folders that are (one per model family)."""
    root = Path(root)
    if (root / "meta.json").is_file():
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and is_train_fixture(p)) if root.is_dir() else []
    if not found:
        raise FileNotFoundError(f"{root}: no train-parity fixture (a folder with meta.json of format "
                                f"{FORMAT})")
    return found


def format_table(results: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`verify_train_fixture` results, one row per fixture and case."""
    head = ("| fixture | mode | case | step | memory | loss Δ | frame/depth loss Δ | logits Δ | masks ≠ | "
            "grad global rel | worst tensor (ratio to bound) | no grad | pass |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        for name, c in r["cases"].items():
            g = c["grad"]
            lines.append(
                f"| {r['fixture']} | {r['mode']} | {name} | {c['step']} | {c['memory']} | "
                f"{c['loss_diff']:.2e} | "
                f"{max(c['frame_loss_diff'], c['depth_loss_diff'], c['ce_diff'], c['jaccard_diff']):.2e} | "
                f"{c['logits_diff']:.2e} | {c['mask_mismatched_pixels']} | {g['global_rel']:.2e} | "
                f"{g['worst_tensor']} ({g['worst_ratio']:.3f}) | {', '.join(g['grad_none_vosc']) or '-'} | "
                f"{'yes' if c['passed'] else 'NO'} |")
    return "\n".join(lines)
