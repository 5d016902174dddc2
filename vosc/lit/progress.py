"""Training progress and log hygiene.

* :class:`StepProgressBar`: Lightning's Rich progress bar, with a training description that makes sense for
  step-bounded runs. Lightning prints ``Epoch e/{max_epochs - 1}``, i.e. ``Epoch 6/-2`` with the
  ``max_epochs=-1`` of step-bounded training; this bar prints ``Epoch 6 · step 1200/5000`` (``Epoch e/E`` only
  when ``max_epochs`` is a real bound).
* :func:`quiet_lightning_adverts`: drops Lightning's two "💡 Tip: ... litlogger / litmodels" adverts, at the
  logger that emits them (``lightning.pytorch.utilities.rank_zero``) and by their exact text, so that no other
  message is filtered; and the one known deprecation warning Lightning 2.6 raises on every fit with torch
  2.14 (``isinstance(treespec, LeafSpec)`` in ``lightning.pytorch.utilities._pytree``), by message and module.
* :func:`single_lightning_handlers`: Lightning attaches its own ``StreamHandler`` to ``lightning.pytorch`` and
  ``lightning.fabric`` when it is imported before logging is configured (Hydra configures it later), so every
  Lightning INFO line was printed twice (``INFO: ...`` and Hydra's line). Once the root logger has handlers,
  this removes Lightning's own and lets the records propagate: each line once, also in the run's log file.
"""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.callbacks import RichProgressBar

__all__ = ["StepProgressBar", "quiet_lightning_adverts", "single_lightning_handlers"]

_ADVERTS = ("💡 Tip: For seamless cloud logging", "💡 Tip: For seamless cloud uploads")


class StepProgressBar(RichProgressBar):
    """Rich progress bar with sane epoch/step counts (see the module docstring); arguments as Lightning's."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        text = f"Epoch {current_epoch}"
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            text += f"/{trainer.max_epochs - 1}"
        if trainer.max_steps is not None and trainer.max_steps > 0:
            text += f" · step {trainer.global_step}/{trainer.max_steps}"
        if len(self.validation_description) > len(text):
            text = f"{text:{len(self.validation_description)}}"
        return text


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ADVERTS)


def quiet_lightning_adverts() -> None:
    """Install the advert filter on Lightning's rank-zero logger (idempotent)."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdverts) for f in logger.filters):
        logger.addFilter(_DropAdverts())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning,
                            module=r"lightning\.pytorch\.utilities\._pytree")


def single_lightning_handlers() -> None:
    """Remove Lightning's own console handlers once the root logger has handlers (module docstring)."""
    if not logging.getLogger().hasHandlers():
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
