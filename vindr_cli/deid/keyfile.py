"""The secret key: created on first use with mode 0600, read only, never written anywhere else.

The key never travels: the driver and each worker read it from its path (``read_key``),
with the same checks; a worker config carries only the path and the expected fingerprint.
A new key is made in memory (``new_key``) and written (``write_key``) only once the
request is known to run, so a refused request leaves no unused key file behind."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from vindr_cli.errors import RequestError

KEY_BYTES = 32
ENV_VAR = "VINDR_KEY"


class KeyError_(RequestError):
    """A key file that must not be used (exit 2; the message has no key material)."""


def default_key_path() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "vindr" / "vindr.key"


def new_key() -> bytes:
    """A new random key, in memory only (see ``write_key``)."""
    return secrets.token_bytes(KEY_BYTES)


def write_key(path: Path, key: bytes) -> None:
    """Write ``key`` to a new file with mode 0600 (its folder 0700 if we create it); never
    overwrites."""
    fd = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
    except OSError as exc:       # the machine's fault (permissions, full or read-only disk): exit 2, named
        if fd is not None:       # never leave a partial key behind
            path.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError) and fd is None and not path.exists():
            what = "a file stands where its folder should be"      # mkdir through a regular file
        else:
            what = os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__
        raise KeyError_(f"cannot create the key file {path}: {what}; choose another place with --key "
                        f"or ${ENV_VAR}") from None


def create_key(path: Path) -> None:
    """Write a new random key with mode 0600 (its folder 0700 if we create it)."""
    write_key(path, new_key())


def load_key(path: Path, *, create: bool = True) -> tuple[bytes, bool]:
    """Return (key bytes, created). Refuse a key readable or writable by group or others."""
    created = False
    if not path.exists():
        if not create:
            raise KeyError_(f"key file {path} does not exist")
        create_key(path)
        created = True
    return read_key(path), created


def read_key(path: Path) -> bytes:
    """The key in ``path``; refused if missing, not a regular file, readable or writable by
    group or others, or not a vindr key."""
    if not path.exists():
        raise KeyError_(f"key file {path} does not exist")
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise KeyError_(f"key file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyError_(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 600 {path}"
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyError_(f"key file {path} is not a vindr key (expected {KEY_BYTES * 2} hex digits)") from None
    if len(key) < 16:
        raise KeyError_(f"key file {path} is too short (expected {KEY_BYTES * 2} hex digits)")
    # "00"*32, "cd"*32: a guess the keyed fingerprint confirms offline. A heuristic against
    # hand-made keys only (bytes 00..1f pass it); the key vindr makes is secrets.token_bytes
    if len(set(key)) < len(key) // 2:
        raise KeyError_(f"key file {path} is not a random key (too few different bytes); let vindr make one: "
                        f"give --key a path that does not exist yet")
    return key
