"""Loggers that survive a resume: the CSV file keeps the steps before the checkpoint, and a resumed or
requeued run continues the same W&B run.

* :class:`CSVLogger` (``conf/logger/csv.yaml``): Lightning's CSV logger deletes ``metrics.csv`` when a run
  folder is reused. This one keeps the earlier rows: at the first write it keeps the rows of steps before
  the first newly logged step (the checkpoint's step) and drops the later ones, which the resumed run logs
  again.
* :class:`WandbLogger` (``conf/logger/wandb.yaml``): the run id is stored in ``id_file`` inside the run
  folder. A run started in the same folder (``run_name=... ckpt_path=last``, a SLURM requeue) reads it and
  resumes that W&B run (``resume="allow"``): one W&B run, not one per attempt.
"""

from __future__ import annotations

import csv
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from vosc.utils.io import atomic_path

log = logging.getLogger(__name__)

__all__ = ["CSVLogger", "WandbLogger", "run_id_from_file"]


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, but an existing ``metrics.csv`` is merged instead of deleted."""

    def _check_log_dir_exists(self) -> None:
        self._previous: list[dict[str, str]] | None = None
        self._previous_keys: list[str] = []
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as fh:
                reader = csv.DictReader(fh)
                self._previous = list(reader)
                self._previous_keys = list(reader.fieldnames or [])

    def save(self) -> None:
        """Write the new rows; the first time, after the kept earlier rows (steps before the new ones)."""
        if self._previous is not None and self.metrics:
            first = min(int(m["step"]) for m in self.metrics)
            kept = [r for r in self._previous if r.get("step") and int(float(r["step"])) < first]
            dropped = len(self._previous) - len(kept)
            self.metrics_keys = sorted(set(self.metrics_keys) | set(self._previous_keys))
            with self._fs.open(self.metrics_file_path, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
            log.info("%s: kept %d earlier rows (steps < %d), dropped %d later ones (logged again)",
                     self.metrics_file_path, len(kept), first, dropped)
            self._previous = None
        super().save()


class CSVLogger(_LightningCSVLogger):
    """Lightning's ``CSVLogger`` (same arguments) that keeps the rows of earlier steps on resume."""

    @property
    def experiment(self) -> Any:
        """The writer (created on first use, rank 0)."""
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment


def run_id_from_file(id_file: str | Path) -> str:
    """The W&B run id stored in ``id_file``; a new id is generated and stored (atomically) if absent."""
    path = Path(id_file)
    if path.is_file():
        run_id = path.read_text().strip()
        if run_id:
            return run_id
    run_id = uuid.uuid4().hex[:8]  # W&B's id form: 8 lowercase alphanumerics
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(run_id + "\n")
    return run_id


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` whose run id lives in the run folder, so resumes continue the same run.

    Args:
        id_file: File holding the run id (created with a new id if missing); ``None`` = Lightning's default
            (a new run per process).
        resume: W&B resume mode used with a stored id (``allow``: resume the run if it exists).
        **kwargs: ``lightning.pytorch.loggers.WandbLogger`` arguments (``id``, when given, wins).
    """

    def __init__(self, id_file: str | None = None, resume: str = "allow", **kwargs: Any) -> None:
        if id_file is not None and kwargs.get("id") is None and kwargs.get("version") is None:
            if int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0:
                kwargs["id"] = run_id_from_file(id_file)
                kwargs["resume"] = resume
                log.info("W&B run id %s (%s, resume=%s)", kwargs["id"], id_file, resume)
        super().__init__(**kwargs)
