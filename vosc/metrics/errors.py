"""Exceptions raised by the metrics on bad input. Every message names the offending file and problem."""

from __future__ import annotations

from vosc.data.errors import DataError


class MetricInputError(DataError):
    """Base class: a ground-truth or prediction file cannot be evaluated."""


class MissingPredictionError(MetricInputError):
    """A frame that is evaluated has no prediction file (the official toolkit silently exits)."""


class UnknownObjectError(MetricInputError):
    """A prediction contains an object id that the ground truth of its sequence does not define."""


class SizeMismatchError(MetricInputError):
    """A prediction's height/width differs from its ground truth's."""


class MissingGroundTruthError(MetricInputError):
    """The ground-truth layout (index file, annotation folder, frames) is missing or empty."""
