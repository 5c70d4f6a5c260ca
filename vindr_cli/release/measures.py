"""Stratification measures of Sechidis et al. (2011) as scikit-multilearn defines them.

All functions take a binary sample x label matrix ``y`` and a boolean ``test`` mask (two
folds: train = ~test), and are vectorised (scikit-multilearn loops over sets in Python).

* **LD** (Label Distribution): for each label with at least one positive sample, the
  mean over folds of ``|p_f / (n_f - p_f) - p / (n - p)|`` (positives to negatives in the
  fold vs in the whole set), averaged over labels. A label positive in every sample has
  no negatives (the ratio is undefined; scikit-multilearn divides by zero) and is left out.
* **LPD** (Label Pair Distribution): the same over label pairs ``(a, b)`` with ``a <= b``
  (combinations with replacement, so single labels are included, as in
  scikit-multilearn's ``label_combination_distribution(y, folds, order=2)``).
* **ED** (Examples Distribution): mean over folds of ``|size_f - desired_f|``.
* **FLZ**: number of (fold, label) pairs with no positive sample in the fold.
"""
from __future__ import annotations

import numpy as np


def odds(positives, total):
    """p / (n - p), +inf where there is no negative."""
    positives = np.asarray(positives, dtype=float)
    negatives = np.asarray(total, dtype=float) - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(negatives > 0, positives / np.where(negatives > 0, negatives, 1.0), np.inf)


def ld_terms(P, N, T, n_test):
    """Per-label LD terms from counts: P positives of N samples, T of them in the n_test-sample test fold.

    Broadcasts: ``T`` may be (candidates, labels) with ``n_test`` (candidates, 1).
    """
    P = np.asarray(P, dtype=float)
    d = odds(P, N)
    s_test = odds(T, n_test)
    s_train = odds(P - np.asarray(T, dtype=float), N - np.asarray(n_test, dtype=float))
    with np.errstate(invalid="ignore"):
        return (np.abs(s_test - d) + np.abs(s_train - d)) / 2.0


def _valid(P, N) -> np.ndarray:
    P = np.asarray(P)
    return (P > 0) & (P < N)


def label_distribution(y, test, *, per_label: bool = False):
    """LD of a two-fold split (lower is better; 0 = every label's odds equal in both folds)."""
    y = np.asarray(y).astype(bool)
    test = np.asarray(test, dtype=bool)
    N, P, T, n_t = len(y), y.sum(axis=0), y[test].sum(axis=0), int(test.sum())
    terms = ld_terms(P, N, T, n_t)
    valid = _valid(P, N)
    if per_label:
        return np.where(valid, terms, np.nan)
    return float(terms[valid].mean()) if valid.any() else 0.0


def label_pair_distribution(y, test) -> float:
    """LPD: LD over label pairs a <= b that occur together at least once."""
    y = np.asarray(y).astype(bool)
    test = np.asarray(test, dtype=bool)
    yf = y.astype(np.float64)
    both = yf.T @ yf                       # (L, L) co-occurrence counts
    both_t = yf[test].T @ yf[test]
    iu = np.triu_indices(y.shape[1])
    P, T = both[iu], both_t[iu]
    N, n_t = len(y), int(test.sum())
    valid = _valid(P, N)
    if not valid.any():
        return 0.0
    return float(ld_terms(P[valid], N, T[valid], n_t).mean())


def example_distribution(sizes, desired) -> float:
    """ED: mean absolute deviation of the fold sizes from the desired sizes."""
    sizes, desired = np.asarray(sizes, dtype=float), np.asarray(desired, dtype=float)
    return float(np.abs(sizes - desired).mean())


def folds_labels_without_positives(y, test) -> int:
    """FLZ: (fold, label) pairs, over labels present in y, with no positive in the fold."""
    y = np.asarray(y).astype(bool)
    test = np.asarray(test, dtype=bool)
    present = y.any(axis=0)
    return int((present & ~y[test].any(axis=0)).sum() + (present & ~y[~test].any(axis=0)).sum())
