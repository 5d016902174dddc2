"""vosc.checkpoints.loading: random init, official checkpoints, unreadable files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vosc.checkpoints.loading import CheckpointError, file_sha256, load_vos_model, weights_fingerprint

AOTT = {"_target_": "vosc.models.variants.build_model", "name": "aott"}


def test_random_init_is_seeded() -> None:
    a = load_vos_model(None, AOTT, seed=3)
    b = load_vos_model(None, AOTT, seed=3)
    assert a.kind == "random" and a.checkpoint is None
    assert weights_fingerprint(a.model) == weights_fingerprint(b.model)
    assert not a.model.training


def test_official_checkpoint_loads_strictly(aot_parity: Path) -> None:
    path = aot_parity / "aott" / "checkpoint.pth"
    loaded = load_vos_model(path, AOTT)
    assert loaded.kind == "official"
    assert loaded.checkpoint_hash == file_sha256(path)[:16]
    with pytest.raises(Exception, match="missing|unexpected|shape"):
        load_vos_model(path, {"_target_": "vosc.models.variants.build_model", "name": "aost"})


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_vos_model(tmp_path / "nothere.pth", AOTT)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth: not a readable"):
        load_vos_model(garbage, AOTT)
    listed = tmp_path / "list.pth"
    torch.save([1, 2], listed)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_vos_model(listed, AOTT)


def test_weights_fingerprint_ignores_memory_format() -> None:
    """channels_last weights (the enhancer's layout; a 1x1 conv is 'contiguous' with stride(-1) != 1) hash
    like the same weights in the default layout, and any weight change changes the hash."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 44, 3), torch.nn.Conv2d(44, 12, 1))
    plain = weights_fingerprint(net)
    net.to(memory_format=torch.channels_last)
    assert net[1].weight.stride(-1) == 44
    assert weights_fingerprint(net) == plain
    with torch.no_grad():
        net[1].weight[0, 0, 0, 0] += 1e-3
    assert weights_fingerprint(net) != plain
