"""Builders of an evaluation run (what ``evaluate.py`` composes), each with explicit arguments: the VOS
model, the enhancer, the dataset source, the depths and the device. Every input is checked here, before any
work starts, and reported as :class:`vosc.config.ConfigError` (or ``FileNotFoundError`` naming the file).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vosc.checkpoints.loading import CheckpointError, weights_fingerprint
from vosc.checkpoints.loading import load_vos_model as load_vos_model_from
from vosc.config import ConfigError
from vosc.models.base import VOSNetwork

log = logging.getLogger("vosc.evaluate")

__all__ = ["build_analysis", "build_enhancer", "build_source", "load_vos_model", "resolve_depths",
           "resolve_device"]

#: ``side_info.object_aware`` values: which of the ``roi`` / ``blur`` nodes ``analysis=encoder`` uses.
OBJECT_AWARE = {"none": (), "roi": ("roi",), "blur": ("blur",), "roi+blur": ("roi", "blur")}


def load_vos_model(ckpt: str | None, model: DictConfig, seed: int, model_name: str | None = None,
                   model_choice: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the VOS model: vosc Lightning checkpoint, official checkpoint, or random init (warning).

    Args:
        ckpt: Checkpoint path or ``None`` (random initialisation, for smoke tests).
        model: The ``model`` group (ignored for vosc checkpoints, which store their network config).
        seed: Seed of a random initialisation.
        model_name: Name in the reports (default: from the checkpoint or ``model_choice``).
        model_choice: The Hydra choice of the ``model`` group, for default names.

    Returns:
        The model (eval mode, CPU) and provenance ``{name, checkpoint, checkpoint_hash}``.
    """
    if ckpt is None:
        log.warning("!" * 100)
        log.warning(
            "NO CHECKPOINT (ckpt=null): the VOS model is RANDOMLY INITIALISED (seed %s). The numbers "
            "are meaningless; use this only for smoke tests.",
            seed,
        )
        log.warning("!" * 100)
    model_config = OmegaConf.to_container(model, resolve=True)
    try:
        loaded = load_vos_model_from(ckpt, model_config, seed=int(seed))  # type: ignore[arg-type]
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc} (ckpt=...)") from exc
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from exc
    default_name = {"random": f"{model_choice or 'model'}-random", "official": str(model_choice or "model")}
    name = model_name or default_name.get(loaded.kind, f"vosc-{Path(str(ckpt)).stem}")
    if loaded.kind == "vosc":
        log.info("model=%s ignored: the network comes from the checkpoint's hyper-parameters", model_choice)
    prov = {"name": name, "checkpoint": loaded.checkpoint, "checkpoint_hash": loaded.checkpoint_hash}
    return loaded.model, prov


def build_enhancer(enhancer: Any, enhancer_net: DictConfig, enhancer_ckpt: str | None, enhancer_chunk: int,
                   device: torch.device, choice: str | None = None) -> tuple[Any, str]:
    """``(EnhancerSpec or None, mode)`` for ``enhancer=off|on|both`` (the spec is ``None`` for ``off``).

    Args:
        enhancer: ``off``, ``on``, ``both`` (YAML 1.1 reads on/off as booleans: accepted too).
        enhancer_net: The enhancer network node (``_target_``).
        enhancer_ckpt: Enhancer weights, or ``None`` (its initialisation, with a warning).
        enhancer_chunk: Frames enhanced at once.
        device: Where the enhancer runs.
        choice: The Hydra choice of the network, for its name.
    """
    from vosc.evaluation.sweep import EnhancerSpec

    mode = {True: "on", False: "off", None: "off"}.get(enhancer, str(enhancer).lower())
    if mode not in ("off", "on", "both"):
        raise ConfigError(f"enhancer={enhancer!r}: use off, on or both")
    if mode == "off":
        return None, mode
    net = instantiate(enhancer_net)
    name = str(choice or type(net).__name__)
    if enhancer_ckpt is None:
        log.warning("enhancer=%s without enhancer_ckpt: the %s enhancer keeps its initialisation "
                    "(identity for cae: zero-initialised last layer)", mode, name)
    else:
        from vosc.lit.enhancer_module import load_enhancer_weights

        path = Path(str(enhancer_ckpt)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"enhancer checkpoint not found: {path} (enhancer_ckpt=...)")
        load_enhancer_weights(net, path)
    net = net.to(device).eval()
    return EnhancerSpec(net, name, weights_fingerprint(net), int(enhancer_chunk)), mode


