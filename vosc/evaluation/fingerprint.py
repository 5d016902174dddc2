"""The resume fingerprint of a sweep's per-sequence result: everything the result depends on, by name.

A done marker (``<variant>/sequences/<sequence>.json``) records ``fingerprint`` (one hash) and ``inputs``
(one hash per input, and one per annotation file), so that a re-run can say *what* changed:

* ``frames``: the frame files used (name, size, modification time;
  :func:`vosc.codecs.cache.content_key_files`) and the resize setting;
* ``annotations``: the content of every mask file among the frames used: the reference (first-frame /
  first-appearance) masks the model takes as input and the ground truth J&F is scored against, plus how
  masks are decoded (``binary_masks``);
* ``model`` (weights and config), ``checkpoint`` (file hash), ``segmenter`` settings, ``codec`` with its
  parameters, ``q`` and encoder version, ``depth``, ``references``, ``missing_gt``, ``enhancer`` and the
  vosc version.

:func:`stale_reason` compares a marker with the current inputs and names the differences.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from vosc.codecs.cache import content_key_files
from vosc.data.sources.base import VideoRecord

__all__ = ["SequenceInputs", "fingerprint", "input_hashes", "sequence_inputs", "stale_reason", "vosc_version"]

#: Version of the marker layout; part of every fingerprint (markers of an older layout are stale).
MARKER_FORMAT = 2


def hash_json(obj: Any) -> str:
    """16-hex-digit SHA-256 of ``obj`` as canonical JSON (``str`` for what JSON lacks)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class SequenceInputs:
    """What one sequence's result reads from disk.

    Attributes:
        frames: Key of the frame files used (and the resize setting); also the bitstream-cache key.
        annotations: Mask file name → hash of its bytes, for every annotated frame among those used.
        binary_masks: How the source decodes masks (0/255 single object, or ids).
    """

    frames: str
    annotations: dict[str, str]
    binary_masks: bool | None


def sequence_inputs(rec: VideoRecord, indices: Sequence[int], resize_long_edge: int | None) -> SequenceInputs:
    """Fingerprint the frames and annotation files of frames ``indices`` of ``rec``.

    Masks are hashed by content (they are small): a replaced mask changes the fingerprint even where its size
    and modification time do not.
    """
    frames = content_key_files([rec.frame_paths[i] for i in indices])
    if resize_long_edge is not None:
        frames = f"{frames}@{resize_long_edge}"
    masks = [rec.mask_paths[rec.frame_ids[i]] for i in indices if rec.frame_ids[i] in rec.mask_paths]
    return SequenceInputs(frames, {p.name: _file_hash(p) for p in masks}, rec.binary_masks)


def vosc_version() -> str | None:
    """Installed vosc distribution version (``None`` when vosc runs from a plain checkout)."""
    try:
        return version("vosc")
    except PackageNotFoundError:
        return None


def input_hashes(seq: SequenceInputs, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``inputs`` record of a marker: one hash per setting, the annotations file by file.

    Args:
        seq: The sequence's files.
        settings: Every other input by name (``model``, ``checkpoint``, ``segmenter``, ``codec``, ...).
    """
    out: dict[str, Any] = {name: hash_json(value) for name, value in settings.items()}
    out["format"] = MARKER_FORMAT
    out["frames"] = hash_json(seq.frames)
    out["annotations"] = dict(seq.annotations)
    out["binary_masks"] = hash_json(seq.binary_masks)
    return out


def fingerprint(inputs: Mapping[str, Any]) -> str:
    """One hash of an :func:`input_hashes` record."""
    return hash_json(inputs)


def _annotation_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    changed = [n for n in sorted(set(old) & set(new)) if old[n] != new[n]]
    out = [f"{n} changed" for n in changed]
    out += [f"{n} added" for n in sorted(set(new) - set(old))]
    out += [f"{n} removed" for n in sorted(set(old) - set(new))]
    return out


def stale_reason(marker: Mapping[str, Any], inputs: Mapping[str, Any]) -> str | None:
    """Why ``marker`` cannot be reused with ``inputs`` (``None``: it can).

    Returns:
        e.g. ``"annotations (00000.png changed), checkpoint"``; for a marker of an older layout, which did
        not record its inputs, a sentence saying so.
    """
    if marker.get("fingerprint") == fingerprint(inputs):
        return None
    old = marker.get("inputs")
    if not isinstance(old, Mapping) or old.get("format") != MARKER_FORMAT:
        return (f"it was written by an older vosc (marker format {marker.get('format')}, now "
                f"{MARKER_FORMAT}) that did not fingerprint every input (the annotations were not covered)")
    names = []
    for name in sorted(set(old) | set(inputs)):
        if name == "annotations":
            changes = _annotation_changes(old.get(name) or {}, inputs.get(name) or {})
            if changes:
                names.append(f"annotations ({', '.join(changes)})")
        elif old.get(name) != inputs.get(name):
            names.append(name)
    return ", ".join(names) or "the fingerprint differs"
