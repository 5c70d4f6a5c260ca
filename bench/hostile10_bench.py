"""Hostile and malformed inputs through anonymize's newest paths (issue 13, hostile10).

Each case is a folder: one hostile file (built from a real file: a PHI-planted CR of
``tests/conftest.make_cr`` or pydicom's bundled test files) beside a good file of the SAME study
and patient, so that anonymize's first pass (``deid/studyterms.py``, the runner's Survey) reads
it and hands its people to the good file. Each folder goes through ``vindr anonymize`` (the CLI,
in a child with a time limit and an address-space cap) with ``-j 1`` (first pass and work in one
process) and ``-j 2``; then ``vindr audit`` of the output. Checked per case, printed as a table:

  rc        exit code (0, or 1 with --strict; anything else is a crash or a stopped batch)
  rows      manifest rows == inputs
  reasons   every failed row's reason is in the reasons vocabulary (schemas/tables/reasons.json)
  phi       no planted PHI string in stderr/stdout, the manifest's reasons, or output names
  time      wall seconds (a hang hits the limit: 'HANG')

The heavy cases (``--heavy``): a study of N files of one patient (first pass time and peak RSS),
a million tiny elements, 10,000 nested sequence levels, a 64 MB person name.

    python bench/hostile10_bench.py [--heavy] [--files 10000] [--json FILE] [--only NAME]
"""
from __future__ import annotations

import argparse
import json
import warnings
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pydicom  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.uid import ImplicitVRLittleEndian  # noqa: E402

from conftest import PHI, make_cr  # noqa: E402
from hostile_inputs import UNDEFINED, at as _at, elem, icc_profile, insert as insert_at, nested, pixel_start  # noqa: E402
from helpers import key_file_in  # noqa: E402
from vindr_cli import reasons  # noqa: E402
from vindr_cli.tables import read_rows  # noqa: E402
from bench_io import LAUNCH  # noqa: E402  (the memory-capped launcher, one copy)

VINDR = [sys.executable, "-m", "vindr_cli"]
STUDY = "1.2.826.0.1.3680043.10.543.1"


# --- building blocks --------------------------------------------------------------------------

def split_at_pixels(data: bytes) -> tuple[bytes, bytes]:
    i = pixel_start(data)
    return data[:i], data[i:]


def cr_bytes(work: Path, **kw) -> bytes:
    p = make_cr(work / f"cr{len(list(work.glob('cr*')))}.dcm", **kw)
    return p.read_bytes()


def with_icc(profile: bytes):
    def extra(ds):
        ds.ICCProfile = profile
    return extra


# --- the cases: name -> builder(work) -> {file name: bytes or None (special)} ----------------------

