"""A fresh clone's README walked literally (new-user walk 3): what did not match, checked here.

* ``vindr info PATH`` on an empty folder warned ``INPUT holds no files``: info's argument is
  PATH (the runner's message is shared by info, anonymize and decode), so the warning now names
  no argument;
* the Quick start listed what ``make demo`` writes without ``demo/audit.json`` and
  ``demo/selection/``, which ``scripts/demo.sh`` writes and the release reads;
* ``vindr review ANON_DIR`` left PNG renderings in ``.vindr/review/cache/`` whose compressed
  samples ``vindr audit`` searched as text: on the sample export two of 22 held both short words
  of a two-word original value by chance, so every audit after a review reported `phi` (exit 1) and the
  tree could not be released with a clean report. The audit now reads a cache PNG's chunks
  other than its image data (text chunks inflated), and every byte of anything else.
* the same trap at scale: ``manifest.parquet`` (and ``.vindr/review.parquet``) were searched as
  bytes too; a 3,003-row manifest already held 7 of 11 common short Vietnamese name syllables
  as "words" of its compressed pages. A table is now searched in its values, column names and
  metadata (what pyarrow reads), and anything pyarrow cannot read in every byte.
"""
from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import pytest

from helpers import run_cli
from vindr_cli.deid import audit as audit_mod
from vindr_cli.deid.terms import decode_all, tokens
from vindr_cli.tables import read_rows

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("strict", [False, True])
def test_info_on_an_empty_folder_warns_in_words_that_fit_its_argument(tmp_path, strict):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_cli("info", empty, *(["--strict"] if strict else []), check=False)
    out = p.stdout + p.stderr
    assert p.returncode == (1 if strict else 0), out
    warn = [ln for ln in out.splitlines() if ln.startswith("warning:")]
    assert warn and "nothing to do" in warn[0], out
    assert "INPUT" not in out            # info's argument is PATH (vindr info --help)
    assert "PATH" in run_cli("info", "--help").stdout


