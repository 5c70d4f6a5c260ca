"""Measure OCR engines on real radiographs with drawn text (issue #10): recall of identifying
strings, markers read, CPU seconds per 2048 x 2048 image (whole image, no candidate step).

    PYTHONPATH=. .venv/bin/python bench/ocr_engines.py [N_IMAGES]

Prints a table only (no OCR'd text: the drawn strings are synthetic, but the habit stays).
"""
from __future__ import annotations

import sys
import time
import unicodedata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ocr_text_images import base_names, with_text  # noqa: E402


def fold(s: str) -> str:
    s = s.replace("Đ", "D").replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn").upper()


def tokens(s: str) -> list[str]:
    import re
    return re.findall(r"[A-Z0-9]+", fold(s))


def lev(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def found(target: str, read: list[str]) -> bool:
    want = tokens(target)
    joined = "".join(read)
    ok = 0
    for w in want:
        if any(lev(w, r) <= len(w) // 4 for r in read) or (len(w) >= 4 and w in joined):
            ok += 1
    return ok == len(want)


def tesser():
    import tesserocr
    api = tesserocr.PyTessBaseAPI(path="/usr/share/tesseract-ocr/5/tessdata/", lang="vie+eng", psm=tesserocr.PSM.SPARSE_TEXT)

    def run(img: np.ndarray) -> list[str]:
        from PIL import Image
        api.SetImage(Image.fromarray(img))
        return tokens(api.GetUTF8Text())
    return run


def tesser_eng():
    import tesserocr
    api = tesserocr.PyTessBaseAPI(path="/usr/share/tesseract-ocr/5/tessdata/", lang="eng", psm=tesserocr.PSM.SPARSE_TEXT)

    def run(img: np.ndarray) -> list[str]:
        from PIL import Image
        api.SetImage(Image.fromarray(img))
        return tokens(api.GetUTF8Text())
    return run


def rapid():
    from rapidocr_onnxruntime import RapidOCR
    eng = RapidOCR()

    def run(img: np.ndarray) -> list[str]:
        res, _ = eng(np.stack([img] * 3, axis=-1))
        return tokens(" ".join(r[1] for r in (res or [])))
    return run


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else len(base_names())
    names = base_names()
    cases = [with_text(names[i % len(names)], seed=100 + i) for i in range(n)]
    for label, make in [("tesseract 5.5 (tesserocr, vie+eng, PSM 11)", tesser),
                        ("tesseract 5.5 (tesserocr, eng, PSM 11)", tesser_eng),
                        ("RapidOCR 1.4 (PP-OCRv4 onnx)", rapid)]:
        run = make()
        hit = tot = mhit = mtot = 0
        by_kind: dict[str, list[int]] = {}
        cpu = []
        for img, drawn in cases:
            t = time.process_time()
            read = run(img)
            cpu.append(time.process_time() - t)
            for d in drawn:
                ok = found(d.text, read)
                if d.kind == "marker":
                    mhit += ok
                    mtot += 1
                else:
                    hit += ok
                    tot += 1
                    by_kind.setdefault(d.kind, [0, 0])
                    by_kind[d.kind][0] += ok
                    by_kind[d.kind][1] += 1
        kinds = " ".join(f"{k}={a}/{b}" for k, (a, b) in sorted(by_kind.items()))
        print(f"| {label} | {hit}/{tot} ({kinds}) | {mhit}/{mtot} | {np.mean(cpu):.2f} |", flush=True)


if __name__ == "__main__":
    main()
