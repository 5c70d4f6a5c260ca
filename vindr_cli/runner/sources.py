"""An input file of a batch: a plain file, or a member of a .zip archive."""
from __future__ import annotations

import errno
import os
import stat
import zipfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator


class NotRegularFile(OSError):
    """An input that discovery saw as a regular file and is no longer one when opened (a FIFO,
    socket or device put in its place): never read (a FIFO would block its reader for ever)."""

    def __init__(self) -> None:
        super().__init__(errno.ENXIO, "not a regular file")


@dataclass(frozen=True)
class Source:
    path: str                  # absolute path of the file (or of the archive holding it)
    rel: str                   # path relative to the input root; 'a.zip!dir/file' for members
    size: int
    member: int | None = None  # index of the member inside the archive (names may repeat)
    missing_reason: str | None = None   # set when discovery knows the file cannot be read
    inner: tuple[int, ...] = ()  # indices inside zips nested in that member ('a.zip!b.zip!c.dcm')
    # what a stage's first pass (runner.stage.Survey) found for this input in the others, e.g. the
    # person values of its study's other files: may be PHI, so in memory and task arguments only,
    # never in repr (a traceback, a log line), equality or hash
    peers: tuple[str, ...] = field(default=(), repr=False, compare=False)
    peer_places: tuple[str, ...] = field(default=(), repr=False, compare=False)   # ... and their places (review 11)

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """A seekable binary stream of the file (archive members are streamed, not extracted;
        a member of a nested zip is read through its enclosing members, never extracted)."""
        if self.member is None:
            with _open_regular(self.path) as f:
                yield f
            return
        with ExitStack() as stack:
            zf = stack.enter_context(zipfile.ZipFile(self.path))
            f = stack.enter_context(zf.open(zf.infolist()[self.member]))
            for index in self.inner:
                zf = stack.enter_context(zipfile.ZipFile(f))
                f = stack.enter_context(zf.open(zf.infolist()[index]))
            yield f  # type: ignore[misc]


def _open_regular(path: str) -> BinaryIO:
    """``path`` opened for reading only if it is a regular file when opened (hostile10: a FIFO put
    in a file's place after discovery blocked ``open(2)`` for ever, and the first pass of
    ``vindr anonymize`` runs in the driver, out of reach of ``--task-timeout``). Opened without
    blocking, checked on the descriptor (no race with a stat before), then made blocking again."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile()
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_within(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


def printable(rel: str) -> str:
    """A relative path as valid UTF-8 text for tables: bytes that are not UTF-8 (a file
    name in a legacy encoding) are written as \\xNN escapes, the same way every time.
    Text is left as it is (applying it twice changes nothing); two names that give one
    text (``caf\\xe9`` typed out, ``café`` in latin-1) are told apart by discovery (``#2``)."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def enclosing_output(path: Path) -> Path | None:
    """The nearest folder above ``path`` that is a vindr output (has a ``.vindr`` state
    folder), if any: writing there would mix one stage's files into another's tree."""
    for parent in path.resolve().parents:
        if (parent / ".vindr").is_dir():
            return parent
    return None
