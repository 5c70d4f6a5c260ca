"""The full fuzz campaign (tests/test_fuzz.py is its short, seeded cut).

Thousands of seeded mutations of real DICOM files (``tests/fuzzing.py``: pydicom's bundled
test files + CR images with planted PHI), plus hostile extras (a 1 MB deflated file inflating
to 1 GiB, an RLE file declaring 65535 x 65535, a zip member declaring 2 GiB ... see
``hostile``), go through ``vindr anonymize`` and then ``vindr decode`` of the ok outputs,
each run under an address-space cap (``resource.setrlimit(RLIMIT_AS)`` set before exec, so
the driver and every worker inherit it). Then kill trials: anonymize SIGKILLed mid-run at
seeded moments and re-run to the end. Printed per column (target: zero in every one but the
last, peak RSS under 2 GB per process):

  crashes           exit other than 0/1 (--strict), or a traceback
  missing rows      inputs without exactly one manifest row (decode: without a row)
  unreadable ok     ok outputs pydicom cannot read whole (decode: images PIL cannot load)
  leaks             ok outputs holding a planted PHI value outside the pixel data
  peak RSS MB       the largest resident set of any process of the run (getrusage children)

    python bench/fuzz_bench.py --mutants 2000 --kills 3 [--workers 2] [--cap-gb 4] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pydicom  # noqa: E402
from pydicom.filewriter import write_dataset, write_file_meta_info  # noqa: E402
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless  # noqa: E402

from conftest import PHI, make_cr  # noqa: E402
from fuzzing import campaign, phi_needles, seeds  # noqa: E402
from helpers import split_file  # noqa: E402
from vindr_cli.tables import read_rows  # noqa: E402
from bench_io import LAUNCH  # noqa: E402  (the memory-capped launcher, one copy)

VINDR = [sys.executable, "-m", "vindr_cli"]


def capped(args: list, cap: int) -> tuple[int, str, float]:
    """Run args under an address-space cap; (exit code, stderr, peak RSS MB of any process)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    p = subprocess.run([sys.executable, "-c", LAUNCH, str(cap), *map(str, args)], capture_output=True, text=True, errors="replace",
                       env=env)
    rss = 0.0
    for line in p.stderr.splitlines():
        if line.startswith("MAXRSS_KB"):
            rss = int(line.split()[1]) / 1024
    return p.returncode, p.stderr, rss


