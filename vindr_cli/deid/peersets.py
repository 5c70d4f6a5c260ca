"""Where ``vindr anonymize`` records what each output was sought for (studyscale, issue 13).

The first pass (deid.studyterms) gives every file of a study and patient the same values to
seek: the group's people and places. What an output was sought for is recorded as the keyed
hash of each value (12 hex digits of the key's HMAC: no value can be read back), so that a
re-run redoes an output whose group has since gained a value it was not sought for (review 11).
Before, every manifest row listed them all: 24 KB a row in a study of 600 operators, ~4 GB of
journal at 10,000 (bench/README "hostile10"). Now the list is a *peer set*, stored once, and a
row's ``peers_digest`` names it: ``g:`` and 24 hex digits of the SHA-256 of the list
(:func:`set_id`; it names the hashes, which name nothing).

The peer sets live in ``OUTPUT/.vindr/anonymize_peers.json`` (:class:`PeerSets`): one JSON
record with its own checksum, written whole under a temporary name and renamed (never half
written), once per run, before any output is written: the sets the done outputs were sought
for, and those the outputs to write now will be. A killed run leaves the record of its start,
which names every set its journaled rows name; a row naming a set the record lacks (the record
lost, or a set dropped when its outputs were to be redone) is redone, never kept on a guess,
unless it names the very set its group wants now (its name is the hash of those hashes).
A damaged record refuses the run as a damaged journal does (``--rebuild-state`` sets it aside:
the outputs sought for something other than what their group wants now are then redone).

A manifest written before (``peers_digest`` the space-separated hashes themselves) is read
as it is (:meth:`PeerSets.hashes`): such an OUTPUT resumes with the same decisions.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from vindr_cli.atomic import atomic_write
from vindr_cli.runner.discover import STATE_DIR
from vindr_cli.runner.state import REBUILD_HINT, StateDamaged, set_aside

FILE = "anonymize_peers.json"      # audit.STATE_FILES: a state file by its name
PREFIX = "g:"
VERSION = 1
_ID = re.compile(r"^g:[0-9a-f]{24}$")
_HASHES = re.compile(r"^[0-9a-f]{12}( [0-9a-f]{12})*$")


def set_id(hashes: str) -> str:
    """The name of a peer set (``hashes``: its keyed hashes, sorted, space-separated)."""
    return PREFIX + hashlib.sha256(hashes.encode("ascii")).hexdigest()[:24]


def _digest(sets: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sets, sort_keys=True, separators=(",", ":")).encode("ascii")).hexdigest()


class PeerSets:
    """The peer sets of one OUTPUT: id -> hashes (no PHI), read once a run, written once a run."""

    def __init__(self, output: Path):
        self.path = output / STATE_DIR / FILE
        self.sets: dict[str, str] = {}
        self._parsed: dict[str, frozenset[str]] = {}

    def load(self, rebuild: bool = False) -> None:
        """Read the record (none: no sets). Damaged: :class:`StateDamaged`, or with
        ``rebuild`` set aside (``OUTPUT/.vindr/damaged/``) and no sets."""
        self.sets, self._parsed = {}, {}
        if not self.path.exists():
            return
        what = self._read()
        if what is None:
            return
        if not rebuild:
            raise StateDamaged(f"OUTPUT/{STATE_DIR}/{FILE} is damaged ({what}); {REBUILD_HINT}")
        self.sets = {}
        set_aside(self.path, self.path.parent.parent)

    def _read(self) -> str | None:
        """Fill :attr:`sets` from the record; what is wrong (fixed words), or None."""
        try:
            obj = json.loads(self.path.read_bytes().decode("ascii"))
        except (OSError, ValueError, RecursionError):     # RecursionError: nested too deep (review 13)
            return "not a JSON record"
        if (not isinstance(obj, dict) or set(obj) != {"version", "sha256", "sets"} or obj["version"] != VERSION
                or not isinstance(obj["sets"], dict)):
            return "not a peer sets record (wrong shape or unknown version)"
        sets = obj["sets"]
        if _digest(sets) != obj["sha256"]:
            return "checksum mismatch (the file was changed)"
        if not all(isinstance(k, str) and isinstance(v, str) and _HASHES.fullmatch(v) and set_id(v) == k
                   for k, v in sets.items()):
            return "a set that does not match its name"
        self.sets = sets
        return None

    def name(self, hashes: str) -> str:
        """The id of the set ``hashes`` (held for :meth:`write`)."""
        sid = set_id(hashes)
        self.sets.setdefault(sid, hashes)
        return sid

    def hashes(self, recorded: str | None) -> frozenset[str] | None:
        """What a manifest row's ``peers_digest`` says its output was sought for: the hashes of
        its set (``g:...``), or of the list written before peer sets; the empty set for none
        (null, ""); None for a set this OUTPUT does not know (redo the output)."""
        if not recorded:
            return frozenset()
        got = self._parsed.get(recorded)
        if got is not None:
            return got
        if _ID.fullmatch(recorded):
            text = self.sets.get(recorded)
            if text is None:
                return None
        else:
            text = recorded                   # a row written before peer sets: the hashes themselves
        got = self._parsed[recorded] = frozenset(text.split())     # one entry a group (its rows share it)
        return got

    def write(self, keep: set[str]) -> None:
        """Replace the record (temp name, then rename) by the sets named ``keep``."""
        sets = {k: self.sets[k] for k in sorted(keep) if k in self.sets}
        record = {"version": VERSION, "sha256": _digest(sets), "sets": sets}
        with atomic_write(self.path) as f:
            f.write(json.dumps(record, sort_keys=True, separators=(",", ":")).encode("ascii"))
        self.sets = sets
