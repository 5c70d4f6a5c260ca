"""Where the linkage table (original <-> substitute, PHI) lives and how it is read."""
from __future__ import annotations

from pathlib import Path

LINKAGE_MODE = 0o600


def default_linkage_path(output: Path) -> Path:
    """Beside OUTPUT, never inside it: ``<parent>/<name>.linkage.parquet``."""
    output = output.resolve()
    return output.parent / f"{output.name}.linkage.parquet"


def journal_path(linkage: Path) -> Path:
    return linkage.with_name(linkage.name + ".journal")


def phi_terms(row: dict) -> list[str]:
    """The identifying values a linkage row records (``phi_terms``): its non-empty strings only
    (a row of a damaged or hand-edited table may hold anything)."""
    return [v for v in (row.get("phi_terms") or []) if isinstance(v, str) and v.strip()]
