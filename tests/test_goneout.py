"""goneout: an input that left INPUT since an earlier run leaves OUTPUT too, once a run
completes (runner.stage._remove_gone): its output is removed unless a current row names it
(a duplicate that takes its place), nothing is removed by a killed run, a kill during the
removal is finished by the re-run, and putting the input back writes the same bytes."""
from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from conftest import make_cr
from helpers import run_cli, tree_hashes
from vindr_cli.deid.audit import audit
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.runner import paths
from vindr_cli.runner.stage import Run


def _export(root):
    """Two patients, two images each (one study each)."""
    for p in range(2):
        for i in range(2):
            make_cr(root / f"pat{p}" / f"{i}.dcm", name=f"Tran^Thi{p}", pid=f"PID000{p}",
                    study=f"1.2.826.0.1.3680043.10.543.{p}", series=f"1.2.826.0.1.3680043.10.543.{p}.1",
                    sop=f"1.2.826.0.1.3680043.10.543.{p}.1.{i}", seed=10 * p + i)
    return root


def _anon(inp, out, key_file):
    return anonymize(inp, out, key_path=key_file, profile=load_profile(), workers=1)


def _images(out):
    return {p.relative_to(out).as_posix() for p in out.rglob("*.dcm") if ".vindr" not in p.parts}


def _listed(out):
    return {r["output"] for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["output"]}


def _clean(out, link):
    found = audit(out, link, pixels=False).findings
    assert not found, [(f.kind, f.detail) for f in found]
    assert not [d for d in out.rglob("*") if d.is_dir() and ".vindr" not in d.parts and not any(d.iterdir())]


def test_a_withdrawn_input_leaves_output_and_comes_back_the_same(tmp_path, key_file):
    inp, out, link = _export(tmp_path / "in"), tmp_path / "out", tmp_path / "out.linkage.parquet"
    first = _anon(inp, out, key_file)
    assert first.counts["ok"] == 4 and first.gone_removed == 0
    before = tree_hashes(out, skip=(".vindr", "manifest"))
    shutil.move(inp / "pat1", tmp_path / "held")          # a patient withdrew consent
    s = _anon(inp, out, key_file)
    assert s.gone_removed == 2 and s.counts["ok"] == 2
    assert _images(out) == _listed(out) and len(_images(out)) == 2
    _clean(out, link)
    shutil.move(tmp_path / "held", inp / "pat1")          # back: the same bytes with the same key
    s = _anon(inp, out, key_file)
    assert s.gone_removed == 0 and s.counts["ok"] == 4 and s.resumed == 2
    assert tree_hashes(out, skip=(".vindr", "manifest")) == before
    _clean(out, link)


def test_the_summary_says_how_many(tmp_path, key_file):
    inp, out = _export(tmp_path / "in"), tmp_path / "out"
    run_cli("anonymize", inp, out, "--key", key_file, "-j", "1")
    (inp / "pat0" / "1.dcm").unlink()
    r = run_cli("anonymize", inp, out, "--key", key_file, "-j", "1")
    assert "1 outputs of inputs gone from INPUT removed" in r.stdout
    r = run_cli("audit", out, "--no-pixels")
    assert "no findings" in r.stdout


def test_a_duplicate_keeps_the_output_when_one_of_the_pair_leaves(tmp_path, key_file):
    inp, out, link = _export(tmp_path / "in"), tmp_path / "out", tmp_path / "out.linkage.parquet"
    shutil.copy(inp / "pat0" / "0.dcm", inp / "pat0" / "1copy.dcm")   # the same SOP Instance: a copy
    shutil.copy(inp / "pat0" / "0.dcm", inp / "pat0" / "0copy.dcm")
    s = _anon(inp, out, key_file)
    assert s.counts["ok"] == 4 and s.counts["duplicate"] == 2
    before = tree_hashes(out, skip=(".vindr", "manifest"))
    (inp / "pat0" / "1copy.dcm").unlink()                 # a duplicate leaves: nothing to remove
    s = _anon(inp, out, key_file)
    assert s.gone_removed == 0 and s.counts["duplicate"] == 1
    assert tree_hashes(out, skip=(".vindr", "manifest")) == before
    (inp / "pat0" / "0.dcm").unlink()                     # the holder leaves: its copy takes the output
    s = _anon(inp, out, key_file)
    assert s.gone_removed == 0 and s.counts["ok"] == 4 and not s.counts["duplicate"]
    assert tree_hashes(out, skip=(".vindr", "manifest")) == before
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert sorted(r["status"] for r in rows) == ["ok"] * 4
    assert _images(out) == _listed(out)
    _clean(out, link)


