"""A torchmetrics :class:`~torchmetrics.Metric` for DAVIS J&F that accumulates whole sequences.

Each :meth:`JFMetric.update` evaluates one complete sequence (J and F per frame per object, official
protocol, see :mod:`vosc.metrics.jf`) and stores one row of statistics per object together with the
sequence name encoded as bytes. :meth:`JFMetric.compute` gathers the rows of every process (DDP: the
``cat`` reduction), then keeps one row per ``(sequence, object id)``: a sequence that the distributed
sampler padded or duplicated onto several ranks is counted once, so the numbers equal a single-process
run. Objects are averaged in sorted (sequence, id) order (``aggregate_objects(..., sort=True)``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

from vosc.metrics.jf import BOUND_TH, GLOBAL_KEYS, JFResult, ObjectStats, aggregate_objects, evaluate_sequence

log = logging.getLogger(__name__)

#: Longest sequence name (UTF-8 bytes) the metric can carry across processes.
MAX_NAME_BYTES: int = 128
_STAT_COLUMNS = 7  # object id, J mean/recall/decay, F mean/recall/decay


def _encode_name(name: str) -> torch.Tensor:
    data = name.encode("utf-8")
    if not data or len(data) > MAX_NAME_BYTES:
        raise ValueError(f"sequence name {name!r} must be 1..{MAX_NAME_BYTES} UTF-8 bytes")
    out = torch.zeros(MAX_NAME_BYTES, dtype=torch.uint8)
    out[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return out


def _decode_name(row: torch.Tensor) -> str:
    data = bytes(row.cpu().numpy().tobytes()).rstrip(b"\x00")
    return data.decode("utf-8")


def _as_numpy(masks: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    array = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise ValueError(f"{what} must be (T, H, W) or (T, 1, H, W) object ids, got shape {array.shape}")
    return array


def _cat(state: torch.Tensor | list[torch.Tensor], width: int, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(state, torch.Tensor):
        return state.reshape(-1, width)
    if not state:
        return torch.zeros(0, width, dtype=dtype)
    return torch.cat([s.reshape(-1, width) for s in state])


class JFMetric(Metric):
    """Official-protocol DAVIS J&F over whole sequences, DDP-safe (de-duplicated by sequence).

    Args:
        exclude_first_last: Drop the first and last frame of each sequence (official protocol).
        bound_th: Boundary tolerance (fraction of the diagonal, or pixels if >= 1).
        **kwargs: Passed to :class:`torchmetrics.Metric` (e.g. ``dist_sync_on_step``).

    Example::

        metric = JFMetric()
        metric.update(pred_masks, gt_masks, "blackswan")   # (T, H, W) ids each
        metric.compute()["J&F-Mean"]
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, exclude_first_last: bool = True, bound_th: float = BOUND_TH, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exclude_first_last = exclude_first_last
        self.bound_th = bound_th
        self.stats: list[torch.Tensor]
        self.names: list[torch.Tensor]
        self.add_state("stats", default=[], dist_reduce_fx="cat")
        self.add_state("names", default=[], dist_reduce_fx="cat")

    def update(
        self,
        preds: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        sequence: str,
        num_objects: int | None = None,
    ) -> None:
        """Evaluate one complete sequence and store its per-object statistics.

        Args:
            preds: ``(T, H, W)`` (or ``(T, 1, H, W)``) predicted object ids.
            target: ``(T, H, W)`` (or ``(T, 1, H, W)``) ground-truth ids (255 = void → background).
            sequence: Sequence name (the de-duplication key under DDP).
            num_objects: Number of objects ``N``; default: the largest id of the first target frame.

        Raises:
            UnknownObjectError, SizeMismatchError, EmptyReferenceMaskError: As
                :func:`vosc.metrics.jf.evaluate_sequence`.
        """
        pred_np, gt_np = _as_numpy(preds, "preds"), _as_numpy(target, "target")
        result = evaluate_sequence(
            gt_np, pred_np, sequence, None, num_objects, self.exclude_first_last, self.bound_th
        )
        rows = [
            [o.object_id, o.j_mean, o.j_recall, o.j_decay, o.f_mean, o.f_recall, o.f_decay]
            for o in result.object_stats()
        ]
        self.stats.append(torch.tensor(rows, dtype=torch.float64, device=self.device))
        self.names.append(_encode_name(sequence).to(self.device).repeat(len(rows), 1))

    def _sync_dist(self, dist_sync_fn: Any = None, process_group: Any | None = None) -> None:
        # A rank without any update must still take part in the gather with correctly shaped states.
        if not self.stats:
            self.stats.append(torch.zeros(0, _STAT_COLUMNS, dtype=torch.float64, device=self.device))
            self.names.append(torch.zeros(0, MAX_NAME_BYTES, dtype=torch.uint8, device=self.device))
        kwargs = {} if dist_sync_fn is None else {"dist_sync_fn": dist_sync_fn}
        super()._sync_dist(process_group=process_group, **kwargs)

    def objects(self) -> list[ObjectStats]:
        """De-duplicated per-object statistics of every sequence seen (after DDP sync in ``compute``)."""
        stats = _cat(self.stats, _STAT_COLUMNS, torch.float64).cpu().numpy()
        names = _cat(self.names, MAX_NAME_BYTES, torch.uint8).cpu()
        unique: dict[tuple[str, int], ObjectStats] = {}
        for row, name_row in zip(stats, names, strict=True):
            name, obj = _decode_name(name_row), int(row[0])
            item = ObjectStats(name, obj, *(float(v) for v in row[1:]))
            previous = unique.setdefault((name, obj), item)
            if previous is not item and not np.allclose(_values(previous), _values(item), equal_nan=True):
                log.warning("sequence %r object %d was evaluated twice with different results", name, obj)
        return list(unique.values())

    def compute_result(self) -> JFResult:
        """The full :class:`~vosc.metrics.jf.JFResult` (global, per object, per sequence), synced across
        processes like :meth:`compute`."""
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync):
            return aggregate_objects(self.objects(), sort=True)

    def compute(self) -> dict[str, torch.Tensor]:
        """Global values as float64 scalars: ``J&F-Mean``, ``J-Mean``, ``J-Recall``, ``J-Decay``, ``F-Mean``,
        ``F-Recall``, ``F-Decay``.

        Under DDP, processes without any update contribute nothing; duplicates are removed by
        sequence name.
        """
        result = aggregate_objects(self.objects(), sort=True)
        return {key: torch.tensor(result.global_[key], dtype=torch.float64) for key in GLOBAL_KEYS}


def _values(item: ObjectStats) -> np.ndarray:
    return np.array([item.j_mean, item.j_recall, item.j_decay, item.f_mean, item.f_recall, item.f_decay])
