"""red team 12 (issue 13): the newest resume paths (mends' first-pass record, g1nolink, termcache)
attacked with real files (pydicom's CT_small with planted names); each result is compared with a
fresh run's. bench/README "redteam12" lists every attack and its result."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from test_mends import _run

OTHER = "1.2.826.0.1.3680043.10.543.99"


def _outputs(out: Path) -> dict[str, Path]:
    rows = pq.read_table(out.parent / "anon.linkage.parquet").to_pylist()
    return {Path(r["input_path"]).name: out / r["output"] for r in rows if r.get("output")}


def _lut_alone(src: Path) -> None:
    """``lut`` spells TRANVANBINH (UTF-16) in a LUTData and names no one; ``other`` is another
    study and patient (two inputs: the first pass runs)."""
    from test_redteam8 import _study_file, _voi_lut
    from test_studyterms import _file

    _study_file(src, "lut", 2, VOILUTSequence=_voi_lut("OW", "TRANVANBINH".encode("utf-16-le")))
    _file(src, "other", OTHER, 7, pid="BN7654321")


def test_a_forged_first_pass_record_cannot_hide_a_group(tmp_path):
    """The record's entries are keyed hashes, but the file was not sealed: an entry edited by
    hand (its study and patient groups set to "-") kept ``lut`` out of the group its new study
    mate ``plain`` (naming TRAN^VAN^BINH) is in, so the resume kept lut's output, which spells
    him, while a fresh run removes him. A record that is not as vindr wrote it is now damaged:
    every header is read."""
    from helpers import key_file_in
    from test_redteam8 import _study_file
    from vindr_cli.deid import unchanged

    src, out = tmp_path / "export", tmp_path / "anon"
    key = key_file_in(tmp_path)
    _lut_alone(src)
    _run(src, out, key)
    lut_out = _outputs(out)["lut.dcm"]
    assert "TRANVANBINH".encode("utf-16-le") in lut_out.read_bytes()     # no one names him yet
    record = out / ".vindr" / unchanged.FILE
    obj = json.loads(record.read_text())
    obj["inputs"] = {k: v.split(" ")[0] + " - -" for k, v in obj["inputs"].items()}
    record.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")))
    _study_file(src, "plain", 3, ReferringPhysicianName="TRAN^VAN^BINH")    # lut's study mate
    got = _run(src, out, key)
    assert got.first_pass == "read"                  # the forged record is refused
    assert "TRANVANBINH".encode("utf-16-le") not in lut_out.read_bytes()
    fresh = tmp_path / "fresh"
    _run(src, fresh, key)
    assert "TRANVANBINH".encode("utf-16-le") not in _outputs(fresh)["lut.dcm"].read_bytes()


def test_a_record_copied_from_another_output_cannot_skip_the_pass(tmp_path):
    """Both OUTPUTs of one INPUT and key: ``fresh`` is complete and sought; ``anon`` was last
    written with --no-study-terms (which leaves no record), so lut's output there spells the
    referring physician that plain names. ``fresh``'s record, sealed with the same key and true
    of every file, copied into ``anon``: the resume skipped the pass and kept lut's output as it
    was. The record now names what each output row was sought for, so it is not taken for
    outputs it was not written for."""
    import shutil

    from helpers import key_file_in
    from test_redteam8 import _study_file
    from vindr_cli.deid import unchanged

    src, out, fresh = tmp_path / "export", tmp_path / "anon", tmp_path / "fresh"
    key = key_file_in(tmp_path)
    _lut_alone(src)
    _study_file(src, "plain", 3, ReferringPhysicianName="TRAN^VAN^BINH")
    _run(src, fresh, key)
    assert "TRANVANBINH".encode("utf-16-le") not in _outputs(fresh)["lut.dcm"].read_bytes()
    _run(src, out, key, study_terms=False)
    lut_out = _outputs(out)["lut.dcm"]
    assert "TRANVANBINH".encode("utf-16-le") in lut_out.read_bytes()     # not sought: no study terms
    shutil.copyfile(fresh / ".vindr" / unchanged.FILE, out / ".vindr" / unchanged.FILE)
    got = _run(src, out, key)
    assert got.first_pass != "skipped"
    assert "TRANVANBINH".encode("utf-16-le") not in lut_out.read_bytes()
