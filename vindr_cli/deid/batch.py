"""``vindr anonymize`` as a stage of the one runner (:mod:`vindr_cli.runner.stage`): it
supplies the request checks, the key, the settings record, the linkage + manifest tables
(linkage journaled first) and the placement rule for duplicate SOP Instance UIDs (the
first in discovery order wins, whatever order workers finish in)."""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from vindr_cli import __version__
from vindr_cli.deid.engine import holds_people, name_forms, read_marks
from vindr_cli.deid.identity import DEFAULT_PATIENT_MATCH, PATIENT_MATCH
from vindr_cli.deid.keyfile import KeyError_, new_key, read_key, write_key
from vindr_cli.deid.policy import UID_SHAPE, date_forms, id_forms
from vindr_cli.deid.linkage import LINKAGE_MODE, default_linkage_path, journal_path, phi_terms
from vindr_cli.deid.peersets import PREFIX as PEER_SET, PeerSets
from vindr_cli.deid.profile import Profile
from vindr_cli.deid import reviewboxes, studyterms, unchanged
from vindr_cli.deid.redact import MODES
from vindr_cli.deid.substitutes import Substitutes
from vindr_cli.deid.task import LAYOUTS, AnonConfig, anonymize_one, setup
from vindr_cli.errors import RequestError as _RequestError
from vindr_cli.runner.executor import Executor
from vindr_cli.runner.paths import PathViolation
from vindr_cli.runner.sources import Source, enclosing_output, is_within
from vindr_cli.dicomio.header import BadInput, read_header
from vindr_cli.dicomio.limits import DEFAULT_MAX_INFLATE
from vindr_cli.dicomio.pixelstream import file_pixel_hash
from vindr_cli.runner.discover import STATE_DIR
from vindr_cli.runner.stage import Run, Stage, Survey, Table, run_stage
from vindr_cli.runner.state import Settings, SettingsChanged, StateDamaged
from vindr_cli.tables import read_rows

DUPLICATE = "same SOP Instance UID as an earlier input; not written again"
# G1 without a linkage table (README, studyterms): an output to redo whose study or patient lost
# a file whose people it was sought for, known now only as keyed hashes (deid.peersets)
PEOPLE_GONE = ("not written: its output had to be redone, but a file of its study or patient that named people "
               "has left INPUT since, and without a linkage table they are known only as keyed hashes; put that "
               "file back in INPUT and run again")
RESUME_SETTINGS = ("key_fingerprint", "profile_fingerprint", "input_fingerprint", "uid_root", "layout",
                   "allow_burned_in", "patient_match", "burned_in")
UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

REVIEW_RERUN = ("run vindr select again on this OUTPUT (a selection's dicom/ still links the files as they were), "
                "then confirm the re-written images in vindr review")
RequestError = _RequestError        # the request cannot run (exit 2): one line, no PHI


@dataclass
class Summary:
    total: int = 0
    resumed: int = 0
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    output: Path | None = None
    manifest: Path | None = None
    linkage: Path | None = None
    key_created: bool = False
    key_path: Path | None = None
    key_fingerprint: str = ""
    profile: str = ""
    warnings: list[str] = field(default_factory=list)
    review_rewritten: int = 0            # images written this run with boxes drawn in vindr review
    review_images: int = 0               # images of OUTPUT that carry such boxes
    masked: int = 0                      # ok outputs with boxes masked (burned-in text or drawn in vindr review)
    pixels_modified: int = 0             # ok outputs whose Pixel Data differs from the input's
    scanned: int = 0                     # ok outputs scanned for burned-in text (redactions not null)
    no_pixels: int = 0                   # ok outputs without Pixel Data (nothing to scan: a DICOMDIR's stripped files, RT plans)
    first_pass: str = "none"             # the people of each study: "read", "partial", "skipped" (deid.unchanged) or "none"
    headers_read: int = 0                # inputs whose header that pass read
    gone_removed: int = 0                # outputs of inputs gone from INPUT, removed (runner.stage._remove_gone)


def check_paths(input_path: Path, output: Path, key_path: Path, linkage: Path | None) -> None:
    if not input_path.exists():
        raise RequestError("INPUT does not exist")
    if is_within(output, input_path) or is_within(input_path, output):
        raise RequestError("OUTPUT must not be inside INPUT (nor INPUT inside OUTPUT)")
    if is_within(key_path, output):
        raise RequestError("the key file must not be inside OUTPUT (it would be released)")
    if linkage is not None and is_within(linkage, output):
        raise RequestError("the linkage table holds PHI and must not be inside OUTPUT")
    if enclosing_output(output) is not None or (linkage is not None and enclosing_output(linkage) is not None):
        raise RequestError("OUTPUT and the linkage table must not be inside another vindr output folder")


FOREIGN_OUTPUT = ("OUTPUT is a folder that already holds files vindr did not write (no .vindr state, no manifest, "
                  "no vindr-marked file): name a new or empty folder, or an OUTPUT made by vindr anonymize")


def check_foreign_output(output: Path) -> None:
    """Refuse a non-empty OUTPUT that is not vindr anonymize's: whatever it held would sit among
    the de-identified files, unlisted, and travel with the tree (audit would only call it a stray
    file afterwards). Such an OUTPUT is known by anonymize's settings in its state folder or its
    manifest; without them (a tree whose state was lost: --rebuild-state) only when EVERY file
    under it, outside the state folder, is a ``.dcm``/``.dicom`` carrying vindr's marks of one key
    (not by its first file only: one marked file among a hospital's own, or beside a notes file,
    let them all in; new-user walk 5). A folder holding nothing but a state folder is empty (a
    first run stopped before its settings were written); a mount point's own empty (or, to a user
    other than root, unlistable) ``lost+found`` is not content. Review 12: any state folder was
    enough, so another command's OUTPUT (vindr decode's PNGs, images.parquet) took the
    de-identified files in among its own."""
    settings = Settings(output, "anonymize")
    if (not output.is_dir() or settings.file.exists() or settings.copy.exists()
            or (output / "manifest.parquet").exists()):
        return
    try:
        entries = [e for e in output.iterdir() if e.name != STATE_DIR and not _fs_lost_found(e)]
    except OSError:
        raise RequestError("OUTPUT cannot be listed") from None
    if entries and not _all_vindr_outputs(output):
        raise RequestError(FOREIGN_OUTPUT)


