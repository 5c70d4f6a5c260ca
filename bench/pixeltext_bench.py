"""vindr_cli.deid.pixeltext on 2048 x 2048 real radiographs (pydicom test files) where 4 in 5
have no text: CPU seconds per image, identifying text covered, markers kept, false
positives on text-free images. Prints counts only.

    PYTHONPATH=. .venv/bin/python bench/pixeltext_bench.py [N_TEXT]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ocr_text_images import base_names, radiograph, with_text  # noqa: E402

from vindr_cli.deid import pixeltext as pt  # noqa: E402


def cover(boxes, box, marker: bool, shape) -> float:
    m = np.zeros(shape, bool)
    for b in boxes:
        if (b.kind == "marker") == marker:
            m[b.y0:b.y1, b.x0:b.x1] = True
    x0, y0, x1, y1 = box
    return float(m[y0:y1, x0:x1].mean())


def main() -> None:
    if not pt.engine_available():
        sys.exit("Tesseract is not installed (scripts/setup.sh)")
    n_text = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    names = base_names()
    cpu_text, cpu_free = [], []
    hit = tot = mk = mtot = 0
    leaked_as_marker = 0
    fp_boxes = fp_images = 0
    fp_area = []
    for i in range(n_text):
        img, drawn = with_text(names[i % len(names)], seed=500 + i)
        t = time.process_time()
        boxes = pt.find_text(img)
        cpu_text.append(time.process_time() - t)
        for d in drawn:
            if d.kind == "marker":
                mtot += 1
                mk += cover(boxes, d.box, True, img.shape) >= 0.9
            else:
                tot += 1
                hit += cover(boxes, d.box, False, img.shape) >= 0.9
                leaked_as_marker += cover(boxes, d.box, True, img.shape) > 0
        # four text-free images per text image: the bases, flipped and rotated
        for k in range(4):
            free = radiograph(names[(i + k + 1) % len(names)])
            free = np.ascontiguousarray(np.rot90(free, k) if k % 2 == 0 else free[:, ::-1])
            t = time.process_time()
            b = pt.find_text(free)
            cpu_free.append(time.process_time() - t)
            fp_boxes += len(b)
            fp_images += bool(b)
            fp_area.append(sum((x.x1 - x.x0) * (x.y1 - x.y0) for x in b) / free.size)
    allc = cpu_text + cpu_free
    print(f"images: {len(cpu_text)} with text, {len(cpu_free)} without (2048 x 2048)")
    print(f"CPU s/image: all {np.mean(allc):.3f}, with text {np.mean(cpu_text):.3f}, "
          f"without {np.mean(cpu_free):.3f}")
    print(f"identifying strings covered (>= 90 % of box): {hit}/{tot}; any part kept as marker: {leaked_as_marker}")
    print(f"markers kept: {mk}/{mtot}")
    print(f"text-free images with any box: {fp_images}/{len(cpu_free)}, boxes {fp_boxes}, "
          f"mean area {100 * np.mean(fp_area):.3f} %")


if __name__ == "__main__":
    main()
