"""Near-duplicates among selected candidates, by perceptual hash.

A first, minimal version written by the ``select`` helper to the contract of issue 11
(``resolve(rows) -> {image_id: (dup_group | None, reason | None)}``); the ``qchash``
helper's module replaces it.

Two images whose 64-bit hashes differ in at most ``MAX_DISTANCE`` (2) bits are the same picture;
groups are the connected components. A group whose members belong to more than one patient
is a red flag (an identity mix-up in the source): every member gets
``duplicate-across-patients``. Otherwise one member is kept by this rule, the others get
``duplicate``: a lossless source first, then the most pixels (rows x columns), then the
smallest image_id (stable and seed-free). A group id is ``dup-`` and 12 hex digits of the
SHA-256 of its sorted member image_ids. Rows without a hash take no part.
"""
from __future__ import annotations

import hashlib

import numpy as np

MAX_DISTANCE = 2     # measured: distinct synthetic chest phantoms (vindr_cli.synth) differ in 4..12 bits
DUPLICATE = "duplicate"
ACROSS = "duplicate-across-patients"


def _components(hashes: np.ndarray) -> list[int]:
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(hashes), 512):
        block = hashes[start:start + 512]
        dist = np.bitwise_count(block[:, None] ^ hashes[None, :])
        for a, b in zip(*np.nonzero(dist <= MAX_DISTANCE)):
            i, j = start + int(a), int(b)
            if i < j:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(len(hashes))]


def resolve(rows: list[dict]) -> dict[str, tuple[str | None, str | None]]:
    """For every row: (its duplicate group or None, the reason it is not kept or None)."""
    out: dict[str, tuple[str | None, str | None]] = {r["image_id"]: (None, None) for r in rows}
    hashed = [r for r in rows if r.get("phash")]
    if not hashed:
        return out
    roots = _components(np.array([int(r["phash"], 16) for r in hashed], dtype=np.uint64))
    groups: dict[int, list[dict]] = {}
    for r, root in zip(hashed, roots):
        groups.setdefault(root, []).append(r)
    for members in groups.values():
        if len(members) < 2:
            continue
        ids = sorted(m["image_id"] for m in members)
        gid = "dup-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
        if len({m.get("patient_id") for m in members}) > 1:
            for m in members:
                out[m["image_id"]] = (gid, ACROSS)
            continue
        keep = min(members, key=lambda m: (bool(m.get("lossy")), -((m.get("rows") or 0) * (m.get("columns") or 0)),
                                           m["image_id"]))
        for m in members:
            out[m["image_id"]] = (gid, None if m is keep else DUPLICATE)
    return out


__all__ = ["ACROSS", "DUPLICATE", "MAX_DISTANCE", "resolve"]
