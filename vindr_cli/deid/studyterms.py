"""The people of a file's study and patient, for ``vindr anonymize``'s first pass.

A worker de-identifies one file and knows only that file's header: a referring physician or
an operator named in file A of a study, and written into file B's kept bytes (a LUTData as
UTF-16, one character a US number), was copied into B's output (red team 8). So before the
work, a first pass through the same executor reads every input's header up to its Pixel Data
(:func:`people_of`: cheap, no pixels, no key; ``deid.peoplescan`` walks the raw bytes, and
hands what it is not sure of to pydicom's read) and returns its person values
(``deid.engine.person_values``: names, IDs, birth and study dates, a name's parts run
together), its StudyInstanceUID and its patient (``deid.identity.patient_key``, the grouping
the substitutes use). The driver gathers them (:class:`StudyPeople`) per study and per patient
(one patient's studies name the same staff), and each file's task is given, in its
``Source.peers``, the values of its study's and its patient's other files: the engine seeks
them in its kept values exactly as it seeks its own people, with the same action (removed,
emptied or dummied as identifying).

Scope (decided): a file's own study, and every study of its own patient. Another patient's
study is not searched (its staff are not this file's people, and every study would otherwise
search every person of the batch). Files without a StudyInstanceUID group only by patient,
and a patient known only by an empty study ("study:") not at all.

The values are PHI: they live in the driver's memory for the run and travel only inside the
task's arguments (with ``--executor dask``, over the connection Dask's TLS protects, as the
rows coming back do); they are never journaled, written under OUTPUT, logged or put in a file
name, and a resumed run computes them again. Only a keyed hash of each is stored, once a group
(``deid.peersets``; a manifest row's ``peers_digest`` names its set, review 11): a re-run redoes an output whose study or patient has
since gained a file that names someone it was not sought for (before, is_done kept it as it
was written); one whose group lost a file stays as it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator

from vindr_cli.deid.identity import DEFAULT_PATIENT_MATCH
from vindr_cli.dicomio.limits import DEFAULT_MAX_INFLATE
from vindr_cli.runner.sources import Source

LABEL = "anonymize: people of each study"
# a person or place value longer than this is no one's (PS3.5: an LT, the longest text a person
# attribute may be, holds 10,240 characters): not handed on (hostile10: a 64 MB PatientName read
# by this pass went, pickled, with the task of every other file of its study); the file itself
# fails its own pass (dicomio.structure: a value longer than its VR allows)
MAX_VALUE = 16384


@dataclass(frozen=True)
class PeopleConfig:
    """What the first pass's workers get: no key, no path under OUTPUT."""

    max_inflate: int = DEFAULT_MAX_INFLATE
    patient_match: str = DEFAULT_PATIENT_MATCH
    scan: bool = True       # the raw walk first (deid.peoplescan); False: pydicom's read only (the proofs' oracle)


def setup(cfg: PeopleConfig) -> PeopleConfig:
    from vindr_cli.dicomio.quiet import quiet_pydicom

    quiet_pydicom()
    return cfg


def people_of(cfg: PeopleConfig, src: Source) -> tuple[str, str, tuple[str, ...], tuple[str, ...]] | None:
    """(StudyInstanceUID, patient key, the file's person values, its places: InstitutionName and
    the other ``engine.PLACE_KEYWORDS`` at any depth) from the header up to the Pixel Data; None
    for anything unreadable (the main pass gives such a file its row)."""
    if src.missing_reason:
        return None
    from vindr_cli.deid.engine import person_values
    from vindr_cli.deid.identity import patient_key
    from vindr_cli.deid.peoplescan import Unsure, scan
    from vindr_cli.dicomio.header import read_header

    try:
        with src.open() as f:
            if src.member is None and cfg.scan:
                found: list[str] = []
                try:    # the raw walk (deid.peoplescan); anything it is not sure of: the read below
                    study, patient, values = scan(f, src.size, cfg.patient_match, found)
                    return study, patient, _handed_on(values), _handed_on(found)
                except Unsure:
                    f.seek(0)
            ds = read_header(f, src.size, cfg.max_inflate, structure=False).ds
            places: list[str] = []      # review 11: file A's hospital spelled in file B's LUT was written
            values = _handed_on(person_values(ds, places=places))
            study = str(ds.get("StudyInstanceUID", "") or "").strip()
            return study, patient_key(ds, cfg.patient_match), values, _handed_on(places)
    except Exception:        # not DICOM, damaged, a zip member that cannot be read: not this pass's to say
        return None


