"""The awkward files a real export contains: truncated and empty files,
non-DICOM clutter, a zip archive and a DICOMDIR-based media sub-tree."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet

from vindr_cli.synth.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
# Compound Document (OLE2) magic: what a Windows Thumbs.db starts with.
_OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")


def write_truncated(path: Path, data: bytes) -> int:
    """Write a valid file cut in the middle of its pixel data; returns the size."""
    start = data.rfind(PIXEL_DATA_TAG)
    if start < 0:
        raise ValueError("no Pixel Data element to cut")
    cut = start + (len(data) - start) // 2
    path.write_bytes(data[:cut])
    return cut


def write_zero_byte(path: Path) -> None:
    path.write_bytes(b"")


def write_thumbs_db(path: Path) -> None:
    path.write_bytes(_OLE_MAGIC + bytes(504) + b"Thumbs.db synthetic placeholder\n")


def write_zip(path: Path, members: list[tuple[str, bytes]], date_time: tuple[int, ...]) -> None:
    """Deterministic zip: fixed timestamps and attributes, stored (no compressor version drift)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)


def write_dicomdir(root: Path, datasets: list[Dataset], fileset_uid: str, fileset_id: str) -> list[Path]:
    """Write a DICOMDIR media tree with the instances as IMAGES/IM000001...

    pydicom's FileSet writes its own PTxxxxxx/STxxxxxx/... layout; the records
    are then re-pointed at IMAGES/ and the DICOMDIR re-encoded (offsets included).
    """
    fileset = FileSet()
    fileset.UID = fileset_uid
    for ds in datasets:
        fileset.add(ds)
    fileset.write(root)
    dicomdir = pydicom.dcmread(root / "DICOMDIR")
    moved = []
    for record in dicomdir.DirectoryRecordSequence:
        if "ReferencedFileID" not in record:
            continue
        name = f"IM{len(moved) + 1:06d}"
        source = root.joinpath(*record.ReferencedFileID)
        target = root / "IMAGES" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        record.ReferencedFileID = ["IMAGES", name]
        moved.append(target)
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name != "IMAGES":
            shutil.rmtree(child)
    dicomdir.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    dicomdir.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    relocated = FileSet(dicomdir)
    relocated.ID = fileset_id
    relocated.write(use_existing=True)
    return moved
