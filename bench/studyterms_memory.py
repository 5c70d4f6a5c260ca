#!/usr/bin/env python3
"""Driver memory of anonymize's first pass (deid.studyterms.StudyPeople), simulated: FILES
inputs in STUDIES studies of PATIENTS patients (Vietnamese three-part names), each study with a
referring physician and an operator from a staff of STAFF; every file's result is what
``people_of`` returns (``engine.person_values`` of a real pydicom data set), as fresh strings
(as unpickled from a worker). Prints the traced peak of the gathering, bytes per input, and the
time of ``take`` and of handing out every input's peers.

Usage: python bench/studyterms_memory.py [--files 100000] [--studies 20000] [--patients 10000] [--staff 200]
Results: bench/results/studyterms_memory.json
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SURNAMES = ["NGUYEN", "TRAN", "LE", "PHAM", "HOANG", "HUYNH", "PHAN", "VU", "VO", "DANG", "BUI", "DO", "HO", "NGO"]
MIDDLE = ["VAN", "THI", "HUU", "DUC", "MINH", "NGOC", "THANH", "QUANG"]
GIVEN = ["AN", "BINH", "CUONG", "DUNG", "HOA", "HUONG", "KHANH", "LAN", "MAI", "NAM", "PHUONG", "QUAN", "TUAN", "VY"]


def name(r: random.Random) -> str:
    return f"{r.choice(SURNAMES)}^{r.choice(MIDDLE)}^{r.choice(GIVEN)}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--studies", type=int, default=20_000)
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--staff", type=int, default=200)
    a = ap.parse_args()
    from pydicom.dataset import Dataset

    from vindr_cli.deid.engine import person_values
    from vindr_cli.deid.studyterms import StudyPeople
    from vindr_cli.runner.sources import Source

    r = random.Random(13)
    staff = [name(r) for _ in range(a.staff)]
    studies = []
    for s in range(a.studies):
        ds = Dataset()
        p = s % a.patients
        pr = random.Random(p)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = name(pr), f"BN{p:07d}", f"19{pr.randint(30, 99)}0{pr.randint(1, 9)}1{pr.randint(0, 9)}"
        ds.StudyDate = f"2024{r.randint(10, 12)}{r.randint(10, 28)}"
        ds.ReferringPhysicianName, ds.OperatorsName = r.choice(staff), r.choice(staff)
        studies.append((f"1.2.826.0.1.3680043.10.543.{s}", f"nid:bn{p:07d}", tuple(dict.fromkeys(person_values(ds)))))
    sources = [Source(f"/x/{i}.dcm", f"{i // 1000}/{i}.dcm", 1) for i in range(a.files)]
    values = sum(len(v) for _, _, v in studies) / len(studies)
    tracemalloc.start()
    people = StudyPeople()
    t = time.perf_counter()
    for i, src in enumerate(sources):
        study, patient, vals = studies[i % a.studies]
        people.take(src, (study, patient, tuple((v + ".")[:-1] for v in vals)))    # fresh strings
    took = time.perf_counter() - t
    current, peak = tracemalloc.get_traced_memory()
    t = time.perf_counter()
    given = sum(1 for s in people.items(sources) if s.peers)
    handed = time.perf_counter() - t
    _, peak2 = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "files": a.files, "studies": a.studies,
           "patients": a.patients, "staff": a.staff, "values_per_study_file": round(values, 1),
           "gathered_bytes": current, "gathered_bytes_per_file": round(current / a.files),
           "peak_with_peers_bytes": peak2, "take_s": round(took, 3), "items_s": round(handed, 3), "given_peers": given}
    print(json.dumps(res, indent=2))
    (ROOT / "bench" / "results" / "studyterms_memory.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
