"""The Python entry point: :func:`load_model` turns a checkpoint into a ready :class:`VideoSegmenter`.

.. code-block:: python

    import vosc
    seg = vosc.load_model("last.ckpt")                       # a vosc checkpoint: the network is in the file
    seg = vosc.load_model("R50_AOTL_PRE_YTB_DAV.pth", model="r50_aotl")   # official AOT/AOST weights
    seg = vosc.load_model("stcn.pth")                        # official STCN (recognised by its keys)
    seg = vosc.load_model(None, model="aost_small")          # random weights (demos, tests; warns)
    for r in seg.run(vosc.iter_frames("video.mp4"), {0: mask0}):
        r.mask                                               # (H, W) uint8 ids
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from vosc.checkpoints.errors import CheckpointError
from vosc.checkpoints.loading import LoadedModel, load_vos_model, read_checkpoint
from vosc.inference.segmenter import VideoSegmenter
from vosc.inference.speed import apply_speed_options
from vosc.models.base import VOSNetwork

log = logging.getLogger(__name__)

__all__ = ["CONF_DIR", "load_model", "load_network", "model_config", "resolve_device"]

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def model_config(model: str | Mapping[str, Any]) -> dict[str, Any]:
    """Constructor config (``_target_`` + arguments) of a model.

    Args:
        model: A config name of ``conf/model`` (``aost``, ``aost_small``, ``r50_aotl``, ``stcn``, ...; also
            ``vos/<name>``) or a mapping with ``_target_``.

    Raises:
        ValueError: Unknown name (the message lists the choices) or a mapping without ``_target_``.
    """
    if isinstance(model, Mapping):
        if "_target_" not in model:
            raise ValueError(f"model config needs a _target_, got keys {sorted(model)}")
        return dict(model)
    path = CONF_DIR / "model" / f"{model}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
        raise ValueError(f"unknown model {model!r}: no {path}; choices: {names}")
    return _compose(path)


def _compose(path: Path) -> dict[str, Any]:
    """Load a model YAML, merging its ``defaults`` (``name@_here_``, relative to ``conf/model``) first."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a model config must be a mapping")
    merged: dict[str, Any] = {}
    for entry in raw.pop("defaults", []):
        name = str(entry)
        if name != "_self_":
            merged.update(_compose(CONF_DIR / "model" / f"{name.split('@')[0]}.yaml"))
    merged.update({str(k): v for k, v in raw.items()})
    return merged


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; a CUDA device that does not exist raises ``ValueError``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device}: CUDA is not available on this machine")
    return dev


def _guess_model(path: Path) -> str:
    """The model config of a checkpoint that does not name its network: ``stcn`` for STCN weights."""
    from vosc.checkpoints.official import read_state_dict
    from vosc.checkpoints.stcn import is_stcn_state_dict

    data = read_checkpoint(path)
    if isinstance(data.get("hyper_parameters"), dict):
        return ""  # a vosc checkpoint: the network is stored in it
    state = data["network"] if isinstance(data.get("network"), dict) else data
    if is_stcn_state_dict(read_state_dict(state)):
        return "stcn"
    raise CheckpointError(f"{path}: an official AOT/AOST checkpoint does not say which variant it is; pass "
                          "model=<name> (e.g. aott, aots, aotb, aotl, r50_aotl, swinb_aotl, aost)")


def load_network(path: str | Path | None, model: str | Mapping[str, Any] | None = None) -> LoadedModel:
    """The network of a checkpoint (eval mode, CPU), as :func:`load_model` builds it."""
    if path is None:
        if model is None:
            raise ValueError("load_model(None, model=...) needs a model name for random weights")
        log.warning("no checkpoint: %s with RANDOM weights (masks are meaningless)", model)
        return load_vos_model(None, model_config(model))
    path = Path(path).expanduser()
    if model is None:
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        model = _guess_model(path) or {"_target_": "vosc.models.vos_model.VOSModel"}
    return load_vos_model(path, model_config(model))


def load_model(path: str | Path | None, model: str | Mapping[str, Any] | None = None, *,
               device: str | torch.device = "cpu", channels_last: bool = False, compile: bool = False,
               **segmenter_kwargs: Any) -> VideoSegmenter:
    """Load a checkpoint and return a ready :class:`~vosc.inference.segmenter.VideoSegmenter`.

    Args:
        path: A vosc Lightning checkpoint (the network is rebuilt from its hyper-parameters, EMA weights),
            an official AOT/AOST checkpoint (``save_step_N.pth``; give ``model``), an official STCN
            ``stcn.pth`` (recognised), or ``None`` for random weights of ``model``.
        model: Config name of ``conf/model`` or a ``_target_`` mapping; ignored for vosc checkpoints.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        channels_last: Store the network's 4-D weights channels-last (:mod:`vosc.inference.speed`).
        compile: ``torch.compile`` the network's submodules (:mod:`vosc.inference.speed`).
        **segmenter_kwargs: :class:`VideoSegmenter` arguments (``depth``, ``long_term_gap``,
            ``max_long_term``, ``offload``, ``amp``, ``max_long_edge``, ``flip_tta``, ``scales``, ...).

    Returns:
        A segmenter whose ``model`` is on ``device`` in eval mode; ``segmenter.loaded`` holds the
        :class:`~vosc.checkpoints.loading.LoadedModel` (config, checkpoint hash, kind).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: Unreadable checkpoint, weights that do not fit, or an official AOT/AOST file
            without ``model``.
        ValueError: An unknown model name or device.
    """
    loaded = load_network(path, model)
    net = loaded.model.to(resolve_device(device)).eval()
    if not isinstance(net, VOSNetwork):
        raise CheckpointError(f"{path}: {type(net).__name__} is not a vosc.models.base.VOSNetwork")
    apply_speed_options(net, channels_last=channels_last, compile=compile)
    seg = VideoSegmenter(net, **segmenter_kwargs)
    seg.loaded = loaded  # type: ignore[attr-defined]
    return seg