def cases(work: Path, heavy: bool, n_files: int, n_files_only: bool = False) -> dict:
    good = cr_bytes(work)                                         # the hostile file's study peer
    base = cr_bytes(work, sop=STUDY + ".1.1.2", seed=1)
    head, pixels = split_at_pixels(base)
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    out: dict[str, dict[str, object]] = {}

    def add(name, data, peer=True):
        out[name] = {"hostile.dcm": data, **({"good.dcm": good} if peer else {})}

    # truncations: mid preamble, mid meta, mid header element, mid sequence, mid pixels
    seq_at = base.find(b"\x40\x00\x75\x02")      # RequestAttributesSequence (0040,0275)
    for label, at in (("preamble", 60), ("meta", 200), ("header", len(head) // 2), ("sequence", seq_at + 20),
                      ("pixel-tag", len(head) + 2), ("pixel-length", len(head) + 10), ("pixels", len(head) + 100),
                      ("last-byte", len(base) - 1)):
        add(f"cut-{label}", base[:at])
    add("cut-ct-pixels", ct[:len(ct) - 1000])
    # undefined lengths that never end (a sequence, an item, encapsulated pixel data)
    add("undefined-sq-no-end", head[:_at(head, 0x00081140)]
        + elem(0x0008, 0x1140, b"SQ", b"", UNDEFINED) + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
        + elem(0x0008, 0x1150, b"UI", b"1.2.3\0"))
    add("undefined-ob-no-end", head + elem(0x7FE0, 0x0010, b"OB", b"", UNDEFINED)
        + b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\xfe\xff\x00\xe0\x10\x00\x00\x00" + bytes(16))
    # huge declared lengths (the file ends long before)
    add("huge-uc-length", head[:_at(head, 0x00080119)] + elem(0x0008, 0x0119, b"UC", b"x" * 10, 0xFFFFFFF0))
    add("huge-sq-length", head[:_at(head, 0x00081140)] + elem(0x0008, 0x1140, b"SQ", b"", 0xFFFFFFF0) + bytes(64))
    add("huge-pixel-length", head + elem(0x7FE0, 0x0010, b"OW", b"\0" * 100, 0xFFFFFFF0))
    # sequences nested DEPTH levels (undefined lengths), a name in the innermost item
    for depth in (100, 200, 1000) + ((10000,) if heavy else ()):
        add(f"nested-{depth}", insert_at(base, 0x00081140, nested(depth)))
    # big person names: implicit VR (4-byte lengths), so the name is a PN
    for mb in (1,) + ((64,) if heavy else ()):
        add(f"name-{mb}mb", cr_bytes(work, sop=STUDY + ".1.1.3", name="Nguyen^" + "A" * (mb << 20), ts=ImplicitVRLittleEndian))
    add("name-64kb-explicit", insert_at(base, 0x00081070, elem(0x0008, 0x1070, b"PN", b"Nguyen^" + b"B" * 65520)))
    # many tiny elements: private groups 6001.. (after the overlay, before the pixel data)
    n_small = 1_000_000 if heavy else 50_000
    blob, made = bytearray(), 0
    for g in range(0x6001, 0x7FDF, 2):
        for e in range(0x0010, 0x10000):
            blob += elem(g, e, b"SH", b"ab")
            made += 1
            if made >= n_small:
                break
        if made >= n_small:
            break
    add(f"tiny-elements-{n_small}", insert_at(base, 0x60010000, bytes(blob)))
    # ICC profiles
    add("icc-many-entries", cr_bytes(work, sop=STUDY + ".1.1.4", extra=with_icc(icc_profile(1000, 0xFFFFFFF0, 40000))))
    add("icc-count-huge", cr_bytes(work, sop=STUDY + ".1.1.5", extra=with_icc(icc_profile(1, 20, 12)[:128] + b"\xff\xff\xff\xff" + bytes(40))))
    add("icc-offset-past-end", cr_bytes(work, sop=STUDY + ".1.1.6", extra=with_icc(icc_profile(3, 20, 12, offset=0x7FFFFFF0))))
    add("icc-clut-huge", cr_bytes(work, sop=STUDY + ".1.1.7", extra=with_icc(icc_profile(1, 200, 200, kind=b"mft2")[:140] + bytes([0xF, 0xF, 0xFF, 0]) + bytes(300))))
    add("icc-mab-offsets", cr_bytes(work, sop=STUDY + ".1.1.8", extra=with_icc(
        icc_profile(1, 64, 64, kind=b"mAB ")[:148] + b"\x03\x03\0\0" + struct.pack(">5I", 0xFFFFFF00, 0, 0, 0xFFFFFFF0, 4) + bytes(40))))

    # geometry and encoding
    def geo(name, **attrs):
        def extra(ds):
            for k, v in attrs.items():
                setattr(ds, k, v)
        add(name, cr_bytes(work, sop=STUDY + ".1.2." + str(len(out)), extra=extra))
    geo("rows-0", Rows=0)
    geo("cols-0-rows-0", Rows=0, Columns=0)
    add("one-by-one", cr_bytes(work, sop=STUDY + ".1.3.1", rows=1, cols=1))
    add("65535-by-1", cr_bytes(work, sop=STUDY + ".1.3.2", rows=1, cols=65535))
    geo("bits-allocated-7", BitsAllocated=7)
    geo("bits-allocated-0", BitsAllocated=0)
    geo("bits-allocated-64", BitsAllocated=64)
    geo("samples-0", SamplesPerPixel=0)
    geo("samples-5", SamplesPerPixel=5)
    geo("rows-65535-declared", Rows=65535, Columns=65535)
    geo("high-bit-past", HighBit=40, BitsStored=40)
    # character sets
    raw = cr_bytes(work, sop=STUDY + ".1.4.1", name="Nguyen^Van An")
    add("non-utf8-iso-ir-192", raw.replace(b"Nguyen^Van An", b"Ngu\xff\xfen^Va\xc0 "))
    add("unknown-charset", cr_bytes(work, sop=STUDY + ".1.4.2", name="Nguyen^Van An").replace(b"ISO_IR 192", b"ISO_IR 999"))
    add("charset-escape-junk", cr_bytes(work, sop=STUDY + ".1.4.3", name="Nguyen^Van An").replace(b"ISO_IR 192", b"\\ISO 2022"))
    # special files
    out["empty-file"] = {"hostile.dcm": b"", "good.dcm": good}
    out["dir-named-dcm"] = {"hostile.dcm": "dir", "good.dcm": good}
    out["fifo-named-dcm"] = {"hostile.dcm": "fifo", "good.dcm": good}
    out["symlink-named-dcm"] = {"hostile.dcm": "symlink", "good.dcm": good}
    out["chmod-000"] = {"hostile.dcm": ("chmod", base), "good.dcm": good}
    if heavy or n_files_only:
        out[f"study-{n_files}"] = {f"f{i:05d}.dcm": ("copy", i) for i in range(n_files)}
        # every file names another operator: each file's first-pass peers are the whole study's
        out[f"study-distinct-{n_files}"] = {f"f{i:05d}.dcm": ("distinct", i) for i in range(n_files)}
    return out


def materialise(folder: Path, files: dict, work: Path) -> None:
    folder.mkdir(parents=True)
    base = None
    for name, data in files.items():
        p = folder / name
        if data == "dir":
            p.mkdir()
            (p / "inner.txt").write_text("x")
        elif data == "fifo":
            os.mkfifo(p)
        elif data == "symlink":
            p.symlink_to(folder / "good.dcm")
        elif isinstance(data, tuple) and data[0] == "chmod":
            p.write_bytes(data[1])
            p.chmod(0)
        elif isinstance(data, tuple) and data[0] in ("copy", "distinct"):
            if base is None:
                base = pydicom.dcmread(make_cr(work / "study-base.dcm"))
            ds = base
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{STUDY}.9.{data[1]}"
            if data[0] == "distinct":
                ds.OperatorsName = f"Operator{data[1]:05d}^Hoang"
            ds.save_as(p)
        else:
            p.write_bytes(data)


def run(folder: Path, out: Path, key: Path, workers: int, limit: float, cap: int, task_timeout: float = 600) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    cmd = [sys.executable, "-c", LAUNCH, str(cap), *VINDR, "anonymize", str(folder), str(out), "--key", str(key),
           "-j", str(workers), "--strict", "--task-timeout", str(task_timeout)]
    t0, ru0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(cmd, capture_output=True, env=env, timeout=limit)
        rc, err = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = "HANG", (e.stdout or b"") + (e.stderr or b"")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime
    rss = next((int(line.split()[1]) // 1024 for line in err.decode("utf-8", "replace").splitlines()
                if line.startswith("MAXRSS_KB")), None)
    res = {"rc": rc, "wall_s": round(time.monotonic() - t0, 1), "cpu_s": round(cpu, 1), "peak_rss_mb": rss}
    text = err.decode("utf-8", "replace")
    res["traceback"] = "Traceback" in text
    manifest = out / "manifest.parquet"
    rows = read_rows(manifest) if manifest.exists() else []
    res["rows"] = len(rows)
    res["statuses"] = sorted({(r["status"], r["reason"] or "") for r in rows})
    res["unknown_reasons"] = sorted({r["reason"] for r in rows if r["reason"] and not reasons.known("anonymize_manifest", r["reason"])})
    names = " ".join(p.name for p in out.rglob("*")) if out.exists() else ""
    needles = [n for n in PHI if len(n) >= 4] + ["Nguyen", "Tran^Thi", "Ngu\ufffd"]
    blob = text + " ".join(r["reason"] or "" for r in rows) + names
    res["phi"] = [n for n in needles if n in blob]
    return res


def main() -> None:
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--heavy", action="store_true")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--study-only", action="store_true", help="only the N-file study cases")
    ap.add_argument("--only", default="")
    ap.add_argument("--limit", type=float, default=300.0)
    ap.add_argument("--cap-gb", type=float, default=4.0)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--task-timeout", type=float, default=600.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hostile10-"))
    results = {}
    try:
        key = key_file_in(work)
        (work / "build").mkdir()
        built = cases(work / "build", a.heavy, a.files, a.study_only)
        if a.study_only:
            built = {k: v for k, v in built.items() if k.startswith("study-")}
        for name, files in built.items():
            if a.only and a.only not in name:
                continue
            folder = work / "in" / name
            materialise(folder, files, work / "build")
            for w in map(int, a.workers.split(",")):
                out = work / "out" / f"{name}-j{w}"
                res = run(folder, out, key, w, a.limit, int(a.cap_gb * 2**30), a.task_timeout)
                res["inputs"] = len(files)
                bad = (res["rc"] not in (0, 1) or res["traceback"] or res["unknown_reasons"] or res["phi"])
                results[f"{name} -j{w}"] = res
                print(f"{'BAD ' if bad else 'ok  '}{name:28s} -j{w} rc={res['rc']} rows={res['rows']}/{len(files)} "
                      f"{res['wall_s']}s cpu={res['cpu_s']}s rss={res['peak_rss_mb']}MB {res['statuses']}"
                      f"{' UNKNOWN ' + str(res['unknown_reasons']) if res['unknown_reasons'] else ''}"
                      f"{' PHI ' + str(res['phi']) if res['phi'] else ''}", flush=True)
                shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(work)])
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
