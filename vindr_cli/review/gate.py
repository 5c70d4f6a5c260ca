"""What ``vindr release`` asks of a review (issue 12).

* No review at all (no ``.vindr/review.jsonl`` in the review folder): the release goes on,
  its datasheet says ``"status": "not reviewed"`` and a warning is printed — a review is not
  forced on every release (the demo, scripted pipelines), but it is never implied.
* A review exists: every image being released that sits in a flagged queue (redacted,
  residual text, QC, near-duplicates) must be decided in each such queue (an exclusion
  anywhere decides all); otherwise the release is refused (one line, exit 2) unless
  ``--allow-unreviewed``, which the datasheet records.
* Images whose verdict is ``exclude`` or ``more-redaction`` are left out and counted (a box
  drawn for more redaction is applied by re-running ``vindr anonymize``; until then releasing
  the image would release what the custodian saw). Once applied (the manifest's
  ``review_boxes``), the image is undecided in the redacted queue again: a person confirms
  the new output before it is released.

The review folder is ``--review DIR``, else the SELECTION folder when it holds a review,
else ANON_DIR when it does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vindr_cli.errors import RequestError
from vindr_cli.review import decisions
from vindr_cli.review.queues import build_queues

EXCLUDED = "excluded in vindr review"
MORE_REDACTION = "needs more redaction (vindr review)"


class Unreviewed(RequestError):
    """Flagged images being released that nobody decided (exit 2, one line)."""


@dataclass
class Gate:
    status: str                                   # reviewed | not reviewed
    decided: int = 0
    undecided: int = 0
    allowed_unreviewed: bool = False
    left_out: dict[str, str] = field(default_factory=dict)     # image_id -> reason
    undecided_by_queue: dict[str, int] = field(default_factory=dict)

    def sheet(self) -> dict:
        if self.status == "not reviewed":
            return {"status": self.status}
        return {"status": self.status, "decided": self.decided, "undecided": self.undecided,
                "allowed_unreviewed": self.allowed_unreviewed,
                "excluded": sum(1 for r in self.left_out.values() if r == EXCLUDED),
                "more_redaction": sum(1 for r in self.left_out.values() if r == MORE_REDACTION),
                "undecided_by_queue": self.undecided_by_queue}

    def line(self) -> str:
        if self.status == "not reviewed":
            return "not reviewed (no vindr review decisions found)"
        s = f"{self.decided} flagged image(s) decided, {self.undecided} undecided"
        if self.allowed_unreviewed and self.undecided:
            s += " (--allow-unreviewed)"
        return s + f"; {len(self.left_out)} left out by the review"


def find_review(anon_dir: Path, selection: Path | None, review: Path | None) -> Path | None:
    if review is not None:
        if not decisions.exists(review):
            raise RequestError("--review folder holds no vindr review decisions (.vindr/review.jsonl)")
        return Path(review)
    for d in (selection, anon_dir):
        if d is not None and decisions.exists(d):
            return Path(d)
    return None


def check(anon_dir: Path, released: set[str], *, selection: Path | None = None, review: Path | None = None,
          audit_report: Path | None = None, allow_unreviewed: bool = False) -> Gate:
    """The review's verdict on the images about to be released (module doc); raises
    :class:`Unreviewed` while a flagged one is undecided, unless ``allow_unreviewed``."""
    where = find_review(anon_dir, selection, review)
    if where is None:
        return Gate("not reviewed", allowed_unreviewed=allow_unreviewed)
    # every image of the tree or selection table: a release without --selection may release
    # images a SELECTION's page did not show (review --whole-tree shows them)
    q = build_queues(where, tree=anon_dir, audit_report=audit_report, spot=0, whole_tree=True)
    by_queue = decisions.current_by_queue(where, q.applied())     # boxes anonymize applied: confirm anew
    flagged = {i for name in decisions.FLAGGED for i in q.queues.get(name, []) if i in released}
    pending: dict[str, int] = {}
    undecided_ids = set()
    for name in decisions.FLAGGED:
        ids = [i for i in q.queues.get(name, []) if i in released and not decisions.is_decided(i, name, by_queue)]
        if ids:
            pending[name] = len(ids)
            undecided_ids |= set(ids)
    if undecided_ids and not allow_unreviewed:
        per = ", ".join(f"{k} {v}" for k, v in pending.items())
        raise Unreviewed(f"{len(undecided_ids)} flagged image(s) being released are undecided in vindr review "
                         f"({per}): decide them, or pass --allow-unreviewed (the datasheet says so)")
    left_out = {}
    for i, per in by_queue.items():
        if i in released:
            v = decisions.verdict(per)
            if v == "exclude":
                left_out[i] = EXCLUDED
            elif v == "more-redaction":
                left_out[i] = MORE_REDACTION
    return Gate("reviewed", decided=len(flagged - undecided_ids), undecided=len(undecided_ids),
                allowed_unreviewed=allow_unreviewed, left_out=left_out, undecided_by_queue=pending)
