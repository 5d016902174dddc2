"""Benchmark submissions, validated before anything is written, and written atomically.

* YouTube-VOS (valid): a zip of ``Annotations/<video>/<frame>.png`` palette PNGs at the original frame
  size for every frame listed in ``valid/JPEGImages/<video>/``. Objects may start late: an id may appear
  in a prediction only if ``valid/Annotations/<video>/`` defines it, and (``check_late_objects``) not
  before the frame where its first-appearance mask is given.
* DAVIS test-dev / test-challenge: folders ``<out>/<sequence>/<frame>.png`` for every frame of
  ``JPEGImages/<resolution>/<sequence>/`` of the sequences of ``ImageSets/<year>/<subset>.txt``, ids
  ``1..N`` with ``N`` the largest id of the first annotation; optionally zipped for CodaLab.

Predictions are read from ``<pred_dir>/<video>/<frame>.png`` (any indexed PNG) and re-encoded with the
DAVIS palette. Prediction files for frames that are not listed are not submitted (logged).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vosc.data.errors import DatasetLayoutError
from vosc.data.palette import encode_palette_png, image_size, read_mask
from vosc.metrics.errors import (
    MetricInputError,
    MissingPredictionError,
    SizeMismatchError,
    UnknownObjectError,
)
from vosc.utils.io import atomic_path

log = logging.getLogger(__name__)

__all__ = ["LateObjectError", "SubmissionSummary", "write_davis_submission", "write_youtube_vos_submission"]


class LateObjectError(MetricInputError):
    """A prediction contains an object before the frame where the object's first mask is given."""


@dataclass(frozen=True)
class SubmissionSummary:
    """What was written.

    Attributes:
        path: The zip file or folder.
        videos: Number of videos / sequences.
        frames: Number of PNGs.
    """

    path: Path
    videos: int
    frames: int


@dataclass(frozen=True)
class _Video:
    name: str
    frames: list[Path]  # JPEGs in order
    first_frame: dict[int, int]  # object id -> index of its first annotated frame


def _sorted_files(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == suffix) if folder.is_dir() else []


def _first_appearance(annotation_dir: Path, frame_index: dict[str, int]) -> dict[int, int]:
    first: dict[int, int] = {}
    for path in _sorted_files(annotation_dir, ".png"):
        if path.stem not in frame_index:
            raise DatasetLayoutError(path, "annotation has no frame of the same name in JPEGImages")
        mask = read_mask(path, raw=True)
        for obj in np.unique(mask).tolist():
            if obj not in (0, 255):
                first.setdefault(int(obj), frame_index[path.stem])
    return first


def _check_frame(video: _Video, index: int, pred_dir: Path, check_late: bool) -> bytes:
    jpeg = video.frames[index]
    path = pred_dir / video.name / f"{jpeg.stem}.png"
    if not path.is_file():
        raise MissingPredictionError(
            path, f"no prediction for listed frame {jpeg.name} of video {video.name}"
        )
    mask = read_mask(path, raw=True)
    if mask.shape != image_size(jpeg):
        raise SizeMismatchError(path, f"prediction size {mask.shape} != frame {jpeg} size {image_size(jpeg)}")
    for obj in np.unique(mask).tolist():
        if obj == 0:
            continue
        if obj not in video.first_frame:
            raise UnknownObjectError(
                path, f"object id {obj} not annotated in video {video.name} (ids {sorted(video.first_frame)})"
            )
        if check_late and index < video.first_frame[obj]:
            first = video.frames[video.first_frame[obj]].stem
            raise LateObjectError(path, f"object {obj} predicted before its first annotated frame {first}")
    return encode_palette_png(mask)


def _warn_extra(pred_dir: Path, videos: list[_Video]) -> None:
    listed = {v.name: {p.stem for p in v.frames} for v in videos}
    for folder in sorted(p for p in pred_dir.iterdir() if p.is_dir()):
        if folder.name not in listed:
            log.warning("%s: video not in the benchmark list, not submitted", folder)
            continue
        extra = [p.name for p in _sorted_files(folder, ".png") if p.stem not in listed[folder.name]]
        if extra:
            log.info(
                "%s: %d prediction(s) for unlisted frames not submitted (e.g. %s)",
                folder,
                len(extra),
                extra[0],
            )


def _frames(videos: list[_Video], pred_dir: Path, check_late: bool) -> Iterator[tuple[str, bytes]]:
    for video in videos:
        for index, jpeg in enumerate(video.frames):
            yield f"{video.name}/{jpeg.stem}.png", _check_frame(video, index, pred_dir, check_late)


def _write_zip(entries: Iterator[tuple[str, bytes]], out_zip: Path, prefix: str) -> int:
    count = 0
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            archive.writestr(prefix + name, data)
            count += 1
    return count


