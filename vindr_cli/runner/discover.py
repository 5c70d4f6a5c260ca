"""Recursive discovery of input files: plain folders, .zip archives, DICOMDIR-based media.

Order is deterministic (sorted by relative path) so batches, manifests and tie-breaks do
not depend on the file system. Symbolic links to folders are not followed (loops).
"""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

from vindr_cli.runner.sources import Source

STATE_DIR = ".vindr"
OWN_TABLES = {"manifest.parquet", "images.parquet"}


def _zip_members(path: Path, rel: str) -> list[Source]:
    """One Source per file member; a name that repeats inside the archive gets '#n'."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = list(enumerate(zf.infolist()))
    except (zipfile.BadZipFile, OSError):
        return [Source(str(path), rel, path.stat().st_size)]
    seen: dict[str, int] = {}
    out = []
    for index, info in infos:
        if info.is_dir():
            continue
        n = seen.get(info.filename, 0)
        seen[info.filename] = n + 1
        name = info.filename if n == 0 else f"{info.filename}#{n + 1}"
        out.append(Source(str(path), f"{rel}!{name}", info.file_size, index))
    return out


def _dicomdir_missing(dicomdir: Path, root: Path, present: set[str]) -> list[Source]:
    """Files a DICOMDIR references that are not on the media (found case-insensitively)."""
    try:
        import pydicom

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(dicomdir)
        records = ds.get("DirectoryRecordSequence", [])
    except Exception:
        return []
    out = []
    lowered = {p.lower() for p in present}
    base = dicomdir.parent
    for rec in records:
        fid = rec.get("ReferencedFileID")
        if not fid:
            continue
        parts = [fid] if isinstance(fid, str) else list(fid)
        target = base.joinpath(*parts)
        rel = target.relative_to(root).as_posix() if root in target.parents else target.name
        if rel.lower() not in lowered:
            out.append(Source(str(target), rel, 0, None, "referenced by a DICOMDIR but missing from the media"))
    return out


def discover(root: Path) -> list[Source]:
    """Every input file under root (or root itself), sorted by relative path."""
    root = root.resolve()
    if root.is_file():
        if zipfile.is_zipfile(root):
            return _zip_members(root, root.name)
        return [Source(str(root), root.name, root.stat().st_size)]
    found: list[Source] = []
    dicomdirs: list[Path] = []
    own = (root / STATE_DIR).is_dir()       # a tree vindr wrote: leave its own state and tables out
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != STATE_DIR)
        if own and Path(dirpath) == root:
            filenames = [f for f in filenames if f not in OWN_TABLES]
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                found.append(Source(str(p), rel, 0, None, "symbolic link (not followed; copy the target into INPUT)"))
                continue
            if not p.is_file():
                continue
            if name.lower().endswith(".zip") and zipfile.is_zipfile(p):
                found.extend(_zip_members(p, rel))
                continue
            if name.upper() == "DICOMDIR":
                dicomdirs.append(p)
            found.append(Source(str(p), rel, p.stat().st_size))
    present = {s.rel for s in found}
    for d in dicomdirs:
        found.extend(_dicomdir_missing(d, root, present))
    return sorted(found, key=lambda s: s.rel)