def _fs_lost_found(entry: Path) -> bool:
    """The file system's own ``lost+found`` (top level of OUTPUT): a real folder, empty or
    closed to this user (root's 0700 on ext4). One that holds files a user can see is content."""
    if entry.name != "lost+found" or entry.is_symlink() or not entry.is_dir():
        return False
    try:
        return next(entry.iterdir(), None) is None
    except PermissionError:
        return True
    except OSError:
        return False


def _all_vindr_outputs(output: Path) -> bool:
    """Every file under ``output`` (outside ``.vindr``) is a vindr output of one key; no link."""
    import os

    key = None
    for root, dirs, files in os.walk(output, onerror=_raise):
        dirs[:] = [d for d in dirs if not (root == str(output) and (d == STATE_DIR or _fs_lost_found(Path(root) / d)))]
        if any(os.path.islink(os.path.join(root, d)) for d in dirs):
            return False
        for name in files:
            path = Path(root) / name
            if path.is_symlink() or not name.endswith((".dcm", ".dicom")) or not path.is_file():
                return False                    # a FIFO named .dcm would block the open (review 12)
            try:
                with open(path, "rb") as f:
                    found = read_marks(read_header(f, path.stat().st_size).ds).get("key_fingerprint")
            except (BadInput, OSError):
                return False
            if not found or (key is not None and found != key):
                return False
            key = found
    return True


def _raise(exc: OSError) -> None:
    raise RequestError("OUTPUT cannot be listed") from None


def _run_record(cfg: AnonConfig, subs: Substitutes) -> dict:
    p = cfg.profile
    removed = sorted(f"{t:08X}" for t, r in p.rules.items() if r.action == "X")
    # text the profile keeps by an explicit rule (K, C: the original value may stay) or a keyed
    # substitute: the audit does not check it against the safe-attribute allowlist, as the
    # engine does not (deid.audit.trusted_tags); X/Z/D/U rules leave only vindr's own values
    # (a dummy, an empty value, a remapped UID), so their text is checked
    kept = {t for t, r in p.rules.items() if r.action in ("K", "C")} if p.mode == "table" else set()
    trusted = sorted(f"{t:08X}" for t in kept | set(p.substitutes))
    return {
        "tool": f"vindr {__version__}",
        "profile": p.name, "profile_source": p.source, "profile_fingerprint": p.fingerprint(),
        "options": sorted(p.options), "dates": p.dates, "uid_root": cfg.uid_root, "layout": cfg.layout,
        "key_fingerprint": subs.fingerprint(), "allow_burned_in": cfg.allow_burned_in,
        "removed_tags": removed, "mode": p.mode, "patient_match": cfg.patient_match, "trusted_tags": trusted,
        "kept_tags": sorted(f"{t:08X}" for t in p.rules) if p.mode == "keep-list" else None,
        "burned_in": cfg.burned_in,
    }


