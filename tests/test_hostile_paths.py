"""Hostile names and file system entries: nothing is written outside OUTPUT, every input
gets a row, names derived from inputs are unique, non-UTF-8 names pass every stage,
deflated images decode, and the C decoders print nothing.

Files are made with ``conftest.make_cr`` or copied from pydicom's bundled test files.
``vindr decode`` names outputs after paths only for a vindr anonymize OUTPUT (its manifest's
output paths); a raw tree, even one marked PatientIdentityRemoved YES, and any tree decoded
with --allow-identified is named by keyed hashes of its paths (red team 6), which the tests
here map back to the paths through OUTPUT's salt (``helpers.decoded_rows``).
"""
from __future__ import annotations

import os
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from conftest import make_cr
from helpers import decoded_rows, marked_parts, run_cli, tree_hashes
from vindr_cli.pixels.output import SALT_FILE, OutputNames, base_name, keyed_name, read_salt
from vindr_cli.runner import paths
from vindr_cli.runner.discover import NOT_REGULAR, PERMISSION, ZIP_ESCAPE, discover
from vindr_cli.runner.sources import printable


def _deid(ds):
    ds.PatientIdentityRemoved = "YES"


def _cr(path: Path, seed: int = 0, **kw) -> Path:
    """A small de-identified CR (decode refuses identified input) with its own pixels/UIDs."""
    return make_cr(path, sop=f"1.2.826.0.1.3680043.10.543.9.{seed}", seed=seed, extra=_deid, **kw)


def _rows(table: Path) -> list[dict]:
    return pq.read_table(table).to_pylist()


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _keyed(out: Path, rel: str, fmt: str = "png") -> str:
    """The output name decode gives input ``rel`` of a tree that is not an anonymize OUTPUT."""
    return f"{keyed_name(read_salt(out / '.vindr' / SALT_FILE), rel)}.{fmt}"


# --- the path guard itself ------------------------------------------------------------------

def test_check_rel_refuses_names_that_leave_output():
    for bad in ("", "/etc/x.png", "../x.png", "a/../../x.png", "a//b.png", "./a.png", "a/.", "a\x00b"):
        with pytest.raises(paths.PathViolation) as e:
            paths.check_rel(bad)
        assert e.value.reason == paths.OUTSIDE
    assert paths.check_rel("a/b~2.png") == ["a", "b~2.png"]


def test_place_never_follows_a_link_under_output(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "keep.png").write_bytes(b"outside")
    (out / "linked").symlink_to(outside)                       # a folder link inside OUTPUT
    (out / "real").mkdir()
    (out / "real" / "file.png").symlink_to(outside / "keep.png")   # a link at a final name
    (out / "afile").write_bytes(b"x")
    tmp = out / "t.part"

    for rel in ("linked/a.png", "linked/deeper/a.png", "afile/a.png"):
        tmp.write_bytes(b"new")
        with pytest.raises(paths.PathViolation) as e:
            paths.place(out, tmp, rel)
        assert e.value.reason == paths.SYMLINK
        assert tmp.exists()                                    # nothing moved
    assert sorted(p.name for p in outside.iterdir()) == ["keep.png"]

    (out / "real" / "dir.png").mkdir()
    with pytest.raises(paths.PathViolation) as e:
        paths.place(out, tmp, "real/dir.png")
    assert e.value.reason == paths.FOLDER_AT_NAME and tmp.exists()
    paths.place(out, tmp, "real/file.png")                     # the link is replaced, its target kept
    assert not (out / "real" / "file.png").is_symlink() and (out / "real" / "file.png").read_bytes() == b"new"
    assert (outside / "keep.png").read_bytes() == b"outside"

    (out / "real" / "l2.png").symlink_to(outside / "keep.png")
    assert not paths.is_placed(out, "real/l2.png") and paths.is_placed(out, "real/file.png")
    assert not paths.is_placed(out, "linked/keep.png")
    paths.remove(out, "linked/keep.png")                       # never removes through a folder link
    paths.remove(out, "real/l2.png")                           # removes the link, not its target
    assert (outside / "keep.png").read_bytes() == b"outside" and not (out / "real" / "l2.png").is_symlink()


