"""Atomic writes: write to a temporary name in the target folder, then rename. A leaf
module (imports nothing from vindr_cli): `tables` and the runner both build on it."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

TMP_SUFFIX = ".vindr-part"


@contextmanager
def atomic_write(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a file to write; on success it replaces ``path`` in one rename, else it vanishes.
    The temporary name is ``.<name>.<random>.vindr-part`` beside ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_stale_parts(folder: Path) -> int:
    """Delete temporary files a killed run left behind; returns how many."""
    n = 0
    if folder.is_dir():
        for p in folder.rglob(f"*{TMP_SUFFIX}"):
            p.unlink(missing_ok=True)
            n += 1
    return n
