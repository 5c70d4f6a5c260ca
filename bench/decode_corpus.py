#!/usr/bin/env python3
"""A corpus of REAL ~2k-pixel radiographs in JPEG 2000 lossless, built from installed files
(nothing is downloaded): the decode floor and decoder comparison benches read it.

Sources (public test images shipped in PyPI packages; `pip install pydicom-data deid-data`):

* pydicom-data ``RG1_UNCR.dcm``: CR, 1955 x 1841, 15 bits stored, MONOCHROME1;
* pydicom-data ``RG3_UNCR.dcm``: CR, 1760 x 1760, 10 bits stored, MONOCHROME1;
* deid-data ``animals/cat.dcm``: DX, 2614 x 3072, 12 bits stored, MONOCHROME2 (a real
  radiograph of a cat);
* pydicom-data ``RG1_J2KR.dcm`` / ``RG3_J2KR.dcm``: the same two CR images as their vendor
  encoded them (JPEG 2000 lossless), kept as they are.

Variants: the 8 flips / transposes of RG1 and RG3 (real content, other orientation), four
2048 x 2048 crops of the cat and their mirror images; every variant is encoded to JPEG 2000
lossless, alternately by OpenJPEG (pylibjpeg-openjpeg, through pydicom's ``compress``) and
by GDCM (its own OpenJPEG settings), so both encoders' codestreams are in the corpus; plus
one reversible multi-frame file (4 orientations of RG3, pylibjpeg-openjpeg). 27 files, each
marked PatientIdentityRemoved YES (they are public test images) so ``vindr decode`` takes
them. Cached under ``bench/out/decode_corpus/data/`` (rebuilt with ``--force``); a manifest
``bench/out/decode_corpus/corpus.json`` lists every file, its source, transform, encoder
and shape.

Usage: python bench/decode_corpus.py [--out DIR] [--force]
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid
from pydicom.data import get_testdata_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from vindr_cli.synth.encode import gdcm_transcode  # noqa: E402

OUT = ROOT / "bench" / "out" / "decode_corpus"
TRANSFORMS = ("id", "flipud", "fliplr", "rot180", "T", "rot90", "rot270", "antiT")


def source_paths() -> dict[str, Path]:
    """The installed source files (a missing one is an error: install the bench extra)."""
    found = {n: get_testdata_file(f"{n}.dcm", download=False)
             for n in ("RG1_UNCR", "RG3_UNCR", "RG1_J2KR", "RG3_J2KR")}
    try:
        import deid_data
        found["cat"] = str(Path(deid_data.__file__).parent / "data" / "animals" / "cat.dcm")
    except ImportError:
        found["cat"] = None
    missing = [n for n, p in found.items() if not p or not Path(p).is_file()]
    if missing:
        raise SystemExit(f"missing source files {missing}: pip install pydicom-data deid-data")
    return {n: Path(p) for n, p in found.items()}


def transform(a: np.ndarray, t: str) -> np.ndarray:
    return {"id": a, "flipud": a[::-1], "fliplr": a[:, ::-1], "rot180": a[::-1, ::-1], "T": a.T,
            "rot90": np.rot90(a), "rot270": np.rot90(a, 3), "antiT": np.rot90(a, 2).T}[t].copy()


def with_pixels(ds, arr: np.ndarray, n: int, frames: int = 1):
    """A copy of the uncompressed data set `ds` holding `arr` ((frames,) rows, cols)."""
    out = copy.deepcopy(ds)
    out.Rows, out.Columns = arr.shape[-2:]
    if frames > 1:
        out.NumberOfFrames = frames
    out.PixelData = np.ascontiguousarray(arr, dtype=ds.pixel_array.dtype).tobytes()
    out.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    out.SOPInstanceUID = out.file_meta.MediaStorageSOPInstanceUID = f"2.25.{7_000_000 + n}"
    out.PatientIdentityRemoved = "YES"
    out.PatientName, out.PatientID = f"Corpus^{n:02d}", f"C{n:02d}"
    return out


def encode_openjpeg(ds, path: Path) -> None:
    ds.compress(uid.JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def encode_gdcm(ds, path: Path) -> None:
    gdcm_transcode(ds, uid.JPEG2000Lossless, path=path)     # GDCM's own file, as written


def build(out: Path) -> list[dict]:
    src = source_paths()
    out = out / "data"
    out.mkdir(parents=True, exist_ok=True)
    items: list[dict] = []

    def add(name, ds, arr, source, how, encoder, frames=1):
        n = len(items)
        path = out / f"{n:02d}_{name}.dcm"
        d = with_pixels(ds, arr, n, frames)
        (encode_openjpeg if encoder == "openjpeg" else encode_gdcm)(d, path)
        back = pydicom.dcmread(path)
        if not np.array_equal(back.pixel_array, arr):           # lossless, checked
            raise AssertionError(f"{path.name} does not round-trip")
        back.PatientIdentityRemoved = "YES"   # GDCM keeps the attribute; make sure either way
        items.append({"file": path.name, "source": source, "transform": how, "encoder": encoder,
                      "rows": int(back.Rows), "cols": int(back.Columns), "frames": frames,
                      "bits_stored": int(back.BitsStored), "photometric": str(back.PhotometricInterpretation),
                      "bytes": path.stat().st_size})

    for key in ("RG1_UNCR", "RG3_UNCR"):
        ds = pydicom.dcmread(src[key])
        for i, t in enumerate(TRANSFORMS):
            add(f"{key[:3]}_{t}", ds, transform(ds.pixel_array, t), src[key].name, t,
                "openjpeg" if i % 2 == 0 else "gdcm")
    cat = pydicom.dcmread(src["cat"])
    a = cat.pixel_array
    rows, cols = a.shape
    crops = [(0, 0), (0, cols - 2048), (rows - 2048, 0), (rows - 2048, cols - 2048)]
    for i, (y, x) in enumerate(crops):
        for j, t in enumerate(("id", "fliplr")):
            add(f"cat_{y}_{x}_{t}", cat, transform(a[y:y + 2048, x:x + 2048], t), "deid-data animals/cat.dcm",
                f"crop {y},{x} 2048x2048 {t}", "openjpeg" if (i + j) % 2 == 0 else "gdcm")
    for key in ("RG1_J2KR", "RG3_J2KR"):       # as the vendor encoded them
        n = len(items)
        ds = pydicom.dcmread(src[key])
        ds.PatientIdentityRemoved = "YES"
        path = out / f"{n:02d}_{key}.dcm"
        ds.save_as(path, enforce_file_format=True)
        items.append({"file": path.name, "source": src[key].name, "transform": "id", "encoder": "vendor",
                      "rows": int(ds.Rows), "cols": int(ds.Columns), "frames": 1,
                      "bits_stored": int(ds.BitsStored), "photometric": str(ds.PhotometricInterpretation),
                      "bytes": path.stat().st_size})
    rg3 = pydicom.dcmread(src["RG3_UNCR"])
    stack = np.stack([transform(rg3.pixel_array, t) for t in ("id", "fliplr", "flipud", "T")])
    add("RG3_4frames", rg3, stack, src["RG3_UNCR"].name, "4 orientations, one file", "openjpeg", frames=4)
    return items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    manifest = args.out / "corpus.json"
    if manifest.exists() and not args.force:
        print(f"cached: {manifest}")
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = build(args.out)
    manifest.write_text(json.dumps({"files": items}, indent=2) + "\n")
    total = sum(i["bytes"] for i in items)
    print(f"{len(items)} files, {total / 1e6:.1f} MB in {args.out}")
    return 0


def corpus(out: Path = OUT) -> list[Path]:
    """The corpus files (built first when missing)."""
    if not (out / "corpus.json").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            items = build(out)
        (out / "corpus.json").write_text(json.dumps({"files": items}, indent=2) + "\n")
    return [out / "data" / i["file"] for i in json.loads((out / "corpus.json").read_text())["files"]]


if __name__ == "__main__":
    sys.exit(main())
