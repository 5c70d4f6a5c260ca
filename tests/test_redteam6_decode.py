"""Red team 6 (see tests/test_redteam6.py), `vindr decode` of what is not a plain vindr tree.
All three leaked; all three are fixed (an INPUT that is not a vindr anonymize OUTPUT is named by
keyed hashes of its paths, the manifest mode of vindr_cli/pixels/batch.py, and a fixed lut
description):

* a raw export whose gateway set PatientIdentityRemoved YES is decoded as de-identified: its
  input paths (names, IDs) name the PNGs and fill images.parquet's input column;
* a stray file in ANON_DIR (a copy named after the patient, which `vindr audit` reports as
  ``stray-file``) is decoded too and its PNG named after it;
* with --allow-identified, a VOI LUT's LUTExplanation (free text of the identified header) is
  copied into images.parquet's lut column.
"""
from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pydicom

from helpers import run_cli
from test_redteam6 import PLANTED, _leaks, world  # noqa: F401  (world: the module's fixture)


def test_decode_of_a_raw_tree_claiming_identity_removed_names_nothing_after_its_paths(world, tmp_path):
    src = tmp_path / "export"
    for p in sorted(world["export"].rglob("*")):
        if p.is_file():
            ds = pydicom.dcmread(p)
            ds.PatientIdentityRemoved = "YES"
            dst = src / p.relative_to(world["export"])
            dst.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(dst)
            break
    out = tmp_path / "img"
    p = run_cli("decode", src, out, "--size", "64", "-j", "1", check=False)
    assert p.returncode == 0 and "Traceback" not in p.stderr      # decoded (marked YES), not refused
    assert len(list(out.rglob("*.png"))) == 1
    assert _leaks(out, PLANTED, p.stdout + p.stderr) == []


def test_decode_of_an_identified_export_copies_no_lut_explanation(tmp_path):
    import numpy as np
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from conftest import make_cr

    def extra(ds):
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 12]
        item.LUTExplanation = "NGUYEN VAN AN 20012345"
        item.add_new(0x00283006, "OW", np.arange(4096, dtype="<u2").tobytes())
        ds.VOILUTSequence = Sequence([item])

    src = tmp_path / "export"
    make_cr(src / "x.dcm", extra=extra)
    out = tmp_path / "img"
    p = run_cli("decode", src, out, "--allow-identified", "--size", "32", "-j", "1")
    rows = pq.read_table(out / "images.parquet").to_pylist()
    assert [r["window_kind"] for r in rows] == ["voi_lut"]      # the LUT was used: its row describes it
    assert [r["lut"] for r in rows] == ["VOI LUT Sequence item 1"]
    assert _leaks(out, PLANTED, p.stdout + p.stderr) == []


def test_decode_of_a_tree_names_nothing_after_a_stray_file(world, tmp_path):  # noqa: F811
    anon = tmp_path / "anon"
    shutil.copytree(world["anon"], anon)
    stray = anon / "NGUYEN VAN AN_20012345.dcm"
    shutil.copy2(anon / world["rows"][0]["output"], stray)          # de-identified content, a name for a name
    out = tmp_path / "img"
    p = run_cli("decode", anon, out, "--size", "32", "-j", "1", check=False)
    assert p.returncode == 0 and len(list(out.rglob("*.png"))) >= 8
    assert _leaks(out, PLANTED, p.stdout + p.stderr) == []
    from vindr_cli.pixels.task import NOT_IN_MANIFEST

    ok = {r["output"] for r in world["rows"] if r["status"] == "ok"}
    (stray_row,) = [r for r in pq.read_table(out / "images.parquet").to_pylist() if r["input"] not in ok]
    assert stray_row["status"] == "failed" and stray_row["reason"] == NOT_IN_MANIFEST and stray_row["output"] is None
    assert len(stray_row["input"]) == 32 and int(stray_row["input"], 16) >= 0     # a keyed hash, not its name


def test_decode_of_a_tree_refuses_a_file_that_is_not_its_rows_output(world, tmp_path):  # noqa: F811
    """A file at an output's path that is not the output its manifest row describes (here its
    PatientID differs, as a raw export's copied over it would) is a failed row with the fixed
    reason, and no image is made of it; the other outputs decode, named by their manifest path."""
    from vindr_cli.pixels.task import NOT_ITS_OUTPUT

    anon = tmp_path / "anon"
    shutil.copytree(world["anon"], anon)
    target = world["rows"][0]["output"]
    ds = pydicom.dcmread(anon / target)
    ds.PatientID = "20012345"
    ds.save_as(anon / target)
    out = tmp_path / "img"
    p = run_cli("decode", anon, out, "--size", "32", "-j", "1")
    rows = {r["input"]: r for r in pq.read_table(out / "images.parquet").to_pylist()}
    ok = {r["output"] for r in world["rows"] if r["status"] == "ok"}
    assert set(rows) == ok
    assert rows[target]["status"] == "failed" and rows[target]["reason"] == NOT_ITS_OUTPUT
    assert rows[target]["output"] is None
    assert all(rows[o]["status"] == "ok" for o in ok - {target})
    assert len(list(out.rglob("*.png"))) == len(ok) - 1
    assert _leaks(out, PLANTED, p.stdout + p.stderr) == []
