"""Burned-in text bench: does `vindr anonymize --burned-in redact` leave readable text?

Runs `vindr anonymize --burned-in redact` and `--burned-in quarantine` (and `off`, for
the CPU baseline) on the corpus of bench/burned_in_corpus.py (real public radiographs
with text drawn in; built here when --corpus does not hold one yet), once per image
class (with_text/, no_text/), and measures:

* identifying strings still readable in what was released, judged two ways:
  1. contrast: inside the truth box of the output's decoded pixels, do the drawn
     glyph pixels still stand out from the pixels right around them
     (`contrast_readable`);
  2. re-OCR: Tesseract (CLI) on the truth box region, page segmentation 7 and 11,
     both polarities, upscaled; readable when the folded text matches the truth
     (similarity >= 0.6, or a token of >= 4 characters found) (`ocr_readable`);
  an image held back (quarantined, failed) releases nothing;
* text-free images modified (manifest `pixels_modified`);
* markers kept (contrast still readable, and the box's pixels unchanged);
* CPU seconds per image and per 2k x 2k image (CPU time of the anonymize process and
  its workers, from getrusage of the children, per class; `redact` minus `off` too);
* Presidio's DicomImageRedactorEngine: only if importable and runnable offline.

The truth is never printed: only counts and shares. Results: bench/results/burned_in.json.
If `vindr anonymize` has no --burned-in option (before the issue-10 merge) the bench
says so, measures today's behaviour (the "before" figures) and exits 2.

Usage: python bench/burned_in_bench.py [--corpus DIR] [--images 100] [--size 2048] [-j 2]
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from burned_in_corpus import build, fold, load_truth  # noqa: E402

VENV_BIN = Path(sys.executable).parent
RESULTS = REPO / "bench" / "results" / "burned_in.json"
STANDOUT_SHARE = 0.25   # share of glyph pixels that must stand out for "readable"
OCR_SIMILARITY = 0.6
HELD = ("quarantined", "failed", "skipped", "duplicate", "not-dicom")


# ---------------------------------------------------------------- judge 1: contrast

def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(r):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum over the (2r+1)^2 window around each pixel (zero outside)."""
    p = np.pad(a, ((r + 1, r), (r + 1, r)))
    c = p.cumsum(0).cumsum(1)
    k = 2 * r + 1
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def contrast_readable(pixels: np.ndarray, box, mask: np.ndarray, bits_stored: int) -> tuple[bool, float]:
    """Do the drawn glyph pixels still stand out from the pixels around them?

    `pixels`: the decoded stored values of a frame; `box` (x0, y0, x1, y1); `mask`: the
    glyph mask (box-shaped). Each glyph pixel is compared with the mean of the
    non-glyph pixels near it (1-4 px away from the strokes, within a window that grows
    with the text); it stands out when it differs by more than 4 % of the stored range
    and 3 times the local spread. Readable when >= 25 % of glyph pixels stand out.
    Returns (readable, share standing out).
    """
    x0, y0, x1, y1 = box
    m = mask.astype(bool)
    if not m.any():
        return False, 0.0
    r = max(2, min(12, (y1 - y0) // 3))
    pad = r + 2
    H, W = pixels.shape
    X0, Y0, X1, Y1 = max(0, x0 - pad), max(0, y0 - pad), min(W, x1 + pad), min(H, y1 + pad)
    region = pixels[Y0:Y1, X0:X1].astype(np.float64)
    glyph = np.zeros(region.shape, bool)
    glyph[y0 - Y0:y0 - Y0 + m.shape[0], x0 - X0:x0 - X0 + m.shape[1]] = m
    ring = _dilate(glyph, 4) & ~_dilate(glyph, 1)
    n = _box_sum(ring.astype(np.float64), r)
    s = _box_sum(np.where(ring, region, 0.0), r)
    s2 = _box_sum(np.where(ring, region * region, 0.0), r)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        sd = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    ok = glyph & (n >= 3)
    if not ok.any():
        return False, 0.0
    diff = np.abs(region[ok] - mean[ok])
    thresh = np.maximum(0.04 * ((1 << bits_stored) - 1), 3.0 * sd[ok])
    share = float((diff > thresh).mean())
    return share >= STANDOUT_SHARE, share


# ---------------------------------------------------------------- judge 2: re-OCR

def _norm(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", fold(text).upper())


def text_matches(truth: str, ocr: str) -> bool:
    t, o = _norm(truth), _norm(ocr)
    if not t or not o:
        return False
    if difflib.SequenceMatcher(None, t, o).ratio() >= OCR_SIMILARITY:
        return True
    tokens = [_norm(tok) for tok in re.split(r"[\s^:/.,-]+", truth)]
    return any(len(tok) >= 4 and tok in o for tok in tokens)


def have_tesseract() -> bool:
    return shutil.which("tesseract") is not None


def tesseract_langs() -> str:
    """'vie+eng' when both traineddata are installed, else what there is (never silently none)."""
    r = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True)
    have = set((r.stdout + r.stderr).split())
    langs = [lang for lang in ("vie", "eng") if lang in have]
    if not langs:
        raise SystemExit("tesseract has neither vie nor eng traineddata (apt-get install tesseract-ocr-eng tesseract-ocr-vie)")
    return "+".join(langs)


OCR_LANGS: list[str] = []


def _crop_u8(pixels: np.ndarray, box, photometric: str) -> np.ndarray:
    x0, y0, x1, y1 = box
    h = y1 - y0
    pad = max(4, h // 2)
    H, W = pixels.shape
    c = pixels[max(0, y0 - pad):min(H, y1 + pad), max(0, x0 - pad):min(W, x1 + pad)].astype(np.float64)
    lo, hi = float(c.min()), float(c.max())
    u8 = np.zeros(c.shape, np.uint8) if hi <= lo else np.rint((c - lo) / (hi - lo) * 255).astype(np.uint8)
    if photometric == "MONOCHROME1":
        u8 = 255 - u8
    return u8


def ocr_readable(pixels: np.ndarray, box, photometric: str, truth: str, tmp: Path) -> bool:
    """Tesseract on the box region: psm 7 and 11, both polarities, text >= ~40 px high."""
    from PIL import Image
    u8 = _crop_u8(pixels, box, photometric)
    if u8.max() == u8.min():
        return False
    scale = max(1, min(6, 48 // max(1, box[3] - box[1])))
    img = Image.fromarray(u8)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.LANCZOS)
    png = tmp / "crop.png"
    for arr in (np.asarray(img), 255 - np.asarray(img)):
        Image.fromarray(arr).save(png)
        for psm in ("7", "11"):
            if not OCR_LANGS:
                OCR_LANGS.append(tesseract_langs())
            r = subprocess.run(["tesseract", str(png), "stdout", "-l", OCR_LANGS[0], "--psm", psm],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"tesseract exited {r.returncode}")   # an OCR that did not run reads nothing: stop
            if text_matches(truth, r.stdout):
                return True
    return False


# ---------------------------------------------------------------- running vindr

def burned_in_option() -> bool:
    r = subprocess.run([str(VENV_BIN / "vindr"), "anonymize", "--help"], capture_output=True, text=True)
    return "--burned-in" in r.stdout


def run_anonymize(src: Path, out: Path, key: Path, mode: str | None, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    link = out.parent / f"{out.name}.linkage.parquet"
    link.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cmd = [str(VENV_BIN / "vindr"), "anonymize", str(src), str(out), "--key", str(key), "-j", str(workers)]
    if mode is not None:
        cmd += ["--burned-in", mode]
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"rc": r.returncode, "cpu_s": cpu, "wall_s": wall, "out": out, "linkage": link}


def _rows(run: dict) -> list[dict]:
    """Manifest rows joined with the linkage's original SOP UID."""
    import pandas as pd
    man = pd.read_parquet(run["out"] / "manifest.parquet")
    link = pd.read_parquet(run["linkage"], columns=["input_key", "original_sop_uid"])
    return man.merge(link, on="input_key", how="left").to_dict("records")


def _decode(path: Path) -> np.ndarray:
    import pydicom
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = pydicom.dcmread(path).pixel_array
    return arr[0] if arr.ndim == 3 else arr


def judge(truth: dict, masks: dict, corpus: Path, runs: dict[str, dict], use_ocr: bool, tmp: Path) -> dict:
    """Figures for one mode from its per-class runs."""
    by_uid = {}
    for run in runs.values():
        for row in _rows(run):
            by_uid[row.get("original_sop_uid")] = (row, run["out"])
    f = {"identifying": 0, "released_identifying": 0, "readable_contrast": 0, "readable_ocr": 0,
         "readable_either": 0, "readable_before_contrast": 0, "readable_before_ocr": 0,
         "markers": 0, "markers_readable_before": 0, "markers_kept_readable": 0, "markers_unchanged": 0,
         "no_text_images": 0, "no_text_modified": 0, "no_text_held_back": 0,
         "with_text_images": 0, "with_text_held_back": 0, "pixels_modified_column": False,
         "by_kind": {}}
    for im in truth["images"]:
        row, out = by_uid.get(im["sop_uid"], (None, None))
        # released = an output was written that is not held back; any status other than the
        # known held-back ones counts as released (never flatter the redactor by a new status name)
        released = bool(row is not None and row.get("output") and row.get("status") not in HELD
                        and (out / row["output"]).is_file())
        if "pixels_modified" in (row or {}):
            f["pixels_modified_column"] = True
        if im["class"] == "no_text":
            f["no_text_images"] += 1
            f["no_text_held_back"] += not released
            f["no_text_modified"] += bool(released and row.get("pixels_modified"))
            continue
        f["with_text_images"] += 1
        f["with_text_held_back"] += not released
        src = _decode(corpus / im["file"])
        dst = _decode(out / row["output"]) if released else None
        for s in im["strings"]:
            box, mask = s["box"], masks[s["mask"]]
            if s["kind"] == "marker":
                f["markers"] += 1
                was = contrast_readable(src, box, mask, im["bits_stored"])[0]
                f["markers_readable_before"] += was
                if dst is not None:
                    f["markers_kept_readable"] += was and contrast_readable(dst, box, mask, im["bits_stored"])[0]
                    x0, y0, x1, y1 = box
                    f["markers_unchanged"] += bool(np.array_equal(src[y0:y1, x0:x1], dst[y0:y1, x0:x1]))
                continue
            k = f["by_kind"].setdefault(s["kind"], {"n": 0, "readable": 0})
            k["n"] += 1
            f["identifying"] += 1
            f["readable_before_contrast"] += contrast_readable(src, box, mask, im["bits_stored"])[0]
            if use_ocr:
                f["readable_before_ocr"] += ocr_readable(src, box, im["photometric"], s["text"], tmp)
            if dst is None:
                continue
            f["released_identifying"] += 1
            c = contrast_readable(dst, box, mask, im["bits_stored"])[0]
            o = ocr_readable(dst, box, im["photometric"], s["text"], tmp) if use_ocr else False
            f["readable_contrast"] += c
            f["readable_ocr"] += o
            f["readable_either"] += c or o
            k["readable"] += c or o
    return f


def presidio_status() -> str:
    import importlib.util
    if importlib.util.find_spec("presidio_image_redactor") is None:
        return ("not run: presidio-image-redactor is on PyPI, but its analyzer loads the spaCy model "
                "en_core_web_lg, which spaCy fetches at run time from outside the package registries "
                "(not offline); see bench/README.md")
    return "installed but not run by this bench (needs a spaCy model offline)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=None, help="corpus dir (built there if it has no truth.json)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("-j", "--workers", type=int, default=2)
    ap.add_argument("--no-ocr", action="store_true", help="contrast judge only")
    ap.add_argument("--pydicom-data", type=Path, default=None, help="the pydicom-data wheel (see burned_in_corpus.py)")
    a = ap.parse_args()
    merged = burned_in_option()
    if not merged:
        print("vindr anonymize has no --burned-in option on this branch (issue 10 not merged yet): "
              "measuring today's behaviour only, then exiting 2")
    modes = ("off", "redact", "quarantine") if merged else ("today",)
    work = Path(tempfile.mkdtemp(prefix="vindr_burned_in_"))
    try:
        corpus = a.corpus or work / "corpus"
        if not (corpus / "truth.json").is_file():
            build(corpus, a.images, a.size, a.seed, wheel=a.pydicom_data)
        truth, masks = load_truth(corpus)
        key = work / "keys" / "vindr.key"
        use_ocr = have_tesseract() and not a.no_ocr
        results: dict = {"corpus": {"images": len(truth["images"]), "size": truth["size"], "seed": truth["seed"],
                                    "sources": truth.get("sources", []),
                                    "with_text": sum(i["class"] == "with_text" for i in truth["images"]),
                                    "strings": sum(len(i["strings"]) for i in truth["images"])},
                         "ocr_judge": f"tesseract psm 7+11, {tesseract_langs()}" if use_ocr else "not available",
                         "workers": a.workers, "modes": {},
                         "status": "measured" if merged else "pending the merge: --burned-in absent, today's behaviour only"}
        cpu: dict = {}
        for mode in modes:
            runs = {}
            for cls in ("with_text", "no_text"):
                runs[cls] = run_anonymize(corpus / cls, work / f"out_{mode}_{cls}", key,
                                          None if mode == "today" else mode, a.workers)
                if runs[cls]["rc"] not in (0, 1):
                    print(f"vindr anonymize ({mode}) exited {runs[cls]['rc']}")
                    return 2
            n = {c: sum(i["class"] == c for i in truth["images"]) for c in runs}
            px = {c: sum(i["rows"] * i["cols"] for i in truth["images"] if i["class"] == c) for c in runs}
            cpu[mode] = {c: {"cpu_s": runs[c]["cpu_s"], "wall_s": runs[c]["wall_s"],
                             "cpu_per_image_s": runs[c]["cpu_s"] / max(1, n[c]),
                             "cpu_per_2k_image_s": runs[c]["cpu_s"] / max(1, px[c]) * 2048 * 2048} for c in runs}
            tot_cpu = sum(runs[c]["cpu_s"] for c in runs)
            cpu[mode]["all"] = {"cpu_per_2k_image_s": tot_cpu / max(1, sum(px.values())) * 2048 * 2048}
            if mode != "off":
                if "off" in cpu:
                    cpu[mode]["added_over_off"] = {c: cpu[mode][c]["cpu_per_2k_image_s"] - cpu["off"][c]["cpu_per_2k_image_s"]
                                                   for c in ("with_text", "no_text", "all")}
                results["modes"][mode] = judge(truth, masks, corpus, runs, use_ocr, work)
                results["modes"][mode]["cpu"] = cpu[mode]
        if "off" in cpu:
            results["cpu_off"] = cpu["off"]
        results["presidio"] = presidio_status()
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, default=str))
        _print(results)
        return 0 if merged else 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _added(f: dict, cls: str) -> str:
    a = f["cpu"].get("added_over_off", {}).get(cls)
    return "-" if a is None else f"{a:.2f}"


def _print(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    def pct(a, b):
        return f"{a}/{b} ({100 * a / b:.0f} %)" if b else "-"

    t = Table(title=f"burned-in text: {res['corpus']['images']} images {res['corpus']['size']}^2, "
                    f"{res['corpus']['with_text']} with text; OCR judge: {res['ocr_judge']}")
    t.add_column("measure")
    for mode in res["modes"]:
        t.add_column(f"--burned-in {mode}" if mode != "today" else "today (no --burned-in)", justify="right")
    m = res["modes"]
    rows = [
        ("identifying strings readable (contrast)", lambda f: pct(f["readable_contrast"], f["identifying"])),
        ("identifying strings readable (re-OCR)", lambda f: pct(f["readable_ocr"], f["identifying"])),
        ("identifying strings readable (either)", lambda f: pct(f["readable_either"], f["identifying"])),
        ("  readable in the input (contrast / OCR)", lambda f: f"{f['readable_before_contrast']} / {f['readable_before_ocr']}"),
        ("images with text held back", lambda f: pct(f["with_text_held_back"], f["with_text_images"])),
        ("text-free images modified", lambda f: pct(f["no_text_modified"], f["no_text_images"])),
        ("text-free images held back", lambda f: pct(f["no_text_held_back"], f["no_text_images"])),
        ("markers kept (readable before and after)", lambda f: pct(f["markers_kept_readable"], f["markers_readable_before"])),
        ("markers unchanged", lambda f: pct(f["markers_unchanged"], f["markers"])),
        ("CPU s per 2k x 2k image (all)", lambda f: f"{f['cpu']['all']['cpu_per_2k_image_s']:.2f}"),
        ("CPU s per 2k x 2k image (with text)", lambda f: f"{f['cpu']['with_text']['cpu_per_2k_image_s']:.2f}"),
        ("CPU s per 2k x 2k image (no text)", lambda f: f"{f['cpu']['no_text']['cpu_per_2k_image_s']:.2f}"),
        ("  of which over --burned-in off (all)", lambda f: _added(f, "all")),
        ("  of which over --burned-in off (with text)", lambda f: _added(f, "with_text")),
        ("  of which over --burned-in off (no text)", lambda f: _added(f, "no_text")),
    ]
    for label, fn in rows:
        t.add_row(label, *[fn(m[k]) for k in m])
    Console().print(t)
    if "cpu_off" in res:
        print(f"--burned-in off: {res['cpu_off']['all']['cpu_per_2k_image_s']:.2f} CPU s per 2k x 2k image")
    print(f"status: {res['status']}")
    print(f"Presidio: {res['presidio']}")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
