"""Exceptions raised on bad dataset input. Every message names the offending file and the problem."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Base class: a dataset file or layout is unusable.

    Attributes:
        path: The offending file or folder.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetLayoutError(DataError):
    """The dataset root does not have the expected folders or index files."""


class MissingFrameError(DataError):
    """A frame listed by the layout (index file, meta.json, mask) has no image file."""


class MissingMaskError(DataError, FileNotFoundError):
    """A frame that must be annotated (e.g. the reference frame) has no mask file."""


class MaskSizeError(DataError):
    """A mask's size differs from its frame's size."""


class NotPaletteMaskError(DataError):
    """A mask is RGB(A) where an indexed (palette) or single-channel id map is expected."""


class InputMaskError(DataError):
    """A user's input mask holds values that cannot be read as object ids without changing them silently
    (id 255, which is void; a soft or antialiased grey mask)."""


class CorruptImageError(DataError):
    """An image or mask file cannot be decoded (truncated or not an image)."""


class EmptyReferenceMaskError(DataError):
    """The reference (first annotated) mask has no foreground object."""


class NoAnnotatedFrameError(DataError):
    """A video has no annotated frame at all."""


class OddFrameSizeError(DataError):
    """A frame has an odd width or height where even sizes are required.

    Codecs pad odd sizes internally, so this is raised only where a consumer asks for even
    sizes explicitly (``require_even=True`` on the sources); by default odd frames are accepted.
    """


class InconsistentFrameSizeError(DataError):
    """The frames of one video do not all have the same size."""


class SamplingError(DataError):
    """No valid clip could be sampled from a video (too few frames with enough foreground)."""


class FrameOrderError(DataError):
    """The frame files of a folder cannot be put in temporal order from their names (a name without a number
    among numbered ones, names of different patterns, or two names with the same numbers)."""
