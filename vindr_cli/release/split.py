"""Patient/study-grouped, multi-label stratified train/test split with exact sizes.

Algorithm (``stratify_groups``), on a group x label count matrix:

1. **Iterative stratification** (Sechidis, Tsoumakas & Vlahavas 2011) over groups, with
   two folds and label *counts* (a group carries, per label, the number of its images
   with that label): repeatedly take the label with the fewest remaining groups (ties
   broken at random), and hand its remaining groups out in one batch: in a random order,
   a prefix holding the mass that brings the two folds' remaining demand for that label
   level goes to test, the rest to train (the sequential rule "give each example to the
   fold that wants the label most" gives the same split of mass, within one group).
   Demands are updated with every label of every group handed out. Groups without any
   label fill the remaining size demand. ``order=2`` adds label pairs as extra labels
   (the second-order variant of iterstrat / scikit-multilearn).
2. **Exact size** in the chosen unit: greedy single moves (add a train group to test or
   take one out) that keep the objective lowest, until the test size is exactly the
   target; a move of two groups when no single group fits the gap. Feasibility is
   checked first (subset sums of the group sizes); an unreachable size is an error.
3. **Local search**: swaps of two groups of the same size between the sides, best first,
   while the objective decreases.

The objective is the Label Distribution measure (LD, see ``measures.py``) of the split
computed on the counts (+ LPD over label pairs with ``order=2``), + a small chi-square
tie-breaker, + a large penalty for each label held by two or more groups that is missing
from one side. Steps 2 and 3 work on *patterns* (distinct rows of [labels, size,
images]): moving any group of a pattern is the same move, so every candidate is scored
at once from per-label lookup tables (vectorised numpy, no per-group Python loop).
Everything is driven by one ``numpy.random.Generator(seed)``: a seed gives one split.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from vindr_cli import reasons
from vindr_cli.annotations import (NO_FINDING, BadRows, BadRowsError, LabelSet, check_against_meta,
                                   read_annotations, read_meta)
from vindr_cli.errors import RequestError
from vindr_cli.release.measures import (example_distribution, folds_labels_without_positives, ld_terms,
                                        label_distribution, label_pair_distribution)

UNITS = ("images", "studies", "patients")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Preset:
    name: str
    train: int
    test: int
    unit: str


PRESETS = {
    "vindr-cxr": Preset("vindr-cxr", 15_000, 3_000, "images"),
    "vindr-spinexr": Preset("vindr-spinexr", 4_000, 1_000, "studies"),
}


# --------------------------------------------------------------------------- targets

def parse_test_size(text: str | int | float) -> int | float:
    """``--test-size``: an integer N (units) or a fraction F in (0, 1)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value: int | float = text
    else:
        s = str(text).strip()
        try:
            value = int(s)
        except ValueError:
            try:
                value = float(s)
            except ValueError:
                raise SplitError(f"--test-size must be an integer or a fraction in (0, 1), not {s!r}") from None
    if isinstance(value, float):
        if value.is_integer() and value >= 1:
            return int(value)
        if not 0.0 < value < 1.0:
            raise SplitError(f"--test-size fraction must be in (0, 1), not {value}")
    elif value < 1:
        raise SplitError(f"--test-size must be at least 1, not {value}")
    return value


def resolve_target(totals: dict[str, int], *, preset: str | None = None, test_size=None,
                   unit: str | None = None) -> tuple[int, str, Preset | None]:
    """(test size in units, unit, preset) from the request and the data's totals per unit."""
    if preset is not None:
        if test_size is not None:
            raise SplitError("give either --preset or --test-size, not both")
        if preset not in PRESETS:
            raise SplitError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        p = PRESETS[preset]
        if unit is not None and unit != p.unit:
            raise SplitError(f"preset {p.name} splits by {p.unit}, not {unit}")
        have = totals[p.unit]
        if have < p.train + p.test:
            raise SplitError(f"preset {p.name} needs {p.train + p.test} {p.unit} "
                             f"({p.train} train + {p.test} test); the data has {have}")
        return p.test, p.unit, p
    if test_size is None:
        raise SplitError("give --preset or --test-size")
    unit = unit or "images"
    if unit not in UNITS:
        raise SplitError(f"unknown unit {unit!r} (known: {', '.join(UNITS)})")
    size = parse_test_size(test_size)
    total = totals[unit]
    target = int(round(size * total)) if isinstance(size, float) else int(size)
    if not 0 < target < total:
        raise SplitError(f"a test set of {target} {unit} cannot be cut from {total} {unit} "
                         "(both sides need at least one)")
    return target, unit, None


