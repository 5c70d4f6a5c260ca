#!/usr/bin/env python3
"""Generate schemas/deid/ps3.15-table-e1-1.json from the reference copy of PS3.15 Table E.1-1.

Usage: python scripts/gen_annex_e.py [REFERENCE_JSON]
(default: ../shared/reference/confidentiality_profile_attributes.json beside the checkout)

The output keeps all rows, adds the pydicom keyword and VR where the tag is a single
standard attribute, and records where the table came from, so the project runs without
the reference folder.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pydicom.datadict import dictionary_has_tag, dictionary_keyword, dictionary_VR

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REF = ROOT.parent / "shared" / "reference" / "confidentiality_profile_attributes.json"
OUT = ROOT / "schemas" / "deid" / "ps3.15-table-e1-1.json"

OPTION_COLUMNS = {
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_full_dates",
    "rtnLongModifDatesOpt": "retain_modified_dates",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnSafePrivOpt": "retain_safe_private",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}


def _pattern(tag: str) -> str:
    """'(0008,0050)' -> '00080050'; repeating groups keep their x's; private row -> 'private'."""
    if "ODD" in tag.upper():
        return "private"
    return tag.strip("()").replace(",", "").lower()


def convert(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        pattern = _pattern(r["tag"])
        row = {
            "tag": pattern,
            "name": r["name"],
            "keyword": None,
            "vr": None,
            "in_std_comp_iod": r["stdCompIOD"] == "Y",
            "basic": r["basicProfile"],
            "options": {OPTION_COLUMNS[k]: v for k, v in r.items() if k in OPTION_COLUMNS},
        }
        if "x" not in pattern and pattern != "private":
            tag = int(pattern, 16)
            if dictionary_has_tag(tag):
                row["keyword"] = dictionary_keyword(tag)
                row["vr"] = dictionary_VR(tag)
        out.append(row)
    return sorted(out, key=lambda r: r["tag"])


def main() -> None:
    ref = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_REF
    rows = json.loads(ref.read_text(encoding="utf-8"))
    table = {
        "title": "DICOM PS3.15 Table E.1-1 Application Level Confidentiality Profile Attributes",
        "provenance": {
            "standard": "DICOM PS3.15 Annex E, Table E.1-1, web edition current in January 2025",
            "parsed_by": "innolitics/dicom-standard (MIT licence, Copyright (c) 2017 Innolitics, LLC), "
            "file confidentiality_profile_attributes.json at commit 7f4749d (January 2025)",
            "generated_by": "scripts/gen_annex_e.py",
            "row_count": len(rows),
        },
        "columns": {"basic": "Basic Profile action", **{v: f"action under the option ({k})" for k, v in OPTION_COLUMNS.items()}},
        "rows": convert(rows),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(rows)} rows")


if __name__ == "__main__":
    main()
