"""A hospital IT engineer runs vindr on a Dask cluster (issue 13, new-user walk 2).

What the walk found, each fixed here and checked with real parts:

* a worker running other vindr code (another checkout or version: vindr's version string
  does not change between commits) took part in a run without a word, and wrote outputs
  that differ from the driver's for the same key; now every worker's code and policy
  fingerprint is compared before the first file is sent, and a mismatch is one line, exit 2;
* Dask's TLS settings that disagree with the address (``require-encryption`` with a
  ``tcp://`` address, a ``tls://`` address without client certificates) were exit 3,
  "internal error"; now one line naming the setting, exit 2;
* a lost scheduler printed ``distributed.client``'s traceback above vindr's one-line error:
  Dask's own configuration gives that logger its level and handler, so silencing
  ``distributed`` alone did not reach it;
* an unreachable ``$VINDR_SCHEDULER`` now says how long it waited, a malformed one names
  the variable as well as ``--scheduler``.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from helpers import run_cli  # noqa: E402
from test_dask_cluster import DASK, EXPORT, REPO, Cluster, _env  # noqa: E402
from vindr_cli.resources import schemas_dir  # noqa: E402
from vindr_cli.runner import cluster  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_code(dst: Path) -> Path:
    """vindr's code and schemas/ as a checkout of its own (pyproject.toml marks the root)."""
    shutil.copytree(REPO / "vindr_cli", dst / "vindr_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(schemas_dir(), dst / "schemas")
    shutil.copy(REPO / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_code_fingerprint_same_for_a_copy_and_changed_by_any_edit(tmp_path):
    copy = _copy_code(tmp_path / "copy")
    here = cluster.code_fingerprint()
    assert cluster._fingerprint(copy / "vindr_cli", copy / "schemas") == here
    (copy / "vindr_cli" / "deid" / "engine.py").write_bytes((copy / "vindr_cli" / "deid" / "engine.py").read_bytes() + b"\n")
    assert cluster._fingerprint(copy / "vindr_cli", copy / "schemas") != here
    copy2 = _copy_code(tmp_path / "copy2")
    profile = next(p for p in sorted((copy2 / "schemas").rglob("*")) if p.is_file())
    profile.write_bytes(profile.read_bytes() + b" ")
    assert cluster._fingerprint(copy2 / "vindr_cli", copy2 / "schemas") != here


def test_environment_names_what_differs_in_versions_only():
    here = cluster.environment()
    assert here["vindr code"] == cluster.code_fingerprint() and here["python"].count(".") == 2
    assert set(cluster.LIBRARIES) <= set(here) and here["pydicom"] != "absent"
    assert cluster.difference(here, dict(here)) is None
    assert cluster.difference(here, {**here, "python": "3.12.1"}) == f"python 3.12.1 there, {here['python']} here"
    assert cluster.difference(here, {**here, "vindr code": "0" * 16}) == "other vindr code or schemas/"
    del_one = {k: v for k, v in here.items() if k != "tesserocr"}
    assert cluster.difference(here, del_one) == f"tesserocr absent there, {here['tesserocr']} here"
    assert cluster.difference(here, ModuleNotFoundError("No module named 'vindr_cli'")) == "it cannot import vindr"


def test_quiet_dask_logs_reaches_the_children_dask_configures():
    import distributed  # noqa: F401  (its configuration sets distributed.client's level and handler)

    logging.getLogger("distributed.client").setLevel(logging.WARNING)     # as Dask's own configuration does
    cluster.quiet_dask_logs()
    loud = [n for n in ["distributed", *logging.Logger.manager.loggerDict]
            if n.startswith("distributed") and logging.getLogger(n).isEnabledFor(logging.ERROR)]
    assert loud == []


def _one_line(p: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    return lines[0]


def test_tls_settings_that_disagree_with_the_address_are_one_line(tmp_path):
    port = _free_port()          # nothing listens: these are refused before any connection
    env = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s", "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "true"}
    p = run_cli("info", EXPORT, "--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}", env=env, check=False)
    assert p.returncode == 2
    assert "requires encryption" in _one_line(p) and "tls://" in _one_line(p)
    p = run_cli("info", EXPORT, "--executor", "dask", "--scheduler", f"tls://127.0.0.1:{port}",
                env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}, check=False)
    assert p.returncode == 2
    assert "distributed.comm.tls.ca-file" in _one_line(p)


def test_unreachable_or_malformed_vindr_scheduler_is_one_line(tmp_path):
    env = {"VINDR_SCHEDULER": f"tcp://127.0.0.1:{_free_port()}", "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    p = run_cli("info", EXPORT, "--executor", "dask", env=env, check=False)
    assert p.returncode == 2
    line = _one_line(p)
    assert "cannot reach the Dask scheduler" in line and "waited 2 s" in line and "$VINDR_SCHEDULER" in line
    p = run_cli("info", EXPORT, "--executor", "dask", env={"VINDR_SCHEDULER": "127.0.0.1:8786"}, check=False)
    assert p.returncode == 2 and "$VINDR_SCHEDULER" in _one_line(p)


def test_a_worker_with_other_vindr_code_stops_the_run_before_any_file(tmp_path):
    other = _copy_code(tmp_path / "other")
    init = other / "vindr_cli" / "__init__.py"
    init.write_text(init.read_text() + "\n# another commit of vindr\n")
    c = Cluster(tmp_path / "dask", n=1)
    try:
        c.start()
        env = _env()
        env["PYTHONPATH"] = os.pathsep.join([str(other), env["PYTHONPATH"]])
        log = open(c.logs / "other.log", "ab")
        c.procs.append(subprocess.Popen(
            [str(DASK), "worker", c.address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard", "--host",
             "127.0.0.1", "--death-timeout", "30", "--local-directory", str(c.logs / "wother")],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=tmp_path))
        log.close()
        c.client.wait_for_workers(2, timeout=90)
        key = tmp_path / "keys" / "vindr.key"
        key.parent.mkdir(mode=0o700)
        key.write_text(os.urandom(32).hex() + "\n")
        key.chmod(0o600)
        out = tmp_path / "anon"
        p = run_cli("anonymize", EXPORT, out, "--key", key, "--executor", "dask", "--scheduler", c.address, check=False)
        assert p.returncode == 2
        line = _one_line(p)
        assert "1 of 2 Dask workers differ from this machine" in line and "other vindr code" in line
        assert "tcp://127.0.0.1:" in line and str(other) not in line
        assert not [f for f in out.rglob("*.dcm")] and not (tmp_path / "anon.linkage.parquet").exists()
        # the same cluster without that worker runs
        for proc in c.procs[-1:]:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        deadline = time.monotonic() + 60
        while c.workers() != 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert c.workers() == 1
        p = run_cli("anonymize", EXPORT, out, "--key", key, "--executor", "dask", "--scheduler", c.address)
        assert len(list(out.rglob("*.dcm"))) >= 20
    finally:
        c.stop()


def _setup_as_nobody(key: str, out: str, conn) -> None:
    """In a forked child: become ``nobody``, run the anonymize stage's real worker setup."""
    try:
        from vindr_cli.deid.profile import load_profile
        from vindr_cli.deid.task import AnonConfig, setup
        from vindr_cli.dicomio.quiet import quiet_pydicom

        quiet_pydicom()       # imports done as root: nobody may not read this Python's own files
        prof = load_profile("basic", dates="shift", options={"retain_patient_characteristics"}, without=set())
        cfg = AnonConfig(output=out, key_path=key, key_fingerprint="0" * 12, profile=prof)
        os.setgid(65534)
        os.setuid(65534)
        cluster.dask_setup("nobody-run", setup, cfg)
        ok, exc = cluster._dask_ctx["nobody-run"]
        conn.send((ok, type(exc).__name__, getattr(exc, "exit_code", None), str(exc)))
    except BaseException as exc:
        conn.send((None, type(exc).__name__, None, ""))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a worker's setup as another account")
def test_a_worker_account_that_may_not_read_the_key_is_one_line_exit_2(tmp_path):
    import multiprocessing

    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    key = keys / "vindr.key"
    key.write_text(os.urandom(32).hex() + "\n")
    key.chmod(0o600)
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    tmp_path.chmod(0o755)
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    p = ctx.Process(target=_setup_as_nobody, args=(str(key), str(out), there))
    p.start()
    assert here.poll(60)
    ok, name, code, msg = here.recv()
    p.join(30)
    assert (ok, name, code) == (False, "WorkersCannotSee", 2)
    assert "\n" not in msg and "account that owns the key file" in msg and str(key) not in msg


def test_a_worker_joining_mid_run_with_another_library_keeps_the_refusal(tmp_path):
    """The run's plugin (what a worker that joins or restarts mid-run runs first) compares the
    driver's environment with the worker's: a difference is kept and raised by every task."""
    from vindr_cli.deid.profile import load_profile
    from vindr_cli.deid.task import AnonConfig, setup

    key = tmp_path / "vindr.key"
    key.write_text(os.urandom(32).hex() + "\n")
    key.chmod(0o600)
    prof = load_profile("basic", dates="shift", options={"retain_patient_characteristics"}, without=set())
    cfg = AnonConfig(output=str(tmp_path / "out"), key_path=str(key), key_fingerprint="0" * 12, profile=prof)
    driver = {**cluster.environment(), "pydicom": "2.4.4"}
    cluster.dask_setup("joiner-run", setup, cfg, driver)
    try:
        ok, exc = cluster._dask_ctx["joiner-run"]
        assert not ok and isinstance(exc, cluster.WorkersDiffer) and exc.exit_code == 2
        assert f"pydicom {cluster.environment()['pydicom']} there, 2.4.4 here" in str(exc) and "\n" not in str(exc)
        with pytest.raises(cluster.WorkersDiffer):
            cluster._call("any/item.dcm", print, "joiner-run", None)
        assert not (tmp_path / "out").exists()       # refused before the stage's setup ran
    finally:
        cluster.dask_teardown("joiner-run")
