"""The Dask path says what it is doing, and every cluster failure is one clear line (issue 13,
cluster UX). Real parts: a `dask scheduler` and one `dask worker` on 127.0.0.1 (bounded,
stopped after), and a real worker from a Python environment without vindr.

* U1: a Dask run prints one line at its start on stderr (scheduler address without
  credentials, workers, threads, and that the key file / linkage table is not sent), shows a
  spinner during the connect wait (drawn on an interactive stderr only), and its summary
  table names the executor (a local run's too);
* U2: ``$VINDR_SCHEDULER`` set without ``--executor dask``: one hint line, the run stays local
  (never an error), and that local run still imports no Dask nor rich's spinner at start-up;
* U3: a worker that joins mid-run from a Python without vindr: found by experiment (Dask
  2026.8) to fail its own start (it cannot load the run's setup plugin), so no task, no input
  path ever reaches it, and the run went on without a word (Dask logged there the plugin it
  could not load, bytes and all: the run's config, OUTPUT's and the key file's paths; and the
  run's end waited ~29 s for that worker's answer when the plugin was removed). Now the run's
  setup travels in a carrier plugin sent by value (loadable without vindr), which reports such
  a worker, and a name-only plugin keeps it from starting: the run stops with one line, exit 2,
  in the WorkersDiffer family, the worker's log holds no path, and the same command resumes;
* U4: the INPUT/OUTPUT check leaves out a worker that is going away during it (its nanny
  restarting it), as the environment check does, and the run's plugin checks that worker
  when it comes back. Tested by construction, not with a worker killed during the check:
  whether a SIGKILLed worker is still in the scheduler's list when ``client.run`` asks it
  (a comm error: the case at stake) or already gone (not asked) is a race on the scheduler's
  heartbeat, which a test cannot pin; so the judging of answers (:func:`judge_paths`, with the
  real comm exceptions Dask returns) and the plugin's re-check (:func:`dask_setup` with the
  run's probe) are each tested directly, and a whole run checks the probe file is removed.
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import venv
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from distributed.comm.core import CommClosedError  # noqa: E402

from helpers import key_file_in, run_cli  # noqa: E402
from test_dask_cluster import EXPORT, Cluster  # noqa: E402
from vindr_cli.runner import cluster  # noqa: E402
from vindr_cli.runner.backend import LOCAL_HINT, open_executor  # noqa: E402

LINE = "running on the Dask cluster at "


def test_public_address_drops_credentials():
    assert cluster.public_address("tls://alice:s3cret@10.0.0.1:8786") == "tls://10.0.0.1:8786"
    assert cluster.public_address("tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    assert cluster.public_address("token@10.0.0.1:8786") == "10.0.0.1:8786"


def test_vindr_scheduler_set_but_local_is_one_hint_and_runs_here(tmp_path):
    p = run_cli("info", EXPORT, "-j", "1", env={"VINDR_SCHEDULER": "tcp://127.0.0.1:9"})
    assert p.returncode == 0
    assert [ln for ln in p.stderr.splitlines() if "VINDR_SCHEDULER" in ln] == [LOCAL_HINT]
    assert "executor: local (this machine, -j 1)" in p.stdout and LINE not in p.stderr
    p = run_cli("info", EXPORT, "-j", "1", env={"VINDR_SCHEDULER": ""})
    assert "VINDR_SCHEDULER" not in p.stderr
    # --json: the hint is on stderr, stdout stays JSON
    p = run_cli("info", EXPORT, "-j", "1", "--json", env={"VINDR_SCHEDULER": "tcp://127.0.0.1:9"})
    assert p.stdout.lstrip().startswith("{") and LOCAL_HINT in p.stderr


def test_the_hinted_local_run_imports_no_dask_nor_spinner(tmp_path):
    from pydicom.data import get_testdata_file
    from test_startup_imports import _probe

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes())
    key = key_file_in(tmp_path)
    plain, p = _probe("anonymize", src, tmp_path / "out1", "--key", key, "--burned-in", "off",
                      env={**os.environ, "VINDR_SCHEDULER": ""})
    assert p.returncode == 0 and LOCAL_HINT not in p.stderr, p.stderr[-2000:]
    hinted, p = _probe("anonymize", src, tmp_path / "out2", "--key", key, "--burned-in", "off",
                       env={**os.environ, "VINDR_SCHEDULER": "tcp://127.0.0.1:9"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert LOCAL_HINT in p.stderr
    # the hint imports nothing (rich.spinner comes with rich.progress, the bar, in both runs)
    more = set(hinted["all"]) - set(plain["all"])
    assert not more, sorted(more)
    assert not set(hinted["all"]) & {"dask", "distributed", "rich.status"}


def test_the_connect_wait_shows_a_spinner_and_names_the_address(tmp_path):
    """In a library call: ``waiting`` is entered around the connect (and left on its error);
    through the CLI with an interactive stderr, rich draws it (without one it draws nothing:
    the error stays the only line, tests/test_newuser2.py)."""
    import dask.config

    from vindr_cli.errors import RequestError

    seen: list[str] = []

    class Wait:
        def __init__(self, text):
            seen.append(text)

        def __enter__(self):
            seen.append("in")

        def __exit__(self, *exc):
            seen.append("out")

    port = _free_port()
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(RequestError):
        with open_executor("dask", f"tcp://bob:pw@127.0.0.1:{port}", input=EXPORT, waiting=Wait, say=seen.append):
            pass
    assert seen == [f"connecting to the Dask scheduler at tcp://127.0.0.1:{port} and waiting for a worker ...", "in", "out"]
    p = run_cli("info", EXPORT, "--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}", check=False,
                env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"})
    assert p.returncode == 2
    assert f"connecting to the Dask scheduler at tcp://127.0.0.1:{port}" in p.stderr
    assert "cannot reach the Dask scheduler" in p.stderr and "Traceback" not in p.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_judge_paths_leaves_out_a_worker_going_away():
    answers = {"tcp://a:1": [], "tcp://b:2": CommClosedError("in <TCP (closed)>: Stream is closed"),
               "tcp://c:3": OSError("Timed out trying to connect"), "tcp://d:4": TimeoutError(),
               "tcp://e:5": ["OUTPUT"], "tcp://f:6": ModuleNotFoundError("No module named 'vindr_cli'")}
    assert cluster.judge_paths(answers) == {"tcp://e:5": ["OUTPUT"],
                                            "tcp://f:6": ["INPUT or OUTPUT (the check failed there)"]}


def test_a_worker_back_from_a_restart_that_cannot_see_the_paths_is_refused_by_the_plugin(tmp_path):
    out = tmp_path / "out"
    tmp = out / ".vindr" / "tmp"
    tmp.mkdir(parents=True)
    probe = tmp / ".vindr-probe-x"
    probe.write_text("token", encoding="ascii")
    good = ({"INPUT": str(EXPORT)}, str(probe), "token")
    cluster.dask_setup("ux-good", lambda c: c, 7, cluster.environment(), good)
    hidden = ({"INPUT": str(tmp_path / "not-here")}, str(probe), "other token")
    cluster.dask_setup("ux-bad", lambda c: c, 7, cluster.environment(), hidden)
    try:
        assert cluster._dask_ctx["ux-good"] == (True, 7)
        ok, exc = cluster._dask_ctx["ux-bad"]
        assert not ok and isinstance(exc, cluster.WorkersCannotSee) and exc.exit_code == 2
        msg = str(exc)
        assert msg.startswith("a Dask worker that joined during the run cannot see INPUT and OUTPUT as this machine")
        assert "\n" not in msg and str(tmp_path) not in msg
        with pytest.raises(cluster.WorkersCannotSee):
            cluster._call("any/item.dcm", print, "ux-bad", None)
    finally:
        cluster.dask_teardown("ux-good")
        cluster.dask_teardown("ux-bad")


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("uxdask"), n=1)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_a_dask_run_says_where_it_runs(one_worker, tmp_path):
    key = key_file_in(tmp_path)
    out = tmp_path / "anon"
    p = run_cli("anonymize", EXPORT, out, "--key", key, "--burned-in", "off", "--executor", "dask",
                env={"VINDR_SCHEDULER": one_worker.address})
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith(LINE)]
    assert lines == [f"{LINE}{one_worker.address}: 1 worker, 1 thread; the key file is not sent over the network: "
                     "each worker reads it at its path on the shared file system"], p.stderr
    assert str(key) not in p.stderr and LOCAL_HINT not in p.stderr
    assert _row(p.stdout, "executor") == f"dask at {one_worker.address} (1 worker, 1 thread)"
    assert not list((out / ".vindr" / "tmp").glob(".vindr-probe-*"))      # the run's token file is gone
    p = run_cli("audit", out, "--no-pixels", "--executor", "dask", "--scheduler", one_worker.address, check=False)
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr
    assert f"{LINE}{one_worker.address}: 1 worker, 1 thread; the linkage table is not sent" in p.stderr
    assert _row(p.stdout, "executor") == f"dask at {one_worker.address} (1 worker, 1 thread)"


def _row(table: str, name: str) -> str:
    """The value of a summary table's row ``name`` (rich's box drawing)."""
    rows = [[c.strip() for c in ln.strip("│ ").split("│")] for ln in table.splitlines() if "│" in ln]
    found = [r[1] for r in rows if r and r[0] == name]
    assert len(found) == 1, table
    return found[0]


def _python_without_vindr(where: Path) -> Path:
    """A real Python environment (a venv of this interpreter) with this one's libraries (the
    same files, through a path entry) but not vindr: its editable install is a .pth file of
    that site-packages, which a path entry does not run."""
    venv.EnvBuilder(with_pip=False).create(where)
    site = next((where / "lib").glob("python*/site-packages"))
    (site / "libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = where / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import distributed, pydicom\nimport vindr_cli"], cwd=where,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, capture_output=True, text=True)
    assert "No module named 'vindr_cli'" in probe.stderr and "distributed" not in probe.stderr
    return python


def slow_finder(marker_dir: str, image, frame=0, hints=None, min_side=0):
    """The real text finder, slower, leaving one file per call (where the run is)."""
    from vindr_cli.deid.pixeltext import find_text

    (Path(marker_dir) / f"{os.getpid()}-{time.monotonic_ns()}").touch()
    time.sleep(0.3)
    return find_text(image, frame, hints, min_side=min_side)


def test_a_worker_without_vindr_joining_mid_run_is_one_line_and_the_run_resumes(one_worker, tmp_path):
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    python = _python_without_vindr(tmp_path / "novindr")
    markers = tmp_path / "markers"
    markers.mkdir()
    joiner: list[subprocess.Popen] = []
    log = tmp_path / "novindr.log"

    def join_after_a_few_files():
        deadline = time.monotonic() + 60
        while len(list(markers.iterdir())) < 8 and time.monotonic() < deadline:    # a few files done first
            time.sleep(0.05)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        with open(log, "ab") as f:
            joiner.append(subprocess.Popen(
                [str(python), "-m", "dask", "worker", one_worker.address, "--nworkers", "1", "--nthreads", "1",
                 "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "30",
                 "--local-directory", str(tmp_path / "wnov")],
                stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=tmp_path))

    t = threading.Thread(target=join_after_a_few_files, daemon=True)
    t.start()
    key = key_file_in(tmp_path)
    prof = load_profile("basic", dates="shift", options={"retain_patient_characteristics"}, without=set())
    out, link = tmp_path / "anon", tmp_path / "link.parquet"
    ex = cluster.DaskExecutor(one_worker.client, paths={"INPUT": EXPORT}, output=out.resolve(), batch=1)
    try:
        with pytest.raises(cluster.WorkersDiffer) as e:
            anonymize(EXPORT, out, key_path=key, profile=prof, workers=1, executor=ex, linkage=link,
                      finder=functools.partial(slow_finder, str(markers)))
        t.join(timeout=60)
    finally:
        for p in joiner:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
    msg = str(e.value)
    assert e.value.exit_code == 2 and "\n" not in msg
    assert msg.startswith("a Dask worker that joined during the run cannot import vindr (tcp://127.0.0.1:")
    assert "run the same command again to resume" in msg and str(EXPORT) not in msg
    journal = out / ".vindr" / "anonymize.journal.jsonl"
    done = len(journal.read_text().splitlines())
    assert done > 0 and not (out / "manifest.parquet").exists()
    assert not list((out / ".vindr" / "tmp").glob(".vindr-probe-*"))
    # no task (no input path) ever reached the worker without vindr: it did not start
    text = log.read_bytes()
    assert b"No module named 'vindr_cli'" in text
    assert not [f for f in EXPORT.rglob("*") if f.is_file() and str(f).encode() in text]
    # nor the run's config: the setup travels inside a carrier it loads only where vindr imports
    # (before, Dask logged the plugin it failed to load, bytes and all: OUTPUT's and the key's paths)
    assert str(out).encode() not in text and str(key).encode() not in text and b"vindr.key" not in text
    deadline = time.monotonic() + 60           # the scheduler drops the joiner when its process is gone
    while one_worker.workers() != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert one_worker.workers() == 1
    # the same command again (here on this machine's pool) resumes and completes
    s = anonymize(EXPORT, out, key_path=key, profile=prof, workers=2, linkage=link)
    assert done >= 2 and s.resumed >= done - 1 >= 1     # (a duplicate's loser may be journaled again)
    assert s.total == sum(s.counts.values()) and (out / "manifest.parquet").is_file()
    # nothing was lost to the cluster's fault: no row says a worker died or the time ran out
    assert not [r for (_, r) in s.reasons if r and ("worker" in r or "time limit" in r)], s.reasons


def test_a_carrier_whose_setup_cannot_be_loaded_keeps_a_one_line_refusal():
    """A worker with vindr but another version of it (the carried SetupPlugin does not load
    there): the run's tasks raise WorkersDiffer, exit 2, rather than an internal error."""
    plugin = cluster.SetupPlugin("ux-carried", lambda c: c, 5)
    carried = cluster.carrier(plugin)
    assert carried.name == carried.topic == plugin.name
    import cloudpickle

    assert b"VindrRun" in cloudpickle.dumps(carried)          # the class itself travels (by value)
    carried.setup(worker=None)                                 # vindr imports here: the setup runs
    try:
        assert cluster._dask_ctx["ux-carried"] == (True, 5)
    finally:
        carried.teardown(worker=None)
    assert "ux-carried" not in cluster._dask_ctx
    broken = type(carried)(plugin.name, "ux-broken", b"not a pickle")
    broken.setup(worker=None)
    try:
        ok, exc = cluster._dask_ctx["ux-broken"]
        assert not ok and isinstance(exc, cluster.WorkersDiffer) and exc.exit_code == 2 and "\n" not in str(exc)
        with pytest.raises(cluster.WorkersDiffer, match="cannot load this run's setup"):
            cluster._call("any/item.dcm", print, "ux-broken", None)
    finally:
        cluster.dask_teardown("ux-broken")
