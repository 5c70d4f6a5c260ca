"""Where the test suite's time goes: per-file sums of pytest's own per-test times, read from
JUnit XML files written by `pytest --junitxml=FILE` (serial or pytest-xdist runs alike).

    python bench/suite_time.py LABEL=run.xml[:loadlog] [LABEL=run.xml[:loadlog] ...] [--json OUT] [--top N]

Each run: the pytest wall time (the XML's testsuite time), the sum of the per-test times
(setup + call + teardown of every test), the number of tests and failures, and the per-file sums
(largest first, by the first run). A load log (lines "HH:MM:SS l1 l5 l15 ...", e.g. one
`cat /proc/loadavg` every 15 s during the run) adds the 1-minute load average's min / median /
max. Nothing here times anything itself: it only reads what pytest recorded.
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path


def read_run(xml: Path) -> dict:
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else next(root.iter("testsuite"))
    files: dict[str, float] = collections.defaultdict(float)
    counts: collections.Counter = collections.Counter()
    for case in root.iter("testcase"):
        parts = case.get("classname", "").split(".")
        module = next((p for p in parts if p.startswith("test_")), parts[-1])
        files[module] += float(case.get("time") or 0.0)
        counts[module] += 1
    return {"wall_s": round(float(suite.get("time")), 1), "tests": int(suite.get("tests")),
            "failures": int(suite.get("failures")), "errors": int(suite.get("errors")),
            "skipped": int(suite.get("skipped")), "sum_of_test_times_s": round(sum(files.values()), 1),
            "files": {m: {"s": round(s, 2), "tests": counts[m]} for m, s in sorted(files.items(), key=lambda x: -x[1])}}


def read_load(log: Path) -> dict:
    ones = [float(line.split()[1]) for line in log.read_text().splitlines() if len(line.split()) > 1]
    return {"samples": len(ones), "min": min(ones), "median": statistics.median(ones), "max": max(ones)} if ones else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=junit.xml[:loadlog]")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    runs = {}
    for spec in a.runs:
        label, _, rest = spec.partition("=")
        xml, _, load = rest.partition(":")
        runs[label] = read_run(Path(xml))
        if load:
            runs[label]["load_1min"] = read_load(Path(load))
    labels = list(runs)
    for label, r in runs.items():
        print(f"{label}: wall {r['wall_s']} s, sum of test times {r['sum_of_test_times_s']} s, {r['tests']} tests, "
              f"{r['failures']} failed, {r['errors']} errors, load {r.get('load_1min', {})}")
    first = runs[labels[0]]["files"]
    print("| file | tests | " + " | ".join(f"{lb} s" for lb in labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for m in list(first)[: a.top]:
        cells = " | ".join(f"{runs[lb]['files'].get(m, {}).get('s', float('nan')):.1f}" for lb in labels)
        print(f"| {m} | {first[m]['tests']} | {cells} |")
    if a.json:
        a.json.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
