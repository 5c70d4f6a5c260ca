"""CPU of `vindr audit`'s pixel scan (deid.audit._check_pixels) with the coarse view (as now:
the views vindr anonymize scans) and without it (as before issue 10's coarse-gate work),
interleaved image by image with the order alternating, on the images of a burned-in corpus
(bench/burned_in_corpus.py). Process time of the scan alone; counts of pixel-text findings per
class (never any text). Load average recorded.

    PYTHONPATH=. .venv/bin/python bench/coarsegate_audit_cpu.py CORPUS_DIR [--limit N] [--json OUT]
"""
import json
import os
import sys
import time
from pathlib import Path

from vindr_cli.deid import audit, redact

corpus = Path(sys.argv[1])
limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
truth = json.load(open(corpus / "truth.json"))
imgs = truth["images"][:limit] if limit else truth["images"]
SCAN = redact.scan


def without_coarse(ds, finder, hints=None, **kw):
    return SCAN(ds, finder, hints, **{**kw, "large": False})


res = {m: {"cpu": {"with_text": [], "no_text": []}, "findings": {"with_text": 0, "no_text": 0}} for m in ("before", "now")}
load = [os.getloadavg()[0]]
for n, rec in enumerate(imgs):
    for mode in (("before", "now") if n % 2 == 0 else ("now", "before")):
        redact.scan = without_coarse if mode == "before" else SCAN
        try:
            report = audit.AuditReport()
            t = time.process_time()
            audit._check_pixels(corpus / rec["file"], rec["file"], report)
            res[mode]["cpu"][rec["class"]].append(time.process_time() - t)
        finally:
            redact.scan = SCAN
        res[mode]["findings"][rec["class"]] += sum(f.kind == "pixel-text" for f in report.findings)
    if n % 10 == 0:
        load.append(os.getloadavg()[0])
out = {"corpus": {"seed": truth.get("seed"), "size": truth.get("size"), "images": len(imgs)},
       "load_average_1min": {"min": round(min(load), 2), "max": round(max(load), 2)}}
for mode, r in res.items():
    c = r["cpu"]
    out[mode] = {"cpu_s_with_text": round(sum(c["with_text"]) / max(1, len(c["with_text"])), 3),
                 "cpu_s_no_text": round(sum(c["no_text"]) / max(1, len(c["no_text"])), 3),
                 "cpu_s_all": round(sum(c["with_text"] + c["no_text"]) / max(1, len(c["with_text"] + c["no_text"])), 3),
                 "pixel_text_findings": r["findings"]}
out["ratio_now_over_before"] = round(out["now"]["cpu_s_all"] / out["before"]["cpu_s_all"], 3)
print(json.dumps(out))
if "--json" in sys.argv:
    Path(sys.argv[sys.argv.index("--json") + 1]).write_text(json.dumps(out, indent=1))
