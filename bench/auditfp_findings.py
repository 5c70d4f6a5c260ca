"""The audit's `phi` / `phi-bytes` findings on anonymized public files, explained (issue 13, auditfp).

`vindr anonymize --burned-in off --allow-burned-in -j 2` (this tree) of sample_dicoms/export + the
DICOM files pydicom and deid-data ship (bench/redteam9_kept_diff.py's corpus; nothing downloaded),
then `vindr audit --no-pixels --linkage` of that output by ``--before`` (another checkout, e.g.
main) and by this tree. For each finding: the input file's name (public test files), the element,
and which linkage value matched: whose (this file's own or another file's) and from which input
element it came. Values are masked (first letter and length only). No timing is recorded.

    python bench/auditfp_findings.py --before /work/main [--out bench/results/auditfp_findings.json]
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from redteam9_kept_diff import _corpus, _run  # noqa: E402


def _mask(v: str) -> str:
    return f"{v[:1]}…({len(v)})"


def _explain(tmp: Path, rows: list[dict], finding: dict) -> dict:
    import pydicom
    from vindr_cli.deid import policy
    from vindr_cli.deid.audit import _UID_SHAPE
    from vindr_cli.deid.terms import build_terms, tokens

    def values(r):
        v = [r.get(k) for k in ("original_patient_id", "original_patient_name", "original_study_uid",
                                "original_series_uid", "original_sop_uid", "original_accession", "original_study_id")]
        v += list(r.get("phi_terms") or [])
        v += [f for x in v if x and not _UID_SHAPE.fullmatch(str(x)) for f in (*policy.date_forms(x), *policy.id_forms(x))]
        return [x for x in v if x]

    row = next(r for r in rows if r["output"] == finding["where"])
    ds = pydicom.dcmread(tmp / "out" / finding["where"], stop_before_pixels=True)
    out = {"input": row["input_path"].split("/")[-1], "kind": finding["kind"], "detail": finding["detail"], "matched": []}
    texts = [str(e.value) for e in ds.iterall() if e.VR not in ("SQ", "OB", "OW", "UN")]
    for r in rows:
        for v in values(r):
            ts = build_terms([v], include_dates=False)
            for t in texts:
                if ts.found_in(tokens(t)):
                    src = pydicom.dcmread(tmp / "in" / r["input_path"], stop_before_pixels=True)
                    where = sorted({e.keyword or str(e.tag) for e in src.iterall()
                                    if e.VR not in ("SQ",) and str(e.value).strip().upper() == v.strip().upper()})
                    out["matched"].append({"value": _mask(v), "of": "own" if r is row else "another file",
                                           "from_file": r["input_path"].split("/")[-1], "from_elements": where,
                                           "kept_value": _mask(t)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "auditfp_findings.json")
    a = ap.parse_args()
    import pyarrow.parquet as pq

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = _corpus(tmp / "in")
        keys = tmp / "keys"
        keys.mkdir(mode=0o700)
        (keys / "k").write_text(hashlib.sha256(b"auditfp bench").hexdigest())
        (keys / "k").chmod(0o600)
        p = _run(REPO, "anonymize", tmp / "in", tmp / "out", "--key", keys / "k", "--burned-in", "off",
                 "--allow-burned-in", "-j", "2")
        assert p.returncode == 0, f"anonymize exit {p.returncode}"
        rows = pq.read_table(tmp / "out.linkage.parquet").to_pylist()
        result = {"inputs": files, "written": sum(bool(r["output"]) for r in rows)}
        for name, tree in (("before", a.before), ("after", REPO)):
            rep = tmp / f"{name}.json"
            _run(tree, "audit", tmp / "out", "--no-pixels", "-j", "2", "--linkage", tmp / "out.linkage.parquet",
                 "--report", rep)
            data = json.loads(rep.read_text())
            result[name] = {"findings_by_kind": data["findings_by_kind"],
                            "by_element": dict(collections.Counter(f"{f['kind']}: {f['detail']}" for f in data["findings"])),
                            "findings": [_explain(tmp, rows, f) for f in data["findings"] if f["kind"] == "phi"]}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v if k not in ("before", "after") else {"findings_by_kind": v["findings_by_kind"],
                                                               "by_element": v["by_element"]}
                      for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
