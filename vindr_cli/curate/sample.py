"""Sampling among the images that pass every criterion: deterministic per seed.

Order is by a seeded hash of the image_id (SHA-256 of ``"<seed>:<image_id>"``), so a run
gives the same choice on any machine and in any input order, and one more image in the
tree does not reshuffle the rest.

* ``one_per_study``: per study, the frontal image first (PA, then AP, then any other view),
  then the seeded order; the others get ``one-per-study``.
* ``n`` without proportions: the first N of the seeded order; the rest ``not-sampled``.
  Fewer than N candidates: a :class:`SampleError` saying how many qualify.
* ``proportions`` (with a label per image_id): N is split into quotas by the largest
  remainder of N x share / total; each label's first quota images in seeded order are
  taken. Images with no label, or a label the proportions do not name, get ``no-label``.
  A label with fewer images than its quota: a :class:`SampleError` naming what is needed
  and what qualifies, per label.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from vindr_cli.errors import RequestError

VIEW_RANK = {"PA": 0, "AP": 1}
ONE_PER_STUDY = "one-per-study"
NOT_SAMPLED = "not-sampled"
NO_LABEL = "no-label"


class SampleError(RequestError):
    """The sample asked for cannot be drawn (one line, exit 2)."""


def order_key(seed: int, image_id: str) -> str:
    return hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()


def quotas(n: int, proportions: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of n by the shares (ties: the label's name)."""
    total = sum(proportions.values())
    exact = {k: n * v / total for k, v in proportions.items()}
    out = {k: math.floor(x) for k, x in exact.items()}
    left = n - sum(out.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:left]:
        out[k] += 1
    return out


def read_labels(path: Path) -> dict[str, str]:
    """image_id -> label from a CSV (or Parquet) with columns image_id and label."""
    if not path.is_file():
        raise SampleError("the labels table (--labels or sampling.labels) does not exist")
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(path, columns=["image_id", "label"]).to_pylist()
        else:
            from vindr_cli.annotations.csvfile import read_csv_text   # the package's one CSV reader

            rows = read_csv_text(path, "labels").data.to_dict("records")
    except Exception as exc:
        raise SampleError(f"the labels table cannot be read ({type(exc).__name__}): it needs columns image_id, label") from None
    if rows and not {"image_id", "label"} <= set(rows[0]):
        raise SampleError("the labels table needs columns image_id and label")
    out: dict[str, str] = {}
    for i, r in enumerate(rows, start=2):
        image_id, label = str(r.get("image_id") or "").strip(), str(r.get("label") or "").strip()
        if not image_id or not label:
            continue
        if out.setdefault(image_id, label) != label:
            raise SampleError(f"the labels table gives one image_id two labels (row {i}): one label per image")
    return out


def sample(rows: list[dict], *, seed: int, n: int | None = None, one_per_study: bool = False,
           labels: dict[str, str] | None = None, proportions: dict[str, float] | None = None) -> dict[str, str | None]:
    """For every candidate row (image_id, study_uid, view): None when chosen, else its reason."""
    out: dict[str, str | None] = {}
    pool = sorted(rows, key=lambda r: order_key(seed, r["image_id"]))
    if one_per_study:
        first: dict[object, dict] = {}
        for r in sorted(pool, key=lambda r: VIEW_RANK.get(r.get("view") or "", 2)):   # stable: seeded order kept
            study = r.get("study_uid") or r["image_id"]
            if study in first:
                out[r["image_id"]] = ONE_PER_STUDY
            else:
                first[study] = r
        pool = [r for r in pool if r["image_id"] not in out]
    if proportions:
        if n is None:
            raise SampleError("sampling proportions need a sample size: give --n or sampling.n")
        labels = labels or {}
        strata: dict[str, list[dict]] = {k: [] for k in proportions}
        for r in pool:
            label = labels.get(r["image_id"])
            if label in strata:
                strata[label].append(r)
            else:
                out[r["image_id"]] = NO_LABEL
        want = quotas(n, proportions)
        short = [k for k in want if len(strata[k]) < want[k]]
        if short:
            need = ", ".join(f"{want[k]} {k}" for k in sorted(want))
            have = ", ".join(f"{len(strata[k])} {k}" for k in sorted(want))
            raise SampleError(f"--n {n} with these proportions needs {need} images; only {have} qualify")
        for k, members in strata.items():
            for i, r in enumerate(members):
                out[r["image_id"]] = None if i < want[k] else NOT_SAMPLED
        return out
    if n is not None and len(pool) < n:
        raise SampleError(f"--n {n}: only {len(pool)} image{'s' if len(pool) != 1 else ''} qualify "
                          "(see SELECTION/selection.parquet's reasons after a run without --n, or relax the recipe)")
    for i, r in enumerate(pool):
        out[r["image_id"]] = None if n is None or i < n else NOT_SAMPLED
    return out