def test_anonymize_of_an_empty_folder_gives_the_same_warning_and_writes_no_image(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    p = run_cli("anonymize", empty, tmp_path / "out", "--key", keys / "k.key", "--strict", check=False)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "warning: found no files to read: nothing to do" in out
    assert not [f for f in (tmp_path / "out").rglob("*.dcm")]


def test_quick_start_names_every_folder_and_file_the_demo_writes():
    demo = (REPO / "scripts" / "demo.sh").read_text()
    written = set(re.findall(r'"\$OUT/([A-Za-z_.]+)', demo)) | set(re.findall(r'\$OUT/([A-Za-z_.]+)', demo))
    written = {w.rstrip(".") for w in written}
    assert {"anon", "audit.json", "selection", "images", "split", "release", "baseline", "keys"} <= written, written
    readme = (REPO / "README.md").read_text()
    quick = readme[readme.index("## Quick start"):readme.index("### Your own export")]
    quick = " ".join(quick.split())
    for w in sorted(written):
        assert f"`demo/{w}" in quick, f"the Quick start does not name demo/{w}"


# --- vindr review's rendering cache made every later audit fail (a false `phi`) -------------

def _png(row: bytes, chunks: list[tuple[bytes, bytes]] = ()) -> bytes:
    """A one-row 8-bit grey PNG whose samples are ``row``, stored uncompressed (zlib level 0),
    so the row's bytes lie in the file as they are; ``chunks`` go before the image data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = len(row).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + b"".join(chunk(k, d) for k, d in chunks)
            + chunk(b"IDAT", zlib.compress(b"\0" + row, 0)) + chunk(b"IEND", b""))


def test_audit_reads_the_words_of_review_cache_pngs_not_their_samples(tmp_path, small_export, key_file):
    out = tmp_path / "anon"
    run_cli("anonymize", small_export, out, "--key", key_file, "--burned-in", "off", "-j", "1")
    ids = [r["image_id"] for r in read_rows(out / "manifest.parquet") if r["status"] == "ok"]
    cache = out / ".vindr" / "review" / "cache"
    cache.mkdir(parents=True)
    name = lambda i, kind: f"{ids[0]}_{i:016x}_{kind}_header_0_v1.png"   # noqa: E731  review/server.py's names
    # samples that read as "Tran" and "Thi" (words of a patient's name, "Trần^Thị B"): the trap
    # is armed, searched as text the file holds the name's words
    samples = cache / name(1, "thumb")
    samples.write_bytes(_png(b"\x00tran\x00thi\x00\x00"))
    linkage = out.parent / "anon.linkage.parquet"
    terms = audit_mod._load_terms(linkage, audit_mod.AuditReport())[0]
    assert terms.found_in(tokens(decode_all(samples.read_bytes())))
    # the name in a text chunk, plain and compressed, and in a file that only has a PNG's name
    (cache / name(2, "thumb")).write_bytes(_png(b"\x10" * 8, [(b"tEXt", b"Comment\0Tran Thi B")]))
    (cache / name(3, "large")).write_bytes(
        _png(b"\x10" * 8, [(b"zTXt", b"Comment\0\0" + zlib.compress("Trần Thị B".encode()))]))
    (cache / name(4, "large")).write_bytes(b"Tran Thi B, not a PNG")
    p = run_cli("audit", out, "--no-pixels", "--json", check=False)
    report = json.loads(p.stdout)
    phi = sorted(f["where"] for f in report["findings"] if f["kind"] == "phi")
    assert phi == [f".vindr/review/cache/{name(i, k)}" for i, k in ((2, "thumb"), (3, "large"), (4, "large"))], phi
    assert p.returncode == 1
    samples_only = [f for f in report["findings"] if name(1, "thumb") in f["where"]]
    assert samples_only == []
    for f in (2, 3, 4):
        (cache / name(f, "thumb" if f == 2 else "large")).unlink()
    p = run_cli("audit", out, "--no-pixels", "--json", check=False)
    assert p.returncode == 0 and json.loads(p.stdout)["findings_total"] == 0, p.stdout
    assert "tran" not in (p.stdout + p.stderr).lower()


def test_png_words_is_every_byte_but_the_image_data():
    png = _png(b"\x00van\x00an\x00\x00", [(b"tEXt", b"k\0hello")])
    words = audit_mod.png_words(png)
    assert b"hello" in words and b"van" not in words
    assert audit_mod.png_words(png + b"after the end") .endswith(b"after the end")
    assert audit_mod.png_words(png[:-20]) is None          # cut short: searched whole by the caller
    assert audit_mod.png_words(b"GIF89a" + png[8:]) is None
    bomb = zlib.compress(b"a" * (2 << 20))
    assert audit_mod.png_words(_png(b"\0" * 8, [(b"zTXt", b"k\0\0" + bomb)])) is None


# --- a Parquet table searched as bytes: its binary numbers spell short words -----------------

def test_audit_reads_a_parquet_tables_values_not_its_pages(tmp_path, small_export, key_file):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "anon"
    run_cli("anonymize", small_export, out, "--key", key_file, "--burned-in", "off", "-j", "1")
    table = out / ".vindr" / "review.parquet"
    terms = audit_mod._load_terms(out.parent / "anon.linkage.parquet", audit_mod.AuditReport())[0]

    def phi(**write) -> list[str]:
        p = run_cli("audit", out, "--no-pixels", "--json", check=False)
        assert "tran" not in (p.stdout + p.stderr).lower()
        return [f["where"] for f in json.loads(p.stdout)["findings"] if f["kind"] == "phi"]

    # two numbers whose little-endian bytes read "tran" and "thi" (words of "Trần^Thị B"), stored plain
    noise = [int.from_bytes(b"\x00tran\x00\x00\x00", "little"), int.from_bytes(b"\x00thi\x00\x00\x00\x00", "little")]
    pq.write_table(pa.table({"seq": noise}), table, compression="none", use_dictionary=False)
    assert terms.found_in(tokens(decode_all(table.read_bytes())))      # the trap is armed
    assert phi() == []
    # the name as a value, in the table's metadata, and in a file that is not a table
    pq.write_table(pa.table({"seq": [1], "reviewer": ["Trần Thị B"]}), table)
    assert phi() == [".vindr/review.parquet"]
    pq.write_table(pa.table({"seq": [1]}).replace_schema_metadata({"note": "Tran Thi B"}), table)
    assert phi() == [".vindr/review.parquet"]
    table.write_bytes(b"PAR1 Tran Thi B")
    assert phi() == [".vindr/review.parquet"]
    table.unlink()
    assert phi() == []


def test_parquet_words_reads_values_and_refuses_what_it_cannot_or_should_not_read(monkeypatch):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"n": [int.from_bytes(b"\x00tran\x00\x00\x00", "little")], "s": ["hello"]}), buf,
                   compression="none", use_dictionary=False)
    raw = buf.getvalue()
    words = audit_mod.parquet_words(raw)
    assert b"hello" in words and b"tran" not in words and b"tran" in raw
    assert audit_mod.parquet_words(raw[:-9]) is None                   # no footer: searched whole
    monkeypatch.setattr(audit_mod, "_PARQUET_MAX", 8)                  # would inflate too far
    assert audit_mod.parquet_words(raw) is None
