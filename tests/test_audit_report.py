"""`vindr audit --json` and `--report FILE`: every finding, full paths relative to OUTPUT, no PHI."""
from __future__ import annotations

import json

import pydicom

from helpers import run_cli
from test_anonymize import _manifest, _run


def test_json_and_report_list_every_finding_with_full_paths(tmp_path):
    out = tmp_path / "anon"
    deep = out / "a-rather-long-folder-name-that-a-narrow-table-would-cut" / "and-another-one-below-it"
    deep.mkdir(parents=True)
    names = [f"stray-file-number-{i:04d}-with-a-long-name.txt" for i in range(205)]
    for n in names:
        (deep / n).write_text("x")
    # names vindr does not write are shown as placeholders (a stray name may be a patient's),
    # numbered in path order, a known suffix kept: the two folders first, then each file
    rels = {f"<name 1>/<name 2>/<name {i + 3}>.txt" for i in range(205)}

    p = run_cli("audit", out, "--json", check=False, env={"COLUMNS": "80"})
    assert p.returncode == 1
    doc = json.loads(p.stdout)            # stdout is the JSON document alone
    assert doc["findings_total"] == len(doc["findings"]) == 1 + 2 * 205     # missing manifest, stray + unreadable each
    assert doc["findings_by_kind"] == {"stray-file": 205, "unreadable": 205, "manifest": 1}
    assert {f["where"] for f in doc["findings"] if f["kind"] == "stray-file"} == rels
    assert {f["where"] for f in doc["findings"] if f["kind"] == "unreadable"} == rels
    assert doc["linkage_table_used"] is False and doc["original_values_searched"] is None
    assert "stray-file-number" not in p.stdout + p.stderr and "rather-long" not in p.stdout + p.stderr

    # --locate: the real path of each placeholder, on the terminal (stderr) only, never in the report
    loc = tmp_path / "located.json"
    p = run_cli("audit", out, "--locate", "--report", loc, check=False, env={"COLUMNS": "80"})
    assert p.returncode == 1
    located = dict(line.split(" = ", 1) for line in p.stderr.splitlines() if line.startswith("<name "))
    assert located == {f"<name 1>/<name 2>/<name {i + 3}>.txt": f"OUTPUT/{deep.relative_to(out).as_posix()}/{n}"
                       for i, n in enumerate(names)}
    assert "stray-file-number" not in loc.read_text() and "stray-file-number" not in p.stdout

    # the table is cut at 200 rows and says how to get them all
    p = run_cli("audit", out, check=False, env={"COLUMNS": "80"})
    assert p.returncode == 1
    assert "... and 211 more; --report FILE lists all 411" in " ".join(p.stdout.split())

    tsv = tmp_path / "audit.tsv"
    p = run_cli("audit", out, "--report", tsv, check=False)
    assert p.returncode == 1 and "all 411 are in" in " ".join(p.stdout.split())
    lines = tsv.read_text().splitlines()
    assert lines[0] == "kind\twhere\tdetail" and len(lines) == 412
    assert {line.split("\t")[1] for line in lines[1:] if line.startswith("stray-file\t")} == rels

    js = tmp_path / "audit.json"
    run_cli("audit", out, "--report", js, check=False)
    assert json.loads(js.read_text())["findings_total"] == 411


def test_report_is_refused_inside_output(tmp_path):
    out = tmp_path / "anon"
    out.mkdir()
    p = run_cli("audit", out, "--report", out / "r.json", check=False)
    assert p.returncode == 2 and "--report" in p.stderr and not (out / "r.json").exists()


def test_json_of_a_leaky_tree_holds_no_phi(small_export, key_file, tmp_path):
    out = tmp_path / "anon"
    _run(small_export, out, key_file)
    row = next(r for r in _manifest(out) if r["status"] == "ok")
    target = out / row["output"]
    ds = pydicom.dcmread(target)
    ds.ImageComments = "seen by Nguyễn Văn An"
    ds.save_as(target)
    (out / row["output"]).parent.joinpath("NGUYEN VAN AN.txt").write_text("x")
    report = tmp_path / "r.json"
    p = run_cli("audit", out, "--json", "--report", report, check=False)
    assert p.returncode == 1
    for text in (p.stdout, report.read_text()):
        doc = json.loads(text)
        assert doc["linkage_table_used"] is True and doc["original_values_searched"] > 0
        kinds = {f["kind"] for f in doc["findings"]}
        assert {"phi", "phi-path", "stray-file"} <= kinds
        assert "Nguyễn" not in text and "NGUYEN" not in text and "Văn" not in text
        withheld = [f["where"] for f in doc["findings"] if f["kind"] == "phi-path"]
        assert withheld and all(w.endswith("(withheld)") and w.startswith(row["output"].rsplit("/", 1)[0])
                                for w in withheld)
