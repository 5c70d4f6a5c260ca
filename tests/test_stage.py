"""The one stage runner and its Executor seam: bounded in-flight work, errors from worker
setup, no secret crossing the seam, one rename policy, warnings, the key only created
for a request that runs, decode of identified exports."""
from __future__ import annotations

import os
import pickle
import stat

import pyarrow.parquet as pq
import pytest

from conftest import make_cr
from helpers import run_cli
from vindr_cli import errors
from vindr_cli.deid.profile import load_profile
from vindr_cli.runner.executor import Executor, InProcessExecutor, ProcessExecutor, make_executor


def _setup(cfg):
    return cfg * 10


def _square(ctx, x):
    return ctx + x * x


def _bad_setup(cfg):
    raise errors.RequestError("worker setup refused")


class _Counting:
    """An iterable that records how many items were taken."""

    def __init__(self, n):
        self.n, self.taken = n, 0

    def __iter__(self):
        for i in range(self.n):
            self.taken += 1
            yield i


@pytest.mark.parametrize("make", [InProcessExecutor, lambda: ProcessExecutor(2, in_flight=3)])
def test_executors_map_every_item_once(make):
    got = dict(make().run(_square, range(20), setup=_setup, config=1))
    assert got == {i: 10 + i * i for i in range(20)}


def test_process_executor_bounds_work_in_flight():
    items = _Counting(30)
    ex = ProcessExecutor(2, in_flight=3)
    gen = ex.run(_square, items, setup=_setup, config=0)
    first = next(gen)
    assert items.taken == 3 and first[1] == first[0] ** 2     # nothing more was submitted before a result came back
    rest = dict(gen)
    assert items.taken == 30 and len(rest) == 29


def test_setup_error_reaches_the_driver():
    with pytest.raises(errors.RequestError, match="worker setup refused"):
        list(ProcessExecutor(2).run(_square, range(5), setup=_bad_setup, config=0))
    with pytest.raises(errors.RequestError):
        list(InProcessExecutor().run(_square, range(5), setup=_bad_setup, config=0))


def test_make_executor_picks_in_process_for_one_worker_or_item():
    assert isinstance(make_executor(1, 100), InProcessExecutor)
    assert isinstance(make_executor(4, 1), InProcessExecutor)
    assert isinstance(make_executor(4, 100), ProcessExecutor)


def test_request_errors_share_one_base():
    from vindr_cli.deid.batch import RequestError
    from vindr_cli.deid.keyfile import KeyError_
    from vindr_cli.pixels.batch import DecodeRequestError
    from vindr_cli.runner.state import SettingsChanged

    for cls in (RequestError, KeyError_, DecodeRequestError, SettingsChanged):
        assert issubclass(cls, errors.RequestError) and cls("x").exit_code == 2


class PicklingExecutor(Executor):
    """Pickles everything a process or cluster executor would send, then runs in-process."""

    def __init__(self):
        self.sent: list[bytes] = []

    def run(self, task, items, *, setup, config):
        items, first = list(items), len(self.sent)      # (a stage may run more than one pass)
        self.sent += [pickle.dumps(task), pickle.dumps(setup), pickle.dumps(config)] + [pickle.dumps(i) for i in items]
        ctx = setup(pickle.loads(self.sent[first + 2]))
        for item in items:
            yield item, task(ctx, item)


