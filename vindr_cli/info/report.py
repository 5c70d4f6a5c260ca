"""Show a ``scan_export`` summary as rich tables, or as JSON."""
from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

TITLES = {
    "modality": "Modality", "sop_class": "SOP class", "transfer_syntax": "Transfer syntax",
    "photometric": "Photometric interpretation", "bits_stored": "Bits stored",
    "body_part": "Body part examined", "charset": "Specific character set",
}


def to_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


def _dims(stats: dict | None) -> str:
    return "-" if not stats else f"{stats['min']} / {stats['median']} / {stats['max']}"


def overview(s: dict) -> Table:
    t = Table(title="Export overview", show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    size = s["image_size"]
    rows = [
        ("Files", s["files"]), ("Total size", _size(s["bytes"])),
        ("Archive members", s["archive_members"]), ("DICOM files", s["dicom"]),
        ("  of which DICOMDIR", s["dicomdir_files"]), ("Not DICOM", s["not_dicom"]),
        ("Failed", s["failed"]), ("Patients", s["patients"]), ("Studies", s["studies"]),
        ("Series", s["series"]), ("Instances", s["instances"]),
        ("Duplicate instances", s["duplicate_instances"]),
        ("BurnedInAnnotation YES", s["burned_in_annotation"]),
        ("With private elements", s["private_elements"]), ("With overlays (60xx)", s["overlays"]),
        ("With curves (50xx)", s["curves"]),
        ("Rows min / median / max", _dims(size["rows"])),
        ("Columns min / median / max", _dims(size["columns"])),
    ]
    for label, value in rows:
        t.add_row(label, Text(str(value)))
    return t


def breakdown(title: str, counts: dict) -> Table:
    t = Table(title=title)
    t.add_column("Value")
    t.add_column("Files", justify="right")
    for label, n in counts.items():
        t.add_row(Text(str(label)), str(n))
    return t


def uid_breakdown(title: str, rows: list[dict]) -> Table:
    t = Table(title=title)
    t.add_column("Name")
    t.add_column("UID")
    t.add_column("Files", justify="right")
    for r in rows:
        t.add_row(Text(r["name"]), Text(r["uid"]), str(r["files"]))
    return t


def problems(s: dict) -> Table:
    t = Table(title="Inputs not read")
    t.add_column("Status")
    t.add_column("Reason")
    t.add_column("Files", justify="right")
    for status, reasons in s["reasons"].items():
        for reason, n in reasons.items():
            t.add_row(status, Text(reason), str(n))
    return t


def render(summary: dict, console: Console) -> None:
    """Print the overview, then each non-empty breakdown."""
    console.print(overview(summary))
    if summary["not_dicom"] or summary["failed"]:
        console.print(problems(summary))
    for key, title in TITLES.items():
        value = summary[key]
        if value:
            table = uid_breakdown(title, value) if isinstance(value, list) else breakdown(title, value)
            console.print(table)
