"""Atomic writes of :mod:`vosc.utils.io`: content, no temporary files left, failures keep the old file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vosc.utils.io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_atomic_path_writes_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "out.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp != target
        assert tmp.exists() and not target.exists()
        tmp.write_bytes(b"abc")
    assert target.read_bytes() == b"abc"
    assert _siblings(target) == ["out.bin"]


def test_atomic_path_suffix_and_fsync(tmp_path: Path) -> None:
    target = tmp_path / "img.png"
    with atomic_path(target, suffix=".png", fsync=True) as tmp:
        assert tmp.name.startswith(".img.png.") and tmp.suffix == ".png"
        tmp.write_bytes(b"\x89PNG")
    assert target.read_bytes() == b"\x89PNG"
    assert _siblings(target) == ["img.png"]


def test_exception_keeps_old_file_and_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        seen.append(tmp)
        tmp.write_text("new, partial")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert not seen[0].exists()
    assert _siblings(target) == ["keep.txt"]


def test_exception_without_old_file_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "never.bin"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_write_bytes_and_text_replace_existing(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    assert atomic_write_bytes(target, b"\x00\x01") == target
    assert target.read_bytes() == b"\x00\x01"
    assert atomic_write_text(str(target), "h\u00e9llo", fsync=True) == target
    assert target.read_bytes() == "h\u00e9llo".encode()
    assert _siblings(target) == ["f.txt"]


def test_write_json_formats_like_json_dumps(tmp_path: Path) -> None:
    obj = {"b": 1, "a": [1.5, None]}
    path = atomic_write_json(tmp_path / "a.json", obj, indent=1, sort_keys=True)
    assert path.read_text() == json.dumps(obj, indent=1, sort_keys=True) + "\n"
    path = atomic_write_json(tmp_path / "b.json", obj, trailing_newline=False, indent=2)
    assert path.read_text() == json.dumps(obj, indent=2)
    assert json.loads(path.read_text()) == obj


def test_write_json_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text('{"ok": true}\n')
    with pytest.raises(ValueError, match="Out of range float"):
        atomic_write_json(target, {"x": math.nan}, allow_nan=False)
    with pytest.raises(TypeError, match="not JSON serializable"):
        atomic_write_json(target, {"x": object()})
    assert target.read_text() == '{"ok": true}\n'
    assert _siblings(target) == ["r.json"]


def test_mask_and_cache_writers_use_the_shared_helper(tmp_path: Path) -> None:
    from vosc.codecs import cache
    from vosc.data import palette

    assert palette.atomic_write_bytes is atomic_write_bytes
    assert cache.atomic_write_bytes is atomic_write_bytes
    assert palette.write_mask(tmp_path / "m" / "0.png", np.zeros((4, 5), np.uint8)).is_file()
    assert _siblings(tmp_path / "m" / "0.png") == ["0.png"]


def test_written_files_get_the_usual_permissions(tmp_path) -> None:
    import stat

    from vosc.utils import io

    path = io.atomic_write_bytes(tmp_path / "perm.bin", b"x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~io._UMASK