def test_a_killed_run_removes_nothing(tmp_path, key_file, monkeypatch):
    inp, out, link = _export(tmp_path / "in"), tmp_path / "out", tmp_path / "out.linkage.parquet"
    _anon(inp, out, key_file)
    before = _images(out)
    (inp / "pat1" / "0.dcm").unlink()
    make_cr(inp / "pat1" / "new.dcm", name="Tran^Thi1", pid="PID0001", study="1.2.826.0.1.3680043.10.543.1",
            series="1.2.826.0.1.3680043.10.543.1.1", sop="1.2.826.0.1.3680043.10.543.1.1.9", seed=99)

    def killed(self, key, rows):
        raise KeyboardInterrupt

    monkeypatch.setattr(Run, "record", killed)
    with pytest.raises(KeyboardInterrupt):
        _anon(inp, out, key_file)
    assert before <= _images(out)                         # the gone input's output is still there
    assert before == _listed(out)
    monkeypatch.undo()
    s = _anon(inp, out, key_file)
    assert s.gone_removed == 1 and s.counts["ok"] == 4
    assert _images(out) == _listed(out)
    _clean(out, link)


def test_a_kill_during_the_removal_is_finished_by_the_rerun(tmp_path, key_file, monkeypatch):
    inp, out, link = _export(tmp_path / "in"), tmp_path / "out", tmp_path / "out.linkage.parquet"
    _anon(inp, out, key_file)
    (inp / "pat0" / "0.dcm").unlink()
    (inp / "pat1" / "1.dcm").unlink()
    real, calls = paths.remove, []

    def remove_then_die(output, rel):
        if calls:
            raise KeyboardInterrupt
        calls.append(rel)
        real(output, rel)

    monkeypatch.setattr(paths, "remove", remove_then_die)
    with pytest.raises(KeyboardInterrupt):
        _anon(inp, out, key_file)
    assert len(calls) == 1 and calls[0] not in _images(out)
    assert len(_images(out)) == 3 and len(_listed(out)) == 4   # the old table still names both
    monkeypatch.undo()
    s = _anon(inp, out, key_file)
    assert s.gone_removed == 1 and s.counts["ok"] == 2
    assert _images(out) == _listed(out) and len(_images(out)) == 2
    _clean(out, link)


def test_decode_drops_the_images_of_an_input_gone(tmp_path, key_file):
    from vindr_cli.pixels.batch import decode_tree
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import DecodeConfig

    inp, anon, dec = _export(tmp_path / "in"), tmp_path / "anon", tmp_path / "dec"
    _anon(inp, anon, key_file)
    cfg = DecodeConfig(output=str(dec), size=SizeSpec())
    first = decode_tree(anon, dec, cfg, workers=1)
    assert first.counts["ok"] == 4 and first.gone_removed == 0
    before = tree_hashes(dec, skip=(".vindr", "images"))
    shutil.move(inp / "pat0" / "1.dcm", tmp_path / "held.dcm")
    _anon(inp, anon, key_file)                            # the anonymize OUTPUT loses it: so does decode's
    s = decode_tree(anon, dec, cfg, workers=1)
    assert s.gone_removed == 1 and s.counts["ok"] == 3
    pngs = {p.relative_to(dec).as_posix() for p in dec.rglob("*.png")}
    assert pngs == {r["output"] for r in pq.read_table(dec / "images.parquet").to_pylist()} and len(pngs) == 3
    assert not [d for d in dec.rglob("*") if d.is_dir() and ".vindr" not in d.parts and not any(d.iterdir())]
    shutil.move(tmp_path / "held.dcm", inp / "pat0" / "1.dcm")
    _anon(inp, anon, key_file)
    s = decode_tree(anon, dec, cfg, workers=1)
    assert s.gone_removed == 0 and s.counts["ok"] == 4
    assert tree_hashes(dec, skip=(".vindr", "images")) == before


def test_an_empty_input_removes_nothing(tmp_path, key_file):
    """INPUT where nothing at all is found (a share not mounted): the run says so and removes no file."""
    inp, out = _export(tmp_path / "in"), tmp_path / "out"
    _anon(inp, out, key_file)
    before = tree_hashes(out, skip=(".vindr", "manifest"))
    shutil.move(inp, tmp_path / "held")
    inp.mkdir()
    s = _anon(inp, out, key_file)
    assert s.gone_removed == 0 and any("found no files" in w for w in s.warnings)
    assert tree_hashes(out, skip=(".vindr", "manifest")) == before
    shutil.rmtree(inp)
    shutil.move(tmp_path / "held", inp)
    s = _anon(inp, out, key_file)
    assert s.counts["ok"] == 4 and tree_hashes(out, skip=(".vindr", "manifest")) == before


def test_an_output_that_cannot_be_removed_stops_the_run(tmp_path, key_file, monkeypatch):
    """A gone input's output that stays (the folder not writable: vindr's unlink passes over a
    permission error) is never dropped from the tables silently: exit 2, the old tables kept."""
    from vindr_cli.errors import OutputFault

    inp, out, link = _export(tmp_path / "in"), tmp_path / "out", tmp_path / "out.linkage.parquet"
    _anon(inp, out, key_file)
    (inp / "pat0" / "0.dcm").unlink()
    monkeypatch.setattr(paths, "remove", lambda output, rel: None)
    with pytest.raises(OutputFault, match="permission denied writing OUTPUT/"):
        _anon(inp, out, key_file)
    assert len(_listed(out)) == 4 and _images(out) == _listed(out)
    monkeypatch.undo()
    s = _anon(inp, out, key_file)
    assert s.gone_removed == 1 and _images(out) == _listed(out)
    _clean(out, link)
