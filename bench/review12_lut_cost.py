"""review12: deid.engine.deidentify's CPU for one file with a kept OW LUTData, for the tree on
PYTHONPATH (run it once per tree, alternating, and compare): pydicom's CT_small with a VOI LUT
of N 16-bit entries (7 x i), the basic profile, best of --rounds. Red team 9's search of IDs
and dates inside digits (policy.found_in_digits: tokens of the joined views of the LUT's bytes)
is most of what this tree adds over 9aebe87.

    git -C . archive 9aebe87 | tar -x -C /tmp/base
    for t in /tmp/base .; do PYTHONPATH=$t python bench/review12_lut_cost.py --label $t; done
"""
from __future__ import annotations

import argparse
import io
import json
import os
import time
import warnings

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    import vindr_cli
    from vindr_cli.deid.engine import deidentify
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.deid.substitutes import Substitutes

    prof, subs = load_profile("basic"), Substitutes(b"k" * 32, "2.25")
    out = {"label": args.label, "tree": os.path.dirname(os.path.dirname(vindr_cli.__file__)), "load": os.getloadavg()}
    for n in (4096, 65535):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        item = Dataset()
        item.LUTDescriptor = [n, 0, 16]
        item.add(DataElement(0x00283006, "OW", (np.arange(n, dtype="<u2") * 7).astype("<u2").tobytes()))
        ds.VOILUTSequence = Sequence([item])
        b = io.BytesIO()
        ds.save_as(b)
        best = float("inf")
        for _ in range(args.rounds):
            d = pydicom.dcmread(io.BytesIO(b.getvalue()))
            t = time.process_time()
            deidentify(d, prof, subs)
            best = min(best, time.process_time() - t)
        out[f"cpu_s_{n}_entries"] = round(best, 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
