"""DAVIS-2017 (and DAVIS-2016) layout reader.

Layout (``root``)::

    JPEGImages/480p/<sequence>/00000.jpg
    Annotations/480p/<sequence>/00000.png        palette ids (2017) or binary 0/255 (2016)
    ImageSets/2017/{train,val,test-dev}.txt      one sequence per line
    ImageSets/2016/{train,val}.txt               (DAVIS-2016 in the 2017 layout: one sequence per line)
    ImageSets/480p/{train,val}.txt               (DAVIS-2016 release: "<jpg path> <png path>" lines)

DAVIS-2016 binary masks are read as one object (id 1); ``binary_masks=None`` detects them per file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vosc.data.errors import DatasetLayoutError
from vosc.data.sources.base import OnError, VideoSource, scan_video


class DavisSource(VideoSource):
    """DAVIS sequences of one split.

    Args:
        root: Dataset root (holds ``JPEGImages``, ``Annotations``, ``ImageSets``).
        split: ``"train"``, ``"val"``, ``"test-dev"``... (file of ``ImageSets/<year>/``), or ``None``
            for every folder of ``JPEGImages/<resolution>``.
        year: ``2017`` (``ImageSets/2017/<split>.txt``) or ``2016``: ``ImageSets/2016/<split>.txt`` of
            the DAVIS-2017 layout (objects merged into one), else ``ImageSets/480p/<split>.txt`` of the
            2016 release.
        resolution: ``"480p"`` or ``"Full-Resolution"``.
        sequences: Optional subset of sequence names (in this order).
        binary_masks: ``True`` for 0/255 masks (DAVIS-2016), ``False`` for palette ids, ``None`` = auto.
        name: Source name.
        validate, on_error, require_even: See :class:`VideoSource`.

    Raises:
        DatasetLayoutError: Missing root folders or split file.
        MissingFrameError: A listed sequence has no frame folder, or a mask has no frame.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        year: int = 2017,
        resolution: str = "480p",
        sequences: Sequence[str] | None = None,
        binary_masks: bool | None = None,
        name: str = "davis",
        validate: bool = True,
        on_error: OnError = "raise",
        require_even: bool = False,
    ) -> None:
        super().__init__(name, validate=validate, on_error=on_error, require_even=require_even)
        self.root = Path(root)
        self.split = split
        img_root = self.root / "JPEGImages" / resolution
        ann_root = self.root / "Annotations" / resolution
        for folder in (img_root, ann_root):
            if not folder.is_dir():
                raise DatasetLayoutError(
                    folder, "DAVIS folder is missing (expected JPEGImages/<res>, Annotations/<res>)"
                )
        names = self._sequence_names(img_root, split, year, resolution)
        if sequences is not None:
            names = list(sequences)
        if year == 2016 and binary_masks is None:
            binary_masks = True
        self._add_videos(
            [scan_video(img_root, ann_root, seq, binary_masks, kind="sequence") for seq in names]
        )

    def _sequence_names(self, img_root: Path, split: str | None, year: int, resolution: str) -> list[str]:
        if split is None:
            return sorted(p.name for p in img_root.iterdir() if p.is_dir())
        candidates = [self.root / "ImageSets" / str(year) / f"{split}.txt"]
        if year == 2016:  # DAVIS-2017 layout (ImageSets/2016) first, then the original 2016 release
            candidates.append(self.root / "ImageSets" / resolution / f"{split}.txt")
        index = next((c for c in candidates if c.is_file()), candidates[0])
        if not index.is_file():
            where = " or ".join(str(c.relative_to(self.root)) for c in candidates)
            raise DatasetLayoutError(index, f"split file for split {split!r} is missing (expected {where})")
        names: list[str] = []
        for line in index.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            # original 2016 release: "/JPEGImages/480p/<seq>/00000.jpg /Annotations/480p/<seq>/00000.png"
            seq = line.split()[0].strip("/").split("/")[-2] if "/" in line else line
            if seq not in names:
                names.append(seq)
        return names