# --- zip member names --------------------------------------------------------------------------

HOSTILE_MEMBERS = ["../../../x.dcm", "sub/../../../../x.dcm", "/etc/x.dcm", "C:\\win\\y.dcm", "..\\..\\w.dcm",
                   "ok.dcm", "./dot/./z.dcm"]


@pytest.fixture
def hostile_zip(tmp_path):
    """A raw export (identified: no PatientIdentityRemoved) holding a zip with hostile member names."""
    inp = tmp_path / "deep" / "er" / "in"
    data = make_cr(tmp_path / "seed.dcm").read_bytes()
    inp.mkdir(parents=True)
    with zipfile.ZipFile(inp / "a.zip", "w") as zf:
        for name in HOSTILE_MEMBERS:
            zf.writestr(name, data)
    return inp


def test_zip_member_names_are_normalised_or_failed_at_discovery(hostile_zip):
    by = {s.rel: s for s in discover(hostile_zip)}
    assert set(by) == {"a.zip!../../../x.dcm", "a.zip!sub/../../../../x.dcm", "a.zip!../../w.dcm",
                       "a.zip!etc/x.dcm", "a.zip!win/y.dcm", "a.zip!ok.dcm", "a.zip!dot/z.dcm"}
    escaping = {rel for rel, s in by.items() if s.missing_reason == ZIP_ESCAPE}
    assert escaping == {"a.zip!../../../x.dcm", "a.zip!sub/../../../../x.dcm", "a.zip!../../w.dcm"}


def test_zip_members_never_written_outside_output(tmp_path, hostile_zip, key_file):
    before = _files_under(tmp_path)
    out = tmp_path / "deep" / "er" / "out"
    run_cli("decode", hostile_zip, out, "-j", "2", "--allow-identified")
    rows = {r["input"]: r for r in decoded_rows(out, hostile_zip)}
    assert {r["input"] for r in rows.values() if r["status"] == "failed" and r["reason"] == ZIP_ESCAPE} == \
        {"a.zip!../../../x.dcm", "a.zip!sub/../../../../x.dcm", "a.zip!../../w.dcm"}
    ok = {"a.zip!etc/x.dcm", "a.zip!win/y.dcm", "a.zip!ok.dcm", "a.zip!dot/z.dcm"}
    assert {k for k, r in rows.items() if r["status"] == "ok"} == ok
    for k in ok:            # normalised members are decoded, each to its keyed name at OUTPUT's top
        assert rows[k]["output"] == _keyed(out, k) and (out / rows[k]["output"]).is_file()
    anon = tmp_path / "anon"
    run_cli("anonymize", hostile_zip, anon, "--key", key_file, "--no-linkage", "-j", "2")
    manifest = _rows(anon / "manifest.parquet")
    assert sum(r["reason"] == ZIP_ESCAPE for r in manifest) == 3 and len(manifest) == len(HOSTILE_MEMBERS)
    info = run_cli("info", hostile_zip, "--json")
    assert '"failed": 3' in info.stdout
    new = _files_under(tmp_path) - before
    assert all(p.startswith(("deep/er/out/", "anon/")) for p in new), sorted(new)


# --- symbolic links planted inside OUTPUT --------------------------------------------------------

