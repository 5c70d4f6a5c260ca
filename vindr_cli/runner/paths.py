"""The one path guard for every file a stage puts under OUTPUT.

Every final name the runner writes, replaces or removes goes through here
(:meth:`vindr_cli.runner.stage.Run.rename` / ``remove`` / ``is_done``):

* the name must be a plain relative path: not empty, not absolute, no ``..``, ``.`` or
  empty part, no NUL (:func:`check_rel`);
* every folder on the way is opened relative to the previous one with ``O_NOFOLLOW``
  (created when missing), so a symbolic link planted anywhere under OUTPUT — a folder, or
  a link where a folder should be — is never followed: the input becomes ``failed`` with
  :data:`SYMLINK` instead;
* the file itself is renamed into the folder's descriptor (``rename`` never follows a
  link at the final name: a link planted there is replaced, its target left alone).

A violation raises :class:`PathViolation` with a fixed reason; the runner turns it into a
``failed`` row for that input and writes nothing elsewhere. OUTPUT itself is resolved by
the caller once, up front (the user chose it).
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from vindr_cli.errors import InternalError, RequestError

OUTSIDE = "output name is not a plain relative path inside OUTPUT (absolute, empty or '..' part); not written"
SYMLINK = "a symbolic link or a file lies where a folder of the output path should be; not written"
FOLDER_AT_NAME = "a folder lies at the output's name; not written"
TOO_LONG = "output name too long for the file system; not written"
STATE_LINK = ("OUTPUT/.vindr is not a real folder (a symbolic link or a file): remove it, or use a new "
              "OUTPUT folder")
OUTPUT_FILE = "OUTPUT is a file, not a folder: name a folder (a missing one is made)"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class PathViolation(InternalError):
    """A final name that would leave OUTPUT or pass through a link; ``reason`` is fixed.
    Caught by the runner (a ``failed`` row); an ``InternalError`` only so that one
    escaping its handler exits 3."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_rel(rel: str) -> list[str]:
    """The parts of a relative output name, or :class:`PathViolation` (:data:`OUTSIDE`)."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or rel.startswith("/"):
        raise PathViolation(OUTSIDE)
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise PathViolation(OUTSIDE)
    return parts


def _open_dirs(output: Path, parts: list[str], create: bool) -> int:
    """A descriptor of OUTPUT/parts..., each folder opened without following links
    (made, mode 0777 & umask, when missing and ``create``). FileNotFoundError when a
    folder is missing and not ``create``."""
    fd = os.open(output, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for part in parts:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as exc:
                    _refuse(exc)
                    raise
                nfd = _open_one(part, fd)
            except OSError as exc:
                _refuse(exc)
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse(exc: OSError) -> None:
    """PathViolation for the OS errors that come from the name itself (a link, a file
    where a folder should be, a name too long); other errors (space, I/O) go on up."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        raise PathViolation(SYMLINK) from None
    if exc.errno == errno.ENAMETOOLONG:
        raise PathViolation(TOO_LONG) from None


def _open_one(part: str, fd: int) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        _refuse(exc)
        raise


def place(output: Path, tmp: str | Path, rel: str) -> None:
    """Rename ``tmp`` (a file under OUTPUT/.vindr/tmp) to OUTPUT/``rel`` through real
    folders only; :class:`PathViolation` when ``rel`` is not allowed."""
    parts = check_rel(rel)
    fd = _open_dirs(output, parts[:-1], create=True)
    try:
        try:
            st = os.lstat(parts[-1], dir_fd=fd)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            _refuse(exc)
            raise
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise PathViolation(FOLDER_AT_NAME)
        try:
            os.rename(tmp, parts[-1], dst_dir_fd=fd)
        except OSError as exc:
            _refuse(exc)
            raise
    finally:
        os.close(fd)


def remove(output: Path, rel: str) -> None:
    """Remove OUTPUT/``rel`` if it is there (a link at that name is removed, never its
    target; nothing is removed through a linked folder)."""
    try:
        parts = check_rel(rel)
        fd = _open_dirs(output, parts[:-1], create=False)
    except (PathViolation, FileNotFoundError):
        return
    try:
        os.unlink(parts[-1], dir_fd=fd)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        pass
    finally:
        os.close(fd)


def prune_empty(output: Path, rel: str) -> None:
    """Remove the folders of OUTPUT/``rel`` that are left empty, deepest first, never OUTPUT
    itself (real folders only: a link at a folder's name is not followed nor removed)."""
    try:
        parts = check_rel(rel)
    except PathViolation:
        return
    for depth in range(len(parts) - 1, 0, -1):
        try:
            fd = _open_dirs(output, parts[:depth - 1], create=False)
        except (PathViolation, OSError):
            return
        try:
            os.rmdir(parts[depth - 1], dir_fd=fd)
        except OSError:               # not empty, a link, gone: the folders above stay too
            return
        finally:
            os.close(fd)


def is_placed(output: Path, rel: str | None) -> bool:
    """True when OUTPUT/``rel`` is a regular file reached through real folders only."""
    if not rel:
        return False
    try:
        parts = check_rel(rel)
        fd = _open_dirs(output, parts[:-1], create=False)
    except (PathViolation, OSError):
        return False
    try:
        return stat.S_ISREG(os.lstat(parts[-1], dir_fd=fd).st_mode)
    except OSError:
        return False
    finally:
        os.close(fd)


def real_dirs(output: Path, rel: str) -> Path:
    """Make OUTPUT/``rel`` (a folder) through real folders only, and return it."""
    fd = _open_dirs(output, check_rel(rel), create=True)
    os.close(fd)
    return output / rel


def check_state_dir(output: Path, state_dir: str) -> None:
    """Refuse (exit 2) an OUTPUT whose state folder is a link or not a folder: settings,
    journals and temp files would be written through it."""
    try:
        st = os.lstat(output / state_dir)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        if not Path(output).is_dir():       # OUTPUT itself (new-user walk 4: the message named .vindr)
            raise RequestError(OUTPUT_FILE) from None
        raise RequestError(STATE_LINK) from None
    if not stat.S_ISDIR(st.st_mode):
        raise RequestError(STATE_LINK)


__all__ = ["FOLDER_AT_NAME", "OUTPUT_FILE", "OUTSIDE", "SYMLINK", "TOO_LONG", "PathViolation", "check_rel", "check_state_dir", "is_placed", "place", "prune_empty",
           "real_dirs", "remove"]
