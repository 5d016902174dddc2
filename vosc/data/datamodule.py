"""The LightningDataModule: a training mixture of compressed clips, per-dataset validation/test
sequences, typed :class:`vosc.types.VOSBatch` batches.

* Training: :class:`CompressedClipDataset` over the mixture (repeat factors), iterated by
  :class:`EpochSeededSampler`, a ``DistributedSampler`` subclass: each rank gets a disjoint shard of a
  per-epoch shuffle, and the yielded indices encode the epoch so that clip randomness is a function of
  ``(seed, epoch, index)`` (also with persistent workers). Lightning calls its ``set_epoch`` and does not
  wrap it (it is already a ``DistributedSampler``).
* Validation/test: one :class:`EvalSequenceDataset` per source, batch size 1 (whole sequences of
  different sizes). Under DDP Lightning substitutes its own ``DistributedSampler``, which pads the set
  with repeated sequences: compute per-sequence J&F once per sequence name (DESIGN §7). With several
  val sources ``val_dataloader`` returns a list (``dataloader_idx`` = position in ``val``).
* Resumption: the training loader is a :class:`ResumableDataLoader` (Lightning's stateful-loader protocol:
  ``state_dict`` / ``load_state_dict`` stored in the checkpoint). It records the epoch and the batches
  already consumed; a run resumed from a mid-epoch checkpoint skips exactly those indices. Clip, codec q and
  augmentation draws depend only on ``(seed, epoch, index)`` and the worker seeds come from the loader's
  own generator seeded from ``(seed, epoch)``, so the resumed batches equal the uninterrupted ones.
* Workers: ``worker_init_fn`` seeds ``random``/``numpy``/``torch`` from the worker's torch seed; codecs
  and caches are built lazily inside each worker (one core each).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from vosc.data.compressed_dataset import (
    CodedClip,
    CompressedClipDataset,
    CompressionSpec,
    EvalClip,
    EvalSequenceDataset,
    TrainEntry,
)
from vosc.data.sampling import ClipSampler
from vosc.data.sources.base import VideoSource
from vosc.data.transforms import ClipAugment, StaticClipSynthesizer
from vosc.types import IMAGENET_MEAN, IMAGENET_STD, Clip, VOSBatch

log = logging.getLogger(__name__)

_TYPE_IDS = {"I": 0, "P": 1, "B": 2}


def collate_clips(clips: Sequence[Clip]) -> VOSBatch:
    """Collate clips of equal size into a :class:`VOSBatch`.

    Args:
        clips: ``B`` clips with frames ``(T, H, W, 3)`` uint8 and masks ``(T, H, W)``.

    Returns:
        frames ``(B, T, 3, H, W)`` float32 ImageNet-normalised, masks ``(B, T, 1, H, W)`` int64,
        raw_frames ``(B, T, 3, H, W)`` in ``[0, 1]`` when every clip kept them, frame_qps ``(B, T)`` (the
        clip's nominal q where the codec reports none; 0 for ``none``), frame_types ``(B, T)``
        (0 I, 1 P, 2 B, -1 unknown); ``extras["coded_pixels"]`` ``(B,)`` the pixels the bits were spent
        on (in ``sequence`` mode the native-resolution frames, so use ``bits / coded_pixels`` rather than
        ``VOSBatch.bpp`` there); ``extras["has_mask"]`` ``(B, T)`` bool for evaluation clips.
    """
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)

    def to_float(arrs: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrs)).permute(0, 1, 4, 2, 3).float().div_(255.0)

    frames = (to_float([c.frames for c in clips]) - mean) / std
    masks = torch.from_numpy(np.stack([c.masks for c in clips]).astype(np.int64)).unsqueeze(2)
    raw = None
    if all(c.raw_frames is not None for c in clips):
        raw = to_float([c.raw_frames for c in clips])  # type: ignore[misc]
    t = frames.shape[1]
    qps = torch.tensor([c.frame_qps if c.frame_qps is not None and len(c.frame_qps) == t
                        else [float(c.q if c.q is not None else 0)] * t for c in clips], dtype=torch.float32)
    types = torch.tensor(
        [
            [_TYPE_IDS.get(x, -1) for x in c.frame_types]
            if c.frame_types and len(c.frame_types) == t
            else [-1] * t
            for c in clips
        ],
        dtype=torch.int64,
    )
    extras: dict[str, torch.Tensor] = {}
    if all(isinstance(c, CodedClip) for c in clips):
        extras["coded_pixels"] = torch.tensor([c.coded_pixels for c in clips], dtype=torch.int64)  # type: ignore[attr-defined]
    if all(isinstance(c, EvalClip) and c.has_mask is not None for c in clips):
        extras["has_mask"] = torch.from_numpy(np.stack([c.has_mask for c in clips]))  # type: ignore[attr-defined]
    return VOSBatch(
        frames=frames,
        masks=masks,
        num_objects=torch.tensor([c.num_objects for c in clips], dtype=torch.int64),
        codec=[c.codec for c in clips],
        q=torch.tensor([c.q if c.q is not None else -1 for c in clips], dtype=torch.int64),
        bits=torch.tensor([c.bits for c in clips], dtype=torch.int64),
        sequences=[c.sequence for c in clips],
        raw_frames=raw,
        frame_qps=qps,
        frame_types=types,
        extras=extras,
    )


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed ``random``, ``numpy`` and ``torch`` of a worker from its torch seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EpochSeededSampler(DistributedSampler):
    """Shuffled, rank-sharded indices that carry the epoch: yields ``epoch * len(dataset) + i``.

    Args:
        dataset: The training dataset.
        num_replicas: World size (default: from ``torch.distributed`` when initialised, else 1).
        rank: This rank (default: from ``torch.distributed`` when initialised, else 0).
        seed: Shuffle seed.
        shuffle: Shuffle per epoch.
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None, seed: int = 0,
                 shuffle: bool = True) -> None:
        ready = dist.is_available() and dist.is_initialized()
        num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if ready else 1)
        rank = rank if rank is not None else (dist.get_rank() if ready else 0)
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.start = 0  # indices of the next iteration to skip (resumption), reset by each iteration

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        start, self.start = self.start, 0
        return iter([self.epoch * n + int(i) for i in list(super().__iter__())[start:]])


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSeededSampler` that Lightning can resume mid-epoch.

    ``state_dict`` gives ``{"epoch", "batches", "length"}`` (batches handed out in the current iteration);
    after ``load_state_dict`` the next iteration skips those batches (nothing when the checkpoint was at the
    end of an epoch). Each iteration reseeds the loader's generator from ``(seed, epoch)``, so the worker
    seeds do not depend on the global RNG or on how often the loader was iterated before.

    Args:
        *args: ``DataLoader`` arguments (the sampler must be an :class:`EpochSeededSampler`).
        seed: Base seed of the worker seeds.
        **kwargs: ``DataLoader`` keyword arguments.
    """

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(*args, **kwargs)
        self.seed = seed
        self._yielded = 0
        self._skip = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        sampler = self.sampler
        epoch = int(getattr(sampler, "epoch", 0))
        skip, self._skip = self._skip, 0
        if skip:
            sampler.start = skip * int(self.batch_size or 1)  # type: ignore[attr-defined]
            log.info("resuming epoch %d after batch %d of %d (stateful training loader)",
                     epoch, skip, len(self))
        assert self.generator is not None
        self.generator.manual_seed(int(self.seed) * 1_000_003 + epoch)
        self._yielded = skip
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Position in the current epoch: ``{"epoch", "batches", "length"}``."""
        epoch = int(getattr(self.sampler, "epoch", 0))
        return {"epoch": epoch, "batches": self._yielded, "length": len(self)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip the batches consumed before the checkpoint in the next iteration."""
        batches = int(state.get("batches", 0))
        self._skip = batches if 0 < batches < len(self) else 0


def _entries(items: Any) -> list[Any]:
    """A list of entries from a list, or from a ``name -> entry`` mapping (in order, ``None`` dropped)."""
    if items is None:
        return []
    if isinstance(items, Mapping):
        return [v for v in items.values() if v is not None]
    return list(items)


class VOSDataModule(L.LightningDataModule):
    """Datasets and loaders of a run.

    Args:
        train: Training mixture (``None``: no training loader): a list, or a mapping name -> entry as the
            data configs give it (``data.train.<name>``; ``None`` values are dropped), in order.
        val: Validation sources (one loader each), a list or a mapping name -> source.
        test: Test sources (one loader each), a list or a mapping name -> source.
        compression: The compression stage (``conf/codec/*.yaml``).
        sampler: Clip sampler.
        augment: Clip augmentation.
        static: Static-image clip synthesis.
        max_objects: At most this many objects per training clip.
        batch_size: Training clips per batch (per device).
        num_workers: Loader workers.
        seed: Base seed of clip sampling.
        keep_raw: Also return uncompressed frames (``VOSBatch.raw_frames``).
        eval_short_edge: Short edge of validation/test sequences (``None``: native).
        eval_max_frames: First frames of each validation/test sequence (``None``: all).
        pin_memory: Pin host memory.
    """

    def __init__(
        self,
        train: Sequence[TrainEntry] | Mapping[str, TrainEntry | None] | None = None,
        val: Sequence[VideoSource] | Mapping[str, VideoSource | None] | None = None,
        test: Sequence[VideoSource] | Mapping[str, VideoSource | None] | None = None,
        compression: CompressionSpec | None = None,
        sampler: ClipSampler | None = None,
        augment: ClipAugment | None = None,
        static: StaticClipSynthesizer | None = None,
        max_objects: int = 10,
        batch_size: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        keep_raw: bool = False,
        eval_short_edge: int | None = None,
        eval_max_frames: int | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.train_entries: list[TrainEntry] = _entries(train)
        self.val_sources: list[VideoSource] = _entries(val)
        self.test_sources: list[VideoSource] = _entries(test)
        self.compression = compression or CompressionSpec()
        self.sampler = sampler or ClipSampler()
        self.augment = augment or ClipAugment()
        self.static = static
        self.max_objects, self.batch_size, self.num_workers = max_objects, batch_size, num_workers
        self.seed, self.keep_raw, self.pin_memory = seed, keep_raw, pin_memory
        self.eval_short_edge, self.eval_max_frames = eval_short_edge, eval_max_frames
        self.train_set: CompressedClipDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Build the training dataset (sources were scanned at construction)."""
        if self.train_entries and self.train_set is None:
            self.train_set = CompressedClipDataset(
                self.train_entries,
                self.sampler,
                self.augment,
                self.compression,
                self.static,
                self.max_objects,
                self.seed,
                self.keep_raw,
            )

    def _loader(self, dataset: Any, batch_size: int, sampler: Any = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_clips,
            worker_init_fn=seed_worker,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Training clips, shuffled per epoch and sharded per rank."""
        self.setup("fit")
        if self.train_set is None:
            raise RuntimeError("VOSDataModule has no training mixture (train=None)")
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = EpochSeededSampler(self.train_set, num_replicas=world, rank=rank, seed=self.seed)
        return ResumableDataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, shuffle=False,
                                   num_workers=self.num_workers, collate_fn=collate_clips,
                                   worker_init_fn=seed_worker, pin_memory=self.pin_memory,
                                   persistent_workers=self.num_workers > 0, drop_last=False, seed=self.seed)

    def _eval_loaders(self, sources: list[VideoSource]) -> DataLoader | list[DataLoader]:
        loaders = [
            self._loader(
                EvalSequenceDataset(
                    s, self.compression, self.eval_short_edge, self.eval_max_frames, self.keep_raw
                ),
                1,
            )
            for s in sources
        ]
        return loaders[0] if len(loaders) == 1 else loaders

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """Whole validation sequences, batch size 1, one loader per source."""
        return self._eval_loaders(self.val_sources)

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """Whole test sequences, batch size 1, one loader per source."""
        return self._eval_loaders(self.test_sources)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move a :class:`VOSBatch` with :meth:`VOSBatch.to`; anything else the default way."""
        if isinstance(batch, VOSBatch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)