class AnonymizeStage(Stage):
    name = "anonymize"
    task = staticmethod(anonymize_one)
    setup = staticmethod(setup)
    primary = "manifest"
    compared = RESUME_SETTINGS
    owns_outputs = True                  # an input gone from INPUT takes its outputs along (runner.stage)

    def __init__(self, input_path: Path, output: Path, cfg: AnonConfig, key: bytes, *, created: bool,
                 link_path: Path | None):
        self.output = output
        self.cfg = cfg
        self._key = key                  # the driver's copy: never in config(), never pickled
        self.created = created
        self.subs = Substitutes(key, cfg.uid_root)
        self.link_path = link_path
        self.record = _run_record(cfg, self.subs)
        self.record["input_fingerprint"] = self.subs.hexid("input-root", str(input_path), 16)   # keyed: the path may hold PHI
        self.claimed: dict[str, str] = {}
        self.review_live: dict[str, list[dict]] = {}    # image_id -> live boxes of the review tables read
        self.review_want: dict[str, list[dict]] = {}    # image_id -> the boxes its output must carry
        self.review_rewritten = 0
        self.study_terms = True          # the first pass (deid.studyterms); off only for a library caller's measurement
        self.people: studyterms.StudyPeople | None = None     # its gathering (PHI, this run's memory only)
        self._by_key: dict[str, Source] | None = None          # input key -> source (is_done's peers check)
        self.peer_sets = PeerSets(output)                      # what outputs were sought for (deid.peersets)
        self._wants: dict[tuple[str, str], tuple[str, frozenset[str]]] = {}   # group pair -> (set id, its hashes)
        self._covers: dict[tuple[str, str], bool] = {}         # (wanted set id, a row's peers_digest) -> is_done's answer
        self._keep: set[str] = set()                           # the sets that done outputs name
        self._run: Run | None = None
        self.gone: dict[tuple[str, str], set[str]] | None = None   # the values of inputs gone (PHI, memory only)
        self._carried: dict[str, frozenset[str]] = {}              # Source.rel -> what _with_gone gave it
        self._resought: dict[str, tuple[list[dict], str]] = {}     # key -> (its rows, the set they now name)
        self._blocked: dict[str, str | None] = {}                  # Source.rel -> the set its failed row keeps
        self._new_people: dict[tuple[str, str], tuple] = {}       # (wanted set, row's set) -> values not sought (PHI)
        self.unchanged = unchanged.Record(output)      # what a completed run knew of each input (deid.unchanged)
        self.first_pass = "none"                       # "read", "partial", "skipped" (nothing changed) or "none"
        self.headers_read = 0                          # inputs the first pass was given this run
        self._rules_id = ""                            # the keyed hash of the pass's rules and settings
        self._ids: dict[str, str] | None = None        # input key -> its file's identity now (keyed)
        self._prior: dict[str, tuple[str, str, str, str]] = {}   # the record read at the start
        self._read: list[Source] = []                  # the inputs given to the first pass this run
        self._grouped: set[str] = set()                # Source.rel of those whose header it read
        self._as_written: dict[str, bool] = {}         # input key -> is_done without the peers check
        self._row_hashes: dict[str, str] = {}          # input key -> keyed hash of its manifest rows (red team 12)

    def forget(self) -> None:
        """Drop what the run held of the first pass (its people: PHI; the values carried for
        gone files) and what was derived from it; the counts (first_pass, headers_read) stay."""
        self.people = self._by_key = self.gone = self._run = self._ids = None
        self._carried, self._resought, self._blocked, self._new_people = {}, {}, {}, {}
        self._wants, self._covers, self._keep = {}, {}, set()
        self._prior, self._read, self._as_written, self._grouped = {}, [], {}, set()

    def __reduce__(self):                # the stage stays in the driver
        raise TypeError("AnonymizeStage holds the key and is not sent to workers")

    def verify(self, path: Path, row: dict) -> bool:
        """Size (Stage.verify), then the pixel data's SHA-256 against the manifest's."""
        if not super().verify(path, row):
            return False
        if not row.get("pixel_sha256"):
            return True
        try:
            got = file_pixel_hash(path)
        except (BadInput, OSError):
            return False
        return got is None or got == row["pixel_sha256"]

    def settings_lost(self, previous: dict[str, dict[str, list[dict]]]) -> None:
        """No intact anonymize.json: the outputs name their key and profile themselves, and
        :func:`check_output_marks` already compared them (before anything was written)."""

    def config(self) -> AnonConfig:
        return self.cfg

    def settings(self) -> dict[str, Any]:
        return self.record

    def explain(self, name: str, old: Any, new: Any) -> str | None:
        if name == "burned_in":
            was = "no --burned-in (a vindr before it)" if old is None else f"--burned-in {old if old in MODES else 'another value'}"
            return (f"OUTPUT was made with {was}, given --burned-in {new}: its images were scanned and "
                    "redacted differently; use the same --burned-in, or a new OUTPUT folder")
        if name == "patient_match":
            if old is None:
                return ("OUTPUT was made by a vindr without --patient-match (patients matched as stored): its "
                        "patients, substitutes and date shifts cannot be continued; use a new OUTPUT folder")
            was = old if old in PATIENT_MATCH else "another value"
            return (f"OUTPUT was made with --patient-match {was}, given {new}: patients, their substitutes and "
                    "date shifts would differ between runs; use the same --patient-match, or a new OUTPUT folder")
        if name != "key_fingerprint":
            return None
        if self.created:
            return (f"OUTPUT was made with a different key fingerprint: expected {old}, but the key file "
                    f"{self.cfg.key_path} does not exist (a new key would not match; none was created): pass the "
                    "key that made OUTPUT with --key, or use a new OUTPUT folder")
        return (f"OUTPUT was made with a different key fingerprint: expected {old}, given {new} "
                f"({self.cfg.key_path}): pass the key that made OUTPUT with --key, or use a new OUTPUT folder")

    def tables(self) -> list[Table]:
        out = []
        if self.link_path is not None:       # journaled first: an input is done only once both hold it
            out.append(Table("linkage", "linkage", self.link_path, journal=journal_path(self.link_path),
                             mode=LINKAGE_MODE, journal_stage="linkage"))
        out.append(Table("manifest", "anonymize_manifest", self.output / "manifest.parquet"))
        return out

    def key(self, src: Source) -> str:
        return self.subs.hexid("input-path", src.rel, 24)

    def prepare(self) -> None:
        if self.created:                     # only now: the request is known to run
            write_key(Path(self.cfg.key_path), self._key)

    def begin(self, run: Run) -> None:
        self._run = run
        self._as_written = {}
        self._row_hashes = {}
        self.peer_sets.load(self.rebuild_state)
        # an input gone from INPUT holds no SOP Instance UID any more: a duplicate of it that is
        # still here is redone and takes the output (its old one is removed, runner.stage._remove_gone)
        present = set(run.keys.values())
        self.claimed = {rows[0]["sop_uid"]: k for k, rows in run.done["manifest"].items()
                        if k in present and rows and rows[0].get("status") == "ok" and rows[0].get("sop_uid")}
        # vindr review's boxes: those an output already carries stay, live ones are added
        # (deid.reviewboxes.wanted); an input whose output lacks one is not done (is_done)
        before = {r["image_id"]: reviewboxes.recorded(r) for rows in run.done["manifest"].values() for r in rows
                  if r.get("status") == "ok" and r.get("image_id")}
        want = {}
        for iid in set(self.review_live) | {i for i, got in before.items() if got}:
            want[iid] = reviewboxes.wanted(before.get(iid, []), self.review_live.get(iid, []))
        self.review_want = want
        self.cfg = replace(self.cfg, review=want or None)     # config() is read after begin

    def survey(self, run: Run, todo) -> Survey | None:
        """The people of every input's study and patient (deid.studyterms), read from every
        input's header, the done ones too (a file to redo may share a study with them): more
        than one input, and not turned off. On a resume, only the inputs that changed and the
        groups they are in (deid.unchanged: the record of the last completed run)."""
        self.first_pass, self.headers_read, self._ids, self._prior, self._read = "none", 0, None, {}, []
        self._grouped = set()
        if not self.study_terms or len(run.sources) < 2:
            self.unchanged.clear()          # before any output: the next run reads every header
            return None
        self._rules_id = self.subs.hexid("first-pass-rules", json.dumps(
            [unchanged.rules(), self.cfg.patient_match, self.cfg.max_inflate]), 16)
        self._ids = unchanged.identities(run.sources, lambda s: run.keys[s.rel],
                                         lambda text: self.subs.hexid("first-pass-input", text, 16))
        prior = self.unchanged.load(self._rules_id, self._seal) if self._ids is not None else None
        self.unchanged.clear()              # before any output: a run that does not complete leaves no record
        self.people = studyterms.StudyPeople()
        cfg = studyterms.PeopleConfig(max_inflate=self.cfg.max_inflate, patient_match=self.cfg.patient_match)
        if prior is None:
            self.first_pass = "read"
            return self._pass(cfg, run.sources)
        self._prior = prior
        first = [s for s in run.sources if not s.missing_reason and not self._as_before(run, s)]
        if not first:
            self.first_pass = "skipped"     # nothing changed since a completed run (deid.unchanged)
            return None
        self.first_pass = "partial"
        return self._pass(cfg, first, lambda: self._members(run, cfg, first))

    def _pass(self, cfg: studyterms.PeopleConfig, sources, more=None) -> Survey:
        self._read.extend(sources)
        self.headers_read += len(sources)
        return Survey(studyterms.people_of, studyterms.setup, cfg, sources, self._take, studyterms.LABEL,
                      more=more)

    def _take(self, src: Source, result: Any) -> None:
        assert self.people is not None
        if isinstance(result, tuple):
            self._grouped.add(src.rel)
        self.people.take(src, result)

    def _as_before(self, run: Run, src: Source) -> bool:
        """``src`` is as the last completed run left it (deid.unchanged): the same file (its
        identity), done as written, and every set its rows name known to the peer sets record."""
        key = run.keys[src.rel]
        was = self._prior.get(key)
        return (was is not None and self._ids is not None and was[0] == self._ids.get(key)
                and self._done_as_written(run, key) and was[3] == self._rows_hash(run, key)
                and all(r.get("status") != "ok" or self.peer_sets.hashes(r.get("peers_digest") or None) is not None
                        for r in run.done["manifest"][key]))

    def _rows_hash(self, run: Run, key: str) -> str:
        """The keyed hash of an input's manifest rows (deid.unchanged.rows_text: red team 12), as
        the journal had them (taken by :meth:`_done_as_written`) or as this run wrote them
        (:meth:`place`, :meth:`items`); "" when not known (then it is not recorded)."""
        got = self._row_hashes.get(key)
        if got is None and run.done["manifest"].get(key) is not None:
            got = self._note_rows(key, run.done["manifest"][key])
        return got or ""

    def _note_rows(self, key: str, rows) -> str:
        got = self._row_hashes[key] = self.subs.hexid("first-pass-rows", unchanged.rows_text(rows), 16)
        return got

    def _seal(self, text: str) -> str:
        """The key's hash of the first-pass record's content (deid.unchanged.Record: red team 12)."""
        return self.subs.hexid("first-pass-record", text, 32)

    def _group_hash(self, group: str) -> str:
        return self.subs.hexid("first-pass-group", group, 16) if group else ""

    def _members(self, run: Run, cfg: studyterms.PeopleConfig, first: list[Source]) -> Survey | None:
        """The second part of a partial first pass: every other input the record puts in a study
        or patient group of an input the first part read, then in a group of those, and so on
        (the whole connected part), so that every group of every input read is read whole (its
        values, its count) as a full pass reads it, whichever of them is redone. A group no
        input read is in holds only inputs as they were, whose outputs the last run left sought
        for it."""
        assert self.people is not None
        read = {s.rel for s in first}
        queue = [self._group_hash(g) for s in first for g in self.people.group.get(s.rel, ("", "")) if g]
        by_group: dict[str, list[Source]] = {}
        for s in run.sources:
            if not s.missing_reason and s.rel not in read:
                for g in self._prior[run.keys[s.rel]][1:]:
                    if g:
                        by_group.setdefault(g, []).append(s)
        seen, taken = set(queue), set()
        while queue:
            for s in by_group.get(queue.pop(), ()):
                if s.rel in taken:
                    continue
                taken.add(s.rel)
                for g in self._prior[run.keys[s.rel]][1:]:
                    if g and g not in seen:
                        seen.add(g)
                        queue.append(g)
        more = [s for s in run.sources if s.rel in taken]
        return self._pass(cfg, more) if more else None

    def record_inputs(self) -> None:
        """At the end of a completed run: what it knows of each input whose header the first
        pass read (deid.unchanged). One it could not read (not DICOM, damaged, a read error or
        time-out that may not recur) is not recorded: the next run reads it again."""
        if self._run is None or self._ids is None or self.people is None:
            return
        run, read = self._run, {s.rel for s in self._read}
        inputs = {}
        for s in run.sources:
            key = run.keys[s.rel]
            if s.missing_reason or key not in self._ids or (s.rel in read and s.rel not in self._grouped):
                continue
            if s.rel in read:
                st, pt = self.people.group.get(s.rel, ("", ""))
                inputs[key] = (self._ids[key], self._group_hash(st), self._group_hash(pt), self._row_hashes.get(key, ""))
            else:
                inputs[key] = (*self._prior[key][:3], self._row_hashes.get(key, ""))
            if not inputs[key][3]:          # rows not seen this run: not recorded (read again)
                del inputs[key]
        self.unchanged.write(self._rules_id, inputs, self._seal)

    def items(self, todo):
        todo = list(todo)
        if self.study_terms and self._run is not None:     # (one input left: no first pass, still checked)
            todo = self._block_lost(todo)
        if self.people is not None:
            self._record_sets(todo)
            assert self._run is not None
            for key, (rows, _) in self._resought.items():   # kept, sought for the new people: after the record
                self._run.record(key, {"manifest": rows})
                self._note_rows(key, rows)
            self._resought = {}
        if self.study_terms and self._run is not None and self._run.done.get("linkage"):
            self.gone = self._gone_values(self._run)
            if self.gone:
                self._keep_gone(todo)
        items = todo if self.people is None else self.people.items(todo)
        if self.gone is None:
            return items
        return (self._with_gone(src) for src in items)

    def _block_lost(self, todo: list[Source]) -> list[Source]:
        """G1 without a linkage table: an input to (re)do whose previous output was sought for
        people that the files now in INPUT no longer give (:meth:`_lost`; a file of its study or
        patient left), and whose values are not known (:meth:`_gone_unknown`), is not redone:
        its input would be written back with a name its first output had removed. It fails with
        PEOPLE_GONE (its old output is removed by :meth:`place`: it was to be redone, e.g. its
        study gained people it holds), and its failed row keeps the set (``peers_digest``), so a
        later run fails it again until the file is back in INPUT (then nothing is lost)."""
        assert self._run is not None
        run, out = self._run, []
        for src in todo:
            key = run.keys[src.rel]
            before = [r for r in run.done["manifest"].get(key) or ()
                      if r.get("status") == "ok" or r.get("reason") == PEOPLE_GONE]
            had = next((r.get("peers_digest") for r in before if r.get("peers_digest")), None)
            if had and not src.missing_reason and self._gone_unknown(run, key) and self._lost(had, self._wanted(src)):
                self._blocked[src.rel] = had
                if self.peer_sets.hashes(had) is not None:
                    self._keep.add(had)
                src = replace(src, missing_reason=PEOPLE_GONE)
            out.append(src)
        return out

    def _keep_gone(self, todo) -> None:
        """A done output whose study or patient lost a file stays as it is; its linkage row now
        takes the gone file's values too (re-journaled), as a redone one's does (:meth:`place`):
        the gone file's own row leaves the table with this run, and an output redone on a later
        day (its study gains a file) must still be sought for them (studyscale: lost on one run,
        gained on the next, the name its first output had removed was written again)."""
        assert self._run is not None and self.gone is not None
        run, redo = self._run, {s.rel for s in todo}
        for src in run.sources:
            key = run.keys[src.rel]
            if src.rel in redo or key not in run.done["linkage"]:
                continue
            before = run.done["linkage"][key]
            groups = {g for r in before for g in (("s", r.get("study_uid")), ("p", r.get("patient_id"))) if g[1]}
            gone = set().union(*(self.gone.get(g, ()) for g in groups))
            if not gone or all(gone <= set(phi_terms(r)) for r in before):
                continue
            for r in before:
                r["phi_terms"] = sorted(set(r.get("phi_terms") or ()) | gone)
            run.record(key, {"linkage": before})

    def _record_sets(self, todo) -> None:
        """Write the peer sets (deid.peersets) before any output: those the done outputs name
        (is_done) and those the outputs to write now will name (a killed run's rows name only
        these); a set no output names any more is dropped."""
        keep = self._keep | {d for d in map(self.peers_digest, todo) if d}
        if keep or self.peer_sets.path.exists():
            self.peer_sets.write(keep)

    def _gone_values(self, run: Run) -> dict[tuple[str, str], set[str]]:
        """The identifying values (the linkage rows' ``phi_terms``) of the inputs anonymized
        before and gone from INPUT now, by their study's and their patient's substitute
        (("s", study_uid), ("p", patient_id)). Review 12: a study that lost a file and gained
        another between runs had its done outputs redone (sought for the newcomer's people)
        with only the people of the files now in INPUT, so a name the first output had removed,
        named by the file gone, was written again. No linkage table: none (README)."""
        links = run.done.get("linkage")
        if not links:
            return {}
        present = set(run.keys.values())
        out: dict[tuple[str, str], set[str]] = {}
        for key in links:
            if key in present:
                continue
            for r in links[key]:
                values = phi_terms(r)
                for group in (("s", r.get("study_uid")), ("p", r.get("patient_id"))):
                    if values and group[1]:
                        out.setdefault(group, set()).update(values)
        return out

    def _with_gone(self, src: Source) -> Source:
        """``src``, when it is redone (a previous linkage row), carrying as more peers the values
        of the inputs gone from its study and patient (:meth:`_gone_values`) and its own previous
        row's (those it carried before among them: :meth:`place` adds what it carries to its new
        row's ``phi_terms``, so a value outlives the linkage row of the file that named it, for
        the next redo), in the forms the first pass gives (a name's parts run together, an ID's
        digits, a date's orders). Not in its peers_digest: that records what the files now in
        INPUT give it."""
        assert self._run is not None and self.gone is not None
        before = self._run.done["linkage"].get(self._run.keys[src.rel]) or []
        groups = {g for r in before for g in (("s", r.get("study_uid")), ("p", r.get("patient_id"))) if g[1]}
        values = set().union(*(self.gone.get(g, ()) for g in groups),
                             *(phi_terms(r) for r in before))
        if not values:
            return src
        self._carried[src.rel] = frozenset(values)
        forms: list[str] = []
        for v in sorted(values):
            forms.append(v)
            if "^" in v:
                forms.extend(name_forms(v))
            elif not UID_SHAPE.fullmatch(v):     # a UID's digit runs are no ID (deid.audit reads them so too)
                forms.extend((*date_forms(v), *id_forms(v)))
        return replace(src, peers=tuple(dict.fromkeys((*src.peers, *forms))))

    def peers_digest(self, src: Source) -> str | None:
        """What the first pass gives ``src`` to seek (its study's and patient's people and
        places) as the id of its peer set (deid.peersets: each value a keyed hash, 12 hex digits,
        the set stored once): recorded in its manifest row; None when nothing (review 11)."""
        want = self._wanted(src)
        return want[0] if want is not None else None

    def _wanted(self, src: Source | None) -> tuple[str, frozenset[str]] | None:
        """(the id of ``src``'s peer set, its hashes), made once a group; None: nothing to seek."""
        if self.people is None or src is None:
            return None
        pair = self.people.pair(src)
        if pair is None:
            return None
        got = self._wants.get(pair)
        if got is None:
            peers, places = self.people.peers(src), self.people.peer_places(src)
            if not peers and not places:
                return None
            hashes = sorted({self._peer_hash(kind, v) for kind, values in (("p", peers), ("l", places)) for v in values})
            got = self._wants[pair] = (self.peer_sets.name(" ".join(hashes)), frozenset(hashes))
        return got

    def _done_as_written(self, run: Run, key: str) -> bool:
        """Done as its rows say (Stage.is_done: rows, output, pixel hash) with vindr review's
        boxes; asked once an input a run (the first pass's skip asks it first)."""
        got = self._as_written.get(key)
        if got is None:
            if run.done["manifest"].get(key) is not None:
                self._note_rows(key, run.done["manifest"][key])
            rows = run.done["manifest"][key] if key in run.done["manifest"] else []
            got = self._as_written[key] = super().is_done(run, key) and all(
                (r.get("status") != "ok" or r.get("image_id") not in self.review_want
                 or reviewboxes.recorded(r) == self.review_want[r["image_id"]])
                # a duplicate whose first holder left INPUT is written now (begin)
                and (r.get("status") != "duplicate" or r.get("sop_uid") in self.claimed)
                for r in rows)
        return got

    def is_done(self, run: Run, key: str) -> bool:
        if not self._done_as_written(run, key):
            return False
        rows = run.done["manifest"][key]
        if self.people is None:
            return True
        # review 11: an output written before its study or patient gained a file naming someone
        # it spells was kept by the re-run; the first pass now gives it other values: redo it
        if self._by_key is None:
            self._by_key = {run.keys[s.rel]: s for s in run.sources}
        want = self._wanted(self._by_key.get(key))
        named = []
        for r in rows:
            if r.get("status") != "ok":
                continue
            had = r.get("peers_digest") or None
            if had is not None and had.startswith(PEER_SET):
                named.append(had)
            # only a value it was not sought for: a file gone from INPUT must not make a clean
            # output written again without the values that file gave it
            if want is not None and had != want[0] and not self._covered(want, had):
                if not self._clean_of_new(run, key, r, want):
                    return False
        self._keep.update(named)
        return True

    def _gone_unknown(self, run: Run, key: str) -> bool:
        """No linkage row to tell what the files gone from INPUT named (``--no-linkage``, or an
        input first written without one): :meth:`_with_gone` has nothing to carry."""
        return self.link_path is None or key not in (run.done.get("linkage") or {})

    def _lost(self, had: str | None, want: tuple[str, frozenset[str]] | None) -> bool:
        """Whether an output sought for the set ``had`` (a row's peers_digest) would now be
        sought for less: a value of ``had`` the files in INPUT no longer give (the hashes
        compared, exactly; a set the record lacks: unknown, so True)."""
        if not had:
            return False
        sought = self.peer_sets.hashes(had)
        return sought is None or bool(sought - (want[1] if want is not None else frozenset()))

    def _clean_of_new(self, run: Run, key: str, row: dict, want: tuple[str, frozenset[str]]) -> bool:
        """G1 without a linkage table (review 12): an intact output ``row`` whose study or patient
        gained people it was not sought for AND lost a file whose people it was (known only as
        keyed hashes, :meth:`_lost`) cannot be redone from its input (the lost people would be
        written back). It is read back and searched for the new people (engine.holds_people):
        holding none, it is kept as it is (True), its row naming, once the record holds it, the
        union of both sets (:meth:`items`); else False (not done: :meth:`items` fails it)."""
        had = row.get("peers_digest") or None
        if not self._gone_unknown(run, key) or not self._lost(had, want):
            return False
        src = (self._by_key or {}).get(key)
        if src is None or self.people is None or not row.get("output"):
            return False
        sought = self.peer_sets.hashes(had) or frozenset()
        got = self._new_people.get((want[0], had or ""))
        if got is None:         # once a group: its rows name the same sets
            got = self._new_people[(want[0], had or "")] = (
                tuple(v for v in self.people.peers(src) if self._peer_hash("p", v) not in sought),
                tuple(v for v in self.people.peer_places(src) if self._peer_hash("l", v) not in sought))
        new, new_places = got
        try:
            path = self.output / row["output"]
            with open(path, "rb") as f:
                ds = read_header(f, path.stat().st_size).ds
            if holds_people(ds, self.cfg.profile, new, new_places):
                return False
        except Exception:        # an output that cannot be read back is not known clean
            return False
        if sought:              # named once the record holds it (items); a set unknown stays, sought again
            union = self.peer_sets.name(" ".join(sorted(sought | want[1])))
            self._keep.add(union)
            rows = [dict(r) for r in run.done["manifest"][key]]
            for r in rows:
                if r.get("status") == "ok":
                    r["peers_digest"] = union
            self._resought[key] = (rows, union)
        return True

    def _peer_hash(self, kind: str, value: str) -> str:
        return self.subs.hexid("study-peer", f"{kind}:{value}", 12)

    def _covered(self, want: tuple[str, frozenset[str]], had: str | None) -> bool:
        """Every value of the set ``want`` was sought in an output whose row says ``had``
        (a set this OUTPUT does not know: no). Once per pair: a group's rows say the same."""
        got = self._covers.get((want[0], had or ""))
        if got is None:
            sought = self.peer_sets.hashes(had)
            got = self._covers[(want[0], had or "")] = sought is not None and want[1] <= sought
        return got

    def place(self, run: Run, src: Source, res: dict) -> list[tuple[str, dict[str, list[dict]]]]:
        out = self._place_rows(run, src, res)
        for key, rows in out:               # what the first-pass record names (deid.unchanged)
            if "manifest" in rows:
                self._note_rows(key, rows["manifest"])
        return out

    def _place_rows(self, run: Run, src: Source, res: dict) -> list[tuple[str, dict[str, list[dict]]]]:
        row, link = res["manifest"], res["linkage"]
        if row.get("status") == "ok":
            row["peers_digest"] = self.peers_digest(src)
        elif src.rel in self._blocked:       # what its removed output was sought for: still wanted (_block_lost)
            row["peers_digest"] = self._blocked.pop(src.rel)
        carried = self._carried.pop(src.rel, None)
        if carried and link is not None:      # the values it was sought for stay in its row (_with_gone)
            link["phi_terms"] = sorted(set(link.get("phi_terms") or ()) | carried)
        out = []
        if res["tmp"]:
            loser = self._place(run, row, res["tmp"])
            if loser is not None:
                out.append((loser, self._rows(run, self._lost, run.done.get("linkage", {}).get(loser, [None])[0])))
        # a re-run (vindr review's boxes) that writes nothing for an input written before: that
        # output -- an image a reviewer asked more redaction of -- must not stay, listed nowhere (review 9 R1)
        # (not a duplicate: the output path it had is the SOP Instance's, now another input's)
        before = run.done["manifest"].get(row["input_key"]) if row.get("status") not in ("ok", "duplicate") else None
        for old in before or ():
            if old.get("status") == "ok" and old.get("output") and old["output"] != row.get("output"):
                run.remove(old["output"])
        if row.get("review_boxes") and row.get("status") == "ok":     # placed: re-written with vindr review's boxes
            self.review_rewritten += 1
        out.append((row["input_key"], self._rows(run, row, link)))
        return out

    def _rows(self, run: Run, row: dict, link: dict | None) -> dict[str, list[dict]]:
        rows = {"manifest": [row]}
        if self.link_path is not None and link is not None:
            link["status"], link["output"] = row["status"], row.get("output")
            rows["linkage"] = [link]
        return rows

    def _place(self, run: Run, row: dict, tmp: str) -> str | None:
        """Rename a finished temp file into place. Two inputs with one SOP Instance UID (even
        under different patients): the first in discovery order wins, whatever order the
        workers finished in. Returns the key of an input that lost its place, if any."""
        sop = row["sop_uid"]
        holder = self.claimed.get(sop)
        old = None
        if holder is not None and holder != row["input_key"]:
            if run.order.get(holder, 1 << 62) < run.order[row["input_key"]]:
                Path(tmp).unlink()
                row.update(status="duplicate", reason=DUPLICATE, output=None)
                return None
            rows = run.done["manifest"].get(holder)
            old = rows[0] if rows else None
        try:
            run.rename(tmp, row["output"])   # through the path guard: names are keyed, checked all the same
        except PathViolation as exc:         # the earlier holder, if any, keeps its place
            Path(tmp).unlink(missing_ok=True)
            row.update(status="failed", reason=exc.reason, output=None)
            return None
        self.claimed[sop] = row["input_key"]
        if old is None:
            return None
        if old.get("output") and old["output"] != row["output"]:
            run.remove(old["output"])
        old.update(status="duplicate", reason=DUPLICATE, output=None)
        self._lost = old                     # re-journaled by place (run.done hands out copies)
        return holder