def test_the_key_never_crosses_the_seam(tmp_path, key_file):
    from vindr_cli.deid.batch import anonymize

    for i in range(3):
        make_cr(tmp_path / "in" / f"{i}.dcm", sop=f"1.2.3.4.{i}", seed=i)
    key = bytes.fromhex(key_file.read_text().strip())
    ex = PicklingExecutor()
    s = anonymize(tmp_path / "in", tmp_path / "out", key_path=key_file, profile=load_profile("basic"), workers=1,
                  executor=ex, write_linkage=False)
    # two passes, each task, setup, config and 3 items: the study's people (deid.studyterms), then the work
    assert s.counts["ok"] == 3 and len(ex.sent) == 12
    for blob in ex.sent:
        assert key not in blob and key.hex().encode() not in blob and key.hex().upper().encode() not in blob
    assert not hasattr(pickle.loads(ex.sent[2]), "key_path")       # the first pass gets no key, not even its path
    cfg = pickle.loads(ex.sent[8])
    assert cfg.key_path == str(key_file.resolve()) and cfg.key_fingerprint == s.key_fingerprint
    assert not hasattr(cfg, "key")
    from vindr_cli.deid.batch import AnonymizeStage
    with pytest.raises(TypeError):                # the stage holds the key and stays in the driver
        pickle.dumps(AnonymizeStage.__new__(AnonymizeStage))


def test_the_decode_salt_never_crosses_the_seam(tmp_path):
    from vindr_cli.pixels.batch import DecodeStage
    from vindr_cli.pixels.output import read_salt
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import DecodeConfig

    stage = DecodeStage(tmp_path / "o", DecodeConfig(output=str(tmp_path / "o"), size=SizeSpec(), identified=True))
    stage.prepare()
    salt = read_salt(tmp_path / "o" / ".vindr" / "decode.salt")
    blob = pickle.dumps(stage.config())
    assert salt not in blob and salt.hex().encode() not in blob and stage.config().salt_path.encode() in blob
    with pytest.raises(TypeError):
        pickle.dumps(stage)


def test_worker_refuses_a_key_that_changed(tmp_path, key_file):
    from vindr_cli.deid.task import AnonConfig, setup

    cfg = AnonConfig(str(tmp_path / "o"), str(key_file), "000000000000", load_profile("basic"))
    with pytest.raises(errors.RequestError, match="changed during the run"):
        setup(cfg)
    os.chmod(key_file, 0o644)                     # the worker applies the driver's permission checks
    with pytest.raises(errors.RequestError, match="group or others"):
        setup(cfg)


def test_decode_workers_write_only_temp_files(tmp_path):
    """The worker leaves its images under OUTPUT/.vindr/tmp; the driver alone names them."""
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import DecodeConfig, decode_one, setup
    from vindr_cli.runner.discover import discover

    src = make_cr(tmp_path / "in" / "x.dcm", extra=lambda d: setattr(d, "PatientIdentityRemoved", "YES"))
    out = tmp_path / "o"
    ctx = setup(DecodeConfig(output=str(out), size=SizeSpec()))
    (source,) = discover(src.parent)
    res = decode_one(ctx, source)
    assert res["rows"]["images"][0]["status"] == "ok"
    (tmp, rel), = res["files"]
    assert rel == "x.png" and os.path.dirname(tmp) == str(out / ".vindr" / "tmp")
    assert [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()] == \
        [os.path.relpath(tmp, out)]


# --- the CLI: warnings, the key, identified exports --------------------------------------------------

def _inputs(tmp_path, kind):
    d = tmp_path / kind
    d.mkdir()
    if kind == "text":
        (d / "notes.txt").write_text("hello")
        (d / "scan.pdf").write_bytes(b"%PDF-1.4 not dicom")
    return d


@pytest.mark.parametrize("kind", ["empty", "text"])
@pytest.mark.parametrize("command", ["anonymize", "decode", "info"])
def test_no_dicom_input_warns_and_strict_fails(tmp_path, key_file, command, kind):
    src = _inputs(tmp_path, kind)
    extra = {"anonymize": ["--key", key_file, "--no-linkage"], "decode": [], "info": []}[command]
    outs = [] if command == "info" else [tmp_path / "o"]
    p = run_cli(command, src, *outs, *extra, check=False)
    assert p.returncode == 0, p.stderr
    assert "warning:" in p.stderr and ("no files" in p.stderr if kind == "empty" else "is DICOM" in p.stderr)
    outs = [] if command == "info" else [tmp_path / "o2"]
    p = run_cli(command, src, *outs, *extra, "--strict", check=False)
    assert p.returncode == 1 and "warning:" in p.stderr


