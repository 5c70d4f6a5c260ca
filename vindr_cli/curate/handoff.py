"""Hand-off to annotators: ``SELECTION/worklist.csv`` and ``SELECTION/dicom/<image_id>.dcm``.

The DICOM files are hard links to ANON_DIR's files (no space used, the same bytes), or
copies where a link cannot be made (another file system, a file system without links).
Each is made under a temporary name in ``SELECTION/.vindr/tmp`` and renamed into place
through the runner's path guard; a file of ``dicom/`` that is not (or no longer) selected is
removed, so ``dicom/`` always holds exactly the selected images. A file already in place
that is the same file (a link) or has the source's bytes (a copy) is kept as it is.
"""
from __future__ import annotations

import csv
import filecmp
import io
import os
import shutil
import stat
from pathlib import Path

from vindr_cli.atomic import TMP_SUFFIX, atomic_write
from vindr_cli.dicomio.provenance import is_vindr_output
from vindr_cli.errors import RequestError
from vindr_cli.runner import paths

WORKLIST_COLUMNS = ("image_id", "study", "patient", "rows", "columns", "pixel_spacing", "view")
DICOM_DIR = "dicom"


def write_worklist(rows: list[dict], path: Path) -> int:
    """Selected rows, ordered by patient, study, image_id; returns how many."""
    chosen = sorted((r for r in rows if r["selected"]),
                    key=lambda r: (r.get("patient_id") or "", r.get("study_uid") or "", r["image_id"]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(WORKLIST_COLUMNS)
    for r in chosen:
        spacing = r.get("pixel_spacing")
        w.writerow([r["image_id"], r.get("study_uid") or "", r.get("patient_id") or "", r.get("rows") or "",
                    r.get("columns") or "", "" if spacing is None else f"{spacing:g}", r.get("view") or ""])
    with atomic_write(path) as f:
        f.write(buf.getvalue().encode("utf-8"))
    return len(chosen)


class NotDeidentified(RequestError):
    """Selected files of ANON_DIR that are not the outputs their manifest rows describe (exit 2)."""


NOT_DEIDENTIFIED = ("{n} selected file(s) of ANON_DIR are not the de-identified output their manifest.parquet row "
                    "describes (PatientIdentityRemoved is not YES, or the patient or instance id differs, or the file "
                    "cannot be read): a file was replaced or copied in; nothing is handed over. Re-run vindr anonymize "
                    "into ANON_DIR")


def check_outputs(rows: list[dict], anon_dir: Path) -> None:
    """Refuse (:class:`NotDeidentified`) when a selected row's file is not vindr's output:
    checked before anything of SELECTION is written, so nothing reaches ``dicom/``."""
    foreign = sum(1 for r in rows if r["selected"] and not is_vindr_output(anon_dir / r["output"], r))
    if foreign:
        raise NotDeidentified(NOT_DEIDENTIFIED.format(n=foreign))


def _same(a: Path, b: Path) -> bool:
    """``a`` (in dicom/) is ``b`` (in ANON_DIR): the same file, or a copy with the same bytes.
    Size alone is not enough: an output re-written in place by ``vindr anonymize`` (boxes drawn
    in vindr review masked: native pixels keep their size) leaves an old link to the old bytes."""
    try:
        sa, sb = a.lstat(), b.stat()
    except OSError:
        return False
    if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
        return True
    if not stat.S_ISREG(sa.st_mode) or sa.st_size != sb.st_size:
        return False
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def link_dicoms(rows: list[dict], anon_dir: Path, selection: Path, tmp: Path) -> dict[str, int]:
    """Make ``dicom/`` hold exactly the selected images; returns counts (linked, copied, kept, removed)."""
    counts = {"linked": 0, "copied": 0, "kept": 0, "removed": 0}
    wanted = {f"{r['image_id']}.dcm": anon_dir / r["output"] for r in rows if r["selected"]}
    folder = paths.real_dirs(selection, DICOM_DIR)      # made, never through a planted link
    if folder.is_dir():
        for entry in os.scandir(folder):
            if entry.name not in wanted:
                paths.remove(selection, f"{DICOM_DIR}/{entry.name}")
                counts["removed"] += 1
    tmp.mkdir(parents=True, exist_ok=True)
    for name, src in sorted(wanted.items()):
        dest = folder / name
        if not dest.is_symlink() and _same(dest, src):
            counts["kept"] += 1
            continue
        part = tmp / f"{name}{TMP_SUFFIX}"
        part.unlink(missing_ok=True)
        try:
            os.link(src, part, follow_symlinks=False)
            counts["linked"] += 1
        except OSError:
            shutil.copyfile(src, part, follow_symlinks=False)
            counts["copied"] += 1
        paths.place(selection, part, f"{DICOM_DIR}/{name}")
    return counts
