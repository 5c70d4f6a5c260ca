"""Recursive discovery of input files: plain folders, .zip archives, DICOMDIR-based media.

Order is deterministic (sorted by relative path) so batches, manifests and tie-breaks do
not depend on the file system. Every entry found becomes a :class:`Source`, and one that
cannot be read becomes a Source with a fixed ``missing_reason`` (a ``failed`` row in every
stage), never a silent skip:

* symbolic links are not followed (loops, and targets outside INPUT);
* a folder that cannot be listed (``permission denied``), a file that cannot be read
  (``permission denied``), a FIFO, socket or device (never opened: a FIFO would block);
* a .zip member whose name has a ``..`` part (it would leave the archive's folder);
  other member names are normalised: ``\\`` read as ``/``, a drive (``C:``) and leading
  slashes dropped, empty and ``.`` parts removed (``/etc/x.dcm`` -> ``etc/x.dcm``).
* a .zip member named ``*.zip`` that is a zip is opened in turn (``outer.zip!inner.zip!x.dcm``),
  up to ``MAX_ZIP_DEPTH`` = 3 archive levels; a zip deeper than that, one declaring more than
  ``--max-inflate`` bytes (the default limit, ``dicomio.limits``), or one that cannot be opened
  gets a row with a fixed reason, never a silent skip. Members of nested zips are read
  through their enclosing members (:meth:`Source.open`), never extracted to disk.

Relative paths (``Source.rel``) are text: a file name that is not UTF-8 is written with
``\\xNN`` escapes (:func:`~vindr_cli.runner.sources.printable`), while ``Source.path`` keeps
the name the file system gave, to open it. Two inputs with one relative path (a file
named ``x.zip!a`` beside the archive ``x.zip`` holding ``a``, a member name repeated in an
archive, two member names equal once normalised) get ``#2``, ``#3``, ... in discovery order.
"""
from __future__ import annotations

import errno
import os
import stat
import warnings
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

from vindr_cli.dicomio.limits import DEFAULT_MAX_INFLATE, ZIP_REASON
from vindr_cli.runner.sources import NotRegularFile, Source, printable

STATE_DIR = ".vindr"
OWN_TABLES = {"manifest.parquet", "images.parquet"}

PERMISSION = "permission denied"
SYMLINK = "symbolic link (not followed; copy the target into INPUT)"
NOT_REGULAR = "not a regular file (FIFO, socket or device; not read)"
ZIP_ESCAPE = "archive member name has a '..' part (it would leave the archive's folder); not read"
ZIP_EMPTY = "archive member has no usable name (empty once normalised); not read"
UNLISTABLE = "folder could not be listed"
MAX_ZIP_DEPTH = 3       # archive levels opened: 'a.zip!b.zip!c.zip!x.dcm' is read, a zip inside c.zip is not
ZIP_DEEP = f"zip archive nested more than {MAX_ZIP_DEPTH} archives deep (not opened; extract it first)"
ZIP_UNREADABLE = "zip archive inside an archive could not be opened (damaged, encrypted or unsupported)"
ZIP_ERRORS = (zipfile.BadZipFile, ValueError, RuntimeError, EOFError, NotImplementedError, zlib.error)
VANISHED = "removed while INPUT was being read"


def os_reason(exc: OSError, default: str = "could not be read") -> str:
    """A fixed reason for an OS error on an input (never its text, which holds the path)."""
    if isinstance(exc, NotRegularFile):        # a FIFO or device put in a file's place after discovery
        return NOT_REGULAR
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PERMISSION
    if exc.errno == errno.ENOENT:
        return VANISHED
    return f"{default} ({errno.errorcode.get(exc.errno or 0, 'OSError')})"


