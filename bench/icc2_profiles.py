"""icc2 (issue 13): every real ICC profile this machine has, cleaned by deid.icc before and after
the rebuild (the profile written again from its kept tags; curves monotonic; curve and CLUT bytes
that spell no words).

For each profile: refused or not, size before and after, whether the result is a fixed point,
the largest difference of littleCMS (Pillow's ImageCms) transforms to Lab and back (8-bit, a
64 x 64 image of random colours) between the original and the cleaned profile, and the longest
run of letters that turns twice in its curve / CLUT bytes (what [icc] word_run must stay above).
Then the time of clean(), the branch point's and this tree's, interleaved round robin, best of N.

    PYTHONPATH=. python bench/icc2_profiles.py --base-commit 9aebe87 --rounds 5 \
        --out bench/results/icc2_2026-11-30.json

The base is the commit's deid/icc.py, loaded as a module of its own with the commit's
schemas/deid/safe_attributes.toml."""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vindr_cli.deid import icc  # noqa: E402

MODES = {b"RGB ": ("RGB", 3), b"GRAY": ("L", 1), b"CMYK": ("CMYK", 4), b"Lab ": ("LAB", 3)}


def real_profiles() -> dict[str, bytes]:
    """littleCMS's built-in sRGB, LAB, XYZ; pydicom's crayons.icc and its palettes' profile;
    /usr/share/color/icc; every PNG / JPEG / TIFF under /usr/share and the virtual environment
    whose embedded profile is new (by bytes)."""
    import pydicom
    import pydicom.data
    from PIL import Image, ImageCms
    from pydicom.data import get_testdata_file

    found = {n: ImageCms.ImageCmsProfile(ImageCms.createProfile(n)).tobytes() for n in ("sRGB", "LAB", "XYZ")}
    found["crayons.icc"] = Path(get_testdata_file("crayons.icc", download=False)).read_bytes()
    found["pydicom palettes (pet.dcm)"] = bytes(
        pydicom.dcmread(Path(pydicom.data.__file__).parent / "palettes" / "pet.dcm").ICCProfile)
    for p in sorted(Path("/usr/share/color/icc").glob("*/*.icc")):
        found[p.name] = p.read_bytes()
    seen = set(found.values())
    roots = [Path("/usr/share"), Path(sys.prefix) / "lib"]
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff") or not p.is_file():
                continue
            try:
                with Image.open(p) as im:
                    prof = im.info.get("icc_profile")
            except Exception:       # noqa: BLE001 - any unreadable image is skipped
                continue
            if prof and prof not in seen:
                seen.add(prof)
                found[f"{p.name} (embedded)"] = prof
    return found


def transforms(prof: bytes) -> list[np.ndarray] | None:
    from PIL import Image, ImageCms

    if prof[16:20] not in MODES:
        return None
    mode, bands = MODES[prof[16:20]]
    pixels = np.random.default_rng(17).integers(0, 256, (64, 64, bands) if bands > 1 else (64, 64), dtype=np.uint8)
    img = Image.fromarray(pixels, mode) if mode in ("CMYK", "LAB") else Image.fromarray(pixels)
    p, lab = ImageCms.ImageCmsProfile(io.BytesIO(prof)), ImageCms.createProfile("LAB")
    there = ImageCms.applyTransform(img, ImageCms.buildTransform(p, lab, mode, "LAB"))
    out = [np.asarray(there).astype(int)]
    try:
        out.append(np.asarray(ImageCms.applyTransform(there, ImageCms.buildTransform(lab, p, "LAB", mode))).astype(int))
    except (ImageCms.PyCMSError, OSError):
        pass
    return out


def longest_word_run(prof: bytes) -> int:
    """The longest run of ASCII letters or spaces that turns twice in the profile's curve and CLUT
    bytes (curv entries, mft1 / mft2 tables and CLUT), in the views spells_words reads."""
    best = 0
    for sig, off, size in (struct.unpack_from(">4sII", prof, 132 + 12 * i)
                           for i in range(struct.unpack_from(">I", prof, 128)[0])):
        kind = prof[off:off + 4]
        if kind == b"curv":
            n = struct.unpack_from(">I", prof, off + 8)[0]
            views = [prof[off + 12:off + 12 + 2 * n]]
            views.append(views[0][1::2])
        elif kind in (b"mft1", b"mft2"):
            views = [prof[off + 48:off + size]]
            if kind == b"mft2":
                views.append(views[0][1::2])
        else:
            continue
        for v in views:
            for m in re.finditer(rb"[A-Za-z ]{4,}", v):
                if icc._turns(m.group()) >= 2:
                    best = max(best, len(m.group()))
    return best


def load_base(commit: str):
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:vindr_cli/deid/icc.py"],
                         check=True, capture_output=True).stdout
    path = Path(tempfile.mkdtemp(prefix="icc2_base_")) / "icc_base.py"
    path.write_bytes(src)
    schema = path.parent / "safe_attributes.toml"
    schema.write_bytes(subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:schemas/deid/safe_attributes.toml"],
                                      check=True, capture_output=True).stdout)
    spec = importlib.util.spec_from_file_location("icc_base", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.schema_path = lambda *_parts: schema            # the commit's policy data, not this tree's
    mod._policy.cache_clear()
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-commit", default="9aebe87")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    base = load_base(args.base_commit)
    profiles = real_profiles()
    rows = []
    for name, prof in profiles.items():
        out, old = icc.clean(prof), base.clean(prof)
        row = {"name": name, "colour_space": prof[16:20].decode("latin-1"), "class": prof[12:16].decode("latin-1"),
               "bytes": len(prof), "refused": out is None, "refused_at_base": old is None,
               "word_run": longest_word_run(prof)}
        if out is not None:
            row["bytes_after"] = len(out)
            row["fixed_point"] = icc.clean(out) == out
            a, b = transforms(prof), transforms(out)
            row["max_abs_diff_to_lab_and_back"] = None if a is None else [int(np.abs(x - y).max()) for x, y in zip(a, b)]
        rows.append(row)
        print(json.dumps(row))
    # time: each clean over every profile, round robin, best of N
    best = {"base": float("inf"), "icc2": float("inf")}
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for label, fn in (("base", base.clean), ("icc2", icc.clean)):
            t = time.perf_counter()
            for prof in profiles.values():
                fn(prof)
            best[label] = min(best[label], time.perf_counter() - t)
    summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "base_commit": args.base_commit,
               "profiles": len(rows), "refused": sum(r["refused"] for r in rows),
               "identical_transforms": sum(1 for r in rows if r.get("max_abs_diff_to_lab_and_back")
                                           and max(r["max_abs_diff_to_lab_and_back"]) == 0),
               "not_transformable_here": sum(1 for r in rows if not r["refused"] and r.get("max_abs_diff_to_lab_and_back") is None),
               "max_word_run": max(r["word_run"] for r in rows), "word_run_policy": icc._policy()["word_run"],
               "clean_all_profiles_best_s": best, "rounds": args.rounds,
               "load_average_1min": [round(x, 2) for x in loads]}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "profiles": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
