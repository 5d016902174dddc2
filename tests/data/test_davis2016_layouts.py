"""Issue 13 item 6 (part): ``dataset=davis2016`` reads the DAVIS-2017 layout with ``ImageSets/2016/val.txt``
(as its config comment says) as well as the original 2016 release's ``ImageSets/480p/val.txt``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vosc.data.errors import DatasetLayoutError
from vosc.data.sources.davis import DavisSource


def test_davis2016_reads_both_layouts(tmp_path: Path, synthetic_davis: Path) -> None:
    root = Path(shutil.copytree(synthetic_davis, tmp_path / "davis"))
    names = (root / "ImageSets" / "2017" / "val.txt").read_text().split()
    with pytest.raises(DatasetLayoutError, match=r"ImageSets/2016/val\.txt or ImageSets/480p/val\.txt"):
        DavisSource(root, "val", year=2016)
    (root / "ImageSets" / "2016").mkdir()
    (root / "ImageSets" / "2016" / "val.txt").write_text("\n".join(names) + "\n")
    in_2017_layout = DavisSource(root, "val", year=2016)
    assert [v.name for v in in_2017_layout.videos] == names
    shutil.rmtree(root / "ImageSets" / "2016")
    (root / "ImageSets" / "480p").mkdir()
    lines = [f"/JPEGImages/480p/{n}/{f.stem}.jpg /Annotations/480p/{n}/{f.stem}.png"
             for n in names for f in sorted((root / "Annotations" / "480p" / n).glob("*.png"))]
    (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")
    release = DavisSource(root, "val", year=2016)
    assert [v.name for v in release.videos] == names
    masks = release.load_masks(release.videos[0], [0])
    assert set(masks.ravel().tolist()) <= {0, 1}  # DAVIS-2016: every object merged into object 1
