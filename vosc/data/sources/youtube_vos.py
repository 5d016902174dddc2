"""YouTube-VOS 2018/2019 layout reader.

Layout (``root``)::

    train/JPEGImages/<video>/00000.jpg  00005.jpg ...   (every 5th frame of the 30 fps video)
    train/Annotations/<video>/00000.png ...            palette ids, every listed frame annotated
    train/meta.json                           {"videos": {video: {"objects": {"1": {"frames": [...]}}}}}
    valid/JPEGImages/..., valid/Annotations/...        annotations only where an object first appears
    valid/meta.json
    valid_all_frames/JPEGImages/<video>/00000.jpg ...  every frame (30 fps), no annotations

In ``valid`` objects may start late and ids may have gaps; :attr:`VideoRecord.first_appearance`
maps each object id to the frame of its first annotation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vosc.data.errors import DatasetLayoutError
from vosc.data.palette import read_mask
from vosc.data.sources.base import OnError, VideoRecord, VideoSource, scan_video


class YouTubeVOSSource(VideoSource):
    """YouTube-VOS videos of one split.

    Args:
        root: Dataset root (holds ``train/``, ``valid/``...).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        all_frames: Take the frame list from ``<split>_all_frames/JPEGImages`` (masks still from
            ``<split>/Annotations``).
        use_meta: Read object first appearances from ``<split>/<meta_file>`` when present (else from masks).
        meta_file: Name of the meta file inside ``<split>/`` (``meta.json``; LVOS releases may name it
            differently, e.g. ``valid_meta.json``).
        videos: Optional subset of video names.
        name: Source name.
        validate, on_error, require_even: See :class:`VideoSource`.

    Raises:
        DatasetLayoutError: Missing ``<split>/JPEGImages`` / ``Annotations`` or unreadable ``meta.json``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        all_frames: bool = False,
        use_meta: bool = True,
        videos: Sequence[str] | None = None,
        name: str = "ytvos",
        validate: bool = True,
        on_error: OnError = "raise",
        require_even: bool = False,
        meta_file: str = "meta.json",
    ) -> None:
        super().__init__(name, validate=validate, on_error=on_error, require_even=require_even)
        self.root = Path(root)
        self.split = split
        split_dir = self.root / split
        img_root = (
            (self.root / f"{split}_all_frames" / "JPEGImages") if all_frames else split_dir / "JPEGImages"
        )
        ann_root = split_dir / "Annotations"
        for folder in (img_root, ann_root):
            if not folder.is_dir():
                raise DatasetLayoutError(folder, "YouTube-VOS folder is missing")
        meta = self._read_meta(split_dir / meta_file) if use_meta else None
        names = (
            list(videos) if videos is not None else sorted(p.name for p in img_root.iterdir() if p.is_dir())
        )
        records = []
        for vid in names:
            rec = scan_video(img_root, ann_root, vid)
            if split != "train":
                rec.first_appearance = self._first_appearance(rec, meta)
            records.append(rec)
        self._add_videos(records)

    @staticmethod
    def _read_meta(path: Path) -> dict | None:
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())["videos"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetLayoutError(path, f"meta.json is not a YouTube-VOS meta file ({exc})") from exc

    @staticmethod
    def _first_appearance(rec: VideoRecord, meta: dict | None) -> dict[int, str]:
        """Object id → frame id of its first annotation."""
        out: dict[int, str] = {}
        if meta is not None and rec.name in meta:
            for oid, obj in meta[rec.name].get("objects", {}).items():
                frames = sorted(obj.get("frames", []))
                if frames:
                    out[int(oid)] = frames[0]
            if out:
                return out
        for fid in sorted(rec.mask_paths):
            for oid in (
                int(v) for v in set(read_mask(rec.mask_paths[fid], binary=False).ravel().tolist()) if v
            ):
                out.setdefault(oid, fid)
        return out
