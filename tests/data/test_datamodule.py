"""VOSDataModule: typed batches, epoch-seeded sharded sampling, Hydra configs, a real Lightning loop."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from vosc.data.compressed_dataset import CompressionSpec, TrainEntry
from vosc.data.datamodule import EpochSeededSampler, VOSDataModule
from vosc.data.sampling import ClipSampler
from vosc.data.sources.davis import DavisSource
from vosc.data.transforms import ClipAugment
from vosc.types import IMAGENET_MEAN, IMAGENET_STD, VOSBatch

CONF = Path(__file__).resolve().parents[2] / "conf"


def _dm(root: Path, **kw: object) -> VOSDataModule:
    return VOSDataModule(train=[TrainEntry(DavisSource(root, split="train"), repeat=2, max_gap=3)],
                         val=[DavisSource(root, split="val")], compression=CompressionSpec("none"),
                         sampler=ClipSampler(num_frames=3, min_ref_pixels=50),
                         augment=ClipAugment((32, 48), 64), batch_size=2, num_workers=0, keep_raw=True,
                         eval_short_edge=48, eval_max_frames=5, **kw)


def test_train_batch_is_a_vosbatch(synthetic_davis: Path) -> None:
    dm = _dm(synthetic_davis)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, VOSBatch) and batch.batch_size == 2 and batch.num_frames == 3
    assert batch.frames.shape == (2, 3, 3, 32, 48) and batch.frames.dtype == torch.float32
    assert batch.masks.shape == (2, 3, 1, 32, 48) and batch.masks.dtype == torch.int64
    assert batch.raw_frames is not None and 0 <= batch.raw_frames.min() and batch.raw_frames.max() <= 1
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
    torch.testing.assert_close(batch.frames, (batch.raw_frames - mean) / std)
    assert batch.codec == ["none", "none"] and batch.q.tolist() == [-1, -1] and batch.bits.tolist() == [0, 0]
    assert (batch.num_objects >= 1).all() and int(batch.masks.max()) <= int(batch.num_objects.max())
    assert batch.frame_types is not None and batch.frame_types.shape == (2, 3)
    moved = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert isinstance(moved, VOSBatch) and moved.frames.device.type == "cpu"


def test_val_items_are_whole_sequences(synthetic_davis: Path) -> None:
    dm = _dm(synthetic_davis)
    batch = next(iter(dm.val_dataloader()))
    assert batch.frames.shape == (1, 5, 3, 48, 80) and batch.sequences == ["synth-003"]
    assert batch.extras["has_mask"].shape == (1, 5) and bool(batch.extras["has_mask"].all())


def test_epoch_seeded_sampler_shards_and_reseeds(synthetic_davis: Path) -> None:
    dm = _dm(synthetic_davis)
    dm.setup("fit")
    ds = dm.train_set
    assert ds is not None and len(ds) == 6
    shards = [EpochSeededSampler(ds, num_replicas=2, rank=r, seed=0) for r in range(2)]
    epoch0 = [list(s) for s in shards]
    assert sorted(epoch0[0] + epoch0[1]) == list(range(6))
    for s in shards:
        s.set_epoch(1)
    epoch1 = [list(s) for s in shards]
    assert sorted(epoch1[0] + epoch1[1]) == list(range(6, 12))


class _Probe(L.LightningModule):
    """Minimal module: records the batches it sees (training and validation)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[str, list[str], tuple[int, ...]]] = []

    def training_step(self, batch: VOSBatch, idx: int) -> torch.Tensor:
        self.seen.append(("train", batch.sequences, tuple(batch.frames.shape)))
        return (self.w * batch.frames.mean()).sum() + self.w.pow(2).sum()

    def validation_step(self, batch: VOSBatch, idx: int) -> None:
        self.seen.append(("val", batch.sequences, tuple(batch.frames.shape)))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit_with_workers(synthetic_davis: Path) -> None:
    dm = _dm(synthetic_davis)
    dm.num_workers = 1
    probe = _Probe()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(probe, datamodule=dm)
    train = [s for s in probe.seen if s[0] == "train"]
    val = [s for s in probe.seen if s[0] == "val"]
    assert len(train) == 6 and all(s[2] == (2, 3, 3, 32, 48) for s in train)
    assert len(val) == 2 and val[0][1] == ["synth-003"]


def test_hydra_configs_compose_and_instantiate(synthetic_davis: Path, tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(overrides=["+data=synthetic", "+codec=x265", "codec.q=37", "codec.mode=sequence",
                                 f"data.train.synthetic.source.root={tmp_path / 'syn'}",
                                 f"data.val.synthetic.root={tmp_path / 'syn'}",
                                 "data.train.synthetic.source.width=64",
                                 "data.train.synthetic.source.height=48",
                                 "data.val.synthetic.width=64", "data.val.synthetic.height=48"])
        for name in ("none", "vvenc"):
            assert instantiate(compose(overrides=[f"+codec={name}"]).codec).codec_name == name
    dm = instantiate(cfg.data)
    assert isinstance(dm, VOSDataModule)
    assert (dm.compression.codec_name == "x265" and dm.compression.q_values == [37]
            and dm.compression.mode == "sequence")
    assert (dm.compression.codec.keyint == 8 and dm.compression.codec.preset == "veryfast"
            and dm.augment.crop_size == (465, 465))
    assert (len(dm.train_entries[0].source) == 6 and len(dm.val_sources[0]) == 2
            and len(dm.test_sources[0]) == 2)