def test_default_key_is_named_and_only_created_for_a_request_that_runs(tmp_path, key_file):
    src = tmp_path / "in"
    make_cr(src / "a.dcm")
    new = tmp_path / "home" / "vindr.key"
    env = {"VINDR_KEY": str(new)}
    # a refused request (OUTPUT made with another key) leaves no new key file behind
    run_cli("anonymize", src, tmp_path / "o", "--key", key_file, "--no-linkage")
    p = run_cli("anonymize", src, tmp_path / "o", "--no-linkage", env=env, check=False)
    assert p.returncode == 2 and not new.exists() and not new.parent.exists()
    from vindr_cli.deid.substitutes import Substitutes
    expected = Substitutes(bytes.fromhex(key_file.read_text().strip())).fingerprint()
    assert f"expected {expected}" in p.stderr and "none was created" in p.stderr
    # a bad request is refused before the key is made
    p = run_cli("anonymize", src, tmp_path / "o2", "--no-linkage", "--layout", "flat", env=env, check=False)
    assert p.returncode == 2 and not new.exists()
    # a request that runs creates it (0600) and says where and which
    p = run_cli("anonymize", src, tmp_path / "o3", "--no-linkage", env=env)
    assert new.exists() and stat.S_IMODE(new.stat().st_mode) == 0o600
    fp = Substitutes(bytes.fromhex(new.read_text().strip())).fingerprint()
    assert "created a new secret key" in p.stdout and fp in p.stdout and str(new) in p.stdout.replace("\n", "")
    p = run_cli("anonymize", src, tmp_path / "o4", "--no-linkage", env=env)
    assert f"key: {new} (fingerprint {fp})" in p.stdout.replace("\n", "")
    # resuming with another key names both fingerprints
    p = run_cli("anonymize", src, tmp_path / "o4", "--no-linkage", "--key", key_file, check=False)
    assert p.returncode == 2 and f"expected {fp}, given {expected}" in p.stderr.replace("\n", "")


PHI_DIR = "NGUYEN_VAN_AN_PID0001"


def test_decode_of_an_identified_export(tmp_path):
    src = tmp_path / "in"
    make_cr(src / PHI_DIR / "chest.dcm")
    make_cr(src / PHI_DIR / "lateral.dcm", sop="1.2.3.4.99", seed=3)
    out = tmp_path / "o"
    p = run_cli("decode", src, out, check=False)
    assert p.returncode == 2 and "--allow-identified" in p.stderr and "not de-identified" in p.stderr
    assert not out.exists()
    p = run_cli("decode", src, out, "--allow-identified", "-j", "2")
    assert "warning:" in p.stderr and "not de-identified" in p.stderr
    rows = pq.read_table(out / "images.parquet").to_pylist()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    for r in rows:
        assert len(r["input"]) == 32 and r["output"] == r["input"] + ".png" and r["sop_uid"] is None
    for p_ in out.rglob("*"):
        assert PHI_DIR not in str(p_) and "chest" not in p_.name
        if p_.is_file():
            assert PHI_DIR.encode() not in p_.read_bytes() and b"chest.dcm" not in p_.read_bytes()
    assert stat.S_IMODE((out / ".vindr" / "decode.salt").stat().st_mode) == 0o600
    p = run_cli("decode", src, out, "--allow-identified")            # same names on a re-run
    assert "already done" in p.stdout
    assert {r["output"] for r in pq.read_table(out / "images.parquet").to_pylist()} == {r["output"] for r in rows}
    p = run_cli("decode", src, out, check=False)                      # the naming cannot change under OUTPUT
    assert p.returncode == 2