def first_output(output: Path) -> Path | None:
    """One de-identified file under OUTPUT (not under .vindr), or None."""
    if not output.is_dir():
        return None
    for root, dirs, files in _walk(output):
        dirs[:] = sorted(d for d in dirs if d != STATE_DIR)
        for name in sorted(files):
            if name.endswith((".dcm", ".dicom")):
                return Path(root) / name
    return None


def _walk(top: Path):
    import os

    for root, dirs, files in os.walk(top):
        yield Path(root), dirs, files


def output_marks(output: Path) -> dict[str, str]:
    """The key and profile fingerprints an existing output file records (engine.read_marks)."""
    path = first_output(output)
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            return read_marks(read_header(f, path.stat().st_size).ds)
    except (BadInput, OSError):
        return {}


OUTPUT_SETTINGS = ("input_fingerprint", "uid_root", "layout", "allow_burned_in", "patient_match", "burned_in")


def settings_fingerprint(subs: Substitutes, input_path: Path, uid_root: str, layout: str, allow_burned_in: bool,
                         patient_match: str = DEFAULT_PATIENT_MATCH, burned_in: str = "off") -> str:
    """16 hex digits naming the settings (besides key and profile) that decide what lands
    in OUTPUT; every output records it (engine.SETTINGS_MARK). The INPUT path enters keyed."""
    values = {"input_fingerprint": subs.hexid("input-root", str(input_path), 16), "uid_root": uid_root,
              "layout": layout, "allow_burned_in": allow_burned_in, "patient_match": patient_match}
    if burned_in != "off":               # off: the fingerprint of outputs made before --burned-in
        values["burned_in"] = burned_in
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def check_output_marks(output: Path, key_path: Path, subs: Substitutes, profile: Profile, *, created: bool,
                       settings: str | None = None) -> None:
    """Refuse, before anything is written, a request whose key or profile differs from the
    one OUTPUT's files were made with, whether or not anonymize.json survived; and a missing
    key file for an OUTPUT that already exists (never a new key for it)."""
    recorded: dict[str, Any] = {}
    try:
        recorded = Settings(output, "anonymize").previous() or {}
    except StateDamaged:
        recorded = {}
    marks = output_marks(output)
    expected = marks.get("key_fingerprint") or recorded.get("key_fingerprint")
    exists = (output / STATE_DIR).is_dir() or (output / "manifest.parquet").exists() or bool(marks)
    if created and exists:
        raise KeyError_(f"the key file {key_path} does not exist, but OUTPUT was made with the key of fingerprint "
                        f"{expected or '(unknown: no intact record)'}: expected {expected or 'unknown'}; pass that key "
                        "with --key (a new key would not match; none was created), or use a new OUTPUT folder")
    if marks.get("key_fingerprint") and marks["key_fingerprint"] != subs.fingerprint():
        raise SettingsChanged(f"OUTPUT was made with a different key fingerprint: expected {marks['key_fingerprint']}, "
                              f"given {subs.fingerprint()} ({key_path}; read from OUTPUT's files): pass the key that "
                              "made OUTPUT with --key, or use a new OUTPUT folder")
    if marks.get("profile_fingerprint") and marks["profile_fingerprint"] != profile.fingerprint():
        raise SettingsChanged("OUTPUT holds files made with a different profile (read from OUTPUT's files); "
                              "use the same profile and options, or a new OUTPUT folder")
    if settings and not recorded and marks.get("settings_fingerprint") and marks["settings_fingerprint"] != settings:
        # (with an intact anonymize.json the runner's settings check names the one that differs)
        raise SettingsChanged("OUTPUT holds files made with other settings (INPUT, --uid-root, --layout, "
                              "--allow-burned-in, --burned-in or --patient-match; read from OUTPUT's files); use the same, "
                              "or a new OUTPUT folder")


