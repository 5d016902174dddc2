"""The checkpoint error shared by the loaders (no imports, so every loader can raise it without a cycle)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (unreadable, wrong layout, weights not matching)."""
