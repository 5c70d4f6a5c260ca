"""The one mapping of the machine's write failures (no space, a quota, a read-only file
system, permissions) to :class:`~vindr_cli.errors.OutputFault` (exit 2, naming what and
where, never an input's name): used by the runner around the driver's work
(:func:`named_faults`) and by each stage's worker in its catch-all handler
(:func:`raise_output_fault`), so a full disk stops the batch instead of failing a file."""
from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vindr_cli.atomic import TMP_SUFFIX
from vindr_cli.errors import OutputFault

SPACE = {errno.ENOSPC: "no space left on the device holding {where}",
         errno.EDQUOT: "disk quota exceeded on the device holding {where}"}
SPACE_HINT = ": free some space, then run the same command again to resume"
READ_ONLY = "{where} is on a read-only file system: choose a writable folder, or remount it read-write"
DENIED = "permission denied writing {where}: check the owner and permissions of that folder, then run again"
ANYWHERE = "a folder vindr writes to (OUTPUT, the linkage table or the key file)"


def _under(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` ('' for the folder itself), or None if outside it."""
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    except ValueError:          # another drive (Windows)
        return None
    if rel == os.curdir:
        return ""
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None
    return Path(rel).as_posix()


def _where(exc: OSError, output: Path, targets: Iterable[Path]) -> str | None:
    """How to name the path ``exc`` is about: ``OUTPUT`` or ``OUTPUT/<rel>`` under OUTPUT
    (names there are keyed or the stage's own), a declared target outside it (a path the
    user chose, e.g. the linkage table) or its atomic temp file, else None."""
    names = [n for n in (exc.filename, exc.filename2) if n not in (None, b"", "")]
    if not names:
        return "OUTPUT"
    for name in names:
        p = Path(os.fsdecode(name))
        rel = _under(p, output)
        if rel is not None:
            rel = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            return "OUTPUT" + (f"/{rel}" if rel else "")
        for t in targets:
            t = Path(t)
            if os.path.abspath(p) == os.path.abspath(t) or (
                    p.parent == t.parent and p.name.startswith(f".{t.name}.") and p.name.endswith(TMP_SUFFIX)):
                return str(t)
    return None


def output_fault(exc: BaseException, output: Path, targets: Iterable[Path] = ()) -> OutputFault | None:
    """The :class:`OutputFault` for a write failure of the machine (ENOSPC, EDQUOT, EROFS
    anywhere; EACCES/EPERM only on a path under ``output`` or one of ``targets``, since
    elsewhere it may be an input that could not be read), or None for any other error."""
    if not isinstance(exc, OSError) or isinstance(exc, OutputFault):
        return None
    code = exc.errno
    named = any(n not in (None, b"", "") for n in (exc.filename, exc.filename2))
    where = _where(exc, output, targets)
    if code in SPACE or code == errno.EROFS:
        if where is None:
            where = ANYWHERE
        elif where.startswith("OUTPUT"):
            where = "OUTPUT"         # the device or mount matters here, not the file
        if code in SPACE:
            return OutputFault(SPACE[code].format(where=where) + SPACE_HINT)
        return OutputFault(READ_ONLY.format(where=where))
    if code in (errno.EACCES, errno.EPERM) and named and where is not None:
        return OutputFault(DENIED.format(where=where))
    return None     # another error, or a permission error on a path vindr does not write (an input?)


def raise_output_fault(exc: BaseException, output: Path | str, targets: Iterable[Path] = ()) -> None:
    """Raise :func:`output_fault`'s error for ``exc`` if it is one (for a worker's catch-all
    handler: a full disk is not the file's fault and stops the batch). Else return."""
    fault = output_fault(exc, Path(output), targets)
    if fault is not None:
        raise fault from None


@contextmanager
def named_faults(output: Path | None, targets: Iterable[Path] = ()) -> Iterator[None]:
    """Turn the machine's write failures inside the block into :class:`OutputFault`."""
    try:
        yield
    except OSError as exc:
        if output is not None:
            raise_output_fault(exc, output, list(targets))
        raise