def anonymize(
    input_path: Path,
    output: Path,
    *,
    key_path: Path,
    profile: Profile,
    workers: int,
    uid_root: str = "2.25",
    layout: str = "tree",
    allow_burned_in: bool = False,
    linkage: Path | None = None,
    write_linkage: bool = True,
    console: Console | None = None,
    executor: Executor | None = None,
    rebuild_state: bool = False,
    max_inflate: int = DEFAULT_MAX_INFLATE,
    patient_match: str = DEFAULT_PATIENT_MATCH,
    burned_in: str = "redact",
    finder=None,
    review: Path | None = None,
    study_terms: bool = True,
) -> Summary:
    input_path, output = input_path.resolve(), output.resolve()
    if layout not in LAYOUTS:
        raise RequestError(f"--layout must be one of {', '.join(LAYOUTS)}")
    if patient_match not in PATIENT_MATCH:
        raise RequestError(f"--patient-match must be one of {', '.join(PATIENT_MATCH)}")
    if burned_in not in MODES:
        raise RequestError(f"--burned-in must be one of {', '.join(MODES)}")
    if not UID_ROOT.match(uid_root) or len(uid_root) > 32:
        raise RequestError("--uid-root must be a valid UID root (digits and dots, no leading zeros), "
                           "at most 32 characters so that new UIDs (with ≥ 100 random bits) fit in 64")
    link_path = (linkage or default_linkage_path(output)).resolve() if write_linkage else None
    key_path = key_path.resolve()
    check_paths(input_path, output, key_path, link_path)
    check_foreign_output(output)
    if max_inflate < 1:
        raise RequestError("--max-inflate must be at least 1 byte")
    created = not key_path.exists()
    # a new key lives in memory until the request is known to run (Stage.prepare writes it)
    key = new_key() if created else read_key(key_path)
    subs = Substitutes(key, uid_root)
    settings_fp = settings_fingerprint(subs, input_path, uid_root, layout, allow_burned_in, patient_match, burned_in)
    check_output_marks(output, key_path, subs, profile, created=created, settings=settings_fp)
    cfg = AnonConfig(str(output), str(key_path), subs.fingerprint(), profile, uid_root, layout, allow_burned_in,
                     max_inflate=max_inflate, settings_fingerprint=settings_fp, patient_match=patient_match,
                     burned_in=burned_in, finder=finder)
    stage = AnonymizeStage(input_path, output, cfg, key, created=created, link_path=link_path)
    stage.rebuild_state = rebuild_state
    stage.study_terms = study_terms      # False: each file's own people only (measurements; less safe)
    stage.review_live = review_boxes(output, review)
    try:
        result = run_stage(stage, input_path, executor=executor, workers=workers, console=console)
        stage.record_inputs()               # completed: the next run may read only what changed
    finally:
        stage.forget()                      # the first pass's values (PHI) go with the run
    summary = Summary(total=result.inputs, resumed=result.resumed, counts=result.counts, reasons=result.reasons,
                      output=output, manifest=output / "manifest.parquet", linkage=link_path, key_created=created,
                      key_path=key_path, key_fingerprint=subs.fingerprint(), profile=profile.name,
                      warnings=result.warnings, review_rewritten=stage.review_rewritten, first_pass=stage.first_pass,
                      headers_read=stage.headers_read, gone_removed=result.gone_removed,
                      review_images=sum(1 for r in result.rows.get("manifest", [])
                                        if r.get("status") == "ok" and r.get("review_boxes")))
    ok = [r for r in result.rows.get("manifest", []) if r.get("status") == "ok"]
    summary.masked = sum(1 for r in ok if r.get("redactions") not in (None, "", "[]") or r.get("review_boxes"))
    summary.pixels_modified = sum(1 for r in ok if r.get("pixels_modified"))
    summary.scanned = sum(1 for r in ok if r.get("redactions") is not None)
    summary.no_pixels = sum(1 for r in ok if r.get("redactions") is None and r.get("pixel_sha256") is None)
    return summary


def review_boxes(output: Path, review: Path | None) -> dict[str, list[dict]]:
    """The live more-redaction boxes of OUTPUT's own vindr review and of ``--review``
    (deid.reviewboxes), every row checked against OUTPUT's manifest first: a bad row refuses
    the run (one line naming its seq) before anything is written."""
    tables = reviewboxes.locate(output, review)
    if not tables:
        return {}
    found = [reviewboxes.read_table(p) for p in tables]
    if not any(found):
        return {}
    try:
        manifest = read_rows(output / "manifest.parquet")
    except (OSError, ValueError):
        raise reviewboxes.ReviewBoxError("vindr review decisions given, but OUTPUT has no readable manifest.parquet: "
                                         "their images are unknown") from None
    images = {r["image_id"]: (r.get("rows"), r.get("columns"), r.get("frames")) for r in manifest
              if r.get("status") == "ok" and isinstance(r.get("image_id"), str)}
    live: dict[str, list[dict]] = {}
    for rows in found:
        reviewboxes.check_images(rows, images)
        for iid, boxes in reviewboxes.live(rows).items():
            live.setdefault(iid, []).extend(boxes)
    return live
