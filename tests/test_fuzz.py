"""Fuzz: a few hundred seeded mutations of real DICOM files (tests/fuzzing.py) through
``vindr anonymize`` and ``vindr decode`` (the full campaign, with memory caps and kills, is
bench/fuzz_bench.py). Asserts: no crash (exit 0, or 1 with --strict), every input exactly one
row, every ``ok`` output whole and readable by pydicom (pixel data included), and no planted
PHI value in any output byte outside the pixel data."""
from __future__ import annotations

import collections

import pydicom
from PIL import Image

from conftest import PHI, make_cr
from fuzzing import campaign, phi_needles, seeds
from helpers import run_cli, split_file
from vindr_cli.tables import read_rows

MUTANTS = 300
SEED = 20261129


def test_fuzz_anonymize_then_decode(tmp_path, key_file):
    src = tmp_path / "in"
    plan = campaign(seeds(tmp_path / "seeds", make_cr, PHI), MUTANTS, SEED, src)
    out, link = tmp_path / "anon", tmp_path / "anon.linkage.parquet"
    p = run_cli("anonymize", src, out, "--key", key_file, "-j", "2", "--strict", check=False)
    assert p.returncode in (0, 1), (p.returncode, p.stderr[-2000:])
    manifest, linkage = read_rows(out / "manifest.parquet"), read_rows(link)
    assert len(manifest) == MUTANTS and len({r["input_key"] for r in manifest}) == MUTANTS
    assert sorted(r["input_path"] for r in linkage) == sorted(plan)          # every input exactly once
    statuses = collections.Counter(r["status"] for r in manifest)
    assert statuses["ok"] >= MUTANTS // 5, statuses          # the campaign reaches the writer, not only the parser
    unreadable, leaks = [], []
    for r in linkage:
        if r["status"] != "ok":
            continue
        path = out / r["output"]
        seed_name, kind, phi = plan[r["input_path"]]
        try:
            ds = pydicom.dcmread(path)
            if "PixelData" in ds:
                assert len(ds.PixelData) > 0
        except Exception as exc:
            unreadable.append((r["input_path"], seed_name, kind, type(exc).__name__))
            continue
        header, _ = split_file(path)
        found = [n for n in phi_needles(phi) if n in header]
        if found:
            leaks.append((r["input_path"], seed_name, kind, found))
    assert not unreadable, unreadable
    assert not leaks, leaks
    for rel in (p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()):
        assert not any(n.decode() in rel for n in phi_needles(tuple(PHI)))

    img = tmp_path / "img"
    p = run_cli("decode", out, img, "-j", "2", "--size", "64", "--strict", check=False)
    assert p.returncode in (0, 1), (p.returncode, p.stderr[-2000:])
    rows = read_rows(img / "images.parquet")
    ok_inputs = {r["output"] for r in manifest if r["status"] == "ok"}
    assert {r["input"] for r in rows} == ok_inputs          # every ok output decoded or given a reason
    for r in rows:
        if r["status"] == "ok":
            with Image.open(img / r["output"]) as im:
                im.load()
