"""Import of official STCN checkpoints (``hkchengrex/STCN``: ``stcn.pth``, a raw state dict with
torchvision ResNet names, float32 or float16).

Official → vosc key names (everything else is unchanged):

* ``key_encoder.{conv1,bn1,layer2,layer3}.*`` → ``key_encoder.net.*``; ``key_encoder.res2.*`` →
  ``key_encoder.net.layer1.*`` (the timm ResNet-50 of
  :class:`~vosc.models.encoder.timm_backbone.TimmBackbone`);
* ``value_encoder.{conv1,bn1,layer1,layer2,layer3}.*`` → ``value_encoder.net.*``;
* ``key_proj.key_proj.*`` → ``key_proj.*``;
* ``*.attention.ChannelGate.mlp.{1,3}.*`` → ``*.attention.channel_mlp.{0,2}.*``;
  ``*.attention.SpatialGate.spatial.conv.*`` → ``*.attention.spatial.*``.

A stage-0 (single-object) checkpoint has a 4-channel ``value_encoder.conv1.weight``; as the official
evaluation does, a zero 5th channel is appended (the "other objects" mask then has no effect).
Loading is strict: :class:`~vosc.checkpoints.official.CheckpointMismatchError` names every missing,
unexpected and mis-shaped key and the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vosc.checkpoints.errors import CheckpointError
from vosc.checkpoints.official import LoadReport, load_converted, read_state_dict

_RULES: tuple[tuple[str, str], ...] = (
    (r"^key_encoder\.res2\.", "key_encoder.net.layer1."),
    (r"^key_encoder\.(conv1|bn1|layer2|layer3)\.", r"key_encoder.net.\1."),
    (r"^value_encoder\.(conv1|bn1|layer1|layer2|layer3)\.", r"value_encoder.net.\1."),
    (r"^key_proj\.key_proj\.", "key_proj."),
    (r"\.attention\.ChannelGate\.mlp\.1\.", ".attention.channel_mlp.0."),
    (r"\.attention\.ChannelGate\.mlp\.3\.", ".attention.channel_mlp.2."),
    (r"\.attention\.SpatialGate\.spatial\.conv\.", ".attention.spatial."),
)


def convert_stcn_key(key: str) -> str:
    """Official STCN key → vosc key (see the module docstring)."""
    for pattern, repl in _RULES:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


def is_stcn_state_dict(state: dict[str, Tensor]) -> bool:
    """Whether a (raw) state dict looks like an official STCN one."""
    return any(k.startswith("key_proj.key_proj.") for k in state) and any(
        k.startswith("value_encoder.") for k in state)


def convert_stcn_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename an official state dict and pad a stage-0 ``value_encoder.conv1.weight`` to 5 channels."""
    out = {}
    for k, v in state.items():
        if k == "value_encoder.conv1.weight" and v.dim() == 4 and v.shape[1] == 4:
            v = torch.cat([v, v.new_zeros(v.shape[0], 1, *v.shape[2:])], dim=1)
        out[convert_stcn_key(k)] = v
    return out


def load_stcn_official(model: nn.Module, source: str | Path | dict[str, Any], strict: bool = True,
                       name: str | None = None) -> LoadReport:
    """Load an official STCN checkpoint into an :class:`~vosc.models.stcn.STCN`.

    Args:
        model: The network (its architecture must match: ``model=stcn``).
        source: Path of ``stcn.pth`` or an already loaded state dict (``{'network': ...}`` training
            checkpoints of the official code are accepted too).
        strict: Raise on any missing, unexpected or mis-shaped key.
        name: Where the state dict came from, for messages (default: the path).

    Raises:
        CheckpointMismatchError: ``strict`` and the keys do not match (all of them named, with the file).
    """
    where = name or (str(source) if isinstance(source, (str, Path)) else "checkpoint")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        source = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(source, dict) and isinstance(source.get("network"), dict):
        source = source["network"]
    try:
        raw = read_state_dict(source)
    except ValueError as exc:
        raise CheckpointError(f"{where}: not an STCN state dict ({exc})") from exc
    return load_converted(model, convert_stcn_state_dict(raw), strict, where, limit=None)
