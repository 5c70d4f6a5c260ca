"""Could `vindr audit` report 2-3 character reads (initials planted into an output after
anonymize) without findings on text-free images? (issue 10, a review leftover.) Today a box of
non-marker text is a finding when Tesseract reads >= 4 letters or digits at confidence >= 60
(deid.audit.READ_MIN_CHARS, READ_CONF). This measures rules "k or more letters or digits in
non-marker words read at confidence >= c" (k = 2, 3; c = 60..95) beside the current one, from
one pass of the audit's own pixel check (deid.audit._check_pixels, in process) with its reads
recorded as counts and confidences only (never text):

* text-free images of burned_in_corpus.py corpora, as they are (no anonymize masks: an upper
  bound on what an output of them shows);
* sample_dicoms/export anonymized as `make demo` does it, then audited with its linkage table
  (the demo's audit must stay clean); with --outputs, each corpus as well (its images with text:
  redacted outputs that keep their markers, which OCR may misread);
* initials (2-3 letters, 12-48 px, white or grey) drawn into text-free corpus images after the
  fact: found when a box over the drawing qualifies.

    PYTHONPATH=. python -P bench/audit_short_reads.py CORPUS... [--plant N] [--limit N] [--outputs] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from vindr_cli.deid import audit as A  # noqa: E402

CONFS = (60, 70, 80, 85, 90, 95)
KS = (2, 3)
BOXES: list[dict] = []          # one per box read: its view scale, box, kind and per-variant word counts
_CUR: list = []


def _hook(frame_cols: list[int]) -> None:
    reading, words = A._reading, A._words

    def rec_words(api, crop):
        w = words(api, crop)
        if w is not None:
            texts = [t for t, _ in w]
            _CUR.append([(sum(ch.isalnum() for ch in t), c,
                          not A._marker_word(texts, i) and not A._misread_marker(t)) for i, (t, c) in enumerate(w)])
        return w

    def rec_reading(img, box):
        _CUR.clear()
        r = reading(img, box)
        k = max(1, round(frame_cols[0] / max(1, img.shape[1])))
        BOXES.append({"k": k, "box": [box.x0 * k, box.y0 * k, box.x1 * k, box.y1 * k], "kind": str(box.kind),
                      "current": bool(r is not None and not r[1] and r[0] >= A.READ_MIN_CHARS),
                      "variants": [list(v) for v in _CUR]})
        return r

    A._reading, A._words = rec_reading, rec_words


def _score(b: dict, conf: float) -> int:
    """The most letters and digits in non-marker words read at >= conf, over the box's variants."""
    return max((sum(n for n, c, counted in v if counted and c >= conf) for v in b["variants"]), default=0)


def _qualifies(b: dict, k: int, conf: float) -> bool:
    return b["kind"] not in ("name", "id", "date", "marker") and (b["current"] or _score(b, conf) >= k)


def _rules(boxes_per_item: list[list[dict]]) -> dict:
    """Items (images) with a qualifying box: now (>= 4 at 60) and per rule."""
    out = {"current": sum(any(b["current"] for b in bs) for bs in boxes_per_item)}
    for k in KS:
        for c in CONFS:
            out[f">={k}@{c}"] = sum(any(_qualifies(b, k, c) for b in bs) for bs in boxes_per_item)
    return out


def _check(path: Path, cols: list[int], hints=None) -> tuple[list[dict], int]:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    cols[0] = int(ds.Columns)
    n0 = len(BOXES)
    report = A.AuditReport()
    A._check_pixels(path, path.name, report, None, hints)
    return BOXES[n0:], sum(f.kind == "pixel-text" for f in report.findings)


