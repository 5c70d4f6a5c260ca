"""A file's own names and IDs spelled as character codes in its pixel values (red team 10, 11).

Pixel data that no mode rewrites (``--burned-in off``: native and Float Pixel Data are copied
byte for byte; the text finder reads native values as an image, not as codes) can hold the
patient's name one character a sample: "PHAM THI KIEU" as 16-bit values 80, 72, 65, 77, ...,
or as the bytes of Float Pixel Data. A search of pixel values for any letters matches real
backgrounds, and so do 4- and 5-character name parts not the file's own (in MR, DX and US
pixels); the file's OWN terms, 6 characters or more, exactly, as whole runs of codes, matched
no real image that pydicom, pydicom-data, deid-data and sample_dicoms hold, as stored or
decoded, nor did 600 synthetic names, IDs and dates (bench/README.md "g1nolink";
bench/g1nolink_pixel_codes.py).

:func:`terms_of`: the file's names and IDs (:func:`values_of`: every PN, the patient's IDs and
birth date, as written), each with its separators as one space and without them, and every
part of a name, kept when ``MIN_TERM`` characters or more and not a ramp. :func:`needles`: each
term's code points in the layouts :func:`layouts_of` gives the written pixel element (its bytes,
and its samples: 16/32-bit, float32/float64, in its byte order). :func:`in_output`: whether one
lies in the written file's pixel data. What is found is never returned or logged: yes or no.
"""
from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import BinaryIO, Iterable

MIN_TERM = 6      # 4- and 5-character name parts matched real MR, DX and US pixels (bench/README g1nolink)
# the reason of a file whose own name or ID its pixel values spell (deid.task: failed, not written)
FOUND = ("a name, ID or date of the file's own header is spelled as character codes in its pixel values "
         "(one character a sample or byte); not written")
CHUNK = 1 << 22
_SPLIT = re.compile(r"[\^=\s]+")


# the identifiers sought besides every person name (PN): IDs, numbers, the birth date as written
_ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "MedicalRecordLocator",
                "PatientTelephoneNumbers", "PatientBirthDate", "IssuerOfPatientID", "PersonTelephoneNumbers")


def values_of(ds, depth: int = 0) -> list[str]:
    """The file's names (every PN, at any depth) and IDs (``_ID_KEYWORDS``) as written in its
    ORIGINAL header (PHI: memory only). Not the search forms engine.person_values adds (a date's
    other orders, a name's parts in every order): a name written into pixels is written as a name."""
    from pydicom.datadict import keyword_for_tag

    out: list[str] = []
    for elem in ds:
        try:
            vr = elem.VR
            if vr == "SQ":
                if depth < 64:
                    for item in elem.value or []:
                        out.extend(values_of(item, depth + 1))
                continue
            if vr == "PN" or keyword_for_tag(elem.tag) in _ID_KEYWORDS:
                value = elem.value
                values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
                out.extend(str(v) for v in values if v not in (None, ""))
        except Exception:           # an element pydicom cannot convert: the engine fails the file
            continue
    return out


def terms_of(values: Iterable[str]) -> list[str]:
    """The exact strings sought (PHI: memory only) from a file's person values: none that a
    ramp of values spells (its codes one step apart, "1234", "ABCD", or all one, "0000": a
    gradient or a flat run is no name), and none holding another (its needles hold the other's)."""
    out: set[str] = set()
    for v in values:
        if not isinstance(v, str):
            continue
        parts = [p for p in _SPLIT.split(v.strip()) if p]
        for t in (" ".join(parts), "".join(parts), *parts):
            if len(t) >= MIN_TERM and not _ramp(t):
                out.add(t)
    short = sorted(out, key=len)
    kept: list[str] = []
    for t in short:
        if not any(k in t for k in kept):
            kept.append(t)
    return sorted(kept)


def _ramp(t: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(t, t[1:])}
    return len(steps) == 1


LAYOUTS = ("u8", "u16le", "u16be", "u32le", "u32be", "f32le", "f32be", "f64le", "f64be")
_PACK = {"u16le": "<{}H", "u16be": ">{}H", "u32le": "<{}I", "u32be": ">{}I", "f32le": "<{}f", "f32be": ">{}f",
         "f64le": "<{}d", "f64be": ">{}d"}


def needles(terms: Iterable[str], layouts: Iterable[str] = LAYOUTS) -> list[bytes]:
    """Each term as a run of samples in each of ``layouts`` (``u8``: one byte a character,
    when all fit; the others one sample a character, in that width and byte order)."""
    out: set[bytes] = set()
    for t in terms:
        codes = [ord(c) for c in t]
        if max(codes) > 0xFFFF:
            continue
        for layout in layouts:
            if layout == "u8":
                if max(codes) < 0x100:
                    out.add(bytes(codes))
            else:
                out.add(struct.pack(_PACK[layout].format(len(codes)), *codes))
    return sorted(out)


def layouts_of(ds, tag: int) -> tuple[str, ...]:
    """The layouts the pixel data element ``tag`` of ``ds`` (the output's header) is searched
    in: its bytes (``u8``) and, wider, its samples (Float Pixel Data float32, Double float64,
    Pixel Data by Bits Allocated), in its transfer syntax's byte order."""
    order = "le" if ds.file_meta.TransferSyntaxUID.is_little_endian else "be"
    if tag == 0x7FE00008:
        return ("u8", "f32" + order)
    if tag == 0x7FE00009:
        return ("u8", "f64" + order)
    bits = ds.get("BitsAllocated")
    wide = {16: "u16", 32: "u32"}.get(bits if isinstance(bits, int) else 0)
    return ("u8", wide + order) if wide else ("u8",)


def found(data: bytes | bytearray | memoryview, seek: list[bytes]) -> bool:
    """Whether one of ``seek`` (:func:`needles`) lies in ``data`` (one pass: an alternation)."""
    if not seek:
        return False
    view = bytes(data) if not isinstance(data, bytes) else data
    return _pattern(tuple(seek)).search(view) is not None


def _pattern(seek: tuple[bytes, ...]) -> "re.Pattern[bytes]":
    return re.compile(b"|".join(re.escape(n) for n in sorted(seek, key=len, reverse=True)))


def found_in_stream(f: BinaryIO, start: int, seek: list[bytes]) -> bool:
    """:func:`found` over ``f`` from ``start`` to its end, a chunk at a time (overlapping by the
    longest needle, so none is cut in two)."""
    if not seek:
        return False
    overlap = max(map(len, seek)) - 1
    f.seek(start)
    tail = b""
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            return False
        buf = tail + chunk
        if found(buf, seek):
            return True
        tail = buf[-overlap:] if overlap else b""


def in_output(path: Path, terms: list[str]) -> bool:
    """Whether the pixel data of the written file ``path`` (native or Float / Double Float Pixel
    Data: values as they are stored; a compressed syntax is not searched) holds one of ``terms``
    (:func:`terms_of`) in its :func:`layouts_of`."""
    from vindr_cli.dicomio.header import read_header

    if not terms:
        return False
    with open(path, "rb") as f:
        header = read_header(f, os.fstat(f.fileno()).st_size, structure=False)
        ds = header.ds
        if header.pixel_offset is None or ds.file_meta.TransferSyntaxUID.is_compressed:
            return False
        tag = next((t for t in (0x7FE00010, 0x7FE00008, 0x7FE00009) if t in ds), 0x7FE00010)
        return found_in_stream(f, header.pixel_offset, needles(terms, layouts_of(ds, tag)))
