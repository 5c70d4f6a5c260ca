"""``look_at``: what `vindr select` learns from an image's pixels, in one decode: its
perceptual hash (``pixels.phash``) and its QC flags (``curate.qc``).

Never raises for a bad file: an image that cannot be decoded gets ``phash`` None, the
flags its header alone gives (size, aspect, redactions) and a fixed one-line ``reason``
(``pixels.decode``'s, never a value from the file).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom

from vindr_cli.curate import qc
from vindr_cli.dicomio.quiet import quiet_pydicom
from vindr_cli.pixels.decode import DecodeError
from vindr_cli.pixels.phash import dct_hash, thumbnails
from vindr_cli.pixels.voi import BadRescale, DamagedLUT

UNREADABLE = "unreadable DICOM file"


@dataclass(frozen=True)
class Look:
    phash: str | None                  # 16 hex digits (64-bit DCT hash), None when undecodable
    qc_flags: tuple[str, ...]          # in the order of qc.FLAGS
    reason: str | None = None          # fixed reason when undecodable, else None


def _text(ds, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip().upper()
    except Exception:
        return ""


def _int(ds, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0


def header_of(ds) -> qc.Header:
    return qc.Header(rows=_int(ds, "Rows"), columns=_int(ds, "Columns"), modality=_text(ds, "Modality"),
                     body_part=_text(ds, "BodyPartExamined"), view=_text(ds, "ViewPosition"))


def look_at(path: Path, *, frame: int = 0, redactions=None) -> Look:
    """Hash and QC flags of one frame of a de-identified DICOM file. ``redactions`` is the
    anonymize manifest's ``redactions`` value for it (JSON text or list; None: not scanned).
    pydicom is silenced first (its warnings quote values), as in every stage's worker."""
    quiet_pydicom()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _look(path, frame, redactions)


def _look(path: Path, frame: int, redactions) -> Look:
    try:
        ds = pydicom.dcmread(os.fspath(path))
    except Exception:
        return Look(None, (), UNREADABLE)
    header = header_of(ds)
    flags = qc.size_flags(header) + qc.burned_in_flags(redactions, header)
    try:
        shown, = thumbnails(ds, frame=frame, windows=("header",))
    except (DecodeError, DamagedLUT, BadRescale) as exc:
        return Look(None, qc.ordered(flags), exc.reason)
    except (ValueError, MemoryError) as exc:          # display parameters the standard does not allow
        return Look(None, qc.ordered(flags), f"invalid display parameters ({type(exc).__name__})")
    except Exception as exc:                          # never stop a batch, never echo file content
        return Look(None, qc.ordered(flags), f"unexpected error ({type(exc).__name__})")
    flags += qc.pixel_flags(shown, header)
    return Look(dct_hash(shown), qc.ordered(flags), None)
