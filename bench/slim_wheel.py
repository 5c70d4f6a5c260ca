#!/usr/bin/env python3
"""Rewrite a wheel without the files one run does not need, so that the wheels carried to the
device machine fit its 64 MiB limit (bench/README.md "GPU measurements (issue 13)").

nvidia-nvimgcodec-cu13's wheel (25 MB) carries its extension module for every CPython from 3.9
to 3.14t and codec extensions (OpenCV, TIFF, nvTIFF) that decoding DICOM J2K/JPEG does not use.
``--keep-python cp312`` keeps only ``*.cpython-312-*.so`` of the extension modules; ``--drop``
removes files whose path contains any of the given parts. RECORD is rewritten to list exactly
what is left (with fresh hashes), so the result installs with pip like the original.

Usage: python bench/slim_wheel.py IN.whl OUT_DIR --keep-python cp312 --drop libopencv_ext libtiff_ext libnvtiff_ext
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import re
import zipfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wheel", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--keep-python", default=None, help="e.g. cp312: drop other CPython versions' modules")
    ap.add_argument("--drop", nargs="*", default=[])
    args = ap.parse_args()
    ver = args.keep_python[2:] if args.keep_python else None
    other_py = re.compile(r"\.cpython-(\d+t?)-")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / args.wheel.name
    if out.resolve() == args.wheel.resolve():
        raise SystemExit("OUT_DIR must differ from the wheel's folder")
    kept, dropped = [], 0
    with zipfile.ZipFile(args.wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        record = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        for info in src.infolist():
            name = info.filename
            if name == record:
                continue
            m = other_py.search(name)
            if (ver and m and m.group(1) != ver) or any(part in name for part in args.drop):
                dropped += 1
                continue
            data = src.read(info)
            dst.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            kept.append(f"{name},sha256={digest},{len(data)}")
        kept.append(f"{record},,")
        dst.writestr(record, "\n".join(kept) + "\n")
    print(f"{out}: kept {len(kept) - 1} files, dropped {dropped}; {out.stat().st_size / 2**20:.1f} MiB "
          f"(was {args.wheel.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