def _youtube_videos(valid_root: Path) -> list[_Video]:
    images = valid_root / "JPEGImages"
    if not images.is_dir():
        raise DatasetLayoutError(images, "YouTube-VOS valid JPEGImages folder not found")
    videos = []
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        frames = _sorted_files(folder, ".jpg")
        if not frames:
            raise DatasetLayoutError(folder, "video folder has no JPEG frame")
        first = _first_appearance(
            valid_root / "Annotations" / folder.name, {p.stem: i for i, p in enumerate(frames)}
        )
        if not first:
            raise DatasetLayoutError(
                valid_root / "Annotations" / folder.name, "no first-appearance mask with an object"
            )
        videos.append(_Video(folder.name, frames, first))
    if not videos:
        raise DatasetLayoutError(images, "no video folder")
    return videos


def write_youtube_vos_submission(
    pred_dir: str | Path, valid_root: str | Path, out_zip: str | Path, check_late_objects: bool = True
) -> SubmissionSummary:
    """Validate predictions against ``valid/`` and write the YouTube-VOS submission zip atomically.

    Args:
        pred_dir: Folder of ``<video>/<frame>.png`` predictions.
        valid_root: The YouTube-VOS ``valid`` folder (``JPEGImages/``, ``Annotations/``).
        out_zip: Zip path; entries are ``Annotations/<video>/<frame>.png``.
        check_late_objects: Reject objects predicted before their first-appearance frame.

    Returns:
        What was written.

    Raises:
        DatasetLayoutError: ``valid_root`` lacks frames or annotations.
        MissingPredictionError, SizeMismatchError, UnknownObjectError, LateObjectError: A prediction is
            missing or wrong (nothing is written then).
    """
    pred_dir, out_zip = Path(pred_dir), Path(out_zip)
    if not pred_dir.is_dir():
        raise MissingPredictionError(pred_dir, "prediction folder not found")
    videos = _youtube_videos(Path(valid_root))
    _warn_extra(pred_dir, videos)
    count = _write_zip(_frames(videos, pred_dir, check_late_objects), out_zip, "Annotations/")
    log.info("wrote %s: %d videos, %d frames", out_zip, len(videos), count)
    return SubmissionSummary(out_zip, len(videos), count)


def _davis_videos(davis_root: Path, subset: str, year: str | int, resolution: str) -> list[_Video]:
    index = davis_root / "ImageSets" / str(year) / f"{subset}.txt"
    if not index.is_file():
        raise DatasetLayoutError(index, "sequence index file not found")
    videos = []
    for name in [line.strip() for line in index.read_text().splitlines() if line.strip()]:
        frames = _sorted_files(davis_root / "JPEGImages" / resolution / name, ".jpg")
        if not frames:
            raise DatasetLayoutError(davis_root / "JPEGImages" / resolution / name, "no JPEG frame")
        first_mask = davis_root / "Annotations" / resolution / name / f"{frames[0].stem}.png"
        if not first_mask.is_file():
            raise DatasetLayoutError(first_mask, "first-frame annotation missing")
        mask = read_mask(first_mask, raw=True)
        num_objects = int(np.where(mask == 255, 0, mask).max())
        if num_objects == 0:
            raise DatasetLayoutError(first_mask, "first-frame annotation has no object")
        videos.append(_Video(name, frames, {obj: 0 for obj in range(1, num_objects + 1)}))
    if not videos:
        raise DatasetLayoutError(index, "index file lists no sequence")
    return videos


def write_davis_submission(
    pred_dir: str | Path,
    davis_root: str | Path,
    out_dir: str | Path,
    subset: str = "test-dev",
    year: str | int = 2017,
    resolution: str = "480p",
    zip_path: str | Path | None = None,
    overwrite: bool = False,
) -> SubmissionSummary:
    """Validate predictions and write DAVIS submission folders ``<out_dir>/<sequence>/<frame>.png``.

    The folder is assembled in a temporary sibling and renamed into place (an existing ``out_dir`` is
    replaced only with ``overwrite``). With ``zip_path`` the same files are also zipped (sequence
    folders at the zip root, as CodaLab expects).

    Raises:
        FileExistsError: ``out_dir`` exists and ``overwrite`` is false.
        DatasetLayoutError: The DAVIS root lacks the index file, frames or first annotations.
        MissingPredictionError, SizeMismatchError, UnknownObjectError: A prediction is missing or wrong.
    """
    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: submission folder exists (pass overwrite=True to replace it)")
    if not pred_dir.is_dir():
        raise MissingPredictionError(pred_dir, "prediction folder not found")
    videos = _davis_videos(Path(davis_root), subset, year, resolution)
    _warn_extra(pred_dir, videos)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        count = 0
        for name, data in _frames(videos, pred_dir, check_late=False):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
            count += 1
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if zip_path is not None:
        files = sorted(p for p in out_dir.rglob("*.png"))
        _write_zip(((p.relative_to(out_dir).as_posix(), p.read_bytes()) for p in files), Path(zip_path), "")
    log.info("wrote %s: %d sequences, %d frames", out_dir, len(videos), count)
    return SubmissionSummary(out_dir, len(videos), count)
