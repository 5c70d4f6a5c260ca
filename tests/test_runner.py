"""The batch runner's parts: discovery, atomic writes, the journal, the key file."""
from __future__ import annotations

import os
import stat
import zipfile

import pytest
from pydicom.fileset import FileSet

from conftest import make_cr
from vindr_cli.deid.keyfile import KeyError_, load_key
from vindr_cli.atomic import TMP_SUFFIX, atomic_write, remove_stale_parts
from vindr_cli.runner.discover import discover
from vindr_cli.runner.journal import Journal, read_journal
from vindr_cli.runner.pool import run_pool


def test_discover_folders_zips_and_dicomdir(tmp_path):
    root = tmp_path / "in"
    make_cr(root / "b" / "x.dcm")
    (root / "a").mkdir()
    (root / "a" / "note.txt").write_text("x")
    with zipfile.ZipFile(root / "c.zip", "w") as zf:
        zf.writestr("d/1.dcm", (root / "b" / "x.dcm").read_bytes())
        zf.writestr("d/2.txt", "y")
    media = root / "media"
    fs = FileSet()
    fs.add(make_cr(tmp_path / "stage" / "m.dcm", sop="1.2.3.4.5"))
    fs.add(make_cr(tmp_path / "stage" / "n.dcm", sop="1.2.3.4.6"))
    fs.write(media)
    victim = next(p for p in sorted(media.rglob("*")) if p.is_file() and p.name != "DICOMDIR")
    victim.unlink()
    os.symlink(root, root / "loop")        # a folder link is not followed
    found = discover(root)
    rels = [s.rel for s in found]
    assert rels == sorted(rels)
    assert "a/note.txt" in rels and "b/x.dcm" in rels
    assert "c.zip!d/1.dcm" in rels and "c.zip!d/2.txt" in rels and "c.zip" not in rels
    assert "media/DICOMDIR" in rels
    missing = [s for s in found if s.missing_reason and "DICOMDIR" in s.missing_reason]
    assert len(missing) == 1 and missing[0].rel.lower() == victim.relative_to(root).as_posix().lower()
    assert not any(r.startswith("loop/") for r in rels)
    link = [s for s in found if s.rel == "loop"]        # a link is accounted for, not followed
    assert len(link) == 1 and "symbolic link" in link[0].missing_reason
    member = next(s for s in found if s.rel == "c.zip!d/1.dcm")
    with member.open() as f:
        f.seek(128)
        assert f.read(4) == b"DICM"


def test_zip_members_with_the_same_name_are_both_found(tmp_path):
    a, b = make_cr(tmp_path / "a.dcm"), make_cr(tmp_path / "b.dcm", pid="PID0002", sop="1.2.3.9")
    z = tmp_path / "in" / "dup.zip"
    z.parent.mkdir()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(z, "w") as zf:
            zf.write(a, "IMG0001.dcm")
            zf.write(b, "IMG0001.dcm")
    found = discover(tmp_path / "in")
    assert [s.rel for s in found] == ["dup.zip!IMG0001.dcm", "dup.zip!IMG0001.dcm#2"]
    with found[0].open() as f0, found[1].open() as f1:
        assert f0.read() == a.read_bytes() and f1.read() == b.read_bytes()


def test_discover_single_file_and_zip(tmp_path):
    f = make_cr(tmp_path / "x.dcm")
    assert [s.rel for s in discover(f)] == ["x.dcm"]
    z = tmp_path / "y.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(f, "x.dcm")
    assert [s.rel for s in discover(z)] == ["y.zip!x.dcm"]


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "d" / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert not target.exists() and not list(tmp_path.rglob(f"*{TMP_SUFFIX}"))
    with atomic_write(target, 0o600) as f:
        f.write(b"whole")
    assert target.read_bytes() == b"whole" and stat.S_IMODE(target.stat().st_mode) == 0o600
    (tmp_path / "d" / f".x{TMP_SUFFIX}").write_bytes(b"stale")
    assert remove_stale_parts(tmp_path) == 1


def test_journal_ignores_torn_last_line(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    j.append({"a": 1})
    j.append({"a": 2})
    j.close()
    with open(tmp_path / "j.jsonl", "a") as f:
        f.write('{"a": 3')          # killed mid-write
    assert read_journal(tmp_path / "j.jsonl") == [{"a": 1}, {"a": 2}]
    assert read_journal(tmp_path / "none.jsonl") == []


def _setup(cfg):
    return cfg * 10


def _square(ctx, x):
    return ctx + x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_run_pool_maps_every_item(workers):
    got = {}
    run_pool(list(range(25)), _square, setup=_setup, config=1, workers=workers,
             on_result=lambda item, r: got.__setitem__(item, r))
    assert got == {i: 10 + i * i for i in range(25)}


def test_key_file_rules(tmp_path):
    p = tmp_path / "k" / "key"
    key, created = load_key(p)
    assert created and len(key) == 32 and stat.S_IMODE(p.stat().st_mode) == 0o600
    assert load_key(p) == (key, False)
    os.chmod(p, 0o640)
    with pytest.raises(KeyError_, match="group or others"):
        load_key(p)
    os.chmod(p, 0o600)
    p.write_text("not hex")
    with pytest.raises(KeyError_, match="not a vindr key"):
        load_key(p)
    with pytest.raises(KeyError_, match="does not exist"):
        load_key(tmp_path / "nope", create=False)
