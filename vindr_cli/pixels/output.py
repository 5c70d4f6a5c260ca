"""Where decoded images go and how they are written (PNG 8/16-bit or .npy).

Two naming modes. A vindr anonymize OUTPUT (decode's manifest mode) names its outputs
after the manifest's output paths, whose parts are keyed substitutes. Any other INPUT — a
raw export, even one whose images say PatientIdentityRemoved YES (a header value a gateway
may set: not proof; red team 6), and anything decoded with ``--allow-identified`` — must
never put its paths, which may hold names or IDs, into an output name or a table: each input
is named by ``keyed_name`` (HMAC-SHA256 of its relative path under a random salt made for
this OUTPUT and kept in ``OUTPUT/.vindr/decode.salt``, mode 0600, so a re-run finds the same
names); so is a stray file of an anonymize OUTPUT.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import struct
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
FORMATS = ("png", "npy")


def base_name(rel: str) -> str:
    """The output name an input's relative path asks for, without frame tail or extension:
    'a/b.dcm' -> 'a/b'; archive members 'x.zip!c/d.dcm' -> 'x.zip/c/d'. A part that is
    empty, '.' or '..' (a file named 'a!..!b') becomes '_', so the name stays inside OUTPUT."""
    parts = [p if p not in ("", ".", "..") else "_" for p in rel.replace("!", "/").split("/")]
    last = PurePosixPath(parts[-1])
    if last.suffix.lower() in DICOM_SUFFIXES and last.stem:
        parts[-1] = last.stem
    return "/".join(parts)


def stem_name(stem: str, frame: int | None, fmt: str) -> str:
    """The file name of one frame: 'a/b' -> 'a/b.png', frames 'a/b_f0001.png', ..."""
    tail = f"_f{frame + 1:04d}" if frame is not None else ""
    return f"{stem}{tail}.{fmt}"


def image_name(rel: str, frame: int | None, fmt: str) -> str:
    """Output path named after the input's relative path when nothing else claims it:
    'a/b.dcm' -> 'a/b.png'; archive members 'x.zip!c/d.dcm' -> 'x.zip/c/d.png'; frames
    get '_f0001'. The names a run writes come from :class:`OutputNames`."""
    return stem_name(base_name(rel), frame, fmt)


_FRAME = re.compile(r"^(.*)_f[0-9]{4,}$")


class OutputNames:
    """Unique output names for a run's inputs, decided in the order asked (discovery
    order: the same on every run, whatever the number of workers).

    An input asks for its :func:`base_name` (a *stem*); its files are ``stem.fmt`` or, for
    a multi-frame image, ``stem_f0001.fmt``, ... A stem is free when none of those can be
    another input's file, and none is a folder of another input's files. Otherwise the
    stem gets ``~2``, ``~3``, ... ('img.dcm' -> 'img', then 'img.dicom' -> 'img~2', then
    'img' -> 'img~3'). When a folder on the way is another input's file ('x' -> 'x.png',
    then 'x.png/y.dcm'), that folder gets the suffix instead ('x.png~2/y'), the same for
    every input under it. Names already on record (a resumed run) are reserved first.
    Case-only differences are not collisions here (a case-insensitive file system for
    OUTPUT is not supported).
    """

    def __init__(self, fmt: str):
        self.ext = "." + fmt
        self.stems: set[str] = set()
        self.frame_bases: set[str] = set()       # B for every stem 'B_fNNNN'
        self.dirs: set[str] = set()              # every folder holding an output
        self.dir_stems: set[str] = set()         # folders that look like files: 'D' for 'D.fmt', 'B' for 'B_fNNNN.fmt'
        self.alias: dict[str, str] = {}          # folder -> the name it got

    def _stem_taken(self, stem: str) -> bool:
        if stem in self.stems or stem in self.frame_bases:
            return True
        m = _FRAME.match(stem)
        return bool(m and m.group(1) in self.stems)

    def _is_file(self, path: str) -> bool:
        """Could ``path`` be an output file of a stem given out?"""
        return path.endswith(self.ext) and self._stem_taken(path[: -len(self.ext)])

    def free(self, stem: str) -> bool:
        if self._stem_taken(stem) or stem in self.dir_stems:
            return False
        parts = stem.split("/")
        return not any(self._is_file("/".join(parts[:i])) for i in range(1, len(parts)))

    def _add(self, stem: str) -> None:
        self.stems.add(stem)
        m = _FRAME.match(stem)
        if m:
            self.frame_bases.add(m.group(1))
        parts = stem.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            self.dirs.add(d)
            if d.endswith(self.ext):
                b = d[: -len(self.ext)]
                self.dir_stems.add(b)
                m = _FRAME.match(b)
                if m:
                    self.dir_stems.add(m.group(1))

    def reserve(self, stem: str) -> bool:
        """Keep a stem already on record; False (nothing kept) when it is not free."""
        if not self.free(stem):
            return False
        self._add(stem)
        return True

    def assign(self, stem: str) -> str:
        """The unique stem for an input asking for ``stem``."""
        parts = stem.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d in self.alias:
                parts[i - 1] = self.alias[d]
                continue
            if self._is_file(d):
                n = 2
                while self._is_file(f"{d}~{n}") or f"{d}~{n}" in self.dirs:
                    n += 1
                self.alias[d] = parts[i - 1] = f"{parts[i - 1]}~{n}"
        stem = "/".join(parts)
        cand, n = stem, 2
        while not self.free(cand):
            cand, n = f"{stem}~{n}", n + 1
        self._add(cand)
        return cand

    def stem_of(self, outputs: list[str], frames: bool) -> str | None:
        """The stem recorded outputs were named from (None: not one this naming makes)."""
        if not outputs or not all(o.endswith(self.ext) for o in outputs):
            return None
        first = outputs[0][: -len(self.ext)]
        if frames:
            m = _FRAME.match(first)
            if m is None:
                return None
            first = m.group(1)
        return first


SALT_FILE = "decode.salt"


def keyed_name(salt: bytes, rel: str) -> str:
    """32 hex digits standing for an input path (the path itself is never written)."""
    return hmac.new(salt, rel.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:32]


def new_salt() -> bytes:
    return secrets.token_bytes(32)


def read_salt(path: Path) -> bytes:
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def write_salt(path: Path, salt: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(salt.hex() + "\n")
def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


PNG_ZLIB_LEVEL = 1      # zlib level and strategy of the PNG writer (bench/README.md, decode floor)
PNG_ZLIB_STRATEGY = zlib.Z_RLE


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG of a grey (rows, cols) or RGB (rows, cols, 3) uint8/uint16 image: no interlace,
    filter type 2 (Up) on every row but the first (None), zlib level 1 with the run-length
    strategy. On real radiographs this is 2.6x faster than Pillow's level-1 writer (which
    tries every filter on every row) and 12 % smaller (bench/README.md, decode floor);
    PNG is lossless, so the pixels are the same whatever the writer."""
    if image.dtype not in (np.uint8, np.uint16) or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] != 3):
        raise ValueError("PNG images are (rows, cols) or (rows, cols, 3) of uint8 or uint16")
    h, w = image.shape[:2]
    depth = 8 * image.dtype.itemsize
    colour = 2 if image.ndim == 3 else 0
    data = np.ascontiguousarray(image, dtype=">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(h, -1)
    rows = np.empty((h, 1 + data.shape[1]), dtype=np.uint8)
    rows[0, 0] = 0
    rows[0, 1:] = data[0]
    rows[1:, 0] = 2
    np.subtract(data[1:], data[:-1], out=rows[1:, 1:])      # Up: byte minus the byte above, mod 256
    z = zlib.compressobj(PNG_ZLIB_LEVEL, zlib.DEFLATED, 15, 9, PNG_ZLIB_STRATEGY)
    idat = z.compress(rows) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def write_image(path: Path, image: np.ndarray, fmt: str) -> None:
    """Write ``image`` to ``path`` (a temporary name): opened with ``O_NOFOLLOW``, so a link
    planted at that name is refused (OSError), never written through."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    with os.fdopen(fd, "wb") as f:
        if fmt == "npy":
            np.save(f, image)
        else:
            f.write(png_bytes(image))
