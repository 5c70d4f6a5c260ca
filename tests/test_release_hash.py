"""Files are hashed in 1 MiB blocks by one helper (dicomio.pixelstream.file_sha256), never read
whole: the release's check of ANON_DIR's manifest, the datasheet's audit report hash and review's
search for a selection's tree give the same digests as hashing the whole bytes."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import vindr_cli
from vindr_cli.dicomio.pixelstream import file_sha256
from vindr_cli.release.datasheet import audit_status


def test_block_hash_equals_the_whole_file_hash(tmp_path):
    for n in (0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 7):
        p = tmp_path / f"f{n}"
        p.write_bytes(bytes((i * 7919 + n) % 251 for i in range(n)))
        assert file_sha256(p) == hashlib.sha256(p.read_bytes()).hexdigest()


def test_the_datasheet_hashes_the_audit_report_it_quotes(tmp_path):
    report = tmp_path / "audit.json"
    text = json.dumps({"findings_total": 0, "findings_by_kind": {}, "files": 3, "dicom_files": 3,
                       "pad": "x" * (2 << 20)})              # over one block
    report.write_text(text, encoding="utf-8")
    got = audit_status(report)
    assert got["status"] == "clean"
    assert got["report_sha256"] == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_no_whole_file_read_is_hashed():
    """A hash of ``path.read_bytes()`` (the whole file in memory) is written nowhere in vindr_cli
    (deid/profile.py's hash of the shipped schema files, a few kB each, is left as it is)."""
    pattern = re.compile(r"(sha256|md5|blake2b|sha1)\([^()]*\.read_bytes\(\)\)")
    root = Path(vindr_cli.__file__).parent
    found = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == [], found