def _audited(export: Path, tmp: Path, cols: list[int]) -> tuple[list[list[dict]], int]:
    """``export`` anonymized (defaults, as make demo) into ``tmp``, then audited in process with its
    linkage table: (the boxes read, per output; the pixel-text findings now)."""
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.runner.executor import InProcessExecutor

    keys = tmp / "keys"
    keys.mkdir(mode=0o700, parents=True)
    anonymize(export, tmp / "anon", key_path=keys / "k", profile=load_profile(), workers=1,
              executor=InProcessExecutor())
    n0 = len(BOXES)
    orig_check = A._check_pixels

    def check(p, rel, report, masks=None, hints=None):       # group the boxes per output
        import pydicom
        cols[0] = int(pydicom.dcmread(p, stop_before_pixels=True).Columns)
        BOXES.append({"file": True})
        return orig_check(p, rel, report, masks, hints)
    A._check_pixels = check
    try:
        rep = A.audit(tmp / "anon", tmp / "anon.linkage.parquet", executor=InProcessExecutor())
    finally:
        A._check_pixels = orig_check
    per: list[list[dict]] = []
    for b in BOXES[n0:]:
        if b.get("file"):
            per.append([])
        else:
            per[-1].append(b)
    return per, sum(f.kind == "pixel-text" for f in rep.findings)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="+", type=Path)
    ap.add_argument("--plant", type=int, default=30, help="initials drawn (cases)")
    ap.add_argument("--limit", type=int, help="text-free images per corpus")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--outputs", action="store_true", help="also each corpus anonymized, then audited")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from corpus_truth import load

    cols = [0]
    _hook(cols)
    load0, t0 = os.getloadavg()[0], time.time()
    free: list[Path] = []
    for c in a.corpus:
        recs = [r for r in load(c)[0] if r["class"] == "no_text"]
        free += [c / r["file"] for r in recs[:a.limit]]
    text_free = [_check(p, cols)[0] for p in free]

    tmp = Path(tempfile.mkdtemp(prefix="vindr-audit-short-"))
    outputs = {}
    try:
        sample, sample_findings = _audited(ROOT / "sample_dicoms" / "export", tmp / "sample", cols)
        for c in (a.corpus if a.outputs else []):
            per, now = _audited(c, tmp / c.name, cols)
            outputs[c.name] = {"outputs": len(per), "pixel_findings_now": now, "outputs_with_a_finding": _rules(per)}

        # initials drawn into text-free images after anonymize
        import pydicom
        from test_audit_pixels import draw
        rnd = random.Random(a.seed)
        planted, found = [], []
        for i in range(a.plant):
            src = rnd.choice(free)
            text = rnd.choice(["NV", "TH", "BN", "QK", "NVA", "THB", "LQD", "DTK"])
            size = rnd.choice([12, 16, 20, 24, 32, 48])
            ds = pydicom.dcmread(src, stop_before_pixels=True)
            h, w = int(ds.Rows), int(ds.Columns)
            at = rnd.choice([(40, 40), (w - 200, 40), (40, h - 120), (w - 200, h - 120), (w // 2, 60)])
            grey = rnd.choice([None, "mid"])
            p = tmp / f"plant{i}.dcm"
            shutil.copy(src, p)
            value = None
            if grey:
                arr = pydicom.dcmread(p).pixel_array
                value = int((int(arr.min()) + int(arr.max())) * 3 // 4)
            mask = draw(p, text, at=at, size=size, value=value)
            ys, xs = mask.nonzero()
            bb = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            boxes, _ = _check(p, cols)
            over = [b for b in boxes if b["box"][0] < bb[2] and bb[0] < b["box"][2] and b["box"][1] < bb[3]
                    and bb[1] < b["box"][3]]
            planted.append({"chars": len(text), "size": size, "grey": bool(grey)})
            found.append(over)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_1min": [load0, os.getloadavg()[0]],
           "wall_s": round(time.time() - t0), "rule_now": f">={A.READ_MIN_CHARS}@{A.READ_CONF}",
           "text_free_images": len(free), "text_free_with_a_finding": _rules(text_free),
           "sample_outputs": len(sample), "sample_pixel_findings_now": sample_findings,
           "sample_outputs_with_a_finding": _rules(sample), "corpus_outputs": outputs,
           "planted": len(planted), "planted_found": _rules(found),
           "planted_found_by_size": {s: _rules([f for f, p in zip(found, planted) if p["size"] == s])
                                     for s in sorted({p["size"] for p in planted})},
           "planted_sizes": {s: sum(p["size"] == s for p in planted) for s in sorted({p["size"] for p in planted})}}
    print(json.dumps(res, indent=1))
    if a.json:
        sys.path.insert(0, str(ROOT / "bench"))
        from bench_io import write_record
        write_record(a.json, res)


if __name__ == "__main__":
    main()
