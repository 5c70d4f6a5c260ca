"""State files (settings, journals, tables) are versioned and checksummed; damage is reported
with the command that recovers; a lost settings file never lets another key into OUTPUT;
outputs are verified before an input is skipped; a missing key file is never replaced."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pydicom
import pytest

from conftest import make_cr
from helpers import key_hex, run_cli
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.keyfile import KeyError_
from vindr_cli.deid.profile import load_profile
from vindr_cli.deid.substitutes import Substitutes
from vindr_cli.runner.journal import Journal, JournalDamaged, entry_line, read_journal
from vindr_cli.runner.state import SETTINGS_VERSION, SettingsChanged, StateDamaged, settings_digest
from vindr_cli.tables import read_rows


def _export(root: Path, n: int = 4) -> Path:
    for i in range(n):
        make_cr(root / f"{i}.dcm", pid=f"PID{i}", sop=f"1.2.826.0.1.3680043.10.543.1.1.{i + 1}", seed=i)
    return root


def _run(src, out, key, **kw):
    return anonymize(src, out, key_path=key, profile=load_profile("basic"), workers=1, write_linkage=False, **kw)


def _other_key(tmp_path: Path) -> Path:
    p = tmp_path / "keys" / "other.key"
    p.write_text(key_hex("cd") + "\n")
    os.chmod(p, 0o600)
    return p


@pytest.fixture
def done(tmp_path, key_file):
    src, out = _export(tmp_path / "in"), tmp_path / "out"
    s = _run(src, out, key_file)
    assert s.counts["ok"] == 4
    return src, out, key_file


def test_settings_file_has_version_and_checksum(done):
    _, out, _ = done
    rec = json.loads((out / ".vindr" / "anonymize.json").read_text())
    assert rec["version"] == SETTINGS_VERSION
    assert rec["sha256"] == settings_digest(rec["settings"])
    assert key_hex() not in (out / ".vindr" / "anonymize.json").read_text()


SETTINGS_DAMAGE = {
    "not UTF-8": lambda raw: b"\xff\xfe" + raw,
    "not valid JSON": lambda raw: raw[: len(raw) // 2],
    "wrong shape": lambda raw: b"[1, 2, 3]",
    "checksum mismatch": lambda raw: raw.replace(b'"layout": "tree"', b'"layout": "vindr"'),
}


@pytest.mark.parametrize("kind", sorted(SETTINGS_DAMAGE))
def test_damaged_settings_file_is_refused_then_rebuilt(done, kind):
    src, out, key = done
    f = out / ".vindr" / "anonymize.json"
    raw = f.read_bytes()
    damaged = SETTINGS_DAMAGE[kind](raw)
    assert damaged != raw
    f.write_bytes(damaged)
    with pytest.raises(StateDamaged) as e:
        _run(src, out, key)
    msg = str(e.value)
    assert "OUTPUT/.vindr/anonymize.json is damaged" in msg and "--rebuild-state" in msg
    assert kind.split()[0] in msg or ("wrong shape" in msg)
    assert f.read_bytes() == damaged                      # a refused request changes nothing
    s = _run(src, out, key, rebuild_state=True)
    assert s.counts["ok"] == 4 and s.resumed == 4         # the outputs and the table were intact
    assert list((out / ".vindr" / "damaged").iterdir())   # kept aside for inspection
    rec = json.loads(f.read_text())
    assert rec["sha256"] == settings_digest(rec["settings"])


def test_damaged_settings_with_another_key_is_refused_even_with_rebuild(done, tmp_path):
    src, out, _ = done
    (out / ".vindr" / "anonymize.json").write_bytes(b"garbage")
    (out / ".vindr" / "anonymize_copy.json").write_bytes(b"garbage")
    with pytest.raises(SettingsChanged, match="read from OUTPUT's files"):
        _run(src, out, _other_key(tmp_path), rebuild_state=True)


def _journal_with(out: Path, lines: list[bytes]) -> Path:
    j = out / ".vindr" / "anonymize.journal.jsonl"
    j.write_bytes(b"".join(lines))
    return j


JOURNAL_DAMAGE = {
    "not UTF-8": b'{"key": "\xff"}\n',
    "not valid JSON": b'{"key": "x", "rows": [\n',
    "wrong shape": b'{"key": 5, "rows": "x", "sha256": "0"}\n',
    "checksum mismatch": entry_line("k" * 24, [{"status": "ok"}]).replace('"ok"', '"failed"').encode(),
}


@pytest.mark.parametrize("kind", sorted(JOURNAL_DAMAGE))
def test_damaged_journal_line_is_refused_then_rebuilt(done, kind):
    src, out, key = done
    rows = read_rows(out / "manifest.parquet")
    (out / "manifest.parquet").unlink()
    good = [entry_line(r["input_key"], [r]).encode() for r in rows]
    _journal_with(out, [good[0], JOURNAL_DAMAGE[kind], *good[1:3]])
    with pytest.raises(StateDamaged) as e:
        _run(src, out, key)
    assert "anonymize.journal.jsonl is damaged (line 2" in str(e.value) and "--rebuild-state" in str(e.value)
    s = _run(src, out, key, rebuild_state=True)
    assert s.resumed == 3 and s.counts["ok"] == 4        # the 3 intact entries kept, the 4th input redone
    assert len(read_rows(out / "manifest.parquet")) == 4


def test_torn_last_journal_line_is_tolerated_and_cut_before_appending(tmp_path):
    j = tmp_path / "j.jsonl"
    j.write_bytes(entry_line("a", [{"x": 1}]).encode() + entry_line("b", [{"x": 2}]).encode()[:-9])
    assert [e["key"] for e in read_journal(j)] == ["a"]
    jr = Journal(j)
    jr.append({"key": "c", "rows": [{"x": 3}]})
    jr.close()
    assert [e["key"] for e in read_journal(j)] == ["a", "c"]   # the torn tail did not glue onto "c"


def test_torn_last_line_in_a_real_resume(done):
    src, out, key = done
    rows = read_rows(out / "manifest.parquet")
    (out / "manifest.parquet").unlink()
    lines = [entry_line(r["input_key"], [r]).encode() for r in rows]
    _journal_with(out, [*lines[:3], lines[3][:20]])
    s = _run(src, out, key)
    assert s.resumed == 3 and s.counts["ok"] == 4


def test_journal_damage_reports_intact_entries(tmp_path):
    j = tmp_path / "j.jsonl"
    j.write_bytes(entry_line("a", []).encode() + b"junk\n" + entry_line("b", []).encode())
    with pytest.raises(JournalDamaged) as e:
        read_journal(j)
    assert e.value.line == 2 and [g["key"] for g in e.value.good] == ["a", "b"]


def test_garbled_manifest_is_refused_then_rebuilt(done):
    src, out, key = done
    (out / "manifest.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(StateDamaged, match="--rebuild-state"):
        _run(src, out, key)
    s = _run(src, out, key, rebuild_state=True)
    assert s.counts["ok"] == 4 and len(read_rows(out / "manifest.parquet")) == 4
    assert [p.name.split(".")[0] for p in (out / ".vindr" / "damaged").iterdir()] == ["manifest"]


def test_outputs_record_key_and_profile_fingerprints(done):
    _, out, key = done
    ds = pydicom.dcmread(next(out.rglob("*.dcm")))
    methods = list(ds.DeidentificationMethod)
    fp = Substitutes(bytes.fromhex(key.read_text().strip())).fingerprint()
    assert f"vindr key fingerprint {fp}" in methods
    assert any(m.startswith("vindr profile fingerprint ") for m in methods)
    assert any(m.startswith("vindr settings fingerprint ") for m in methods)
    assert all(len(m) <= 64 and "\\" not in m for m in methods)     # valid LO values
    assert key.read_text().strip() not in ds.to_json()


def test_deleted_settings_file_never_lets_another_key_in(done, tmp_path):
    src, out, key = done
    (out / ".vindr" / "anonymize.json").unlink()
    (out / ".vindr" / "anonymize_copy.json").unlink()
    with pytest.raises(SettingsChanged) as e:
        _run(src, out, _other_key(tmp_path))
    assert "read from OUTPUT's files" in str(e.value)
    assert len(list(out.rglob("*.dcm"))) == 4                      # nothing added
    s = _run(src, out, key)                                        # the right key still resumes
    assert s.counts["ok"] == 4 and len(list(out.rglob("*.dcm"))) == 4


def test_other_profile_refused_from_outputs(done):
    src, out, key = done
    (out / ".vindr" / "anonymize.json").unlink()
    (out / ".vindr" / "anonymize_copy.json").unlink()
    with pytest.raises(SettingsChanged, match="different profile"):
        anonymize(src, out, key_path=key, profile=load_profile("vindr"), workers=1, write_linkage=False)


def test_missing_key_file_on_rerun_is_an_error_naming_the_fingerprint(done, tmp_path):
    src, out, key = done
    fp = Substitutes(bytes.fromhex(key.read_text().strip())).fingerprint()
    (out / ".vindr" / "anonymize.json").unlink()      # even without the settings file
    gone = tmp_path / "keys" / "gone.key"
    with pytest.raises(KeyError_) as e:
        _run(src, out, gone)
    assert f"expected {fp}" in str(e.value) and not gone.exists()
    p = run_cli("anonymize", src, out, "--key", gone, "--no-linkage", check=False)
    assert p.returncode == 2 and fp in p.stderr and not gone.exists() and "Traceback" not in p.stderr


def _tamper(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[:-100])
    else:                                            # same size, one pixel byte changed
        path.write_bytes(raw[:-10] + bytes([raw[-10] ^ 0xFF]) + raw[-9:])


@pytest.mark.parametrize("how", ["truncated", "changed"])
def test_damaged_output_is_redone_on_resume(done, how):
    src, out, key = done
    outputs = sorted(out.rglob("*.dcm"))
    before = outputs[0].read_bytes()
    _tamper(outputs[0], how)
    s = _run(src, out, key)
    assert s.resumed == 3 and s.counts["ok"] == 4
    assert outputs[0].read_bytes() == before


def test_decode_settings_come_back_from_their_copy_else_decode_refuses_to_mix(tmp_path, done):
    _, anon, _ = done
    out = tmp_path / "img"
    run_cli("decode", anon, out, "-j", "1", "--size", "32")
    (out / ".vindr" / "decode.json").write_text("{not json")
    p = run_cli("decode", anon, out, "-j", "1", "--size", "32", check=False)
    assert p.returncode == 2 and "decode.json is damaged" in p.stderr and "--rebuild-state" in p.stderr
    p = run_cli("decode", anon, out, "-j", "1", "--size", "16", "--rebuild-state", check=False)
    assert p.returncode == 2 and "different size" in p.stderr           # the copy still says 32
    p = run_cli("decode", anon, out, "-j", "1", "--size", "32", check=False)
    assert p.returncode == 0 and "resumed: 4 inputs" in p.stdout
    for name in ("decode.json", "decode_copy.json"):                   # both lost: refuse to mix
        (out / ".vindr" / name).write_text("[]")
    p = run_cli("decode", anon, out, "-j", "1", "--size", "16", "--rebuild-state", check=False)
    assert p.returncode == 2 and "no intact settings file" in p.stderr


def test_anonymize_settings_copy_restores_a_deleted_settings_file(done, tmp_path):
    src, out, key = done
    (out / ".vindr" / "anonymize.json").unlink()
    with pytest.raises(SettingsChanged, match="different layout"):
        _run(src, out, key, layout="vindr")
    assert _run(src, out, key).resumed == 4
    assert (out / ".vindr" / "anonymize.json").exists()


def test_decode_redoes_a_truncated_image(tmp_path, done):
    _, anon, _ = done
    out = tmp_path / "img"
    run_cli("decode", anon, out, "-j", "1", "--size", "32")
    pngs = sorted(p for p in out.rglob("*.png"))
    before = pngs[0].read_bytes()
    pngs[0].write_bytes(before[: len(before) // 2])
    p = run_cli("decode", anon, out, "-j", "1", "--size", "32")
    assert "resumed: 3 inputs" in p.stdout
    assert pngs[0].read_bytes() == before


def test_deleted_settings_file_never_lets_another_layout_or_input_in(done, tmp_path):
    src, out, key = done
    (out / ".vindr" / "anonymize.json").unlink()
    (out / ".vindr" / "anonymize_copy.json").unlink()
    with pytest.raises(SettingsChanged, match="other settings"):
        _run(src, out, key, layout="vindr")
    other = _export(tmp_path / "in2", 2)
    with pytest.raises(SettingsChanged, match="other settings"):
        _run(other, out, key)
    assert len(list(out.rglob("*.dcm"))) == 4 and not list(out.glob("*.dicom"))


def test_output_intact_catches_truncated_png_and_npy(tmp_path):
    import numpy as np
    from PIL import Image

    from vindr_cli.runner.state import output_intact

    arr = (np.arange(64 * 48) % 251).astype(np.uint8).reshape(64, 48)
    png, npy = tmp_path / "a.png", tmp_path / "a.npy"
    Image.fromarray(arr).save(png)
    np.save(npy, arr)
    assert output_intact(png, {}) and output_intact(npy, {})
    assert not output_intact(png, {"output_bytes": png.stat().st_size + 1})
    for p in (png, npy):
        p.write_bytes(p.read_bytes()[:-5])
        assert not output_intact(p, {})
    assert not output_intact(tmp_path / "missing.png", {})


def test_damaged_linkage_journal_outside_output(tmp_path, key_file):
    src, out = _export(tmp_path / "in"), tmp_path / "out"
    link = tmp_path / "out.linkage.parquet"
    anonymize(src, out, key_path=key_file, profile=load_profile("basic"), workers=1)
    rows = read_rows(link)
    link.unlink()
    from vindr_cli.deid.linkage import journal_path

    journal = journal_path(link)
    journal.write_bytes(entry_line(rows[0]["input_key"], [rows[0]]).encode() + b"\xff\xfe\n")
    os.chmod(journal, 0o600)
    with pytest.raises(StateDamaged, match="is damaged .line 2: not UTF-8"):
        anonymize(src, out, key_path=key_file, profile=load_profile("basic"), workers=1)
    s = anonymize(src, out, key_path=key_file, profile=load_profile("basic"), workers=1, rebuild_state=True)
    assert s.counts["ok"] == 4 and len(read_rows(link)) == 4
    aside = list(tmp_path.glob(f"{journal.name}.damaged.*"))
    assert len(aside) == 1 and (aside[0].stat().st_mode & 0o077) == 0     # PHI: stays 0600, outside OUTPUT