# --------------------------------------------------------------------------- groups

def _codes(values) -> np.ndarray:
    """Integer codes, -1 for null/empty; an integer array is taken as codes already (-1 = none)."""
    arr = np.asarray(values) if not isinstance(values, (pd.Series, pd.Index)) else values.to_numpy()
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    s = pd.Series(values, dtype="string")
    codes, _ = pd.factorize(s.fillna(""), sort=True)
    codes = codes.astype(np.int64)
    codes[(s.isna() | (s == "")).to_numpy(dtype=bool)] = -1
    return codes


def group_images(study_ids, patient_ids=None) -> np.ndarray:
    """Group index per image: connected components of "same patient" and "same study".

    An image without a patient belongs to its study's group; without a study either it is
    its own study. A study shared by two patients (inconsistent metadata) joins them.
    Group numbers follow the order of the smallest image index in the group.
    """
    n = len(study_ids)
    s = _codes(study_ids)
    lone = s < 0
    s[lone] = s.max(initial=-1) + 1 + np.arange(int(lone.sum()))
    p = _codes(patient_ids) if patient_ids is not None else np.full(n, -1)
    has_p = p >= 0
    label = np.arange(n, dtype=np.int64)
    ns, np_ = int(s.max(initial=-1)) + 1, int(p.max(initial=-1)) + 1
    while True:
        m = np.full(ns, n, dtype=np.int64)
        np.minimum.at(m, s, label)
        new = m[s]
        if has_p.any():
            mp = np.full(np_, n, dtype=np.int64)
            np.minimum.at(mp, p[has_p], new[has_p])
            new[has_p] = np.minimum(new[has_p], mp[p[has_p]])
        if np.array_equal(new, label):
            break
        label = new
    return pd.factorize(label)[0].astype(np.int64)


