"""Flag sequences whose ground-truth ids skip numbers in an RD point (issue 26 item 6).

The official toolkit counts objects ``1..N`` (``N`` the largest id of the first ground-truth frame) and
scores an id absent from the ground truth as J = F = 1 where the prediction does not use it either; vosc
does the same (:func:`vosc.metrics.jf.evaluate_sequence` warns and records
:attr:`~vosc.metrics.jf.SequenceJF.phantom_ids`). The sweep keeps the ids in each sequence's done marker
(``"phantom_ids"``); :func:`flag_phantom_ids` puts them into the point's ``extra`` (``extra["phantom_ids"]``
and ``extra["per_sequence"][seq]["phantom_ids"]``), which the summary table shows
(:func:`vosc.evaluation.report.summary_rows`, column ``phantom_ids``), and logs a warning on every run,
resumed or not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["flag_phantom_ids", "format_phantom_ids"]


def flag_phantom_ids(markers: Iterable[Mapping[str, Any]], extra: dict[str, Any], label: str) -> None:
    """Record the phantom ids of the sequences of one RD point in its ``extra`` and warn about them.

    Args:
        markers: Done markers of the sequences that were scored (each with ``"sequence"`` and, since
            issue 26, ``"phantom_ids"``; older markers have none).
        extra: The point's ``extra`` (``"per_sequence"`` must hold every marker's sequence).
        label: The point, for the log line (``"x265 q42 d2"``).
    """
    flagged = {str(m["sequence"]): [int(i) for i in m["phantom_ids"]]
               for m in markers if m.get("phantom_ids")}
    extra["phantom_ids"] = flagged
    for name, ids in flagged.items():
        extra["per_sequence"][name]["phantom_ids"] = ids
    if flagged:
        log.warning("%s: J&F counts phantom ground-truth ids (absent from the first frame, scored J = F = 1 "
                    "as the official toolkit does) in %d sequence(s): %s", label, len(flagged),
                    format_phantom_ids(flagged))


def format_phantom_ids(flagged: Mapping[str, Iterable[int]]) -> str:
    """``"seq-a: 2, 3; seq-b: 4"`` (empty when no sequence is flagged)."""
    return "; ".join(f"{name}: {', '.join(map(str, ids))}" for name, ids in flagged.items())
