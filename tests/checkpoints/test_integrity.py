"""Issue 13 item 8 and issue 16 item 2: vosc checkpoints carry a content hash verified on load (a flipped
byte raises instead of evaluating garbage weights), provenance has the absolute path, and an empty
checkpoint path says what to pass."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from vosc.checkpoints.errors import CheckpointError
from vosc.checkpoints.integrity import HASH_KEY
from vosc.checkpoints.loading import file_sha256, load_vos_model
from vosc.lit.callbacks import AtomicCheckpointIO

TINY = {"_target_": "vosc.models.vos_model.VOSModel", "d_model": 32, "ffn_dim": 64, "num_heads": 2,
        "num_layers": 1, "droppath": 0.0}


def _vosc_checkpoint(path: Path) -> Path:
    """A vosc Lightning-layout checkpoint of a tiny AOST, written by the training CheckpointIO."""
    torch.manual_seed(0)
    net = load_vos_model(None, TINY).model
    ckpt = {"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"model_config": dict(TINY)}}
    AtomicCheckpointIO().save_checkpoint(ckpt, path)
    return path


def _flip_a_weight_byte(path: Path) -> None:
    """Flip one byte in the middle of the largest tensor's data (the zip entry stays readable)."""
    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with path.open("r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
        pos = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        fh.seek(pos)
        byte = fh.read(1)
        fh.seek(pos)
        fh.write(bytes([byte[0] ^ 0x40]))


def test_content_hash_recorded_and_flipped_bytes_raise(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = _vosc_checkpoint(tmp_path / "last.ckpt")
    assert len(torch.load(path, weights_only=True)[HASH_KEY]) == 64
    monkeypatch.chdir(tmp_path)
    loaded = load_vos_model("last.ckpt", {})  # relative path: provenance gets the absolute one
    assert loaded.kind == "vosc" and loaded.checkpoint == str(path.resolve())
    assert loaded.checkpoint_hash == file_sha256(path)[:16]
    _flip_a_weight_byte(path)
    torch.load(path, weights_only=True)  # torch itself does not notice
    with pytest.raises(CheckpointError, match=r"last\.ckpt: checkpoint content hash mismatch"):
        load_vos_model(path, {})
    with pytest.raises(CheckpointError, match="content hash mismatch"):
        AtomicCheckpointIO().load_checkpoint(path)  # the resume path of Lightning


def test_empty_ckpt_says_what_to_pass() -> None:
    from vosc.evaluation.builders import load_vos_model as evaluate_loader

    with pytest.raises(FileNotFoundError, match=r"path is empty: pass a checkpoint file.*last\.ckpt"):
        evaluate_loader("", OmegaConf.create(TINY), seed=0)


@pytest.mark.parametrize(("variant", "into"), [("aott", "aost"), ("aost", "aott")])
def test_mismatch_names_the_file_and_the_matching_variant(aot_parity: Path, variant: str, into: str) -> None:
    from vosc.checkpoints.official import CheckpointMismatchError

    path = aot_parity / variant / "checkpoint.pth"
    expected = rf"{variant}/checkpoint\.pth: .*keys match model={variant}\b"
    with pytest.raises(CheckpointMismatchError, match=expected):
        load_vos_model(path, {"_target_": "vosc.models.variants.build_model", "name": into})
