"""The checkpoint errors shared by the loaders (no imports: every loader can raise them without a cycle)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (unreadable, wrong layout, weights not matching)."""


class CheckpointMismatchError(KeyError):
    """A checkpoint does not match the model; the message lists the offending keys."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])
