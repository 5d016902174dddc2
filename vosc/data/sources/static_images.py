"""Static images with instance masks, for pre-training on synthesised clips.

Layout (``root``; folder names configurable)::

    <image_dir>/<name>.jpg     RGB image
    <mask_dir>/<name>.png      instance ids (palette or single-channel; 255 = void → background)

Every image becomes a one-frame :class:`VideoRecord`; clips are synthesised from it by per-frame
random affine transforms and colour jitter (:func:`vosc.data.transforms.synthesize_static_clip`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from vosc.data.errors import DatasetLayoutError, MissingMaskError
from vosc.data.sources.base import OnError, VideoRecord, VideoSource, list_images

log = logging.getLogger(__name__)


class StaticImageSource(VideoSource):
    """Image + instance-mask pairs.

    Args:
        root: Dataset root.
        image_dir: Sub-folder of the images (e.g. ``"JPEGImages"`` for PASCAL VOC).
        mask_dir: Sub-folder of the masks (e.g. ``"SegmentationObject"`` for PASCAL VOC).
        name: Source name.
        validate, on_error, require_even: See :class:`VideoSource`.

    Raises:
        DatasetLayoutError: A folder is missing or empty.
        MissingMaskError: An image has no mask (with ``on_error="raise"``).
    """

    is_static = True

    def __init__(
        self,
        root: str | Path,
        image_dir: str = "images",
        mask_dir: str = "masks",
        name: str = "static",
        validate: bool = True,
        on_error: OnError = "raise",
        require_even: bool = False,
    ) -> None:
        super().__init__(name, validate=validate, on_error=on_error, require_even=require_even)
        self.root = Path(root)
        idir, mdir = self.root / image_dir, self.root / mask_dir
        for folder in (idir, mdir):
            if not folder.is_dir():
                raise DatasetLayoutError(folder, "static-image folder is missing")
        images = list_images(idir, ordered=False)
        if not images:
            raise DatasetLayoutError(idir, "no images found")
        records = []
        for img in images:
            mpath = mdir / f"{img.stem}.png"
            if not mpath.is_file():
                err = MissingMaskError(mpath, f"image {img.name} has no mask")
                if on_error == "raise":
                    raise err
                self.skipped[img.stem] = str(err)
                log.warning("source %s: skipping image %r: %s", name, img.stem, err)
                continue
            records.append(VideoRecord(img.stem, [img.stem], [img], {img.stem: mpath}, binary_masks=None))
        self._add_videos(records)