def unit_sizes(group: np.ndarray, unit: str, study_ids=None, patient_ids=None) -> np.ndarray:
    """Size of every group in the unit: images, distinct studies, or distinct patients (>= 1)."""
    G = int(group.max(initial=-1)) + 1
    if unit == "images":
        return np.bincount(group, minlength=G).astype(np.int64)
    if unit == "studies":
        if study_ids is None:
            raise SplitError("unit 'studies' needs study ids")
        s = _codes(study_ids)
        lone = s < 0
        s[lone] = s.max(initial=-1) + 1 + np.arange(int(lone.sum()))
        pairs = np.unique(group * (int(s.max(initial=0)) + 1) + s)
        return np.bincount(pairs // (int(s.max(initial=0)) + 1), minlength=G).astype(np.int64)
    if unit == "patients":
        if patient_ids is None:
            return np.ones(G, dtype=np.int64)
        p = _codes(patient_ids)
        have = p >= 0
        pairs = np.unique(group[have] * (int(p.max(initial=0)) + 1) + p[have])
        n = np.bincount(pairs // (int(p.max(initial=0)) + 1), minlength=G).astype(np.int64)
        return np.maximum(n, 1)
    raise SplitError(f"unknown unit {unit!r} (known: {', '.join(UNITS)})")


def _group_sum(group: np.ndarray, values: np.ndarray, G: int) -> np.ndarray:
    """(G, K) integer sums of per-image counts."""
    values = np.asarray(values)
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    elif values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise SplitError("label counts must be integers")
    out = np.zeros((G, values.shape[1]), dtype=np.int64)
    for k in range(values.shape[1]):
        out[:, k] = np.rint(np.bincount(group, weights=values[:, k], minlength=G)).astype(np.int64)
    return out


def group_pair_counts(group: np.ndarray, presence: np.ndarray, G: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(G, pairs) count of images per group holding both labels of each pair a < b seen together.

    Sparse: only images with two or more labels generate pairs.
    """
    b = np.asarray(presence).astype(bool)
    L = b.shape[1]
    img, lab = np.nonzero(b[b.sum(axis=1) >= 2])
    if len(img) == 0:
        return np.zeros((G, 0), dtype=np.int64), []
    rows = np.flatnonzero(b.sum(axis=1) >= 2)
    nz = pd.DataFrame({"i": img, "l": lab})
    both = nz.merge(nz, on="i")
    both = both[both["l_x"] < both["l_y"]]
    code = both["l_x"].to_numpy() * L + both["l_y"].to_numpy()
    present, pid = np.unique(code, return_inverse=True)
    pairs = [(int(c // L), int(c % L)) for c in present]
    gi = group[rows[both["i"].to_numpy()]]
    counts = np.bincount(gi * len(pairs) + pid.ravel(), minlength=G * len(pairs)).reshape(G, len(pairs))
    return counts, pairs


# --------------------------------------------------------------------------- core algorithm

@dataclass
class StratifyInfo:
    phase1_size: int = 0
    size_moves: int = 0
    swaps: int = 0
    objective_start: float = 0.0
    objective_end: float = 0.0
    seconds: float = 0.0
    patterns: int = 0


def _subset_sum_reachable(sizes: np.ndarray, target: int) -> bool:
    """Whether some set of groups has exactly ``target`` units (bitset knapsack)."""
    vals, counts = np.unique(sizes[sizes > 0], return_counts=True)
    mask = (1 << (target + 1)) - 1
    reach = 1
    for v, c in zip(vals.tolist(), counts.tolist()):
        k = 1
        while c > 0:
            take = min(k, c)
            reach |= (reach << (v * take)) & mask
            c -= take
            k *= 2
    return bool((reach >> target) & 1)


def _iterative_stratification(Y: np.ndarray, sizes: np.ndarray, target: int,
                              rng: np.random.Generator) -> np.ndarray:
    G, K = Y.shape
    total = float(sizes.sum())
    rho = target / total
    P = Y.sum(axis=0)
    want_test, want_train = rho * P, (1.0 - rho) * P
    size_test = float(target)
    test = np.zeros(G, dtype=bool)
    remaining = np.ones(G, dtype=bool)
    pos = Y > 0
    left = pos.sum(axis=0).astype(np.int64)  # remaining groups per label
    while True:
        nz = left > 0
        if not nz.any():
            break
        fewest = left[nz].min()
        ties = np.flatnonzero(nz & (left == fewest))
        k = int(ties[rng.integers(len(ties))]) if len(ties) > 1 else int(ties[0])
        idx = rng.permutation(np.flatnonzero(remaining & pos[:, k]))
        w = Y[idx, k]
        mass = float(w.sum())
        to_test_mass = min(max((mass + want_test[k] - want_train[k]) / 2.0, 0.0), mass)
        go = (np.cumsum(w) - w / 2.0) < to_test_mass
        t_idx, r_idx = idx[go], idx[~go]
        test[t_idx] = True
        remaining[idx] = False
        want_test -= Y[t_idx].sum(axis=0)
        want_train -= Y[r_idx].sum(axis=0)
        size_test -= float(sizes[t_idx].sum())
        left -= pos[idx].sum(axis=0)
    rest = rng.permutation(np.flatnonzero(remaining))
    if len(rest):
        go = np.cumsum(sizes[rest]) <= max(size_test, 0.0)
        test[rest[go]] = True
    return test


class _Objective:
    """Separable objective sum_k h_k(T_k, n_test) and its lookup tables."""

    def __init__(self, P, N, weights, must, eps):
        self.P, self.N, self.w, self.must, self.eps = P, float(N), weights, must, eps
        # LD terms are capped at 1e3 and the weights sum to <= 2, so one violation outweighs
        # any change of the rest, and the total stays small enough for a tight tolerance.
        self.big = 4096.0

    def terms(self, T, n_t):
        """h_k for T (.., K) test counts and n_t test images (broadcast)."""
        ld = ld_terms(self.P, self.N, T, n_t)
        ld = np.where(np.isfinite(ld), ld, 1e3)
        dev = T - self.P * (np.asarray(n_t, dtype=float) / self.N)
        viol = self.must & ((T <= 0) | (T >= self.P))
        return self.w * ld + self.eps * dev * dev + self.big * viol

    def value(self, T, n_t) -> float:
        return float(self.terms(T, n_t).sum())

    def table(self, T, n_t, a_vals, b_vals, sign):
        """H[k, a, b] = h_k(T_k + sign*a, n_t + sign*b)."""
        Tt = T[:, None, None] + sign * a_vals[None, :, None]
        nt = n_t + sign * b_vals[None, None, :]
        return self._terms3(Tt, nt)

    def _terms3(self, Tt, nt):
        K = len(self.P)
        P = self.P[:, None, None]
        ld = ld_terms(P, self.N, Tt, nt)
        ld = np.where(np.isfinite(ld), ld, 1e3)
        dev = Tt - P * (nt / self.N)
        viol = self.must[:, None, None] & ((Tt <= 0) | (Tt >= P))
        out = self.w[:, None, None] * ld + self.eps[:, None, None] * dev * dev + self.big * viol
        return out.reshape(K, -1)


def _unique_rows(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(key, axis=0, return_inverse=True), sorted by a 64-bit row hash (much faster)."""
    mult = np.random.default_rng(12345).integers(1, 2**62, size=key.shape[1], dtype=np.int64) | 1
    with np.errstate(over="ignore"):
        h = (key.astype(np.int64, copy=False) * mult).sum(axis=1)       # wraps modulo 2**64
    uh, first, inv = np.unique(h, return_index=True, return_inverse=True)
    if not np.array_equal(key[first][inv], key):             # a hash collision: the slow, exact way
        pat, inv = np.unique(key, axis=0, return_inverse=True)
        return pat, inv.ravel()
    return key[first], inv.ravel()


def stratify_groups(Y: np.ndarray, sizes: np.ndarray, target: int, *, images: np.ndarray | None = None,
                    seed: int = 0, first_order: int | None = None, must_split: bool = True,
                    max_swaps: int = 5000) -> tuple[np.ndarray, StratifyInfo]:
    """Test mask over groups with exactly ``target`` units on the test side.

    ``Y``: (G, K) non-negative label counts per group (the first ``first_order`` columns
    are labels, any further ones label pairs, weighted as LPD); ``sizes``: units per group;
    ``images``: samples per group for the LD objective (default: ``sizes``).
    """
    t0 = time.perf_counter()
    info = StratifyInfo()
    Y = np.asarray(Y)
    if Y.dtype.kind not in "iub":
        if not np.array_equal(Y, np.round(Y)):
            raise SplitError("label counts must be integers")
    Y = Y.astype(np.int64, copy=False)
    sizes = np.asarray(sizes, dtype=np.int64)
    images = sizes if images is None else np.asarray(images, dtype=np.int64)
    G, K = Y.shape
    total = int(sizes.sum())
    if not 0 < target < total:
        raise SplitError(f"test size {target} must be between 1 and {total - 1}")
    if np.any(Y < 0) or np.any(sizes < 1):
        raise SplitError("label counts must be >= 0 and group sizes >= 1")
    if not _subset_sum_reachable(sizes, target):
        raise SplitError(f"no set of whole groups has exactly {target} units (group sizes "
                         f"{', '.join(map(str, np.unique(sizes)[:8]))}...)")
    rng = np.random.default_rng(seed)
    test = _iterative_stratification(Y, sizes, target, rng)
    info.phase1_size = int(sizes[test].sum())

    # patterns: identical rows of [Y, size, images]
    Yi = Y
    key = np.concatenate([Yi, sizes[:, None], images[:, None]], axis=1)
    pat, inv = _unique_rows(key)
    U = len(pat)
    info.patterns = U
    Yp, sp, ip = pat[:, :K], pat[:, K], pat[:, K + 1]
    n_p = np.bincount(inv, minlength=U)
    x = np.bincount(inv[test], minlength=U)

    N = float(images.sum())
    P = Yi.sum(axis=0).astype(np.float64)
    L1 = K if first_order is None else first_order
    valid = (P > 0) & (P < N)
    w = np.zeros(K)
    if valid[:L1].any():
        w[:L1][valid[:L1]] = 1.0 / valid[:L1].sum()
    if K > L1 and valid[L1:].any():
        w[L1:][valid[L1:]] = 1.0 / valid[L1:].sum()
    n_t0 = N * target / total
    unit_step = 0.5 * (1.0 / max(n_t0, 1.0) + 1.0 / max(N - n_t0, 1.0))
    eps = 0.01 * w * unit_step / np.maximum(P, 1.0)
    groups_per_label = (Yi > 0).sum(axis=0)
    must = np.zeros(K, dtype=bool)
    if must_split:
        must[:L1] = groups_per_label[:L1] >= 2
    obj = _Objective(P, N, w, must, eps)

    A, B = int(Yp.max(initial=0)), int(ip.max(initial=0))
    a_vals, b_vals = np.arange(A + 1, dtype=np.float64), np.arange(B + 1, dtype=np.float64)
    gather = (np.arange(K)[None, :] * ((A + 1) * (B + 1)) + Yp * (B + 1) + ip[:, None]).astype(np.intp)

    T = (Yp * x[:, None]).sum(axis=0).astype(np.float64)
    n_t = float((ip * x).sum())
    size = int((sp * x).sum())
    f = obj.value(T, n_t)
    info.objective_start = f

    def scores(Tc, ntc, sign):
        H = obj.table(Tc, ntc, a_vals, b_vals, sign).ravel()
        return H[gather].sum(axis=1)

    def apply(p, sign):
        nonlocal T, n_t, size
        x[p] += sign
        T = T + sign * Yp[p]
        n_t += sign * ip[p]
        size += sign * int(sp[p])

    # 2. exact size
    while size != target:
        gap = target - size
        sign = 1 if gap > 0 else -1
        avail = (n_p - x) if sign > 0 else x
        sc = scores(T, n_t, sign)
        ok = (avail > 0) & (sp <= abs(gap))
        if ok.any():
            sc = np.where(ok, sc, np.inf)
            if abs(gap) > 16:      # far off: several best moves at once
                order = np.argsort(sc, kind="stable")[: max(1, abs(gap) // 4)]
                order = order[np.isfinite(sc[order])]
                budget = max(abs(gap) // 2, int(sp[order[0]]))   # the best move always fits
                for p in order:
                    if sp[p] > budget:
                        continue
                    apply(p, sign)
                    budget -= int(sp[p])
                    info.size_moves += 1
            else:
                p = int(np.argmin(sc))
                apply(p, sign)
                info.size_moves += 1
            continue
        # no single group fits: one group in, one out, net exactly the gap
        sc_in = np.where(n_p - x > 0, scores(T, n_t, 1), np.inf)
        sc_out = np.where(x > 0, scores(T, n_t, -1), np.inf)
        best = None
        for a in np.unique(sp[np.isfinite(sc_in)]):
            b = a - gap
            cand_out = np.isfinite(sc_out) & (sp == b)
            if not cand_out.any():
                continue
            p = int(np.argmin(np.where(sp == a, sc_in, np.inf)))
            q = int(np.argmin(np.where(cand_out, sc_out, np.inf)))
            s = sc_in[p] + sc_out[q]
            if best is None or s < best[0]:
                best = (s, p, q)
        if best is None:
            raise SplitError(f"could not reach exactly {target} units with whole groups")
        apply(best[1], 1)
        apply(best[2], -1)
        info.size_moves += 2
    f = obj.value(T, n_t)

    # 3. size-keeping swaps, best first
    top = 6
    for _ in range(max_swaps):
        sc_in = np.where(n_p - x > 0, scores(T, n_t, 1), np.inf)
        sc_out = np.where(x > 0, scores(T, n_t, -1), np.inf)
        best_val, best_pair = f - (1e-12 + 1e-13 * abs(f)), None
        for p in np.argsort(sc_in, kind="stable")[:top]:
            if not np.isfinite(sc_in[p]):
                break
            s2 = scores(T + Yp[p], n_t + ip[p], -1)
            s2 = np.where((x - (np.arange(U) == p) > 0) & (sp == sp[p]), s2, np.inf)
            q = int(np.argmin(s2))
            if s2[q] < best_val:
                best_val, best_pair = s2[q], (int(p), q)
        for q in np.argsort(sc_out, kind="stable")[:top]:
            if not np.isfinite(sc_out[q]):
                break
            s2 = scores(T - Yp[q], n_t - ip[q], 1)
            s2 = np.where((n_p - x - (np.arange(U) == q) > 0) & (sp == sp[q]), s2, np.inf)
            p = int(np.argmin(s2))
            if s2[p] < best_val:
                best_val, best_pair = s2[p], (p, int(q))
        if best_pair is None:
            break
        apply(best_pair[0], 1)
        apply(best_pair[1], -1)
        f = best_val
        info.swaps += 1
    info.objective_end = obj.value(T, n_t)

    # patterns -> groups: keep phase-1 test groups first, then random ones
    order = np.lexsort((rng.random(G), ~test, inv))
    starts = np.concatenate([[0], np.cumsum(n_p)[:-1]])
    rank = np.empty(G, dtype=np.int64)
    rank[order] = np.arange(G) - starts[inv[order]]
    out = rank < x[inv]
    if int(sizes[out].sum()) != target:  # pragma: no cover - an internal invariant
        raise RuntimeError("split size bookkeeping went wrong")
    info.seconds = time.perf_counter() - t0
    return out, info


def make_split(groups, labels, target: int, *, unit: str = "images", studies=None, patients=None,
               seed: int = 0, order: int = 1, must_split: bool = True) -> np.ndarray:
    """Per-image test mask: whole groups, exactly ``target`` units on the test side.

    ``groups``: a group key per image (patients, or studies for images without one; see
    :func:`group_images`); ``labels``: (images, labels) counts or 0/1; ``unit``: images,
    studies (needs ``studies``) or patients (counts distinct ``patients`` per group, 1 for
    a group without one); ``order=2`` also balances label pairs.
    """
    mask, _ = _make_split(groups, labels, target, unit=unit, studies=studies, patients=patients,
                          seed=seed, order=order, must_split=must_split)
    return mask


def _make_split(groups, labels, target, *, unit, studies, patients, seed, order, must_split):
    if order not in (1, 2):
        raise SplitError("order must be 1 or 2")
    g = np.asarray(groups)
    g = pd.factorize(g if g.dtype.kind in "iu" else pd.Series(groups, dtype="string"), sort=True)[0].astype(np.int64)
    if (g < 0).any():
        raise SplitError("every image needs a group")
    G = int(g.max(initial=-1)) + 1
    Y = np.asarray(labels)
    if Y.ndim != 2 or len(Y) != len(g):
        raise SplitError("labels must be an (images, labels) matrix")
    L = Y.shape[1]
    Yg = _group_sum(g, Y, G)
    if order == 2:
        pc, _ = group_pair_counts(g, Y > 0, G)
        Yg = np.concatenate([Yg, pc], axis=1)
    sizes = unit_sizes(g, unit, studies, patients)
    images = np.bincount(g, minlength=G)
    mask_g, info = stratify_groups(Yg, sizes, int(target), images=images, seed=seed, first_order=L,
                                   must_split=must_split)
    return mask_g[g], info


# --------------------------------------------------------------------------- the command

@dataclass
class SplitResult:
    """Everything `vindr split` found and wrote."""
    images: pd.DataFrame                      # image_id, study_id, patient_id, split
    labels: list[str]
    counts: dict                              # per side: images, studies, patients, groups
    per_label: pd.DataFrame                   # label, total, train, test, train_prev, test_prev, ...
    measures: dict
    bad_rows: BadRows
    unit: str
    target: int
    seed: int
    preset: str | None = None
    annotation_format: str = ""
    skipped_meta_images: int = 0
    info: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    label_set: LabelSet | None = None
    annotations: pd.DataFrame | None = None      # the valid canonical rows (annotations.read)

    @property
    def labels_without_test(self) -> list[str]:
        d = self.per_label
        return d.loc[(d["total"] > 0) & (d["test"] == 0), "label"].tolist()

    def _shown(self, reason: str) -> str:
        """A bad row's reason as split_report.json shows it: vindr's words, the row's quoted
        values masked; the label set in effect and its listed names may be named (labels.json
        publishes them)."""
        ls = self.label_set
        return reasons.shown_masked("annotation_rows", reason, reasons.label_set_extra(ls) if ls else None)

    def _shown_reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.bad_rows:
            shown = self._shown(r.reason)
            out[shown] = out.get(shown, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_dict(self, max_bad_rows: int = 1000) -> dict:
        return _finite({
            "preset": self.preset, "unit": self.unit, "target_test": self.target, "seed": self.seed,
            "annotation_format": self.annotation_format, "counts": self.counts,
            "measures": self.measures,
            "labels": self.per_label.to_dict(orient="records"),
            "labels_without_test_positive": self.labels_without_test,
            # a reason may quote the row's own values: handed on only as vindr's words (quoted
            # values masked), else "(other reason)" (schemas/tables/reasons.json annotation_rows)
            "bad_rows": {"count": len(self.bad_rows), "by_reason": self._shown_reasons(),
                         "rows": [{"line": r.line, "reason": self._shown(r.reason)}
                                  for r in list(self.bad_rows)[:max_bad_rows]],
                         "truncated": len(self.bad_rows) > max_bad_rows},
            "metadata_images_without_annotation": self.skipped_meta_images,
            "algorithm": self.info, "outputs": self.outputs,
        })


def _finite(obj):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _label_order(vocab: Sequence[str], present: Sequence[str]) -> list[str]:
    present_set = set(present)
    ordered = [v for v in vocab if v in present_set and v != NO_FINDING]
    ordered += sorted(present_set - set(ordered) - {NO_FINDING})
    if NO_FINDING in present_set:
        ordered.append(NO_FINDING)
    return ordered


class SplitError(RequestError, ValueError):
    """A split that cannot be made as asked (exit 2): one line, no PHI."""


def split_dataset(annotations_path, meta_path, *, preset: str | None = None, test_size=None,
                  unit: str | None = None, seed: int = 0, out_dir=None, strict: bool = False,
                  order: int = 1, count: str = "images", labels=None, linkage=None,
                  selection=None) -> SplitResult:
    """Read, validate, split and (with ``out_dir``) write split.csv, split_report.json/.png.

    Images split are those with at least one valid annotation row and a metadata row; the
    metadata alone says which study and patient an image belongs to (a SpineXR table's own
    study_id column is not used for grouping).
    ``count``: a group's label vector counts images with the label by any reader
    ("images", default) or image-reader marks ("readers"). ``labels``: a label set (name,
    TOML file or :class:`LabelSet`) instead of the form's default. Raises
    ``selection``: a ``vindr select`` output (folder or :class:`~vindr_cli.release.selection.Selection`):
    only its selected images are split (and, under its ``multiframe = "exclude"``, no
    multi-frame one); an annotation row of a metadata image not selected is left out and
    counted in ``result.info["selection"]`` (not a bad row).
    :class:`SplitError` (exit 2) for a request that cannot run and :class:`BadRowsError`
    (exit 1) for a bad row when ``strict``. ``result.annotations`` holds the valid
    canonical rows, ``result.label_set`` the vocabulary they were read with.
    """
    t0 = time.perf_counter()
    if count not in ("images", "readers"):
        raise SplitError("count must be 'images' or 'readers'")
    ann, bad = read_annotations(annotations_path, labels=labels)
    remap = None
    if linkage is not None:
        from vindr_cli.release.remap import remap_frame
        remap = remap_frame(ann, Path(linkage))
        ann = remap.frame
    meta = read_meta(meta_path)
    selection_info = None
    if selection is not None:
        ann, meta, selection_info = _apply_selection(ann, meta, selection)
    ann, bad_meta = check_against_meta(ann, meta)
    bad.extend(bad_meta)
    if strict and bad:
        raise BadRowsError(bad, "split", names=getattr(ann.attrs.get("label_set"), "all_labels", ()))
    t_read = time.perf_counter()
    if ann.empty:
        raise SplitError("no valid annotation row refers to an image in the metadata "
                         f"({len(bad)} bad rows; annotations must use the metadata's image_id)"
                         + ("" if linkage is not None else
                            ". If the annotations name images by the hospital's original SOP Instance UIDs, "
                            "pass --linkage with the anonymize linkage table."))

    img_codes, image_ids = pd.factorize(ann["image_id"], sort=True)
    n_img = len(image_ids)
    labels = _label_order(ann.attrs.get("labels", []), ann["label"].dropna().unique().tolist())
    lab_index = {l: i for i, l in enumerate(labels)}
    has_label = ann["label"].notna().to_numpy()
    lab_codes = ann["label"].map(lab_index).to_numpy(dtype=float)
    lab_codes = np.where(has_label, lab_codes, -1).astype(np.int64)
    reader = ann["reader"].fillna("").to_numpy(dtype=object)
    rd_codes = pd.factorize(reader)[0].astype(np.int64)
    L = len(labels)
    sel = lab_codes >= 0
    # distinct (image, reader, label) marks -> votes per image and label
    R, Lm = int(rd_codes.max(initial=0)) + 1, max(L, 1)
    trip = np.unique((img_codes[sel].astype(np.int64) * R + rd_codes[sel]) * Lm + lab_codes[sel])
    votes = np.bincount((trip // (R * Lm)) * Lm + trip % Lm, minlength=n_img * Lm).reshape(n_img, Lm)[:, :L]
    presence = votes > 0
    Y_img = presence.astype(np.float64) if count == "images" else votes.astype(np.float64)

    m = meta.set_index("image_id").loc[pd.Index(image_ids, dtype="string")]
    study = m["study_id"].to_numpy(dtype=object)
    patient = m["patient_id"].to_numpy(dtype=object)
    study_codes, patient_codes = _codes(study), _codes(patient)
    group = group_images(study_codes, patient_codes)
    G = int(group.max()) + 1
    totals = {
        "images": n_img,
        "studies": int(unit_sizes(group, "studies", study_codes).sum()),
        "patients": int(unit_sizes(group, "patients", None, patient_codes).sum()),
    }
    target, unit, p = resolve_target(totals, preset=preset, test_size=test_size, unit=unit)
    t_prep = time.perf_counter()
    test, info = _make_split(group, Y_img, target, unit=unit, studies=study_codes, patients=patient_codes, seed=seed,
                             order=order, must_split=True)
    t_split = time.perf_counter()

    sides = np.where(test, "test", "train")
    images = pd.DataFrame({"image_id": pd.array(np.asarray(image_ids, dtype=object), dtype="string"),
                           "study_id": pd.array(study, dtype="string"),
                           "patient_id": pd.array(patient, dtype="string"), "split": sides})
    counts = {}
    sizes_units = {u: unit_sizes(group, u, study_codes, patient_codes) for u in UNITS}
    g_test = np.zeros(G, dtype=bool)
    g_test[group[test]] = True
    for side, mask_g in (("train", ~g_test), ("test", g_test)):
        counts[side] = {u: int(sizes_units[u][mask_g].sum()) for u in UNITS}
        counts[side]["groups"] = int(mask_g.sum())
    per_label = _per_label(labels, presence, test, group, G)
    desired_test = target
    measures = {
        "ld": label_distribution(presence, test),
        "lpd": label_pair_distribution(presence, test),
        "ed": example_distribution([counts["train"][unit], counts["test"][unit]],
                                   [totals[unit] - desired_test, desired_test]),
        "flz": folds_labels_without_positives(presence, test),
        "ld_per_label": {l: (None if math.isnan(v) else float(v))
                         for l, v in zip(labels, label_distribution(presence, test, per_label=True))},
    }
    result = SplitResult(
        images=images, labels=labels, counts=counts, per_label=per_label, measures=measures, bad_rows=bad,
        unit=unit, target=target, seed=seed, preset=p.name if p else None,
        annotation_format=ann.attrs.get("format", ""),
        skipped_meta_images=int(len(meta) - n_img),
        info={"order": order, "count": count, "groups": G, "patterns": info.patterns,
              "phase1_test_size": info.phase1_size, "size_moves": info.size_moves, "swaps": info.swaps,
              "objective_start": info.objective_start, "objective_end": info.objective_end,
              "seconds": {"read": round(t_read - t0, 4), "prepare": round(t_prep - t_read, 4),
                          "split": round(t_split - t_prep, 4)}},
    )
    label_set: LabelSet = ann.attrs["label_set"]
    result.label_set = label_set
    result.annotations = ann
    result.info["label_set"] = {"name": label_set.name, "source": label_set.source}
    if selection_info is not None:
        result.info["selection"] = selection_info
    if remap is not None:
        result.info["remap"] = {"translated": remap.translated, "not_released": remap.not_released,
                                "release_ids": remap.already}
    if p is not None:
        result.info["preset_sizes"] = {"train": p.train, "test": p.test, "unit": p.unit}
    if out_dir is not None:
        from vindr_cli.release.split_report import write_outputs
        write_outputs(result, Path(out_dir))
    result.info["seconds"]["total"] = round(time.perf_counter() - t0, 4)
    return result


def _apply_selection(ann: pd.DataFrame, meta: pd.DataFrame, selection):
    """Keep the selected metadata images; drop (and count) annotation rows of metadata
    images not selected (those of multi-frame images a selection excludes included). Rows naming
    no metadata image stay, to be reported as bad rows."""
    from vindr_cli.release.selection import Selection, read_selection

    sel = selection if isinstance(selection, Selection) else read_selection(Path(selection))
    keep = set(sel.selected)
    excluded_mf = 0
    if sel.multiframe == "exclude":
        multi = {i for i, f in sel.frames().items() if f > 1 and i in keep}
        excluded_mf = len(multi)
        keep -= multi
    in_meta = set(meta["image_id"].dropna())
    meta = meta.loc[meta["image_id"].isin(keep)].reset_index(drop=True)
    drop = ann["image_id"].isin(in_meta) & ~ann["image_id"].isin(keep)
    attrs = dict(ann.attrs)
    info = {**sel.summary(), "multiframe_excluded": excluded_mf,
            "annotation_rows_not_selected": int(drop.sum()),
            "annotated_images_not_selected": int(ann.loc[drop, "image_id"].nunique()),
            "metadata_images_not_selected": len(in_meta - keep)}
    ann = ann.loc[~drop]
    ann.attrs.update(attrs)
    return ann, meta, info


def _per_label(labels, presence, test, group, G) -> pd.DataFrame:
    n_test, n_train = int(test.sum()), int((~test).sum())
    pt = presence[test].sum(axis=0)
    pr = presence[~test].sum(axis=0)
    gp = _group_sum(group, presence, G) > 0
    g_test = np.zeros(G, dtype=bool)
    g_test[group[test]] = True
    return pd.DataFrame({
        "label": labels,
        "total": (pt + pr).astype(int),
        "train": pr.astype(int), "test": pt.astype(int),
        "train_prevalence": pr / max(n_train, 1), "test_prevalence": pt / max(n_test, 1),
        "prevalence": (pt + pr) / max(n_test + n_train, 1),
        "groups": gp.sum(axis=0).astype(int), "test_groups": gp[g_test].sum(axis=0).astype(int),
    })
