"""What a resumed ``vindr anonymize`` may leave unread in its first pass (mends, issue 13).

The first pass (deid.studyterms) read every input's header on every run, the done ones too,
because what it finds may make a done output stale (its study gained a file naming someone,
review 11); its values are PHI and are never stored, so a resume with nothing new read every
header again (bench/README "firstpass"). Now a completed run records, for each input it could
read, three keyed hashes (16 hex digits of the key's HMAC; nothing can be read back) in
``OUTPUT/.vindr/anonymize_firstpass.json`` (:class:`Record`), under the keyed hash of the
pass's rules (the sources of vindr_cli/deid and vindr_cli/dicomio, vindr's and pydicom's
versions) and settings (``--patient-match``, the inflate limit):

- the identity of the file it is read from (:func:`identities`): device, inode, size,
  modification time and status-change time in nanoseconds (``os.stat``; a zip member: its
  zip's, with its place in the zip), taken *before* the pass reads it. The ctime cannot be set
  back by a user: a file rewritten in place with its size and mtime restored (``touch -r``)
  still changes it, and so does a chmod (then it is only read once more: the safe side);
- its study group and its patient group, as the pass grouped it;
- its manifest rows (:func:`rows_text`), so a record is not taken for outputs other than those
  it was written with (red team 12). The record is sealed by the key's hash of its content.

A resume reads (``AnonymizeStage.survey``):

1. every input that is not as the record has it: new, another identity, not done as written
   (its rows, output, pixel hash and review boxes, as ``is_done`` checks them), or naming a
   peer set the peer-set record lacks; none: the pass is skipped (``first_pass`` "skipped");
2. then every input the record puts in a study or patient group of one read, and in the groups
   of those, to the whole connected part: every group of an input read is read whole, so its
   values and its count are what a full pass finds, whichever of its files is redone.

An input outside those groups is as it was, and so is every file of its groups: the last
completed run left its output sought for all of them (by induction from a run that read every
header: a record is written only at the end of a run that completed, and removed at the start
of every run, before any output is written; a killed run, ``--no-study-terms`` or one input
leaves none, and the next run reads every header). No record, a damaged one, or one of other
rules or settings: every header is read, as before.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Callable, Sequence

from vindr_cli.atomic import atomic_write
from vindr_cli.runner.discover import STATE_DIR
from vindr_cli.runner.sources import Source

FILE = "anonymize_firstpass.json"       # audit.STATE_FILES: a state file by its name
VERSION = 2                             # 2: sealed, and what each input's rows were (red team 12)
_rules: str | None = None


def rules() -> str:
    """The SHA-256 of what decides the first pass's answers: the sources of vindr_cli/deid and
    vindr_cli/dicomio, vindr's and pydicom's versions (read once a process)."""
    global _rules
    if _rules is None:
        import pydicom

        from vindr_cli import __version__

        h = hashlib.sha256(f"vindr {__version__} pydicom {pydicom.__version__}\n".encode())
        root = Path(__file__).resolve().parent.parent
        for pkg in ("deid", "dicomio"):
            for p in sorted((root / pkg).glob("*.py")):
                h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        _rules = h.hexdigest()
    return _rules


def identities(sources: Sequence[Source], key_of: Callable[[Source], str],
               keyed: Callable[[str], str]) -> dict[str, str] | None:
    """{input key: the keyed hash of the identity of the file it is read from} for every input
    the pass would read (no ``missing_reason``); None when a file cannot be stat'ed."""
    out: dict[str, str] = {}
    stats: dict[str, str] = {}
    for s in sources:
        if s.missing_reason:                   # never read by the pass
            continue
        st = stats.get(s.path)
        if st is None:
            try:
                r = os.stat(s.path)
            except (OSError, ValueError):
                return None
            st = stats[s.path] = "%d,%d,%d,%d,%d" % (r.st_dev, r.st_ino, r.st_size, r.st_mtime_ns, r.st_ctime_ns)
        out[key_of(s)] = keyed(f"{st}|{s.member}|{s.inner}")
    return out


# the fields of a manifest row that say what its output is and what it was sought for (a row read
# back from the journal has every column, None where the run wrote none: the others are left out)
ROW_FIELDS = ("status", "reason", "output", "output_bytes", "pixel_sha256", "image_id", "peers_digest")


def rows_text(rows: Sequence[dict]) -> str:
    """An input's manifest rows as one text (its keyed hash is recorded: red team 12, a record
    is only true of the outputs it was written with; one copied from another OUTPUT of the same
    INPUT and key, or kept from before an output was written again with --no-study-terms, named
    files unchanged, so the pass was skipped and an output never sought for its study's people
    was kept)."""
    return json.dumps([[r.get(f) for f in ROW_FIELDS] for r in rows], separators=(",", ":"), ensure_ascii=True,
                      default=str)


def _body_text(body: dict) -> str:
    """The text a record's seal is made of: its content but the seal, canonical JSON."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


class Record:
    """``OUTPUT/.vindr/anonymize_firstpass.json``: what the last completed run knew of each input
    it could read: the keyed hashes of its file's identity, of its study group and of its
    patient group ("-": none), under the keyed hash of the pass's rules and settings, sealed
    by the key's hash of the whole (red team 12: an entry edited by hand is refused)."""

    def __init__(self, output: Path):
        self.path = output / STATE_DIR / FILE

    def load(self, rules_id: str, seal: Callable[[str], str]) -> dict[str, tuple[str, str, str, str]] | None:
        """{input key: (identity, study group, patient group, rows)}; None without a record of these
        rules (none, damaged, of another vindr or other settings: every header is read). ``seal``:
        the key's hash of a text; a record whose seal is not that of its content (an entry edited
        by hand, red team 12: its groups set to "-" kept it out of a group a new file joined, so
        its output was kept unsought for the newcomer's people) is damaged."""
        try:
            obj = json.loads(self.path.read_bytes().decode("ascii"))
        except (OSError, ValueError, RecursionError):     # a record nested too deep: damaged (review 13)
            return None
        if not (isinstance(obj, dict) and obj.get("version") == VERSION and obj.get("rules") == rules_id
                and isinstance(obj.get("inputs"), dict) and isinstance(obj.get("seal"), str)):
            return None
        body = {k: v for k, v in obj.items() if k != "seal"}
        if not hmac.compare_digest(obj["seal"], seal(_body_text(body))):
            return None
        out: dict[str, tuple[str, str, str, str]] = {}
        for k, v in obj["inputs"].items():
            parts = v.split(" ") if isinstance(v, str) else []
            if len(parts) != 4:
                return None
            out[k] = (parts[0], "" if parts[1] == "-" else parts[1], "" if parts[2] == "-" else parts[2], parts[3])
        return out

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def write(self, rules_id: str, inputs: dict[str, tuple[str, str, str, str]], seal: Callable[[str], str]) -> None:
        record: dict = {"version": VERSION, "rules": rules_id,
                        "inputs": {k: " ".join(x or "-" for x in v) for k, v in sorted(inputs.items())}}
        record["seal"] = seal(_body_text(record))
        with atomic_write(self.path) as f:
            f.write(json.dumps(record, sort_keys=True, separators=(",", ":")).encode("ascii"))