@pytest.mark.parametrize("workers", ["1", "2"])
def test_decode_stops_at_an_identified_image_behind_a_deidentified_one(tmp_path, workers):
    src = tmp_path / "in"
    make_cr(src / "a" / "1.dcm", extra=lambda d: setattr(d, "PatientIdentityRemoved", "YES"))
    make_cr(src / PHI_DIR / "2.dcm", sop="1.2.3.4.98")
    out = tmp_path / "o"
    p = run_cli("decode", src, out, "-j", workers, check=False)
    assert p.returncode == 2 and "--allow-identified" in p.stderr
    assert not (out / "images.parquet").exists()
    for p_ in out.rglob("*"):
        assert PHI_DIR not in str(p_)
        if p_.is_file():
            assert PHI_DIR.encode() not in p_.read_bytes()


def test_decode_of_a_deidentified_tree_keeps_path_names(tmp_path, key_file):
    """A vindr anonymize OUTPUT keeps its names (already keyed substitutes, checked against its
    manifest); a raw tree whose images only say PatientIdentityRemoved YES (a gateway may set
    it) is named by keyed hashes of its paths, with a warning (red team 6)."""
    from vindr_cli.pixels.batch import NOT_ANONYMIZE_OUTPUT

    src = tmp_path / "in"
    make_cr(src / PHI_DIR / "chest.dcm")
    anon = tmp_path / "anon"
    run_cli("anonymize", src, anon, "--key", key_file, "--no-linkage", "-j", "1")
    (m,) = pq.read_table(anon / "manifest.parquet").to_pylist()
    assert m["status"] == "ok" and m["output"].endswith(".dcm") and "/" in m["output"]
    out = tmp_path / "o"
    p = run_cli("decode", anon, out)
    assert "warning" not in p.stderr
    (row,) = pq.read_table(out / "images.parquet").to_pylist()
    named = m["output"][: -len(".dcm")] + ".png"
    assert row["input"] == m["output"] and row["output"] == named and (out / named).is_file()
    assert row["sop_uid"] == m["sop_uid"]
    from vindr_cli.pixels.batch import input_paths

    assert input_paths(out, anon)[row["input"]] == m["output"]        # a path name maps to itself

    marked = tmp_path / "marked"
    make_cr(marked / PHI_DIR / "chest.dcm", extra=lambda d: setattr(d, "PatientIdentityRemoved", "YES"))
    out2 = tmp_path / "o2"
    p = run_cli("decode", marked, out2)
    assert "warning:" in p.stderr and " ".join(NOT_ANONYMIZE_OUTPUT.split()[:6]) in " ".join(p.stderr.split())
    (row,) = pq.read_table(out2 / "images.parquet").to_pylist()
    assert row["status"] == "ok" and len(row["input"]) == 32 and int(row["input"], 16) >= 0
    assert row["output"] == row["input"] + ".png" and (out2 / row["output"]).is_file()
    assert input_paths(out2, marked)[row["input"]] == f"{PHI_DIR}/chest.dcm"   # whoever holds INPUT maps back
    for p_ in out2.rglob("*"):
        assert PHI_DIR not in str(p_) and "chest" not in p_.name
        if p_.is_file():
            assert PHI_DIR.encode() not in p_.read_bytes() and b"chest.dcm" not in p_.read_bytes()
    assert stat.S_IMODE((out2 / ".vindr" / "decode.salt").stat().st_mode) == 0o600
    p = run_cli("decode", marked, out2, "--strict", check=False)      # the warning fails --strict
    assert p.returncode == 1 and "already done" in p.stdout
    p = run_cli("decode", marked, out, check=False)        # the naming cannot change under an OUTPUT
    assert p.returncode == 2
    assert "made with names after INPUT's paths (a vindr anonymize OUTPUT's" in " ".join(p.stderr.split())
    p = run_cli("decode", anon, out2, check=False)
    assert p.returncode == 2 and "made with names by keyed hashes" in " ".join(p.stderr.split())
