"""studyscale (issue 13): what an output was sought for is stored once a group (deid.peersets),
not as every value's hash in every manifest row; the resume rules of review 11 and 12 hold."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import key_file_in
from test_redteam8 import _study_file, _voi_lut

NAME_UTF16 = "TRANVANBINH".encode("utf-16-le")


def _anonymize(src: Path, out: Path, key: Path, linkage: Path | None, rebuild: bool = False):
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return anonymize(src, out, key_path=key, profile=load_profile(), workers=1, linkage=linkage,
                         write_linkage=linkage is not None, rebuild_state=rebuild)


def _world(tmp_path: Path, n: int = 6):
    src, out, linkage = tmp_path / "export", tmp_path / "anon", tmp_path / "anon.linkage.parquet"
    key = key_file_in(tmp_path)
    _study_file(src, "lut", 0, VOILUTSequence=_voi_lut("OW", NAME_UTF16))
    _study_file(src, "named", 1, ReferringPhysicianName="TRAN^VAN^BINH")
    for i in range(2, n):          # each names another operator
        _study_file(src, f"op{i}", i, OperatorsName=f"OPERATOR{i:03d}^HOANG")
    _anonymize(src, out, key, linkage)
    return src, out, linkage, key


def _hashes(out: Path) -> dict[str, str]:
    from vindr_cli.deid.peersets import FILE

    return json.loads((out / ".vindr" / FILE).read_text())["sets"]


def _digests(out: Path) -> list:
    return pq.read_table(out / "manifest.parquet").column("peers_digest").to_pylist()


def test_a_group_s_set_is_stored_once_and_named_by_every_row(tmp_path):
    from vindr_cli.deid.peersets import set_id

    src, out, linkage, key = _world(tmp_path)
    digests = _digests(out)
    assert len(set(digests)) == 1 and digests[0].startswith("g:") and len(digests[0]) == 26
    sets = _hashes(out)
    assert list(sets) == digests[:1] and set_id(sets[digests[0]]) == digests[0]
    assert len(sets[digests[0]].split()) >= 6        # every file's people, once
    assert "HOANG" not in (out / ".vindr" / "anonymize_peers.json").read_text().upper()
    assert _anonymize(src, out, key, linkage).resumed == 6
    rows = {Path(r["input_path"]).name: r for r in pq.read_table(linkage).to_pylist()}
    assert NAME_UTF16 not in (out / rows["lut.dcm"]["output"]).read_bytes()


def test_g1_gains_and_loses_a_file_with_peer_sets(tmp_path):
    """A file leaves (its values are in the kept set: the rest stay done), then another comes
    (all redone, with the gone file's values carried: the name stays out); the set no row names
    any more is dropped from the record."""
    src, out, linkage, key = _world(tmp_path)
    first = set(_hashes(out))
    (src / "named.dcm").unlink()
    assert _anonymize(src, out, key, linkage).resumed == 5          # lost a file: nothing redone
    assert set(_hashes(out)) == first
    _study_file(src, "other", 9, OperatorsName="PHAM^THI^DUNG")
    assert _anonymize(src, out, key, linkage).resumed == 0          # gained a value: redone
    rows = {Path(r["input_path"]).name: r for r in pq.read_table(linkage).to_pylist()}
    assert NAME_UTF16 not in (out / rows["lut.dcm"]["output"]).read_bytes()
    assert set(_hashes(out)) == set(_digests(out)) and not first & set(_hashes(out))
    assert _anonymize(src, out, key, linkage).resumed == 6


def test_an_output_made_with_per_row_hashes_resumes_as_before(tmp_path):
    """A manifest written before peer sets (each row the hashes themselves, no record): read as
    it is; a re-run resumes, and redoes only when the group gains a value."""
    src, out, linkage, key = _world(tmp_path)
    sets = _hashes(out)
    table = pq.read_table(out / "manifest.parquet")
    i = table.schema.get_field_index("peers_digest")
    old = [sets.get(d) if d else d for d in table.column(i).to_pylist()]
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(old, pa.string())), out / "manifest.parquet")
    (out / ".vindr" / "anonymize_peers.json").unlink()
    assert _anonymize(src, out, key, linkage).resumed == 6
    _study_file(src, "other", 9, OperatorsName="PHAM^THI^DUNG")
    assert _anonymize(src, out, key, linkage).resumed == 0


def test_a_lost_record_keeps_what_its_name_says_and_redoes_the_rest(tmp_path):
    """A set's name is the hash of its hashes: a row naming the set its group wants now is
    done without the record; one naming another set is redone when the record is lost (never
    kept on a guess), the gone file's values carried (the name stays out)."""
    src, out, linkage, key = _world(tmp_path)
    record = out / ".vindr" / "anonymize_peers.json"
    record.unlink()
    assert _anonymize(src, out, key, linkage).resumed == 6
    (src / "named.dcm").unlink()
    record.unlink()
    assert _anonymize(src, out, key, linkage).resumed == 0
    rows = {Path(r["input_path"]).name: r for r in pq.read_table(linkage).to_pylist()}
    assert NAME_UTF16 not in (out / rows["lut.dcm"]["output"]).read_bytes()


def test_a_damaged_record_refuses_then_rebuilds(tmp_path):
    from vindr_cli.runner.state import StateDamaged

    src, out, linkage, key = _world(tmp_path, 3)
    record = out / ".vindr" / "anonymize_peers.json"
    record.write_text(record.read_text().replace('"g:', '"g:0', 1))
    with pytest.raises(StateDamaged) as err:
        _anonymize(src, out, key, linkage)
    assert "anonymize_peers.json is damaged" in str(err.value) and "--rebuild-state" in str(err.value)
    assert _anonymize(src, out, key, linkage, rebuild=True).resumed == 3     # their sets' names match
    assert list((out / ".vindr" / "damaged").iterdir())
    assert json.loads(record.read_text())["sets"] == {d: _hashes(out)[d] for d in set(_digests(out))}


def test_a_killed_run_s_rows_name_sets_the_record_holds(tmp_path):
    """The record is written before any output: a run stopped after its first file (a fault
    raised in place) leaves journal rows whose sets the record names; the re-run resumes them."""
    from vindr_cli.deid import batch

    src, out, linkage = tmp_path / "export", tmp_path / "anon", tmp_path / "anon.linkage.parquet"
    key = key_file_in(tmp_path)
    for i in range(4):
        _study_file(src, f"op{i}", i, OperatorsName=f"OPERATOR{i:03d}^HOANG")
    real, placed = batch.AnonymizeStage.place, []

    def stop_after_two(self, run, s, res):
        if len(placed) == 2:
            raise KeyboardInterrupt
        placed.append(s.rel)
        return real(self, run, s, res)

    batch.AnonymizeStage.place = stop_after_two
    try:
        with pytest.raises(KeyboardInterrupt):
            _anonymize(src, out, key, linkage)
    finally:
        batch.AnonymizeStage.place = real
    journal = (out / ".vindr" / "anonymize.journal.jsonl").read_text().splitlines()
    named = {r["peers_digest"] for line in journal for r in json.loads(line)["rows"]}
    assert len(journal) == 2 and named <= set(_hashes(out))
    assert _anonymize(src, out, key, linkage).resumed == 2