def test_a_link_inside_output_is_not_written_through(tmp_path, key_file):
    """Decoded from a vindr anonymize OUTPUT, whose outputs are named after its folders
    (patient/study/series/image): a folder of final names and a final name replaced by links."""
    inp, anon, out, outside = tmp_path / "in", tmp_path / "anon", tmp_path / "out", tmp_path / "outside"
    series_b = "1.2.826.0.1.3680043.10.543.1.1.2"
    make_cr(inp / "a.dcm", sop="1.2.826.0.1.3680043.10.543.9.1", seed=1)
    make_cr(inp / "b.dcm", sop="1.2.826.0.1.3680043.10.543.9.2", seed=2)
    make_cr(inp / "c.dcm", sop="1.2.826.0.1.3680043.10.543.9.3", seed=3, series=series_b)
    run_cli("anonymize", inp, anon, "--key", key_file, "--no-linkage", "-j", "1")
    manifest = _rows(anon / "manifest.parquet")
    assert [r["status"] for r in manifest] == ["ok"] * 3
    by_series = {}                   # a and b share a series folder, c has its own
    for r in manifest:
        by_series.setdefault(r["output"].rsplit("/", 1)[0], []).append(r["output"])
    (pair,) = [v for v in by_series.values() if len(v) == 2]
    (single,) = [v[0] for v in by_series.values() if len(v) == 1]
    png = {rel: rel[: -len(".dcm")] + ".png" for rel in (*pair, single)}
    run_cli("decode", anon, out, "-j", "1")
    assert all((out / png[rel]).is_file() for rel in png)
    folder = out / png[pair[0]].rsplit("/", 1)[0]
    outside.mkdir()
    (outside / "c.png").write_bytes(b"not yours")
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    folder.symlink_to(outside)                           # a folder of final names
    (out / png[single]).unlink()
    (out / png[single]).symlink_to(outside / "c.png")    # a final name
    run_cli("decode", anon, out, "-j", "2")
    assert sorted(p.name for p in outside.iterdir()) == ["c.png"]
    assert (outside / "c.png").read_bytes() == b"not yours"
    rows = {r["input"]: r for r in _rows(out / "images.parquet")}
    assert rows[pair[0]]["status"] == rows[pair[1]]["status"] == "failed"
    assert rows[pair[0]]["reason"] == paths.SYMLINK and rows[pair[0]]["output"] is None
    assert rows[single]["status"] == "ok" and not (out / png[single]).is_symlink()   # the link was replaced


