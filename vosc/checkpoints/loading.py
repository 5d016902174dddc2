"""Build a VOS network from a checkpoint: a vosc Lightning checkpoint or an official AOT/AOST/STCN one.

Used by ``evaluate.py`` (the model to evaluate) and ``train.py`` (``vos_ckpt=``: the initial or frozen
VOS network of fine-tuning and enhancer stages).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vosc.checkpoints.errors import CheckpointError
from vosc.checkpoints.integrity import verify_content_hash
from vosc.config import instantiate
from vosc.models.encoder.pretrained import weights_from_checkpoint

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A network and where it came from.

    Attributes:
        model: The network (eval mode, CPU).
        model_config: Plain-dict constructor config (``_target_`` + arguments) of the network: the one
            stored in a vosc checkpoint, else the one given.
        checkpoint: Absolute path of the checkpoint, or ``None`` for random initialisation.
        checkpoint_hash: First 16 hex digits of the file's SHA-256, or ``None``.
        kind: ``"vosc"``, ``"official"`` or ``"random"``.
    """

    model: nn.Module
    model_config: dict[str, Any]
    checkpoint: str | None
    checkpoint_hash: str | None
    kind: str


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 prefix over the names, shapes and bytes of a module's state dict."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``) on the CPU.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is not a readable PyTorch checkpoint holding a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: checkpoint is a {type(data).__name__}, expected a dict")
    verify_content_hash(data, path)
    return data


def _from_vosc(path: Path, data: dict[str, Any], model_config: Mapping[str, Any]) -> nn.Module:
    model = instantiate(weights_from_checkpoint(model_config))
    state = {k[len("model."):]: v for k, v in data.get("state_dict", {}).items() if k.startswith("model.")}
    if not state:
        raise CheckpointError(f"{path}: Lightning checkpoint without 'model.*' weights")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the stored model_config: {exc}") from exc
    return model


def load_vos_model(ckpt: str | Path | None, model_config: Mapping[str, Any], seed: int = 0) -> LoadedModel:
    """Build the VOS network from a checkpoint, or randomly initialised when ``ckpt`` is ``None``.

    A vosc Lightning checkpoint (``hyper_parameters.model_config`` + ``model.*`` EMA weights) rebuilds
    its own network and ignores ``model_config``; any other checkpoint is loaded strictly as an official
    AOT/AOST (or, for an STCN ``model_config``, STCN) checkpoint into ``instantiate(model_config)``.

    Args:
        ckpt: Checkpoint path or ``None``.
        model_config: ``_target_`` + constructor arguments of the network (e.g. ``conf/model/aost.yaml``).
        seed: Seed of the random initialisation.

    Raises:
        FileNotFoundError: ``ckpt`` does not exist.
        CheckpointError: the checkpoint is unreadable or its weights do not fit.
    """
    config = dict(model_config)
    if ckpt is None:
        torch.manual_seed(int(seed))
        return LoadedModel(instantiate(config).eval(), config, None, None, "random")
    if not str(ckpt).strip():
        raise FileNotFoundError(
            "checkpoint path is empty: pass a checkpoint file (a vosc last.ckpt such as "
            "outputs/<task>/runs/<time>/checkpoints/last.ckpt, or an official AOT .pth), or "
            "null for a randomly initialised network (smoke tests only)"
        )
    path = Path(str(ckpt)).expanduser().resolve()  # provenance records the absolute path
    data = read_checkpoint(path)
    digest = file_sha256(path)[:16]
    hparams = data.get("hyper_parameters")
    if isinstance(hparams, dict) and hparams.get("model_config") is not None:
        stored = dict(hparams["model_config"])
        model = _from_vosc(path, data, stored)
        log.info("loaded vosc checkpoint %s (network from its hyper-parameters, EMA weights)", path)
        return LoadedModel(model.eval(), stored, str(path), digest, "vosc")
    from vosc.checkpoints.official import load_official
    from vosc.checkpoints.stcn import load_stcn_official
    from vosc.models.stcn import STCN

    model = instantiate(weights_from_checkpoint(config))
    if isinstance(model, STCN):
        report = load_stcn_official(model, data, strict=True, name=str(path))
    else:
        report = load_official(model, data, strict=True, name=str(path))
    log.info("loaded official checkpoint %s (%s)", path, report.describe(str(path)))
    return LoadedModel(model.eval(), config, str(path), digest, "official")
