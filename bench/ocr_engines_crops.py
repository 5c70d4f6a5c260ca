"""The two engines on the same line crops (what vindr_cli.deid.pixeltext feeds its engine):
each drawn string cut out with padding, turned dark-on-light, enlarged when small.

    PYTHONPATH=. .venv/bin/python bench/ocr_engines_crops.py [N_IMAGES]
"""
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from ocr_engines import found, tokens  # noqa: E402
from ocr_text_images import base_names, with_text  # noqa: E402


def crop(img, d):
    x0, y0, x1, y1 = d.box
    p = max(4, d.size // 2)
    c = img[max(0, y0 - p):y1 + p, max(0, x0 - p):x1 + p].astype(np.uint8)
    if np.median(c) < 128:
        c = 255 - c
    h = c.shape[0]
    if h < 28:
        c = np.asarray(Image.fromarray(c).resize((int(c.shape[1] * 48 / h), 48), Image.BICUBIC))
    return c


def main():
    import tesserocr
    from rapidocr_onnxruntime import RapidOCR
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    names = base_names()
    cases = [with_text(names[i % len(names)], seed=100 + i) for i in range(n)]
    api = tesserocr.PyTessBaseAPI(path="/usr/share/tesseract-ocr/5/tessdata/", lang="vie+eng",
                                  psm=tesserocr.PSM.SINGLE_LINE)
    r = RapidOCR()
    for label in ["Tesseract 5.5 line (PSM 7)", "RapidOCR recogniser only", "RapidOCR det+rec"]:
        hit = tot = mh = mt = 0
        cpu = 0.0
        k = 0
        for img, drawn in cases:
            for d in drawn:
                c = crop(img, d)
                t = time.process_time()
                if label.startswith("Tess"):
                    api.SetImage(Image.fromarray(c))
                    txt = api.GetUTF8Text()
                elif "only" in label:
                    res, _ = r(np.stack([c] * 3, -1), use_det=False, use_cls=False)
                    txt = " ".join(x[0] for x in (res or []))
                else:
                    res, _ = r(np.stack([c] * 3, -1), use_cls=False)
                    txt = " ".join(x[1] for x in (res or []))
                cpu += time.process_time() - t
                k += 1
                ok = found(d.text, tokens(txt))
                if d.kind == "marker":
                    mh += ok
                    mt += 1
                else:
                    hit += ok
                    tot += 1
        print(f"| {label} | {hit}/{tot} | {mh}/{mt} | {cpu / k:.3f} per line |", flush=True)


if __name__ == "__main__":
    main()
