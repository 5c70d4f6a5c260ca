"""g1nolink (issue 13): would a search of pixel values for the file's OWN names / IDs / dates, as
exact runs of character codes (deid.pixelcodes: 8-bit, 16-bit LE/BE, 32-bit LE, float32,
float64; terms of 4+ characters), match real images that hold no such text?

Corpus: every DICOM file pydicom, pydicom-data (data_store) and deid-data ship, and
sample_dicoms/export (nothing downloaded; files under 64 MB). For each file with pixel data:
  own:    its own terms (deid.pixelcodes.terms_of(values_of(ds)); --own person: of every
          search form engine.person_values gives)
          sought in its pixel bytes as stored (native PixelData, Float / Double Float Pixel
          Data: what --burned-in off copies), and in its decoded values (``pixel_array``, any
          syntax that decodes: what a scanning mode reads)
  others: 600 synthetic terms not its own (Vietnamese name parts, 8-digit IDs, birth dates,
          names joined with spaces) sought in the same bytes
Prints counts, the base names of public test files that match (never a value), and the CPU
seconds of the search; writes the JSON given by --out.

    python bench/g1nolink_pixel_codes.py [--min-term N] [--own values|person]
                                         [--out bench/results/g1nolink_pixel_codes.json]

Needles in every layout (bytes, 16/32-bit LE/BE, float32/64 LE/BE), not only the written
element's own (anonymize's): a superset, so its hits bound anonymize's.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SURNAMES = ["NGUYEN", "TRAN", "PHAM", "HOANG", "HUYNH", "PHAN", "DANG", "BUI", "DUONG", "TRUONG", "NGO",
            "DOAN", "LUONG", "TRINH", "THAI", "VUONG", "QUACH", "CAO", "DINH", "LAM"]
GIVEN = ["MINH", "THANH", "HUONG", "HUNG", "DUNG", "LINH", "TRANG", "HANH", "KHANH", "QUANG", "TUAN",
         "THAO", "NGOC", "PHUONG", "HOANG", "CUONG", "TRIET", "KIEU", "BINH", "TUNG", "HIEU", "LONG", "NHUNG"]
MIDDLE = ["VAN", "THI", "DUC", "NGOC", "MINH", "HUU", "QUOC", "BAO"]


def synthetic(n: int = 600, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    out = set()
    while len(out) < n:
        kind = rng.randrange(4)
        if kind == 0:
            out.add(f"{rng.choice(SURNAMES)}^{rng.choice(MIDDLE)}^{rng.choice(GIVEN)}")
        elif kind == 1:
            out.add(f"{rng.randrange(10**7, 10**8)}")
        elif kind == 2:
            out.add(f"{rng.randrange(1930, 2020)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}")
        else:
            out.add(f"BN{rng.randrange(10**6, 10**7)}")
    return sorted(out)


def corpus() -> list[Path]:
    import pydicom.data

    roots = [Path(pydicom.data.__file__).parent / "test_files"]
    for mod, sub in (("data_store", "data"), ("deid_data", "")):
        try:
            roots.append(Path(__import__(mod).__file__).parent / sub)
        except ImportError:
            pass
    roots.append(REPO / "sample_dicoms" / "export")
    files = []
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.stat().st_size < 64_000_000:
                with open(p, "rb") as f:
                    f.seek(128)
                    if f.read(4) == b"DICM":
                        files.append(p)
    return files


class Index:
    """Many needles at once (the synthetic set): a needle's first 4 bytes (8-bit codes) or 8
    bytes (wider samples) as an integer key; every window of ``data`` keyed alike (numpy, a
    chunk at a time), the windows whose key is some needle's checked whole."""

    def __init__(self, seek: list[bytes]):
        import numpy as np

        self.by = {4: {}, 8: {}}
        for n in seek:
            w = 4 if len(n) < 8 else 8
            self.by[w].setdefault(n[:w], []).append(n)
        self.keys = {w: np.array(sorted(int.from_bytes(k, "little") for k in d), dtype=np.uint64)
                     for w, d in self.by.items()}

    def hits(self, data: bytes) -> set[bytes]:
        import numpy as np

        out: set[bytes] = set()
        a = np.frombuffer(data, np.uint8)
        for w, keys in self.keys.items():
            if not len(keys):
                continue
            for start in range(0, max(len(a) - w + 1, 0), 1 << 23):
                seg = a[start:start + (1 << 23) + w - 1]
                n = len(seg) - w + 1
                if n <= 0:
                    break
                key = np.zeros(n, np.uint64)
                for i in range(w):
                    key |= seg[i:i + n].astype(np.uint64) << np.uint64(8 * i)
                for pos in np.nonzero(np.isin(key, keys))[0]:
                    p = start + int(pos)
                    for needle in self.by[w][data[p:p + w]]:
                        if data.startswith(needle, p):
                            out.add(needle)
        return out


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    import numpy as np
    import pydicom

    from vindr_cli.deid import pixelcodes
    from vindr_cli.deid.pixelcodes import found, needles, terms_of, values_of

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--min-term", type=int, default=None, help="terms this long or more (default: pixelcodes.MIN_TERM)")
    ap.add_argument("--own", choices=("values", "person"), default="values",
                    help="the file's own terms from pixelcodes.values_of (what anonymize seeks) or engine.person_values")
    args = ap.parse_args()
    if args.min_term:
        pixelcodes.MIN_TERM = args.min_term
    others = needles(terms_of(synthetic()))
    index = Index(others)
    stats = {"files": 0, "with_pixels": 0, "stored_searched": 0, "stored_bytes": 0, "decoded_searched": 0,
             "decoded_bytes": 0, "own_terms": 0, "own_needles": 0, "own_hits_stored": [], "own_hits_decoded": [],
             "other_hits_stored": [], "other_hits_decoded": [], "other_needles": len(others),
             "unreadable": 0, "not_decoded": 0}
    cpu_own = cpu_other = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = corpus()
        for i, p in enumerate(files):
            stats["files"] += 1
            if i % 50 == 0:
                print(f"{i}/{len(files)} {_cpu():.0f}s", file=sys.stderr, flush=True)
            name = p.name if "sample_dicoms" not in str(p) else "sample:" + p.parent.name
            try:
                ds = pydicom.dcmread(p)
            except Exception:
                stats["unreadable"] += 1
                continue
            buffers = []
            for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
                if kw in ds:
                    stats["with_pixels"] += 1
                    encapsulated = kw == "PixelData" and ds.file_meta.get("TransferSyntaxUID") is not None \
                        and ds.file_meta.TransferSyntaxUID.is_compressed
                    if not encapsulated:
                        buffers.append(("stored", bytes(ds[kw].value)))
                    try:
                        a = ds.pixel_array
                        buffers.append(("decoded", np.ascontiguousarray(a).tobytes()))
                    except Exception:
                        stats["not_decoded"] += 1
                    break
            if not buffers:
                continue
            try:
                if args.own == "person":
                    from vindr_cli.deid.engine import person_values
                    own = terms_of(person_values(ds))
                else:
                    own = terms_of(values_of(ds))
            except Exception:
                own = []
            seek = needles(own)
            stats["own_terms"] += len(own)
            stats["own_needles"] += len(seek)
            for kind, data in buffers:
                stats[f"{kind}_searched"] += 1
                stats[f"{kind}_bytes"] += len(data)
                t = _cpu()
                if seek and found(data, seek):
                    stats[f"own_hits_{kind}"].append(name)
                cpu_own += _cpu() - t
                t = _cpu()
                hit = index.hits(data)
                if hit:
                    stats[f"other_hits_{kind}"].append([name, len(hit)])
                cpu_other += _cpu() - t
    stats["cpu_s_own_search"] = round(cpu_own, 3)
    stats["cpu_s_other_search"] = round(cpu_other, 3)
    stats["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    stats["min_term"], stats["own_from"], stats["load"] = pixelcodes.MIN_TERM, args.own, os.getloadavg()
    print(json.dumps(stats, indent=1))
    if args.out:
        args.out.write_text(json.dumps(stats, indent=1) + "\n")


if __name__ == "__main__":
    main()
