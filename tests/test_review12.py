"""Review 12 (issue 13): the merged diff 9aebe87..0d4b32a (studyterms' first pass, peers_digest,
check_foreign_output, look-alikes, ICC rewriting, review queues) read as a demanding reviewer;
each problem held by a test that failed on main, on pydicom's CT_small with planted values.

G1 A study that gains AND loses a file between runs. A done output whose study's other file
   named the referring physician (spelled in the done file's LUTData) was written without the
   name. The file that named him leaves INPUT and another file of the study comes: the done
   output is redone (it was never sought for the newcomer's people), with only the people of
   the files now in INPUT, so the name that the first output had removed was written again.
   The same when the output is redone for another reason (deleted) once its study-mate left.
   The people of a file gone from INPUT are in the previous linkage rows (``phi_terms``): a
   redone output is also sought for those of its study and patient (deid.batch), and they stay
   in its own row for the redo after that (the study gains a file on a third day).
F1 Another command's OUTPUT (vindr decode's PNGs and images.parquet) was taken by
   check_foreign_output as anonymize's, by its state folder alone: the de-identified files were
   written in among its files. Now anonymize's settings, its manifest or a vindr-marked file.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers import key_file_in
from test_redteam8 import _study_file, _voi_lut

NAME_UTF16 = "TRANVANBINH".encode("utf-16-le")


def _anonymize(src: Path, out: Path, key: Path, linkage: Path | None):
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return anonymize(src, out, key_path=key, profile=load_profile(), workers=1, linkage=linkage,
                         write_linkage=linkage is not None)


def _output_of(out: Path, linkage: Path, name: str) -> Path:
    rows = {Path(r["input_path"]).name: r for r in pq.read_table(linkage).to_pylist()}
    assert rows[name]["status"] == "ok"
    return out / rows[name]["output"]


def _world(tmp_path: Path):
    src, out, linkage = tmp_path / "export", tmp_path / "anon", tmp_path / "anon.linkage.parquet"
    key = key_file_in(tmp_path)
    _study_file(src, "lut", 2, VOILUTSequence=_voi_lut("OW", NAME_UTF16))
    _study_file(src, "named", 1, ReferringPhysicianName="TRAN^VAN^BINH")
    _anonymize(src, out, key, linkage)
    assert NAME_UTF16 not in _output_of(out, linkage, "lut.dcm").read_bytes()
    return src, out, linkage, key


# ------------------------------------------------------------------ G1: gains and loses a file

def test_g1_a_study_that_gains_and_loses_a_file_does_not_write_a_removed_name_again(tmp_path):
    from vindr_cli.deid.audit import audit

    src, out, linkage, key = _world(tmp_path)
    (src / "named.dcm").unlink()                                          # leaves INPUT ...
    _study_file(src, "other", 3, OperatorsName="PHAM^THI^DUNG")          # ... and the study gains a file
    summary = _anonymize(src, out, key, linkage)
    assert summary.resumed == 0                          # the done file is redone for the newcomer's people
    assert NAME_UTF16 not in _output_of(out, linkage, "lut.dcm").read_bytes()
    assert _anonymize(src, out, key, linkage).resumed == 2                # and then a re-run is a resume
    assert audit(out, linkage, pixels=False).counts().get("phi", 0) == 0
    assert "VAN^BINH" not in repr(pq.read_table(out / "manifest.parquet").to_pylist()).upper()
    # a third day: the study gains another file; the linkage row of the file that named him is
    # gone since the second run, the value he was sought for is kept in the redone file's own row
    _study_file(src, "third", 4, PerformingPhysicianName="LE^THI^MAI")
    assert _anonymize(src, out, key, linkage).resumed == 0
    assert NAME_UTF16 not in _output_of(out, linkage, "lut.dcm").read_bytes()
    assert audit(out, linkage, pixels=False).counts().get("phi", 0) == 0


def test_g1_an_output_redone_after_its_study_mate_left_keeps_the_name_out(tmp_path):
    """One input left (no first pass: a single file), its output deleted: redone, still without the name."""
    src, out, linkage, key = _world(tmp_path)
    (src / "named.dcm").unlink()
    _output_of(out, linkage, "lut.dcm").unlink()
    assert _anonymize(src, out, key, linkage).resumed == 0
    assert NAME_UTF16 not in _output_of(out, linkage, "lut.dcm").read_bytes()


def test_g1_without_a_linkage_table_a_removed_name_is_not_written_again(tmp_path):
    """Was a strict xfail: without a linkage table the people of a file gone from INPUT are known
    only as keyed hashes (peers_digest), and the output redone for a newcomer of its study was
    sought for the files in INPUT only. Now the written output, clean of the gone file's people,
    is searched for the newcomer's: holding none, it is kept as it is (deid.batch._clean_of_new),
    and a re-run keeps it again without a search (its row names both sets)."""
    src, out, key = tmp_path / "export", tmp_path / "anon", key_file_in(tmp_path)
    _study_file(src, "lut", 2, VOILUTSequence=_voi_lut("OW", NAME_UTF16))
    _study_file(src, "named", 1, ReferringPhysicianName="TRAN^VAN^BINH")
    _anonymize(src, out, key, None)
    assert not [p for p in out.rglob("*.dcm") if NAME_UTF16 in p.read_bytes()]
    written = {p: p.read_bytes() for p in out.rglob("*.dcm")}
    (src / "named.dcm").unlink()
    _study_file(src, "other", 3, OperatorsName="PHAM^THI^DUNG")
    summary = _anonymize(src, out, key, None)
    assert summary.resumed == 1 and summary.counts["ok"] == 2      # lut.dcm kept, other.dcm written
    assert not [p for p in out.rglob("*.dcm") if NAME_UTF16 in p.read_bytes()]
    assert all(p.read_bytes() == b for p, b in written.items() if p.exists())
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    digests = {r["peers_digest"] for r in rows if r["status"] == "ok"}
    assert len(digests) == 2               # lut.dcm names the union (both sets), other.dcm the set of now
    assert _anonymize(src, out, key, None).resumed == 2


def _g1_no_linkage(tmp_path, lut_name: bytes):
    src, out, key = tmp_path / "export", tmp_path / "anon", key_file_in(tmp_path)
    luts = _voi_lut("OW", NAME_UTF16)
    if lut_name:            # a second LUT (its own element: kept while the first is removed)
        luts.append(_voi_lut("OW", lut_name)[0])
    _study_file(src, "lut", 2, VOILUTSequence=luts)
    _study_file(src, "named", 1, ReferringPhysicianName="TRAN^VAN^BINH")
    _anonymize(src, out, key, None)
    return src, out, key


def _manifest(out: Path) -> list[dict]:
    return pq.read_table(out / "manifest.parquet").to_pylist()


def test_g1_without_a_linkage_table_an_output_holding_a_newcomer_s_name_fails_and_goes(tmp_path):
    """The kept output spells the newcomer's name (written when he was no one of the study): it
    cannot stay (a leak) nor be redone (the gone file's name would come back): it fails with a
    fixed reason and its file is removed; a re-run fails it again, and once the gone file is
    back in INPUT it is redone without either name."""
    from vindr_cli.deid.batch import PEOPLE_GONE

    newcomer = "PHAMTHIDUNG".encode("utf-16-le")
    src, out, key = _g1_no_linkage(tmp_path, newcomer)
    (lut_output,) = [p.relative_to(out) for p in out.rglob("*.dcm") if newcomer in p.read_bytes()]  # no one's then
    (src / "named.dcm").unlink()
    _study_file(src, "other", 3, OperatorsName="PHAM^THI^DUNG")
    summary = _anonymize(src, out, key, None)
    assert summary.counts == {"ok": 1, "failed": 1} and summary.reasons[("failed", PEOPLE_GONE)] == 1
    assert not [p for p in out.rglob("*.dcm") if NAME_UTF16 in p.read_bytes() or newcomer in p.read_bytes()]
    assert not (out / lut_output).exists()                                   # the old output is removed
    failed = [r for r in _manifest(out) if r["status"] == "failed"]
    assert [r["reason"] for r in failed] == [PEOPLE_GONE] and failed[0]["peers_digest"]
    again = _anonymize(src, out, key, None)                                    # not redone on a re-run
    assert again.reasons[("failed", PEOPLE_GONE)] == 1 and not (out / lut_output).exists()
    _study_file(src, "named", 1, ReferringPhysicianName="TRAN^VAN^BINH")      # the gone file is back
    back = _anonymize(src, out, key, None)
    assert back.counts["ok"] == 3 and not back.reasons[("failed", PEOPLE_GONE)]
    assert not [p for p in out.rglob("*.dcm") if NAME_UTF16 in p.read_bytes() or newcomer in p.read_bytes()]


@pytest.mark.parametrize("mates", [0, 1])
def test_g1_without_a_linkage_table_a_lost_output_is_not_redone_without_the_gone_people(tmp_path, mates):
    """The output deleted after its study-mate left: a redo from its input would write the name
    back; it fails with the fixed reason instead (alone in INPUT, with no first pass, too)."""
    from vindr_cli.deid.batch import PEOPLE_GONE

    src, out, key = _g1_no_linkage(tmp_path, b"")
    (src / "named.dcm").unlink()
    if mates:
        _study_file(src, "other", 3)             # the study at two files again (the first pass runs)
    for p in out.rglob("*.dcm"):
        p.unlink()
    summary = _anonymize(src, out, key, None)
    assert summary.reasons[("failed", PEOPLE_GONE)] == 1
    assert not [p for p in out.rglob("*.dcm") if NAME_UTF16 in p.read_bytes()]


def test_g1_without_a_linkage_table_a_run_killed_before_the_rows_resumes_the_same(tmp_path, monkeypatch):
    """A run killed after the search, before the kept output's row was journaled: the next run
    searches again and keeps it (the row still names the first set, which the record keeps)."""
    from vindr_cli.deid import batch

    src, out, key = _g1_no_linkage(tmp_path, b"")
    written = {p: p.read_bytes() for p in out.rglob("*.dcm")}
    (src / "named.dcm").unlink()
    _study_file(src, "other", 3, OperatorsName="PHAM^THI^DUNG")

    class Killed(BaseException):
        pass

    def killed(self, todo):
        raise Killed()

    with monkeypatch.context() as m:
        m.setattr(batch.AnonymizeStage, "_record_sets", killed)
        with pytest.raises(Killed):
            _anonymize(src, out, key, None)
    summary = _anonymize(src, out, key, None)
    assert summary.resumed == 1 and summary.counts["ok"] == 2
    assert all(p.read_bytes() == b for p, b in written.items() if p.exists())
    assert not [p for p in out.rglob("*.dcm") if NAME_UTF16 in p.read_bytes()]


# ------------------------------------------------------------------ F1: another command's OUTPUT

def test_f1_another_command_s_output_is_refused_as_anonymize_s_output(tmp_path):
    """vindr decode's OUTPUT (its PNGs, images.parquet, a .vindr of its own) was taken as a vindr
    OUTPUT by its state folder alone: the de-identified files were written in among its own, and
    the README's "an OUTPUT this command made" was not true. Refused now, before anything is
    written; a folder holding only a state folder (a first run stopped before its settings) is
    still taken, and anonymize's own OUTPUT still resumes."""
    from vindr_cli.deid.batch import FOREIGN_OUTPUT, check_foreign_output
    from vindr_cli.errors import RequestError
    from vindr_cli.pixels.batch import decode_tree
    from vindr_cli.pixels.task import DecodeConfig, SizeSpec

    src, out, key = tmp_path / "export", tmp_path / "anon", key_file_in(tmp_path)
    _study_file(src, "plain", 1)
    _anonymize(src, out, key, tmp_path / "anon.linkage.parquet")
    dec = tmp_path / "dec"
    decode_tree(out, dec, DecodeConfig(output=str(dec), size=SizeSpec()), workers=1)
    before = sorted(p.relative_to(dec) for p in dec.rglob("*"))
    assert any(p.suffix == ".png" for p in before)
    with pytest.raises(RequestError) as err:
        _anonymize(src, dec, key, tmp_path / "dec.linkage.parquet")
    assert str(err.value) == FOREIGN_OUTPUT
    assert sorted(p.relative_to(dec) for p in dec.rglob("*")) == before        # nothing written
    assert not (tmp_path / "dec.linkage.parquet").exists()
    check_foreign_output(out)                                # anonymize's own OUTPUT
    stopped = tmp_path / "stopped"
    (stopped / ".vindr").mkdir(parents=True)
    (stopped / ".vindr" / "lock").write_text("")
    check_foreign_output(stopped)



def test_g1_a_redone_output_is_written_as_before_when_nothing_changed(tmp_path):
    """The values carried into a redo are sought in the forms the first pass gives, but a UID is
    no ID: its digit runs ("3680043" of the study's UID) are not sought alone (deid.audit does
    not either), or a redo dummied a kept number the first run kept (here a planted WindowCenter)."""
    import pydicom

    src, out, linkage = tmp_path / "export", tmp_path / "anon", tmp_path / "anon.linkage.parquet"
    key = key_file_in(tmp_path)
    _study_file(src, "lut", 2, WindowCenter="3680043", WindowWidth="400")
    _study_file(src, "named", 1, ReferringPhysicianName="TRAN^VAN^BINH")
    _anonymize(src, out, key, linkage)
    first = _output_of(out, linkage, "lut.dcm")
    written = first.read_bytes()
    assert pydicom.dcmread(first).WindowCenter == 3680043
    first.unlink()
    assert _anonymize(src, out, key, linkage).resumed == 1
    assert _output_of(out, linkage, "lut.dcm").read_bytes() == written
