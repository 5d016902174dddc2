"""Content hash of vosc checkpoints: written with every checkpoint, verified on every load.

``AtomicCheckpointIO`` stores ``checkpoint["vosc_content_hash"]`` = SHA-256 over the names, dtypes, shapes
and bytes of ``state_dict`` (the weights that are evaluated) and, when present, ``current_model_state``
(the raw weights a resume continues from). A file whose bytes were flipped after writing (bad disk, partial
copy) then fails to load with :class:`~vosc.checkpoints.errors.CheckpointError` naming the file, instead
of evaluating garbage weights. Checkpoints without the key (older vosc files, official ones) load unchecked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vosc.checkpoints.errors import CheckpointError

HASH_KEY = "vosc_content_hash"
_PARTS = ("state_dict", "current_model_state")

__all__ = ["HASH_KEY", "content_hash", "verify_content_hash"]


def _update(h: Any, state: Mapping[str, Any]) -> None:
    for name in sorted(state):
        value = state[name]
        h.update(name.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(value).encode())


def content_hash(checkpoint: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of the weights of a checkpoint dict (``state_dict`` + ``current_model_state``)."""
    h = hashlib.sha256()
    for part in _PARTS:
        state = checkpoint.get(part)
        if isinstance(state, Mapping):
            h.update(part.encode())
            _update(h, state)
    return h.hexdigest()


def verify_content_hash(checkpoint: Mapping[str, Any], path: str | Path) -> bool:
    """Check the stored content hash; ``False`` when the checkpoint has none.

    Raises:
        CheckpointError: The weights do not match the stored hash (naming the file).
    """
    stored = checkpoint.get(HASH_KEY)
    if stored is None:
        return False
    actual = content_hash(checkpoint)
    if actual != stored:
        raise CheckpointError(
            f"{path}: checkpoint content hash mismatch (stored {str(stored)[:16]}..., computed "
            f"{actual[:16]}...): the file was corrupted after it was written (flipped bytes, partial copy); "
            "copy it again or use another checkpoint"
        )
    return True