def test_anonymize_does_not_write_through_a_linked_folder(tmp_path, key_file):
    inp, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    make_cr(inp / "a.dcm")
    run_cli("anonymize", inp, out, "--key", key_file, "--no-linkage", "-j", "1")
    (row,) = _rows(out / "manifest.parquet")
    top = row["output"].split("/")[0]
    outside.mkdir()
    for p in sorted((out / top).rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (out / top).rmdir()
    (out / top).symlink_to(outside)
    run_cli("anonymize", inp, out, "--key", key_file, "--no-linkage", "-j", "1")
    assert list(outside.iterdir()) == []
    (row,) = _rows(out / "manifest.parquet")
    assert (row["status"], row["reason"], row["output"]) == ("failed", paths.SYMLINK, None)


def test_a_linked_state_folder_is_refused(tmp_path):
    inp, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    _cr(inp / "a.dcm")
    outside.mkdir()
    out.mkdir()
    (out / ".vindr").symlink_to(outside)
    p = run_cli("decode", inp, out, check=False)
    assert p.returncode == 2 and paths.STATE_LINK in p.stdout + p.stderr
    assert list(outside.iterdir()) == []


# --- names derived from inputs are unique --------------------------------------------------------

def test_output_names_unit():
    n = OutputNames("png")
    got = [n.assign(base_name(r)) for r in ("a!b.dcm", "a/b.dcm", "img", "img.dcm", "img.dicom",
                                            "img.png/y.dcm", "img.png/z.dcm", "x.dcm", "x_f0001.dcm")]
    assert got == ["a/b", "a/b~2", "img", "img~2", "img~3", "img.png~2/y", "img.png~2/z", "x", "x_f0001~2"]
    assert base_name("q.zip!..!..!e.dcm") == "q.zip/_/_/e"          # never a '..' part
    m = OutputNames("png")
    assert m.reserve("img~2") and not m.reserve("img~2")             # a name on record is kept once
    assert m.assign("img") == "img" and m.assign("img") == "img~3"


COLLIDING = ["img.dcm", "img.dicom", "img", "a!b.dcm", "a/b.dcm", "x", "x.png/y.dcm"]


def test_colliding_names_are_unique_and_the_same_with_any_worker_count(tmp_path):
    inp = tmp_path / "in"
    for i, rel in enumerate(COLLIDING):
        _cr(inp / rel, seed=i + 1)
    trees, tables = [], []
    for j in ("1", "2"):
        out = tmp_path / f"out{j}"
        run_cli("decode", inp, out, "-j", j)
        trees.append(tree_hashes(out, skip=(".vindr", "images.parquet")))
        tables.append({r["input"]: r["output"] for r in decoded_rows(out, inp)})
        # a raw tree marked YES is named by keyed hashes of its paths (red team 6), under each
        # OUTPUT's own salt: the names that collide as paths ('img', 'img.dcm', 'img.dicom';
        # 'a!b.dcm', 'a/b.dcm'; 'x', 'x.png/y.dcm') get each its own keyed name (the '~2'
        # suffixes of names that collide are test_output_names_unit's)
        assert tables[-1] == {rel: _keyed(out, rel) for rel in COLLIDING}
    by_input = [{rel: tree[table[rel]] for rel in COLLIDING} for tree, table in zip(trees, tables)]
    assert by_input[0] == by_input[1] and len(trees[0]) == len(trees[1]) == len(COLLIDING)
    outputs = tables[0]
    assert set(outputs) == set(COLLIDING) and None not in outputs.values()
    assert len(set(outputs.values())) == len(COLLIDING)               # one file per input
    assert len(set(trees[0].values())) == len(COLLIDING)              # every image kept (distinct pixels)
    again = run_cli("decode", inp, tmp_path / "out1", "-j", "2")
    assert f"resumed: {len(COLLIDING)} inputs" in again.stdout
    assert tree_hashes(tmp_path / "out1", skip=(".vindr", "images.parquet")) == trees[0]


# --- entries that cannot be read get rows ----------------------------------------------------

def test_unreadable_folders_files_and_fifos_get_rows(tmp_path, monkeypatch, key_file):
    """Tests run as root, and root reads a chmod 000 file or folder anyway, so the two
    error paths are reached by making ``os.access`` deny one file and ``os.scandir``
    (what ``os.walk`` lists with) refuse one folder, in this process: the library calls
    run their workers here (``workers=1``). The FIFO is real (opening it would block)."""
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.info.scan import scan
    from vindr_cli.pixels.batch import decode_tree
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import DecodeConfig

    inp = tmp_path / "in"
    _cr(inp / "ok.dcm", 1)
    denied_file = _cr(inp / "denied.dcm", 2)
    _cr(inp / "locked" / "inside.dcm", 3)
    os.mkfifo(inp / "pipe.dcm")
    real_access, real_scandir = os.access, os.scandir

    def access(path, mode, *a, **kw):
        if os.fspath(path) == str(denied_file):
            return False
        return real_access(path, mode, *a, **kw)

    def scandir(path="."):
        if os.fspath(path) == str(inp / "locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "scandir", scandir)
    expected = {"denied.dcm": PERMISSION, "locked": PERMISSION, "pipe.dcm": NOT_REGULAR}
    assert {s.rel: s.missing_reason for s in discover(inp) if s.missing_reason} == expected

    d = decode_tree(inp, tmp_path / "dec", DecodeConfig(output="", size=SizeSpec()), workers=1)
    # a raw tree marked YES: keyed names, mapped back (discover under the same refusals)
    rows = {r["input"]: (r["status"], r["reason"]) for r in decoded_rows(tmp_path / "dec", inp)}
    assert rows == {"ok.dcm": ("ok", None), **{k: ("failed", v) for k, v in expected.items()}}
    assert d.counts["failed"] == 3

    s = anonymize(inp, tmp_path / "anon", key_path=key_file, profile=load_profile("basic"), workers=1,
                  write_linkage=False)
    assert s.counts["ok"] == 1 and s.reasons[("failed", PERMISSION)] == 2 and s.reasons[("failed", NOT_REGULAR)] == 1

    summary, _ = scan(inp, workers=1)
    assert summary["files"] == 4 and summary["failed"] == 3
    assert summary["reasons"]["failed"] == {PERMISSION: 2, NOT_REGULAR: 1}


# --- file names that are not UTF-8 ------------------------------------------------------------

def test_non_utf8_names_pass_every_stage_and_a_rerun(tmp_path, key_file):
    inp = tmp_path / "in"
    inp.mkdir()
    latin1 = os.path.join(os.fsencode(inp), b"caf\xe9")
    os.mkdir(latin1)
    _cr(Path(os.fsdecode(os.path.join(latin1, b"r\xe9sum\xe9.dcm"))), 1)
    _cr(inp / "caf\\xe9" / "r\\xe9sum\\xe9.dcm", 2)   # the same text typed out: must stay apart
    (inp / "notes.txt").write_text("x")
    rels = [s.rel for s in discover(inp)]
    assert all(r.encode("utf-8") for r in rels) and len(set(rels)) == 3
    assert "caf\\xe9/r\\xe9sum\\xe9.dcm" in rels and "caf\\xe9/r\\xe9sum\\xe9.dcm#2" in rels

    for _ in range(2):
        p = run_cli("decode", inp, tmp_path / "dec", "-j", "2")
        assert p.returncode == 0
    assert "resumed: 3 inputs" in p.stdout
    rows = _rows(tmp_path / "dec" / "images.parquet")
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 2 and len({r["output"] for r in ok}) == 2
    for r in ok:
        assert (tmp_path / "dec" / r["output"]).is_file()
    for name in os.listdir(os.fsencode(tmp_path / "dec")):
        name.decode("utf-8")                               # every name written is UTF-8
    for j in (tmp_path / "dec" / ".vindr").iterdir():
        j.read_bytes().decode("utf-8")

    for _ in range(2):
        run_cli("anonymize", inp, tmp_path / "anon", "--key", key_file, "-j", "2")
    manifest = _rows(tmp_path / "anon" / "manifest.parquet")
    assert sorted(r["status"] for r in manifest) == ["not-dicom", "ok", "ok"]
    linkage = _rows(tmp_path / "anon.linkage.parquet")
    assert {printable(r) for r in rels} == {r["input_path"] for r in linkage}

    info = run_cli("info", inp, "--json")
    assert '"dicom": 2' in info.stdout and "\\udc" not in info.stdout


# --- deflated images -----------------------------------------------------------------------------

def test_a_deflated_image_decodes_like_its_inflated_copy(tmp_path):
    path = get_testdata_file("image_dfl.dcm", download=False)
    assert path, "image_dfl.dcm is not bundled with pydicom"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian
    _deid(ds)
    inp = tmp_path / "in"
    inp.mkdir()
    ds.save_as(inp / "deflated.dcm", enforce_file_format=True)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(inp / "explicit.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    run_cli("decode", inp, out, "-j", "1", "--window", "minmax")
    rows = {r["input"]: r for r in decoded_rows(out, inp)}      # a raw tree marked YES: keyed names
    assert rows["deflated.dcm"]["status"] == "ok", rows["deflated.dcm"]["reason"]
    assert rows["explicit.dcm"]["status"] == "ok", rows["explicit.dcm"]["reason"]
    a = np.asarray(Image.open(out / rows["deflated.dcm"]["output"]))
    assert a.shape == (ds.Rows, ds.Columns) and a.min() < a.max()
    assert np.array_equal(a, np.asarray(Image.open(out / rows["explicit.dcm"]["output"])))


# --- the C decoders print nothing ----------------------------------------------------------------

def _corrupt_copy(name: str, dst: Path) -> None:
    """pydicom's test file, marked de-identified, with bytes of its first fragment flipped
    (the item structure stays valid, so the codec itself meets the damage)."""
    header, pixels = marked_parts(get_testdata_file(name, download=False))
    pix = bytearray(pixels)
    pos = 12                                                   # explicit VR OB element header
    pos += 8 + struct.unpack("<I", pix[pos + 4:pos + 8])[0]     # the basic offset table item
    n = struct.unpack("<I", pix[pos + 4:pos + 8])[0]
    start = pos + 8
    for i in range(start + n // 4, start + n - 8, 5):
        pix[i] ^= 0xA5
    dst.write_bytes(header + bytes(pix))


def test_decoder_diagnostics_never_reach_the_terminal(tmp_path):
    """Without the redirect, OpenJPEG prints 'Error reading QCD marker' and libjpeg
    'Corrupt JPEG data: bad Huffman code' for these files (seen when this was written).
    The files are a raw tree marked YES: stderr holds decode's one warning about that
    (keyed names), nothing else."""
    from vindr_cli.pixels.batch import NOT_ANONYMIZE_OUTPUT

    inp = tmp_path / "in"
    inp.mkdir()
    for name in ("MR_small_jp2klossless.dcm", "JPEG2000.dcm", "JPEG-lossy.dcm", "SC_rgb_jpeg_gdcm.dcm",
                 "MR_small_jpeg_ls_lossless.dcm"):
        _corrupt_copy(name, inp / name)
    for j in ("1", "2"):
        out = tmp_path / f"out{j}"
        p = run_cli("decode", inp, out, "-j", j)
        assert " ".join(p.stderr.split()) == "warning: " + NOT_ANONYMIZE_OUTPUT, p.stderr
        assert "marker" not in p.stdout.lower() and "huffman" not in p.stdout.lower()
        rows = _rows(out / "images.parquet")
        assert len(rows) == 5 and sum(r["status"] == "failed" for r in rows) >= 3
        assert all(r["reason"] is None or "\n" not in r["reason"] for r in rows)


def test_a_rerun_keeps_recorded_names_and_repairs_a_shared_one(tmp_path):
    """Names on record are kept on a re-run (even if INPUT gained an input that sorts
    first); an OUTPUT made before names were unique, where two inputs recorded one file,
    keeps it for the first input and decodes the other again under a free name. The inputs
    are named by their paths, as a vindr anonymize OUTPUT's are (manifest mode: ``outputs``,
    the manifest's ok outputs); any other INPUT's names are keyed hashes."""
    from vindr_cli.pixels.batch import DecodeStage
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import DecodeConfig
    from vindr_cli.runner.sources import Source
    from vindr_cli.runner.stage import Run

    rels = ("img", "img.dcm", "img.dicom", "new.dcm")
    outputs = {r: {"patient_id": "P", "sop_uid": f"1.2.{i}"} for i, r in enumerate(rels)}
    stage = DecodeStage(tmp_path / "out", DecodeConfig(output=str(tmp_path / "out"), size=SizeSpec()), outputs)
    sources = [Source(f"/in/{r}", r, 1) for r in rels]
    assert [stage.key(s) for s in sources] == list(rels)
    run = Run(stage, sources, stage.tables())
    ok = {"status": "ok", "frame": 0}
    run.done["images"] = {"img.dcm": [{**ok, "output": "img.png"}],       # recorded first by an old run
                          "img.dicom": [{**ok, "output": "img.png"}],     # the old bug: the same file
                          "new.dcm": [{"status": "failed", "reason": "x"}]}
    stage.begin(run)
    assert stage.stems == {"img.dcm": "img", "img.dicom": "img~3", "img": "img~2", "new.dcm": "new"}
    assert "img.dicom" not in run.done["images"] and "img.dcm" in run.done["images"]


def test_names_too_long_or_empty_fail_with_a_row(tmp_path):
    """A 255-byte input name without a DICOM suffix, a 251-byte one with it, a member folder
    of 300 bytes: a raw tree (marked YES) is named by keyed hashes of its paths, so none of
    these names reaches OUTPUT and all three decode; a member named 'C:' has no name once
    normalised: a failed row with a fixed reason, and the batch finishes (exit 0). The path
    guard itself still turns a name the file system refuses (259 bytes as '.png', a 300-byte
    folder) into TOO_LONG, which the stage makes a failed row, with nothing moved."""
    from vindr_cli.runner.discover import ZIP_EMPTY

    inp = tmp_path / "in"
    data = _cr(tmp_path / "seed.dcm").read_bytes()
    inp.mkdir()
    (inp / ("y" * 255)).write_bytes(data)
    (inp / ("x" * 251 + ".dcm")).write_bytes(data)
    with zipfile.ZipFile(inp / "z.zip", "w") as zf:
        zf.writestr("a" * 300 + "/x.dcm", data)
        zf.writestr("C:", data)
    out = tmp_path / "out"
    run_cli("decode", inp, out, "-j", "1")
    rows = {r["input"]: (r["status"], r["reason"]) for r in decoded_rows(out, inp)}
    decoded = ("y" * 255, "x" * 251 + ".dcm", "z.zip!" + "a" * 300 + "/x.dcm")
    assert rows == {**{k: ("ok", None) for k in decoded}, "z.zip!C:": ("failed", ZIP_EMPTY)}
    assert _files_under(out) - {"images.parquet"} == {_keyed(out, k) for k in decoded} | {
        p for p in _files_under(out) if p.startswith(".vindr/")}

    tmp = out / ".vindr" / "long.part"
    tmp.write_bytes(b"x")
    for rel in ("y" * 255 + ".png", "a" * 300 + "/x.png"):
        with pytest.raises(paths.PathViolation) as e:
            paths.place(out, tmp, rel)
        assert e.value.reason == paths.TOO_LONG and tmp.exists()
    assert _files_under(out) - {"images.parquet"} == {_keyed(out, k) for k in decoded} | {
        p for p in _files_under(out) if p.startswith(".vindr/")}


def test_an_input_is_placed_whole_or_not_at_all(tmp_path):
    """When one frame's name is refused, the frames already renamed are removed again and
    every temp file of the input is deleted: no partial multi-frame output is left."""
    from vindr_cli.runner.stage import Run, Stage

    class Out(Stage):
        output = tmp_path / "out"

    out = tmp_path / "out"
    (out / ".vindr" / "tmp").mkdir(parents=True)
    (out / "b").symlink_to(tmp_path)
    tmps = []
    for i in range(2):
        t = out / ".vindr" / "tmp" / f"{i}.part"
        t.write_bytes(b"%d" % i)
        tmps.append(t)
    run = Run(Out(), [], [])
    with pytest.raises(paths.PathViolation):
        run.place_all([(tmps[0], "a_f0001.png"), (tmps[1], "b/a_f0002.png")])
    assert not (out / "a_f0001.png").exists() and not any(t.exists() for t in tmps)
    assert not (tmp_path / "a_f0002.png").exists()


def test_temp_images_are_never_written_through_a_link(tmp_path):
    from vindr_cli.pixels.output import write_image

    target = tmp_path / "target"
    target.write_bytes(b"keep")
    (tmp_path / "t.part").symlink_to(target)
    with pytest.raises(OSError):
        write_image(tmp_path / "t.part", np.zeros((2, 2), np.uint8), "png")
    assert target.read_bytes() == b"keep"
    write_image(tmp_path / "u.part", np.zeros((2, 2), np.uint8), "png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "u.part")), np.zeros((2, 2), np.uint8))
