"""Seeded mutations of real DICOM files, for tests/test_fuzz.py and bench/fuzz_bench.py.

Seeds: pydicom's bundled test files (``get_testdata_file(name, download=False)``: those
shipped in the wheel) and CR images with planted PHI (``conftest.make_cr``). Each mutant gets
its own SOP Instance UID first (so that mutants are not all duplicates of their seed), then
ONE mutation of its bytes: bit flips, a corrupted VR, an element length off by +1000, a
truncation, two adjacent elements swapped, random bytes in the header."""
from __future__ import annotations

import io
import random
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import RLELossless

PYDICOM_SEEDS = ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "image_dfl.dcm",
                 "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "SC_rgb_rle.dcm", "rtplan.dcm")
KINDS = ("bitflip", "vr", "length", "truncate", "swap", "random-bytes")
VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
       b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
       b"UR", b"US", b"UT", b"UV"]
LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"UV"}


@dataclass
class Seed:
    name: str
    data: bytes
    phi: tuple[str, ...]       # planted values that must never reach an output (outside pixel data)


@dataclass
class Element:
    start: int
    vr_pos: int
    len_pos: int
    len_size: int
    end: int | None            # None: undefined length (walk stops)


def seeds(work: Path, make_cr, phi: list[str]) -> list[Seed]:
    from pydicom.data import get_testdata_file

    out = []
    for name in PYDICOM_SEEDS:
        p = get_testdata_file(name, download=False)
        if p:
            out.append(Seed(name, Path(p).read_bytes(), ()))
    a = make_cr(work / "phi_explicit.dcm", rows=32, cols=24)
    b = make_cr(work / "phi_rle.dcm", ts=RLELossless, rows=32, cols=24, seed=1)
    out += [Seed("phi_explicit", a.read_bytes(), tuple(phi)), Seed("phi_rle", b.read_bytes(), tuple(phi))]
    return out


def _with_uid(data: bytes, n: int) -> bytes:
    """The seed with SOP Instance UID (data set and file meta) made unique for mutant ``n``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data))
            uid = f"1.2.826.0.1.3680043.8.498.99.{n}"
            ds.SOPInstanceUID = uid
            ds.file_meta.MediaStorageSOPInstanceUID = uid
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()
    except Exception:
        return data


def walk(data: bytes) -> list[Element]:
    """Top-level elements of an explicit VR little endian data set (best effort; [] otherwise)."""
    if data[128:132] != b"DICM" or len(data) < 144:
        return []
    try:
        (glen,) = struct.unpack("<L", data[140:144])
    except struct.error:
        return []
    pos, out = 144 + glen, []
    while pos + 8 <= len(data) and len(out) < 400:
        vr = data[pos + 4:pos + 6]
        if vr not in VRS:
            return out
        if vr in LONG:
            if pos + 12 > len(data):
                return out
            (n,) = struct.unpack("<L", data[pos + 8:pos + 12])
            el = Element(pos, pos + 4, pos + 8, 4, None if n == 0xFFFFFFFF else pos + 12 + n)
        else:
            (n,) = struct.unpack("<H", data[pos + 6:pos + 8])
            el = Element(pos, pos + 4, pos + 6, 2, pos + 8 + n)
        out.append(el)
        if el.end is None or data[pos:pos + 4] == b"\xe0\x7f\x10\x00":
            return out
        pos = el.end
    return out


def mutate(data: bytes, rng: random.Random, kind: str) -> bytes:
    b = bytearray(data)
    els = walk(data)
    header_end = els[-1].start if els else min(len(b), 2048)
    if kind in ("vr", "length", "swap") and len(els) < 3:
        kind = "bitflip"
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(0, max(1, header_end))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "vr":
        e = rng.choice(els[:-1] or els)
        b[e.vr_pos:e.vr_pos + 2] = rng.choice(VRS) if rng.random() < 0.7 else bytes(rng.randrange(256) for _ in range(2))
    elif kind == "length":
        e = rng.choice(els)
        fmt = "<H" if e.len_size == 2 else "<L"
        (n,) = struct.unpack(fmt, bytes(b[e.len_pos:e.len_pos + e.len_size]))
        n = (n + 1000) % (1 << (8 * e.len_size))
        b[e.len_pos:e.len_pos + e.len_size] = struct.pack(fmt, n)
    elif kind == "truncate":
        return bytes(b[:rng.randrange(0, len(b))])
    elif kind == "swap":
        defined = [i for i in range(len(els) - 1) if els[i].end is not None and els[i + 1].end is not None]
        if not defined:
            return mutate(data, rng, "bitflip")
        i = rng.choice(defined)
        x, y = els[i], els[i + 1]
        b[x.start:y.end] = data[y.start:y.end] + data[x.start:x.end]
    elif kind == "random-bytes":
        lo = 132 if header_end > 140 else 0
        for _ in range(rng.randint(1, 32)):
            b[rng.randrange(lo, max(lo + 1, header_end))] = rng.randrange(256)
    return bytes(b)


def campaign(seed_list: list[Seed], n: int, seed: int, folder: Path) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Write ``n`` mutants into ``folder``; returns {relative path: (seed name, kind, planted PHI)}.
    Seeds with planted PHI get half of the mutants."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    phi_seeds = [s for s in seed_list if s.phi]
    other = [s for s in seed_list if not s.phi]
    out = {}
    for i in range(n):
        s = rng.choice(phi_seeds if (i % 2 == 0 and phi_seeds) or not other else other)
        kind = KINDS[i % len(KINDS)]
        data = mutate(_with_uid(s.data, i), rng, kind)
        rel = f"m{i:05d}_{kind}.dcm"
        (folder / rel).write_bytes(data)
        out[rel] = (s.name, kind, s.phi)
    return out


def phi_needles(values: tuple[str, ...]) -> list[bytes]:
    """The byte forms a planted value could take in an output: UTF-8, upper-cased, and each
    name component of a person name."""
    out = set()
    for v in values:
        for form in {v, v.upper()}:
            out.add(form.encode("utf-8"))
    return sorted(out)