def _handed_on(values) -> tuple[str, ...]:
    """A file's values as the pass hands them on: each once, in order, none over MAX_VALUE."""
    return tuple(dict.fromkeys(v for v in values if len(v) <= MAX_VALUE))


@dataclass(repr=False)
class StudyPeople:
    """The driver's gathering of :func:`people_of`'s results (PHI, memory only: no repr).
    Memory: a dict entry per input (its group pair is shared), each distinct value once, and a
    set of references per study and per patient (measured: bench/README.md, studyterms)."""

    studies: dict[str, set[str]] = field(default_factory=dict)
    patients: dict[str, set[str]] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)             # group -> files in it
    places: dict[str, set[str]] = field(default_factory=dict)       # group -> its files' places
    group: dict[str, tuple[str, str]] = field(default_factory=dict)  # Source.rel -> (study group, patient group)
    _made: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict, repr=False)
    _made_places: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict, repr=False)
    _shared: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, repr=False)
    _strings: dict[str, str] = field(default_factory=dict, repr=False)

    def take(self, src: Source, result: Any) -> None:
        if not isinstance(result, tuple) or len(result) not in (3, 4):
            return                      # unreadable, or ItemFailed: the main pass decides its row
        study, patient, values, *rest = result
        places = [self._strings.setdefault(v, v) for v in (rest[0] if rest else ())]
        s = "s:" + study if study else ""
        p = "p:" + patient if patient and patient != "study:" else ""
        pair = (s, p)
        self.group[src.rel] = self._shared.setdefault(pair, pair)      # one tuple (and key strings) a group
        values = [self._strings.setdefault(v, v) for v in values]       # one copy of a name the batch repeats
        for g, where in ((s, self.studies), (p, self.patients)):
            if g:
                where.setdefault(g, set()).update(values)
                self.files[g] = self.files.get(g, 0) + 1
                if places:
                    self.places.setdefault(g, set()).update(places)

    def pair(self, src: Source) -> tuple[str, str] | None:
        """``src``'s (study group, patient group), the key of what :meth:`peers` and
        :meth:`peer_places` give it; None when it shares neither with another file."""
        s, p = self.group.get(src.rel, ("", ""))
        if self.files.get(s, 0) < 2 and self.files.get(p, 0) < 2:
            return None
        return self._shared.get((s, p), (s, p))

    def peers(self, src: Source) -> tuple[str, ...]:
        """The person values of ``src``'s study and patient, its own among them (the engine
        drops repeats); () when it shares neither with another file."""
        return self._of_group(src, self.studies, self.patients, self._made)

    def peer_places(self, src: Source) -> tuple[str, ...]:
        """The places (InstitutionName...) of ``src``'s study and patient, as :meth:`peers`."""
        return self._of_group(src, self.places, self.places, self._made_places)

    def _of_group(self, src: Source, by_study: dict[str, set[str]], by_patient: dict[str, set[str]],
                  made: dict[tuple[str, str], tuple[str, ...]]) -> tuple[str, ...]:
        """The values of ``src``'s study group in ``by_study`` and of its patient group in
        ``by_patient``, sorted, made once per group pair (one tuple for every file of the same
        study and patient); () when it shares neither with another file."""
        pair = self.pair(src)
        if pair is None:
            return ()
        got = made.get(pair)
        if got is None:
            s, p = pair
            got = made[pair] = tuple(sorted(by_study.get(s, set()) | by_patient.get(p, set())))
        return got

    def items(self, todo: Iterable[Source]) -> Iterator[Source]:
        """``todo``, each source carrying its peers and their places (made one at a time, as the
        executor takes them)."""
        for src in todo:
            peers, places = self.peers(src), self.peer_places(src)
            yield replace(src, peers=peers, peer_places=places) if peers or places else src