def member_name(name: str) -> str | None:
    """A .zip member name as a clean relative path, or None when it has a '..' part."""
    parts = name.replace("\\", "/").split("/")
    if parts and len(parts[0]) == 2 and parts[0][1] == ":" and parts[0][0].isalpha():
        parts = parts[1:]                     # a drive: C:/x.dcm
    parts = [p for p in parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _zip_members(path: Path, rel: str, max_inflate: int = DEFAULT_MAX_INFLATE) -> list[Source]:
    """One Source per file member (names normalised, see the module docstring; repeats
    are numbered by :func:`_unique`); members that are zips are listed in turn."""
    try:
        with zipfile.ZipFile(path) as zf:
            return _members(zf, str(path), rel, (), 1, max_inflate)
    except OSError as exc:
        return [Source(str(path), rel, 0, None, os_reason(exc))]
    except ZIP_ERRORS:
        return [Source(str(path), rel, _size(path))]


def _members(zf: zipfile.ZipFile, path: str, rel: str, trail: tuple[int, ...], depth: int,
             max_inflate: int) -> list[Source]:
    """The members of ``zf`` (an archive ``depth`` levels deep, reached through the member
    indices ``trail``). A member named ``*.zip`` that is a zip is opened in turn, up to
    :data:`MAX_ZIP_DEPTH` levels; deeper, too large or unreadable: one row with a reason."""
    out = []
    for index, info in enumerate(zf.infolist()):
        if info.is_dir():
            continue
        at = trail + (index,)
        name = member_name(info.filename)
        reason = ZIP_ESCAPE if name is None else ZIP_EMPTY if not name else None
        shown = info.filename.replace("\\", "/") if name is None else info.filename if not name else name
        src = Source(path, f"{rel}!{shown}", info.file_size, at[0], reason, at[1:])
        if reason is None and name.lower().endswith(".zip"):
            src, inner = _nested(zf, info, src, depth, max_inflate)
            if inner is not None:
                out.extend(inner)
                continue
        out.append(src)
    return out


def _nested(zf: zipfile.ZipFile, info: zipfile.ZipInfo, src: Source, depth: int,
            max_inflate: int) -> tuple[Source, list[Source] | None]:
    """A member named ``*.zip``: its own members (None: not a zip, read as a file)."""
    if info.file_size > max_inflate:       # checked before a byte of it is inflated
        return replace(src, missing_reason=ZIP_REASON), None
    try:
        with zf.open(info) as f:
            if not zipfile.is_zipfile(f):
                return src, None
            if depth >= MAX_ZIP_DEPTH:
                return replace(src, missing_reason=ZIP_DEEP), None
            with zipfile.ZipFile(f) as inner:
                return src, _members(inner, src.path, src.rel, (src.member, *src.inner), depth + 1, max_inflate)
    except (OSError, *ZIP_ERRORS):
        return replace(src, missing_reason=ZIP_UNREADABLE), None


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


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
        rel = printable(rel)
        if rel.lower() not in lowered:
            out.append(Source(str(target), rel, 0, None, "referenced by a DICOMDIR but missing from the media"))
    return out


def _entry(p: Path, rel: str) -> Source | None:
    """The Source for one directory entry that is not a folder (None: a folder)."""
    try:
        st = os.lstat(p)
    except OSError as exc:
        return Source(str(p), rel, 0, None, os_reason(exc))
    if stat.S_ISLNK(st.st_mode):
        return Source(str(p), rel, 0, None, SYMLINK)
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        return Source(str(p), rel, 0, None, NOT_REGULAR)
    if not os.access(p, os.R_OK):
        return Source(str(p), rel, st.st_size, None, PERMISSION)
    return Source(str(p), rel, st.st_size)


def _unique(found: list[Source]) -> list[Source]:
    """Sorted by relative path; a relative path that repeats gets '#2', '#3', ... (the
    first in (rel, plain file before member, member index) order keeps it)."""
    found = sorted(found, key=lambda s: (s.rel, s.member is not None, s.member or 0, s.inner, s.path))
    taken = {s.rel for s in found}
    seen: set[str] = set()
    out = []
    for s in found:
        rel = s.rel
        if rel in seen:
            n = 2
            while f"{s.rel}#{n}" in taken:
                n += 1
            rel = f"{s.rel}#{n}"
            taken.add(rel)
            s = replace(s, rel=rel)
        seen.add(rel)
        out.append(s)
    return sorted(out, key=lambda s: s.rel)


def discover(root: Path) -> list[Source]:
    """Every input file under root (or root itself), sorted by relative path; entries that
    cannot be read carry a ``missing_reason`` (see the module docstring)."""
    root = root.resolve()
    if not root.is_dir():
        src = _entry(root, printable(root.name))
        if src is not None and src.missing_reason is None and zipfile.is_zipfile(root):
            return _unique(_zip_members(root, src.rel))
        return [src] if src is not None else []
    found: list[Source] = []
    dicomdirs: list[Path] = []
    own = (root / STATE_DIR).is_dir()       # a tree vindr wrote: leave its own state and tables out

    def unlisted(exc: OSError) -> None:     # os.walk could not list a folder: a row, not a silent gap
        where = Path(exc.filename) if exc.filename else root
        rel = where.relative_to(root).as_posix() if where != root else "."
        found.append(Source(str(where), printable(rel), 0, None, os_reason(exc, UNLISTABLE)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlisted, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != STATE_DIR)
        if own and Path(dirpath) == root:
            filenames = [f for f in filenames if f not in OWN_TABLES]
        for name in sorted(set(dirnames + filenames)):
            p = Path(dirpath) / name
            rel = printable(p.relative_to(root).as_posix())
            src = _entry(p, rel)
            if src is None:
                continue
            if src.missing_reason is None and name.lower().endswith(".zip") and zipfile.is_zipfile(p):
                found.extend(_zip_members(p, rel))
                continue
            if name.upper() == "DICOMDIR" and src.missing_reason is None:
                dicomdirs.append(p)
            found.append(src)
    present = {s.rel for s in found}
    for d in dicomdirs:
        found.extend(_dicomdir_missing(d, root, present))
    return _unique(found)