def build_source(dataset: DictConfig, data_root: str | None, split: str) -> tuple[Any, DictConfig]:
    """Instantiate the dataset source. ``data_root`` replaces the root of every folder-based dataset
    (DAVIS, YouTube-VOS, folder); with a synthetic dataset it selects a DAVIS-layout folder instead.

    Returns:
        The source and the dataset node with its ``name`` filled in.
    """
    ds = dataset
    if data_root is not None and ds.source._target_.endswith("SyntheticSource"):
        davis = {"_target_": "vosc.data.sources.davis.DavisSource", "root": str(data_root), "split": split,
                 "year": 2017}
        ds = OmegaConf.create({"name": None, "references": "first", "submission": None, "source": davis})
    elif data_root is not None and str(ds.source.get("root")) != str(data_root):
        log.info("data_root=%s replaces the dataset root %s", data_root, ds.source.get("root"))
        merged = OmegaConf.merge(ds, {"source": {"root": str(data_root)}})
        assert isinstance(merged, DictConfig)
        ds = merged
    root = ds.source.get("root")
    synthetic = ds.source._target_.endswith("SyntheticSource")
    if root is None:
        raise ConfigError("dataset root is not set (data_root=/path/to/DAVIS-layout folder)")
    if not synthetic and not Path(str(root)).is_dir():
        raise FileNotFoundError(
            f"dataset root not found: {root} (dataset={ds.name or 'folder'}; set data_root= "
            "or the DAVIS_ROOT / YTVOS_ROOT environment variables)"
        )
    source = instantiate(ds.source)
    if len(source) == 0:
        raise ConfigError(f"dataset {root}: no usable sequence (split={ds.source.get('split')})")
    name = ds.name or Path(str(root)).name
    return source, cast(DictConfig, OmegaConf.merge(ds, {"name": name}))


def resolve_depths(depths: list[int] | None, model: VOSNetwork) -> list[int]:
    """Depths to evaluate (``None``: the full depth), each one the model can decode at.

    Raises:
        ConfigError: A depth outside ``1..num_depths``, or one the family cannot decode at (AOT, whose
            decoder is not scalable: any depth but ``n_l``).
    """
    layers = int(model.num_depths)
    wanted = [layers] if depths is None else [int(d) for d in depths]
    bad = [d for d in wanted if not 1 <= d <= layers]
    if bad:
        raise ConfigError(f"depths={wanted}: {bad} outside 1..{layers} ({type(model).__name__} has "
                          f"{layers} depth(s))")
    valid = list(model.decode_depths)
    off = [d for d in wanted if d not in valid]
    if off:
        raise ConfigError(f"depths={wanted}: {off} not decodable by {type(model).__name__} (an AOT (LSTT) "
                          f"model decodes only at its full depth); valid choices: {valid}")
    return sorted(set(wanted))


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: CUDA is not available on this machine")
    return device


def build_analysis(analysis: str, side_info: DictConfig | None) -> tuple[type, dict[str, Any]]:
    """The sweep class and its extra arguments for ``analysis`` (``decoder`` | ``encoder``).

    Args:
        analysis: ``decoder``: VOS on the decoded frames (:class:`~vosc.evaluation.sweep.Sweep`);
            ``encoder``: VOS on the original frames, masks as side information
            (:class:`~vosc.evaluation.side_info.EncoderSideSweep`).
        side_info: ``evaluate.yaml``'s ``side_info`` node (``mask_codec``, ``object_aware``, ``roi``,
            ``blur``).

    Raises:
        ConfigError: Unknown ``analysis`` or ``object_aware``, or object-aware coding asked in decoder mode.
    """
    from vosc.evaluation.side_info import EncoderSideSweep
    from vosc.evaluation.sweep import Sweep

    if analysis not in ("decoder", "encoder"):
        raise ConfigError(f"analysis={analysis!r}: use decoder (VOS on decoded frames) or encoder (VOS on "
                          "the original frames, masks coded as side information)")
    node: Any = side_info if side_info is not None else {}
    aware = str(node.get("object_aware", "none") or "none")
    if aware not in OBJECT_AWARE:
        raise ConfigError(f"side_info.object_aware={aware!r}: use one of {sorted(OBJECT_AWARE)}")
    if analysis == "decoder":
        if aware != "none":
            raise ConfigError(f"side_info.object_aware={aware} needs analysis=encoder (the encoder's masks "
                              "drive it)")
        return Sweep, {}
    parts = OBJECT_AWARE[aware]
    kwargs: dict[str, Any] = {"roi": instantiate(node.roi) if "roi" in parts else None,
                              "prefilter": instantiate(node.blur) if "blur" in parts else None}
    if node.get("mask_codec") is not None:
        kwargs["mask_codec"] = instantiate(node.mask_codec)
    return EncoderSideSweep, kwargs


def run_baselines(baselines: DictConfig | None, sweep: Any) -> list[dict[str, Any]]:
    """The training-free baselines of ``evaluate.yaml``'s ``baselines`` node on the sweep's videos, at its
    ``max_frames`` / ``resize_long_edge`` (``[]`` when the node is ``null`` or a video lacks ground truth)."""
    from vosc.evaluation.baselines import MissingGroundTruthError, baseline_rows

    if baselines is None:
        return []
    propagation = baselines.get("label_propagation")
    try:
        return baseline_rows(sweep.source, bool(baselines.get("copy_first_mask", True)),
                             None if propagation is None else instantiate(propagation),
                             sweep.max_frames, sweep.resize_long_edge)
    except MissingGroundTruthError as exc:
        log.warning("baselines not computed: %s", exc)
        return []
