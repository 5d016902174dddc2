"""Atomic file writes: write a temporary file in the target folder, then ``os.replace`` it onto the target.

A reader sees either the old file or the complete new one, never a partial write; a failed write leaves
the old file untouched and no temporary file behind. The temporary file lives in the target's folder (so
the rename never crosses file systems) and is named ``.<name>.<random><suffix>``.

Typical use::

    with atomic_path(out / "plot.png") as tmp:
        figure.savefig(tmp, format="png")
    atomic_write_json(out / "result.json", result, indent=1, sort_keys=True)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once at import: os.umask() briefly changes a process-wide setting, unsafe to repeat under threads
_UMASK = _read_umask()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp", fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path`` with ``os.replace``.

    The parent folder is created. The temporary file exists (empty) when yielded; the caller writes it
    by name (``torch.save``, ``PIL.Image.save``, ``savefig`` ...). On an exception in the ``with`` block
    the temporary file is removed, ``path`` is left as it was, and the exception propagates.

    Args:
        path: Final file path.
        suffix: Suffix of the temporary file name (some writers infer the format from it).
        fsync: Flush the temporary file's data to disk before the rename.

    Yields:
        The temporary file's path, in ``path``'s folder.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> Path:
    """Atomically write ``data`` to ``path`` (see :func:`atomic_path`).

    Returns:
        The final path.
    """
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", fsync: bool = False
) -> Path:
    """Atomically write ``text`` (encoded with ``encoding``) to ``path``.

    Returns:
        The final path.
    """
    return atomic_write_bytes(path, text.encode(encoding), fsync=fsync)


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    trailing_newline: bool = True,
    fsync: bool = False,
    **json_kwargs: Any,
) -> Path:
    """Atomically write ``json.dumps(obj, **json_kwargs)`` (plus ``"\\n"`` unless disabled) to ``path``.

    Args:
        path: Final file path.
        obj: JSON-serialisable object.
        trailing_newline: End the file with a newline.
        fsync: Flush to disk before the rename.
        **json_kwargs: Passed to :func:`json.dumps` (``indent``, ``sort_keys``, ``allow_nan``, ``default``).

    Returns:
        The final path.

    Raises:
        TypeError, ValueError: ``obj`` is not serialisable (e.g. NaN with ``allow_nan=False``); ``path``
            is then left untouched.
    """
    text = json.dumps(obj, **json_kwargs) + ("\n" if trailing_newline else "")
    return atomic_write_text(path, text, fsync=fsync)
