"""Import of official AOT/AOST checkpoints (``yoxu515/aot-benchmark``).

* :func:`read_state_dict` accepts ``{'state_dict': ...}``, ``{'model': ...}`` or a raw state dict, strips
  ``module.``, upcasts every floating tensor to float32.
* :func:`convert_state_dict` renames official keys to vosc keys: ``LSTT.`` → ``lstt.``,
  ``patch_wise_id_bank`` → ``id_bank.conv``, ``id_norm`` → ``id_bank.norm``, encoder keys from torchvision
  names (MobileNetV2 ``features.N``, ResNet-50, the Swin reference) to timm names. Keys of the Swin
  reference that vosc deliberately lacks (its unused 4th stage, the patch merging into it, the
  ``relative_position_index``/``attn_mask`` buffers) and the never-used ``LSTT.mask_token`` of the
  ``main`` branch are dropped and listed in the report (``LoadReport.ignored``).
* :func:`load_official` loads strictly by default and raises :class:`CheckpointMismatchError` naming the
  missing and unexpected keys (and shape mismatches); ``strict=False`` loads what matches and returns
  the report.
* :func:`warm_start_aost_from_aot` — approximate AOST initialisation from AOT-L weights (no AOST weights
  are public): ``linear_QV = [linear_Q; linear_V]``, ``linear_ID_KV`` = zero gate rows (gate ``1+tanh(0)=1``,
  exact) and ``linear_V``'s weight for ``ID_V`` (exact, since ``linear_V(x+id) = linear_V(x) + W_V id``);
  decoder ``conv_in.{0,1}`` take the first 512/768 input channels of AOT's 1024-channel ``conv_in``
  (approximate); ``id_bank.norm`` keeps its identity-affine init (approximate: AOT had no ID norm).

The parity CLI is :mod:`vosc.checkpoints.__main__` (``python -m vosc.checkpoints verify FIXTURE_DIR``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vosc.checkpoints.errors import CheckpointMismatchError
from vosc.models.encoder.timm_backbone import encoder_key_to_timm
from vosc.models.vos_model import VOSModel

log = logging.getLogger(__name__)

@dataclass
class LoadReport:
    """What a load did: keys missing in the checkpoint, unexpected ones, shape mismatches, and keys of the
    reference deliberately not used by vosc."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No missing, unexpected or mis-shaped keys."""
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def describe(self, source: str = "checkpoint", limit: int | None = 40) -> str:
        """Readable multi-line report (at most ``limit`` keys per kind; ``None``: every key)."""
        lines = [(f"{source}: {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                 f"{len(self.shape_mismatch)} shape-mismatched keys")]
        for name, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                           ("shape mismatch", self.shape_mismatch)):
            for k in keys[:limit]:
                lines.append(f"  {name}: {k}")
            if limit is not None and len(keys) > limit:
                lines.append(f"  ... and {len(keys) - limit} more {name} keys")
        return "\n".join(lines)


def read_state_dict(source: str | Path | dict[str, Any]) -> dict[str, Tensor]:
    """Read a checkpoint into a flat float32 state dict.

    Args:
        source: Path to a ``.pth`` file or an already loaded object: ``{'state_dict': ...}``,
            ``{'model': ...}`` or a raw ``{key: tensor}``.

    Returns:
        ``{key: tensor}`` with ``module.`` stripped and floating tensors upcast to float32.
    """
    where = str(source) if isinstance(source, (str, Path)) else "<state dict>"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        obj = torch.load(path, map_location="cpu", weights_only=False)
    else:
        obj = source
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{where}: not a state dict (expected {{'state_dict': ...}}, {{'model': ...}} or "
                         "a mapping of tensor names to tensors)")
    out = {}
    for k, v in obj.items():
        k = k.removeprefix("module.")
        out[k] = v.float() if v.is_floating_point() else v
    return out


def convert_key(key: str, encoder: str) -> str | None:
    """Official key → vosc key (``None``: a reference key vosc deliberately does not use)."""
    if key.startswith("encoder."):
        rest = key[len("encoder."):]
        new = encoder_key_to_timm(encoder, rest)
        return None if new is None else "encoder." + new
    if key == "LSTT.mask_token":  # defined but never used by the reference (main branch)
        return None
    for old, new in (
        ("LSTT.", "lstt."),
        ("patch_wise_id_bank.", "id_bank.conv."),
        ("id_norm.", "id_bank.norm."),
    ):
        if key.startswith(old):
            return new + key[len(old):]
    return key


def convert_state_dict(state: dict[str, Tensor], encoder: str) -> tuple[dict[str, Tensor], list[str]]:
    """Rename a whole official state dict; returns ``(converted, ignored_official_keys)``."""
    out, ignored = {}, []
    for k, v in state.items():
        new = convert_key(k, encoder)
        if new is None:
            ignored.append(k)
        else:
            out[new] = v
    return out, ignored


def load_converted(model: nn.Module, state: dict[str, Tensor], strict: bool = True,
                   source: str = "checkpoint", limit: int | None = 40) -> LoadReport:
    """Load an already converted (vosc-named) state dict with a full key report (error messages list at
    most ``limit`` keys per kind; ``None``: all)."""
    own = model.state_dict()
    report = LoadReport(missing=sorted(set(own) - set(state)), unexpected=sorted(set(state) - set(own)))
    report.shape_mismatch = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                                   for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if strict and not report.ok:
        raise CheckpointMismatchError(report.describe(source, limit))
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    if not report.ok:
        log.warning("%s", report.describe(source))
    return report


def matching_variants(state: dict[str, Tensor]) -> list[str]:
    """Model variants (``model=<name>``) whose architecture fits an official state dict's keys: encoder
    (MobileNetV2 ``features.*``, ResNet ``layer1.*``, Swin ``layers.*``), block (``linear_QV`` = S-LSTT) and
    depth (``LSTT.decoder_norms.i`` / ``LSTT.layers.i``)."""
    from vosc.models.variants import model_config, model_names

    keys = [k.removeprefix("module.") for k in state]
    if any(k.startswith("encoder.features.") for k in keys):
        encoder = "mobilenetv2"
    elif any(k.startswith("encoder.layer1.") for k in keys):
        encoder = "resnet50"
    elif any(k.startswith(("encoder.layers.", "encoder.patch_embed.")) for k in keys):
        encoder = "swin_base"
    else:
        return []
    block = "slstt" if any(".linear_QV." in k for k in keys) else "lstt"

    def count(prefix: str) -> int:
        found = {int(k[len(prefix):].split(".")[0]) for k in keys if k.startswith(prefix)}
        return max(found) + 1 if found else 0

    layers, norms = count("LSTT.layers."), count("LSTT.decoder_norms.")
    shared = layers == 1 and norms > 1
    depth = max(layers, norms)
    fits = []
    for name in model_names():
        v = model_config(name)
        if v.get("_target_") != "vosc.models.vos_model.VOSModel" or v.get("d_model") != 256:
            continue  # other families, and the narrow CPU variants (no official weights)
        if (v.encoder, v.block, v.num_layers, bool(v.get("shared_layers", False))) == (
            encoder,
            block,
            depth,
            shared,
        ):
            fits.append(name)
    return fits


def load_official(model: VOSModel, source: str | Path | dict[str, Any], strict: bool = True,
                  name: str | None = None) -> LoadReport:
    """Load an official AOT/AOST checkpoint into ``model`` (``name``: the file named in errors).

    Raises:
        CheckpointMismatchError: ``strict`` and keys are missing/unexpected/mis-shaped (all named), with the
            variant(s) whose keys would match (:func:`matching_variants`).
    """
    state = read_state_dict(source)
    converted, ignored = convert_state_dict(state, model.encoder.name)
    name = name or (str(source) if isinstance(source, (str, Path)) else "checkpoint")
    try:
        report = load_converted(model, converted, strict, name)
    except CheckpointMismatchError as exc:
        fits = matching_variants(state)
        hint = (f"its keys match model={' or model='.join(fits)}" if fits
                else "its keys match no known AOT/AOST variant")
        raise CheckpointMismatchError(f"{name}: checkpoint does not fit this model; {hint}\n{exc}") from exc
    report.ignored = ignored
    return report


def warm_start_aost_from_aot(model: VOSModel, source: str | Path | dict[str, Any]) -> LoadReport:
    """Approximate AOST initialisation from an AOT-L checkpoint (see module docstring)."""
    if model.block_type != "slstt" or not model.intermediate:
        raise ValueError("warm start targets an AOST model with per-layer decoder inputs (not AOST-share)")
    state, ignored = convert_state_dict(read_state_dict(source), model.encoder.name)
    d = model.d_model
    for i in range(model.num_layers):
        p = f"lstt.layers.{i}."
        if p + "linear_Q.weight" not in state:
            raise CheckpointMismatchError(
                f"warm start: {p}linear_Q.weight missing (not an AOT-L checkpoint?)"
            )
        wq, bq = state.pop(p + "linear_Q.weight"), state.pop(p + "linear_Q.bias")
        wv, bv = state.pop(p + "linear_V.weight"), state.pop(p + "linear_V.bias")
        state[p + "linear_QV.weight"] = torch.cat([wq, wv], 0)
        state[p + "linear_QV.bias"] = torch.cat([bq, bv], 0)
        heads = model.lstt.block(i).num_heads
        state[p + "linear_ID_KV.weight"] = torch.cat([wv.new_zeros(heads, d), wv], 0)
        state[p + "linear_ID_KV.bias"] = bv.new_zeros(heads + d)
    for key in ("conv.weight", "conv.bias", "gn.weight", "gn.bias"):
        full = state.pop(f"decoder.conv_in.{key}")
        for i in range(model.num_layers):
            state[f"decoder.conv_in.{i}.{key}"] = (
                full[:, : d * (i + 2)] if key == "conv.weight" else full.clone()
            )
    own = model.state_dict()
    for key in ("id_bank.norm.weight", "id_bank.norm.bias"):
        state[key] = own[key].clone()
    report = load_converted(model, state, strict=True, source="AOT warm start")
    report.ignored = ignored
    return report


if __name__ == "__main__":
    raise SystemExit(
        "the checkpoint CLI moved: python -m vosc.checkpoints verify FIXTURE_DIR [--json OUT] [--depths ...]"
    )
