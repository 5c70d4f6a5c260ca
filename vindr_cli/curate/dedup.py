"""Near-duplicate groups of `vindr select`: the same picture stored more than once.

Two images are near-duplicates when their perceptual hashes (``pixels.phash``, the same
one ``vindr validate`` uses) are at most ``max_distance`` bits apart
(``schemas/curate/phash.toml``). Groups are the connected components of that relation
(single linkage: A~B and B~C put A, B and C in one group). Then, per group:

* **one patient** (every member has the same substitute patient id): keep ONE, the first by
  1. lossless before lossy (a lossy transfer syntax, or Lossy Image Compression 01),
  2. more pixels (rows x columns) before fewer,
  3. ORIGINAL before DERIVED (ImageType value 1),
  4. native (uncompressed) pixel data before encapsulated: any DICOM reader opens it, no
     codec needed,
  5. the smallest image_id (keyed, so the choice is reproducible and says nothing);
  every other member gets the reason ``duplicate``.
* **more than one patient**: the same picture under two identities is an identity mix-up in
  the source (or a test phantom filed under several patients). Every member gets
  ``duplicate-across-patients``, none is kept: a red flag for a person to resolve.

A member without a patient id counts as its own patient (its study, else itself), so a
group it shares with anyone else is a red flag (safe side). An image without a hash
(undecodable) is in no group. The group id is ``dup-`` + 12 hex digits of the SHA-256 of
its sorted image ids: stable across runs, derived only from keyed ids.
"""
from __future__ import annotations

import hashlib

from vindr_cli.pixels.phash import near_pairs

DUPLICATE = "duplicate"
ACROSS_PATIENTS = "duplicate-across-patients"

# Transfer syntaxes whose pixel data went through a lossy step (PS3.5 Table A-1 / 8.2).
LOSSY_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.52", "1.2.840.10008.1.2.4.53",
    "1.2.840.10008.1.2.4.54", "1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.56", "1.2.840.10008.1.2.4.59",
    "1.2.840.10008.1.2.4.60", "1.2.840.10008.1.2.4.61", "1.2.840.10008.1.2.4.62", "1.2.840.10008.1.2.4.63",
    "1.2.840.10008.1.2.4.64", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103",
    "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105", "1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.107",
    "1.2.840.10008.1.2.4.108", "1.2.840.10008.1.2.4.203"})


def _flag(v) -> bool:
    """A table's boolean: None, NaN and pandas' NA are False."""
    try:
        return bool(bool(v) and v == v)
    except (TypeError, ValueError):
        return False


def is_lossy(row: dict) -> bool:
    """The row's ``lossy`` flag, or a lossy ``transfer_syntax``."""
    return _flag(row.get("lossy")) or str(row.get("transfer_syntax") or "") in LOSSY_SYNTAXES


def _identity(row: dict):
    pid = row.get("patient_id")
    if isinstance(pid, str) and pid.strip():
        return ("patient", pid)
    study = row.get("study_uid")
    if isinstance(study, str) and study.strip():
        return ("study", study)
    return ("image", row["image_id"])


def _derived(row: dict) -> bool:
    it = row.get("image_type")
    first = (it.split("\\")[0] if isinstance(it, str) else (list(it)[0] if it is not None and len(it) else ""))
    return str(first).strip().upper() == "DERIVED"


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


# Native (not encapsulated) transfer syntaxes: implicit and explicit VR little endian,
# explicit big endian, deflated explicit little endian (PS3.5 Annex A).
NATIVE_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                             "1.2.840.10008.1.2.1.99"})


def _encapsulated(row: dict) -> bool:
    ts = row.get("transfer_syntax")
    return isinstance(ts, str) and bool(ts) and ts not in NATIVE_SYNTAXES


def keep_order(row: dict) -> tuple:
    """Sort key of the documented keep rule: the first of a group is kept."""
    return (is_lossy(row), -_int(row.get("rows")) * _int(row.get("columns")), _derived(row), _encapsulated(row),
            str(row["image_id"]))


def groups(rows: list[dict], max_distance: int | None = None) -> list[list[int]]:
    """Indices of ``rows`` in each near-duplicate group (two members or more), each sorted."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    hashes = [r.get("phash") if isinstance(r.get("phash"), str) and r.get("phash") else None for r in rows]
    for i, j, _ in near_pairs(hashes, max_distance):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    comps: dict[int, list[int]] = {}
    for i in range(len(rows)):
        comps.setdefault(find(i), []).append(i)
    return [sorted(c) for c in comps.values() if len(c) > 1]


def group_id(image_ids) -> str:
    return "dup-" + hashlib.sha256("\n".join(sorted(map(str, image_ids))).encode()).hexdigest()[:12]


def resolve(rows: list[dict], max_distance: int | None = None) -> dict[str, tuple[str | None, str | None]]:
    """``{image_id: (dup_group or None, reason or None)}`` for every row (module doc). Rows
    need ``image_id`` and ``phash``; ``patient_id``, ``study_uid``, ``rows``, ``columns``,
    ``lossy``, ``transfer_syntax``, ``image_type`` are used when present."""
    out: dict[str, tuple[str | None, str | None]] = {str(r["image_id"]): (None, None) for r in rows}
    for members in groups(rows, max_distance):
        gid = group_id(rows[i]["image_id"] for i in members)
        if len({_identity(rows[i]) for i in members}) > 1:
            for i in members:
                out[str(rows[i]["image_id"])] = (gid, ACROSS_PATIENTS)
            continue
        ranked = sorted(members, key=lambda i: keep_order(rows[i]))
        out[str(rows[ranked[0]]["image_id"])] = (gid, None)
        for i in ranked[1:]:
            out[str(rows[i]["image_id"])] = (gid, DUPLICATE)
    return out