def hostile(folder: Path) -> dict[str, str]:
    """Crafted inputs: {name: what}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    # a deflated data set: 1 GiB of zero pixels in a ~1 MB file
    base = pydicom.dcmread(make_cr(folder / "_base.dcm"))
    (folder / "_base.dcm").unlink()
    del base.PixelData
    base.Rows = base.Columns = 16384
    base.NumberOfFrames = 2
    meta = base.file_meta
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    from pydicom.filebase import DicomBytesIO

    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    write_dataset(head, base)
    n = 16384 * 16384 * 2 * 2
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(folder / "deflate_bomb.dcm", "wb") as f:
        f.write(b"\0" * 128 + b"DICM")
        mb = DicomBytesIO()
        mb.is_little_endian, mb.is_implicit_VR = True, False
        write_file_meta_info(mb, meta, enforce_standard=True)
        f.write(mb.getvalue())
        f.write(comp.compress(head.getvalue() + b"\xe0\x7f\x10\x00OW\x00\x00" + n.to_bytes(4, "little")))
        block = bytes(1 << 24)
        for _ in range(n // len(block)):
            f.write(comp.compress(block))
        f.write(comp.flush())
    out["deflate_bomb.dcm"] = "deflated, ~1 MB inflating to 1 GiB"
    # RLE declaring 65535 x 65535
    p = make_cr(folder / "rle_huge.dcm", ts=RLELossless, sop="1.2.826.0.1.3680043.8.498.7.1")
    ds = pydicom.dcmread(p)
    ds.Rows = ds.Columns = 65535
    ds.save_as(p, enforce_file_format=True)
    out["rle_huge.dcm"] = "RLE, 65535 x 65535 declared"
    # a zip whose member declares 2 GiB (deflated zeros) with a DICOM header in front
    with zipfile.ZipFile(folder / "zip_bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("big.dcm", "w", force_zip64=True) as m:
            m.write(make_cr(folder / "_z.dcm").read_bytes())
            block = bytes(1 << 24)
            for _ in range(128):
                m.write(block)
    (folder / "_z.dcm").unlink()
    out["zip_bomb.zip"] = "zip member declaring 2 GiB"
    return out


def check_anon(src: Path, out: Path, link: Path, plan: dict) -> dict:
    inputs = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    res = {"missing_rows": 0, "unreadable_ok": 0, "leaks": 0, "ok": 0}
    try:
        manifest, linkage = read_rows(out / "manifest.parquet"), read_rows(link)
    except Exception:
        res["missing_rows"] = len(inputs)
        return res
    seen = {}
    for r in linkage:
        seen[r["input_path"].split("!")[0]] = seen.get(r["input_path"].split("!")[0], 0) + 1
    res["missing_rows"] = sum(1 for i in inputs if seen.get(i, 0) < 1) + abs(len(manifest) - len(linkage))
    for r in linkage:
        if r["status"] != "ok":
            continue
        res["ok"] += 1
        path = out / r["output"]
        try:
            ds = pydicom.dcmread(path)
            if "PixelData" in ds:
                ds.PixelData
            header, _ = split_file(path)
        except Exception:
            res["unreadable_ok"] += 1
            continue
        phi = plan.get(r["input_path"], (None, None, tuple(PHI)))[2] or ()
        if any(n in header for n in phi_needles(phi)):
            res["leaks"] += 1
    return res


def check_decode(anon: Path, img: Path) -> dict:
    from PIL import Image

    res = {"missing_rows": 0, "unreadable_ok": 0}
    try:
        rows = read_rows(img / "images.parquet")
        manifest = read_rows(anon / "manifest.parquet")
    except Exception:
        return {"missing_rows": -1, "unreadable_ok": 0}
    want = {r["output"] for r in manifest if r["status"] == "ok"}
    res["missing_rows"] = len(want - {r["input"] for r in rows})
    for r in rows:
        if r["status"] == "ok":
            try:
                with Image.open(img / r["output"]) as im:
                    im.load()
            except Exception:
                res["unreadable_ok"] += 1
    return res


def crashed(code: int, err: str) -> int:
    return int(code not in (0, 1) or "Traceback" in err)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mutants", type=int, default=2000)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cap-gb", type=float, default=4.0, help="address-space cap per process (0: none)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    cap = int(a.cap_gb * (1 << 30))
    work = Path(tempfile.mkdtemp(prefix="vindr-fuzz-"))
    key = work / "keys" / "k"
    key.parent.mkdir(mode=0o700)
    key.write_text(os.urandom(32).hex() + "\n")
    key.chmod(0o600)
    src = work / "in"
    plan = campaign(seeds(work / "seeds", make_cr, PHI), a.mutants, a.seed, src)
    extras = hostile(src / "hostile")
    table = {}
    t0 = time.monotonic()
    code, err, rss = capped([*VINDR, "anonymize", src, work / "anon", "--key", key, "-j", a.workers, "--strict"], cap)
    r = check_anon(src, work / "anon", work / "anon.linkage.parquet", plan)
    table["anonymize"] = {"inputs": a.mutants + len(extras), "crashes": crashed(code, err), **r, "peak_rss_mb": round(rss),
                          "wall_s": round(time.monotonic() - t0, 1)}
    t0 = time.monotonic()
    code, err, rss = capped([*VINDR, "decode", work / "anon", work / "img", "-j", a.workers, "--size", "256", "--strict"], cap)
    table["decode"] = {"inputs": r["ok"], "crashes": crashed(code, err), **check_decode(work / "anon", work / "img"),
                       "leaks": 0, "peak_rss_mb": round(rss), "wall_s": round(time.monotonic() - t0, 1)}
    t0 = time.monotonic()
    code, err, rss = capped([*VINDR, "decode", src / "hostile", work / "img_hostile", "-j", a.workers,
                             "--allow-identified", "--strict"], cap)
    table["decode hostile"] = {"inputs": len(extras), "crashes": crashed(code, err), "missing_rows": 0, "unreadable_ok": 0,
                               "leaks": 0, "peak_rss_mb": round(rss), "wall_s": round(time.monotonic() - t0, 1)}
    # kill trials: SIGKILL mid-run, then resume
    rng = random.Random(a.seed)
    kills = {"trials": a.kills, "crashes": 0, "missing_rows": 0, "unreadable_ok": 0, "leaks": 0, "peak_rss_mb": 0}
    for k in range(a.kills):
        out = work / f"kill{k}"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.Popen([*VINDR, "anonymize", src, out, "--key", key, "-j", str(a.workers)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        target = rng.randint(1, max(1, a.mutants // 2))
        start = time.monotonic()
        while p.poll() is None and time.monotonic() - start < 600:
            if len(list(out.rglob("*.dcm"))) >= target:
                break
            time.sleep(0.05)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        code, err, rss = capped([*VINDR, "anonymize", src, out, "--key", key, "-j", a.workers, "--strict"], cap)
        r = check_anon(src, out, work / f"kill{k}.linkage.parquet", plan)
        kills["crashes"] += crashed(code, err)
        for c in ("missing_rows", "unreadable_ok", "leaks"):
            kills[c] += r[c]
        kills["peak_rss_mb"] = max(kills["peak_rss_mb"], round(rss))
    table["kill + resume"] = kills
    cols = ("crashes", "missing_rows", "unreadable_ok", "leaks", "peak_rss_mb")
    print(f"{'run':<16}" + "".join(f"{c:>15}" for c in cols))
    for name, row in table.items():
        print(f"{name:<16}" + "".join(f"{row.get(c, ''):>15}" for c in cols))
    print(json.dumps(table, indent=1))
    if a.json:
        a.json.write_text(json.dumps({"args": vars(a) | {"json": str(a.json)}, "table": table}, indent=1))


if __name__ == "__main__":
    main()
