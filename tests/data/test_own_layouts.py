"""Your own data: flat frame/mask folders (``data=folder``), the MOSE layout (DAVIS-like, flat) and the LVOS
layout (YouTube-VOS-like with a meta file), on small generated sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from vosc.data.palette import write_frame, write_mask
from vosc.data.sources.davis import DavisSource
from vosc.data.sources.synthetic import render_synthetic_videos
from vosc.data.sources.youtube_vos import YouTubeVOSSource
from vosc.evaluation.builders import build_source

REPO = Path(__file__).resolve().parents[2]
T, W, H = 6, 64, 48


def _videos(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(render_synthetic_videos(n, T, (W, H), seed=seed, objects=2))


def write_flat(root: Path, videos: list[tuple[np.ndarray, np.ndarray]], first_only: bool = False) -> None:
    """``root/JPEGImages/<video>/<t>.jpg`` + ``root/Annotations/<video>/<t>.png`` (MOSE: 5-digit names)."""
    for i, (frames, masks) in enumerate(videos):
        for t in range(T):
            write_frame(root / "JPEGImages" / f"vid{i}" / f"{t:05d}.jpg", frames[t])
            if t == 0 or not first_only:
                write_mask(root / "Annotations" / f"vid{i}" / f"{t:05d}.png", masks[t])


def test_mose_layout(tmp_path: Path) -> None:
    videos = _videos(2)
    write_flat(tmp_path / "MOSE" / "train", videos)
    src = DavisSource(tmp_path / "MOSE" / "train", split=None, resolution="", name="mose")
    assert [v.name for v in src.videos] == ["vid0", "vid1"]
    rec = src.videos[1]
    assert len(rec.frame_ids) == T and len(rec.mask_paths) == T
    # the evaluation config reads the same folder
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=["dataset=mose", f"data_root={tmp_path / 'MOSE' / 'train'}",
                                             f"paths.root_dir={tmp_path}"])
    source, ds = build_source(cfg.dataset, cfg.data_root, str(cfg.split))
    assert ds.name == "mose" and len(source) == 2


def test_lvos_layout_with_late_object_and_named_meta(tmp_path: Path) -> None:
    root = tmp_path / "LVOS"
    frames, masks = _videos(1, seed=3)[0]
    masks = masks.copy()
    masks[:3][masks[:3] == 2] = 0  # object 2 enters at frame 3
    split = root / "valid"
    objects: dict[str, dict] = {"1": {"frames": []}, "2": {"frames": []}}
    for t in range(T):
        write_frame(split / "JPEGImages" / "lv0" / f"{t:08d}.jpg", frames[t])
        for oid in (1, 2):
            if (masks[t] == oid).any():
                objects[str(oid)]["frames"].append(f"{t:08d}")
    write_mask(split / "Annotations" / "lv0" / f"{0:08d}.png", np.where(masks[0] == 1, 1, 0))
    write_mask(split / "Annotations" / "lv0" / f"{3:08d}.png", np.where(masks[3] == 2, 2, 0))
    (split / "valid_meta.json").write_text(json.dumps({"videos": {"lv0": {"objects": objects}}}))
    src = YouTubeVOSSource(root, split="valid", meta_file="valid_meta.json", name="lvos")
    (rec,) = src.videos
    assert rec.first_appearance == {1: "00000000", 2: "00000003"} and len(rec.frame_ids) == T
    with pytest.raises(Exception, match=r"meta\.json"):
        (split / "meta.json").write_text("{not json")
        YouTubeVOSSource(root, split="valid", name="lvos")
    (split / "meta.json").write_text(json.dumps({"videos": {"lv0": {"objects": objects}}}))
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=["dataset=lvos", f"data_root={root}",
                                             f"paths.root_dir={tmp_path}"])
    source, ds = build_source(cfg.dataset, cfg.data_root, str(cfg.split))
    assert ds.name == "lvos" and ds.references == "all" and source.videos[0].first_appearance[2] == "00000003"


def test_data_folder_trains_on_own_frames(tmp_path: Path) -> None:
    write_flat(tmp_path / "own" / "train", _videos(2))
    write_flat(tmp_path / "own" / "val", _videos(1, seed=9))
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["data=folder", f"+data_root={tmp_path / 'own'}", "codec=none",
                                          f"paths.root_dir={tmp_path}", "data.num_workers=0",
                                          "data.augment.crop_size=[48,48]", "data.augment.short_edge=48"])
    dm = instantiate(cfg.data, compression=None)
    dm.setup("fit")
    assert [v.name for v in dm.val_sources[0].videos] == ["vid0"]
    batch = next(iter(dm.train_dataloader()))
    assert batch.frames.shape[1] == 5 and set(batch.sequences) <= {"vid0", "vid1"} and batch.masks.max() >= 1
