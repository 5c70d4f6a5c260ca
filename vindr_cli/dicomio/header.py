"""Read a Part 10 file's header (everything before the pixel data) and classify bad input.

Reasons are fixed sentences: they never carry a value from the file or its path, since
both may hold PHI.
"""
from __future__ import annotations

import io
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom.charset import python_encoding
from pydicom.dataset import FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from vindr_cli.dicomio.structure import Malformed, check_structure, check_values
from vindr_cli.dicomio.limits import DEFAULT_MAX_INFLATE, INFLATE_REASON, ZIP_REASON, inflated_size_exceeds
from vindr_cli.errors import InternalError

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
MISSING_SOP_CLASS = "missing SOPClassUID (a data set without it cannot be identified or written)"
MISSING_SOP_INSTANCE = "missing SOPInstanceUID"
DEFLATE_DAMAGED = "damaged deflated data set (it cannot be inflated)"


class BadInput(InternalError):
    """Input that cannot be processed. ``status`` is 'not-dicom' or 'failed'; ``reason`` has no PHI.

    A per-file outcome, not an error of the run: every worker (anonymize, decode, info,
    audit, validate) catches it and records ``status``/``reason`` in its table, and the batch
    goes on. It is in the hierarchy, as an :class:`~vindr_cli.errors.InternalError` (exit 3),
    because one that reaches ``cli.main`` escaped its per-file handler — a bug, not a bad
    request — and since ``reason`` is one of a fixed set of PHI-free sentences, ``main`` may
    print it instead of withholding it like an unknown exception's text.
    """

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Header:
    ds: FileDataset
    pixel_offset: int | None      # file offset of the pixel data element, None if absent
    deflated: bool


def looks_like_part10(f: BinaryIO) -> bool:
    f.seek(128)
    ok = f.read(4) == b"DICM"
    f.seek(0)
    return ok


def check_charset(ds) -> None:
    value = ds.get("SpecificCharacterSet")
    if value is None:
        return
    values = list(value) if isinstance(value, (list, pydicom.multival.MultiValue)) else [value]
    for v in values:
        term = (v or "").strip()
        if term and term not in python_encoding:
            raise BadInput("failed", "unknown SpecificCharacterSet defined term (cannot decode text safely)")


def _check_inflate(f: BinaryIO, max_inflate: int) -> None:
    """Refuse a deflated data set that inflates past ``max_inflate`` bytes, counting it
    incrementally, before pydicom inflates it whole (``dicomio.limits``)."""
    f.seek(132)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = pydicom.filereader._read_file_meta_info(f)
        start = f.tell()
    except Exception:
        f.seek(0)
        return                      # the full read below classifies a bad file meta
    try:
        too_big = meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian and inflated_size_exceeds(f, start, max_inflate)
    except zlib.error:
        raise BadInput("failed", DEFLATE_DAMAGED) from None
    if too_big:
        raise BadInput("failed", INFLATE_REASON)
    f.seek(0)


def read_header(f: BinaryIO, size: int, max_inflate: int = DEFAULT_MAX_INFLATE, structure: bool = True) -> Header:
    """Parse the header from an open binary file positioned at 0. ``max_inflate``: the most
    bytes a deflated data set may inflate to, and a .zip member may declare. ``structure``:
    also walk the raw element headers and decode every value (``dicomio.structure``); a
    damaged one is a ``failed`` BadInput with a fixed reason."""
    if size == 0:
        raise BadInput("not-dicom", "empty file (0 bytes)")
    if isinstance(f, zipfile.ZipExtFile) and size > max_inflate:
        raise BadInput("failed", ZIP_REASON)
    if size < 132 or not looks_like_part10(f):
        # A raw data set without preamble/file meta: DICOM-ish, but not a Part 10 file.
        if _raw_dataset(f):
            raise BadInput("failed", "no Part 10 file meta information (no 'DICM' preamble); re-export as Part 10")
        raise BadInput("not-dicom", "not a DICOM file (no 'DICM' marker at byte 128)")
    _check_inflate(f, max_inflate)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            offset = f.tell()
    except InvalidDicomError:
        raise BadInput("failed", "invalid DICOM file meta information") from None
    except Exception as exc:  # pydicom raises many types on malformed data; never echo them
        # the structure walk's fixed reason first (hostile10): pydicom's error depends on the
        # machine (a declared length of 4 GB is a MemoryError under an address-space limit,
        # a short read without one; sequences nested 200 deep a RecursionError, 100 deep the
        # walk's REASON_DEEP), the walk's reason does not
        if structure:
            try:
                check_structure(f, size)
            except Malformed as why:
                raise BadInput("failed", str(why)) from None
            except Exception:
                pass
        if isinstance(exc, (EOFError, OSError, struct.error)):
            raise BadInput("failed", "truncated or unreadable header") from None
        raise BadInput("failed", f"unreadable header ({type(exc).__name__})") from None
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise BadInput("failed", "file meta information has no TransferSyntaxUID")
    try:
        known = meta.TransferSyntaxUID.is_transfer_syntax
    except Exception:
        known = False
    if not known:      # e.g. a damaged UID: how the data set and pixel data are encoded is unknown
        raise BadInput("failed", "unknown transfer syntax in the file meta information")
    deflated = meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    if not deflated:
        _check_encoding(f, meta)
    try:
        if structure:
            check_structure(f, size)       # dicomio.structure: nothing that swallowed elements passes
    except Malformed as exc:
        raise BadInput("failed", str(exc)) from None
    if meta.get("MediaStorageSOPClassUID") != DICOMDIR_CLASS:
        if "SOPClassUID" not in ds:
            raise BadInput("failed", MISSING_SOP_CLASS)
        if "SOPInstanceUID" not in ds:
            raise BadInput("failed", MISSING_SOP_INSTANCE)
    try:
        check_charset(ds)
        if structure:
            check_values(ds)
    except Malformed as exc:
        raise BadInput("failed", str(exc)) from None
    f.seek(offset)
    pixel_offset = None if deflated or offset >= size else offset
    if deflated and _has_pixel_tag(ds):
        pixel_offset = None
    return Header(ds, pixel_offset, deflated)


_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
        b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
        b"UR", b"US", b"UT", b"UV"}


def _check_encoding(f: BinaryIO, meta) -> None:
    """Refuse a file whose data set is not encoded the way its file meta says (pydicom
    quietly reads such files; copying their pixel data by the meta's rules would not)."""
    try:
        start = 132 + 12 + int(meta.FileMetaInformationGroupLength)
    except (AttributeError, TypeError, ValueError):
        return
    here = f.tell()
    f.seek(start)
    head = f.read(6)
    f.seek(here)
    if len(head) < 6:
        return
    explicit = head[4:6] in _VRS
    if explicit == meta.TransferSyntaxUID.is_implicit_VR:
        raise BadInput("failed", "the transfer syntax in the file meta does not match how the data set is encoded")


def _has_pixel_tag(ds) -> bool:
    return any(t in ds for t in (0x7FE00010, 0x7FE00008, 0x7FE00009))


def _raw_dataset(f: BinaryIO) -> bool:
    """True when the bytes parse as a bare data set with SOP identity (no file meta)."""
    f.seek(0)
    head = f.read(64 * 1024)
    f.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(head), force=True, stop_before_pixels=True)
        return "SOPClassUID" in ds and "SOPInstanceUID" in ds
    except Exception:
        return False
