"""The batch stages on a real Dask cluster: a `dask scheduler` and two `dask worker`
processes (one process, one thread each) on 127.0.0.1, started here and stopped after.

* the sample export through anonymize and decode (CLI, --executor dask) equals the local
  run byte for byte: every output file, and every table's rows;
* a worker SIGKILLed while it holds an item still gives the complete, correct tree;
* the key bytes (raw, hex, base64) are in nothing that was sent to a worker;
* a worker that cannot see OUTPUT or INPUT is a one-line error (exit 2); a hung item
  becomes a failed row (``TIMED_OUT``) without stalling the run; a scheduler lost mid-run
  stops it (exit 2) and the same command resumes.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("distributed")

from distributed import Client  # noqa: E402

from helpers import run_cli, tree_hashes  # noqa: E402
from vindr_cli.deid.batch import anonymize  # noqa: E402
from vindr_cli.deid.keyfile import read_key  # noqa: E402
from vindr_cli.deid.profile import load_profile  # noqa: E402
from vindr_cli.errors import OutputFault  # noqa: E402
from vindr_cli.runner import cluster  # noqa: E402
from vindr_cli.runner.executor import ItemFailed  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXPORT = REPO / "sample_dicoms" / "export"
DASK = Path(sys.executable).parent / "dask"
START_S = 90          # bound on a cluster's start
TABLES = ("manifest.parquet", "images.parquet")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "2"     # an item may kill 3 workers, no more
    env["DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"] = "5s"
    return env


class Cluster:
    """A scheduler and ``n`` workers (own process groups, logs under ``logs``)."""

    def __init__(self, logs: Path, n: int = 2):
        self.logs, self.n, self.procs = logs, n, []
        self.address = f"tcp://127.0.0.1:{_port()}"
        logs.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "ab")
        p = subprocess.Popen([str(DASK), *args], stdout=out, stderr=subprocess.STDOUT, env=_env(),
                             start_new_session=True, cwd=self.logs)
        out.close()
        self.procs.append(p)
        return p

    def start(self) -> "Cluster":
        port = self.address.rsplit(":", 1)[1]
        self.scheduler = self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard")
        for i in range(self.n):
            self._spawn(f"worker{i}", "worker", self.address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                        "--host", "127.0.0.1", "--death-timeout", "30", "--local-directory", str(self.logs / f"w{i}"))
        deadline = time.monotonic() + START_S
        while True:       # the scheduler takes a moment to listen
            try:
                self.client = Client(self.address, timeout=10, set_as_default=False)
                break
            except OSError:
                if time.monotonic() > deadline or self.scheduler.poll() is not None:
                    raise
                time.sleep(0.5)
        self.client.wait_for_workers(self.n, timeout=START_S)
        return self

    def worker_in_own_mount(self, hidden: Path, name: str) -> subprocess.Popen:
        """One more worker that sees an empty tmpfs at ``hidden`` (its own mount namespace):
        a worker without the shared file system. Needs root (unshare -m)."""
        cmd = (f"mount -t tmpfs tmpfs '{hidden}' && exec '{DASK}' worker {self.address} --nworkers 1 --nthreads 1 "
               f"--no-dashboard --host 127.0.0.1 --local-directory '{self.logs / name}'")
        out = open(self.logs / f"{name}.log", "ab")
        p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", cmd], stdout=out,
                             stderr=subprocess.STDOUT, env=_env(), start_new_session=True, cwd=self.logs)
        out.close()
        self.procs.append(p)
        return p

    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def kill_scheduler(self) -> None:
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait(timeout=15)

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def stop(self) -> None:
        try:
            self.client.close(timeout=5)
        except Exception:
            pass
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=15)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    os.chmod(d, 0o700)
    p = d / "vindr.key"
    p.write_text(os.urandom(32).hex() + "\n")
    os.chmod(p, 0o600)
    return p


@pytest.fixture(scope="module")
def local(tmp_path_factory, key):
    """The reference: the sample export anonymized and decoded on this machine."""
    base = tmp_path_factory.mktemp("local")
    run_cli("anonymize", EXPORT, base / "anon", "--key", key, "-j", "2", "--linkage", base / "link.parquet")
    run_cli("decode", base / "anon", base / "img", "--size", "128", "-j", "2")
    return base


def _rows(path: Path) -> list[dict]:
    rows = pq.read_table(path).to_pylist()
    assert rows
    return rows


def _same_tree(a: Path, b: Path) -> int:
    """Every file under ``a`` and ``b`` is the same, bytes for bytes (tables: rows), and
    none is missing on either side; the number of files compared."""
    skip = (".vindr/", *TABLES)
    ha, hb = tree_hashes(a, skip=skip), tree_hashes(b, skip=skip)
    assert sorted(ha) == sorted(hb)
    assert ha == hb
    for t in TABLES:
        if (a / t).exists() or (b / t).exists():
            # input_stamp is the input's size and mtime on this file system (decode's resume),
            # not content: the two runs decode inputs written at different times
            assert [{k: v for k, v in r.items() if k != "input_stamp"} for r in _rows(a / t)] == \
                   [{k: v for k, v in r.items() if k != "input_stamp"} for r in _rows(b / t)]
    return len(ha)


def test_cluster_equals_local_byte_for_byte(dask_cluster, local, key, tmp_path):
    env = {"VINDR_SCHEDULER": dask_cluster.address}
    before = _cluster_tasks(dask_cluster.client)
    p = run_cli("anonymize", EXPORT, tmp_path / "anon", "--key", key, "--executor", "dask",
                "--linkage", tmp_path / "link.parquet", env=env)
    assert "Traceback" not in p.stderr
    n = _same_tree(local / "anon", tmp_path / "anon")
    assert n >= 20           # the sample's images, not an empty tree
    assert _rows(local / "link.parquet") == _rows(tmp_path / "link.parquet")
    run_cli("decode", tmp_path / "anon", tmp_path / "img", "--size", "128", "--executor", "dask",
            "--scheduler", dask_cluster.address)
    assert _same_tree(local / "img", tmp_path / "img") >= 20
    here = run_cli("info", EXPORT, "--json", "-j", "2")
    there = run_cli("info", EXPORT, "--json", "--executor", "dask", "--scheduler", dask_cluster.address)
    assert json.loads(here.stdout) == json.loads(there.stdout) and json.loads(here.stdout)
    ran = _cluster_tasks(dask_cluster.client) - before
    from vindr_cli.runner.discover import discover

    # every input of the three runs went to the cluster, once a pass (several to a task): anonymize's
    # two (its first pass reads each header for its study's people, deid.studyterms), info, decode
    assert ran == 3 * len(discover(EXPORT)) + len(discover(tmp_path / "anon")) > 60


def _cluster_tasks(client) -> int:
    """How many items the cluster's workers have run, in all runs (items go several to a task)."""
    return sum(client.run(cluster.items_run).values())


def slow_finder(marker_dir: str, image, frame=0, hints=None, min_side=0):
    """The real text finder, slowed down until the test has killed a worker: each call says
    which worker process holds an item (a file named after its pid) before it works."""
    from vindr_cli.deid.pixeltext import find_text

    d = Path(marker_dir)
    if not (d / "killed").exists():
        (d / f"{os.getpid()}.busy").touch()
        time.sleep(0.5)
    return find_text(image, frame, hints, min_side=min_side)     # min_side: the coarse views too, as the CLI


def _kill_one_busy(marker_dir: Path, pids: set[int], out: list) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = [int(p.name.split(".")[0]) for p in marker_dir.glob("*.busy")]
        busy = [p for p in busy if p in pids]
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            out.append(busy[0])
            (marker_dir / "killed").touch()
            return
        time.sleep(0.05)


def _secret_forms(key: bytes) -> list[bytes]:
    return [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key),
            base64.urlsafe_b64encode(key), base64.b64encode(key).rstrip(b"=")]


def test_worker_killed_mid_run_and_key_never_sent(dask_cluster, local, key, tmp_path):
    import cloudpickle
    from distributed.protocol.pickle import dumps as dask_dumps

    markers = tmp_path / "markers"
    markers.mkdir()
    pids = set(dask_cluster.worker_pids().values())
    assert len(pids) == 2
    out = tmp_path / "anon"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_one_busy, args=(markers, pids, killed), daemon=True)
    killer.start()
    prof = load_profile("basic", dates="shift", options={"retain_patient_characteristics"}, without=set())
    paths = {"INPUT": EXPORT.resolve(), "OUTPUT": out.parent.resolve()}
    ex = cluster.DaskExecutor(dask_cluster.client, paths=paths, output=out.resolve(), batch=4)   # killed mid-batch
    ex.record = True
    # the finder travels in the config, as the real one would (the test's module, by reference)
    s = anonymize(EXPORT, out, key_path=key, profile=prof, workers=2, executor=ex, linkage=tmp_path / "link.parquet",
                  finder=functools.partial(slow_finder, str(markers)))
    killer.join(timeout=60)
    assert killed, "no worker was seen holding an item"
    assert killed[0] not in set(dask_cluster.worker_pids().values())     # it died (the nanny made a new one)
    assert s.counts == Counter(r["status"] for r in _rows(local / "anon" / "manifest.parquet"))   # no WORKER_DIED row
    assert s.total == sum(s.counts.values())      # every input accounted for
    _same_tree(local / "anon", out)
    assert not list((out / ".vindr").glob("tmp/*"))     # no temp file left behind
    assert _rows(local / "link.parquet") == _rows(tmp_path / "link.parquet")

    # what crossed to the workers: the plugin (setup + config) and every task's arguments
    secret = read_key(key)
    assert isinstance(ex.submitted[0][0], cluster.SetupPlugin)
    plugins = [a for a in ex.submitted if isinstance(a[0], cluster.SetupPlugin)]
    assert len(plugins) == 2          # anonymize's first pass (deid.studyterms), then its work: each its own setup
    # every item, several to a task, in each pass
    assert sum(len(args[0]) for args in ex.submitted if args not in plugins) >= 2 * s.total > 40
    assert max(ex.batches) == 4
    forms = _secret_forms(secret)
    for args in ex.submitted:
        for blob in (cloudpickle.dumps(args), dask_dumps(args)):
            assert not any(f in blob for f in forms)
    assert any(f in cloudpickle.dumps((secret,)) for f in forms)    # the search would see it


def _plant_findings(tree: Path, link: Path) -> list[str]:
    """Findings of several kinds at several places of the walk of an anonymized ``tree``: a
    private element, an original name (from the linkage table) in a header, a stray file, an
    output removed. Returns the original names (what must never be sent to a worker)."""
    import pydicom

    names = sorted({r["original_patient_name"] for r in _rows(link) if r.get("original_patient_name")})
    assert names
    outs = sorted(r["output"] for r in _rows(tree / "manifest.parquet") if r["status"] == "ok")
    ds = pydicom.dcmread(tree / outs[1])
    ds.add_new(0x00091010, "LO", "vendor note")
    ds.save_as(tree / outs[1])
    ds = pydicom.dcmread(tree / outs[-2])
    ds.ImageComments = str(names[0]).replace("^", " ")
    ds.save_as(tree / outs[-2])
    (tree / outs[5]).unlink()
    (tree / "notes.txt").write_text("left here by hand\n")
    return [str(n) for n in names]


def test_audit_and_select_on_the_cluster_equal_local(dask_cluster, local, key, tmp_path):
    """`vindr audit` and `vindr select` with --executor dask give what the local pool gives:
    the same findings in the same order (several kinds planted), the same selection files
    and tables. Every input went to the cluster."""
    tree = tmp_path / "anon"
    shutil.copytree(local / "anon", tree)
    link = tmp_path / "anon.linkage.parquet"
    shutil.copy2(local / "link.parquet", link)
    _plant_findings(tree, link)
    before = _cluster_tasks(dask_cluster.client)
    # (headers and bytes here; the pixel scan on the cluster is compared in the next test)
    here = run_cli("audit", tree, "--json", "-j", "2", "--no-pixels", check=False)
    there = run_cli("audit", tree, "--json", "--no-pixels", "--executor", "dask", "--scheduler", dask_cluster.address,
                    check=False)
    assert here.returncode == there.returncode == 1 and "Traceback" not in there.stderr
    a, b = json.loads(here.stdout), json.loads(there.stdout)
    assert a == b
    assert {"private", "phi", "stray-file", "missing-output"} <= set(a["findings_by_kind"])
    assert a["linkage_table_used"] and a["dicom_files"] >= 20
    audited = _cluster_tasks(dask_cluster.client) - before
    assert audited == a["dicom_files"] + 1          # every file read by a worker (notes.txt too: not DICOM)

    run_cli("select", local / "anon", "-o", tmp_path / "sel-here", "-j", "2")
    run_cli("select", local / "anon", "-o", tmp_path / "sel-there", "--executor", "dask", "--scheduler",
            dask_cluster.address)
    here, there = tmp_path / "sel-here", tmp_path / "sel-there"
    skip = (".vindr/", "selection.parquet")
    assert tree_hashes(here, skip=skip) == tree_hashes(there, skip=skip) and list((here / "dicom").iterdir())
    assert _rows(here / "selection.parquet") == _rows(there / "selection.parquet")
    assert _rows(here / ".vindr" / "scan.parquet") == _rows(there / ".vindr" / "scan.parquet")
    assert _cluster_tasks(dask_cluster.client) - before - audited == len(_rows(here / "selection.parquet"))


def test_audit_and_select_send_no_original_value_nor_key(dask_cluster, local, key, tmp_path):
    """What audit and select send to workers (plugin: setup + config; every task's
    arguments) holds no original value of the linkage table (the worker reads the table at
    the shared path) and no form of the key; a worker that reads other linkage bytes than
    the driver stops the run (exit 2) rather than audit without the original values."""
    import cloudpickle
    from distributed.protocol.pickle import dumps as dask_dumps

    from vindr_cli.curate.recipe import load_recipe
    from vindr_cli.curate.select import select
    from vindr_cli.deid.audit import LinkageMismatch, audit

    tree = tmp_path / "anon"
    shutil.copytree(local / "anon", tree)
    link = tmp_path / "anon.linkage.parquet"
    shutil.copy2(local / "link.parquet", link)
    names = _plant_findings(tree, link)
    ids = sorted({str(r["original_patient_id"]) for r in _rows(link) if r.get("original_patient_id")})
    values = [v.encode() for v in names + ids if len(v) >= 5]
    assert values
    forms = _secret_forms(read_key(key)) + values

    ex = cluster.DaskExecutor(dask_cluster.client, paths={"INPUT": tree}, batch=3)
    ex.record = True
    report = audit(tree, link, executor=ex)
    assert any(f.kind == "phi" for f in report.findings)        # the worker did search the original values
    assert report.to_dict() == audit(tree, link).to_dict()      # the same as in this process
    ex2 = cluster.DaskExecutor(dask_cluster.client, paths={"INPUT": local / "anon"}, output=(tmp_path / "sel").resolve())
    ex2.record = True
    select(local / "anon", tmp_path / "sel", load_recipe("vindr-cxr"), executor=ex2)
    for sent in (ex.submitted, ex2.submitted):
        assert isinstance(sent[0][0], cluster.SetupPlugin) and len(sent) > 2
        for args in sent:
            for blob in (cloudpickle.dumps(args), dask_dumps(args)):
                assert not any(f in blob for f in forms)
    assert values[0] in cloudpickle.dumps(names + ids)        # the search would see them

    # the linkage table is replaced after this process read it, before the workers do (the
    # progress callback runs between the two): the workers refuse to audit with other bytes
    def replace_table(done, total):
        if done == 0:
            link.write_bytes(link.read_bytes() + b"\0")

    with pytest.raises(LinkageMismatch) as e:
        audit(tree, link, executor=cluster.DaskExecutor(dask_cluster.client, paths={"INPUT": tree}),
              progress=replace_table)
    assert e.value.exit_code == 2 and "\n" not in str(e.value) and str(tmp_path) not in str(e.value)


def test_worker_that_cannot_see_paths_is_refused(dask_cluster, tmp_path):
    out = tmp_path / "out"
    (out / ".vindr").mkdir(parents=True)
    cluster.check_workers(dask_cluster.client, {"INPUT": EXPORT}, out)      # all see them
    hidden = tmp_path / "only-here"
    with pytest.raises(cluster.WorkersCannotSee) as e:
        cluster.check_workers(dask_cluster.client, {"INPUT": hidden}, out)
    msg = str(e.value)
    assert "2 of 2 Dask workers cannot see INPUT" in msg and str(hidden) not in msg and "\n" not in msg
    assert not list((out / ".vindr").rglob(".vindr-probe-*"))       # the probe is gone

    # a real worker without the shared file system: OUTPUT's folder is an empty tmpfs there
    if os.geteuid() == 0 and shutil.which("unshare"):
        shared = tmp_path / "shared"
        shared.mkdir()
        p = dask_cluster.worker_in_own_mount(shared, "private")
        try:
            dask_cluster.client.wait_for_workers(3, timeout=START_S)
            keys = tmp_path / "keys"
            keys.mkdir(mode=0o700)
            r = run_cli("anonymize", EXPORT, shared / "anon", "--key", keys / "k", "--executor", "dask",
                        "--scheduler", dask_cluster.address, check=False)
            assert r.returncode == 2 and "Traceback" not in r.stderr
            assert "1 of 3 Dask workers cannot see OUTPUT as this machine does" in " ".join(r.stderr.split())
            assert str(shared) not in r.stderr and str(EXPORT) not in r.stderr
            assert not (shared / "anon" / "manifest.parquet").exists()
            assert not list((shared / "anon").rglob("*.dcm"))     # not one file was sent
        finally:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=15)
            deadline = time.monotonic() + START_S
            while dask_cluster.workers() > 2 and time.monotonic() < deadline:
                time.sleep(0.2)
        assert dask_cluster.workers() == 2

    # the CLI: a scheduler that is not there is one line, exit 2
    p = run_cli("info", EXPORT, "--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{_port()}", check=False,
                env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert p.returncode == 2 and "cannot reach the Dask scheduler" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("info", EXPORT, "--executor", "dask", check=False, env={"VINDR_SCHEDULER": ""})
    assert p.returncode == 2 and "needs --scheduler" in p.stderr


def nap_setup(config):
    return config


def nap_task(ctx, item):
    time.sleep(ctx if item == "hung" else 0.0)
    return item.upper()


def test_hung_item_times_out(dask_cluster):
    """The hung item is a failed row; the worker it hangs in is restarted (its thread may
    hold what the worker's next items need); every other item finishes (those after it in
    its batch go again, one per task)."""
    pids = set(dask_cluster.worker_pids().values())
    ex = cluster.DaskExecutor(dask_cluster.client, task_timeout=2.0, batch=4)     # all four in one task
    items = ["a", "hung", "b", "c"]
    got = dict(ex.run(nap_task, items, setup=nap_setup, config=120.0))
    assert got == {"a": "A", "b": "B", "c": "C", "hung": ItemFailed(cluster.TIMED_OUT)}
    dask_cluster.client.wait_for_workers(2, timeout=START_S)
    deadline = time.monotonic() + START_S
    while len(pids & set(dask_cluster.worker_pids().values())) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(pids & set(dask_cluster.worker_pids().values())) == 1     # one new worker process, one old


def full_disk_task(ctx, item):
    if "NGUYEN" in item:
        raise OutputFault("no space left on the device holding OUTPUT: free some space")
    return item


def test_task_error_reaches_the_driver_and_no_worker_log(dask_cluster):
    """A fault a task raises (a full disk) stops the run in the driver with its own type and
    message, and the workers never log the task (whose arguments name the input)."""
    ex = cluster.DaskExecutor(dask_cluster.client)
    with pytest.raises(OutputFault, match="^no space left"):
        list(ex.run(full_disk_task, ["a", "PID0001_NGUYEN_VAN_AN.dcm", "b"], setup=nap_setup, config=None))
    time.sleep(1)        # let the workers flush their logs: a leak would be there by now
    logs = b"".join(p.read_bytes() for p in dask_cluster.logs.glob("*.log"))
    assert b"NGUYEN" not in logs and b"full_disk_task" not in logs


def poison_task(ctx, item):
    if item == "poison":                 # this item kills every worker that reads it
        os.kill(os.getpid(), signal.SIGKILL)
    return item.upper()


def test_item_that_kills_workers_becomes_worker_died(dask_cluster):
    """Dask retries it on other workers (a bounded number of times: the scheduler's
    allowed-failures, 2 here); its batch is then split, each item alone, and the one that
    still kills its workers is ItemFailed(WORKER_DIED)."""
    from vindr_cli.runner.executor import WORKER_DIED

    ex = cluster.DaskExecutor(dask_cluster.client, batch=3)      # one task: it fails whole, then each alone
    got = dict(ex.run(poison_task, ["a", "poison", "b"], setup=nap_setup, config=None))
    assert got == {"a": "A", "b": "B", "poison": ItemFailed(WORKER_DIED)}
    # the batch, then each alone; an item that died alone (the poison, or one that shared its
    # worker) goes once more alone with nothing else in flight
    assert ex.batches[0] == 3 and set(ex.batches[1:]) == {1} and 4 <= len(ex.batches) <= 6
    dask_cluster.client.wait_for_workers(2, timeout=START_S)     # the nannies brought them back


def counting_finder(marker_dir: str, image, frame=0, hints=None, min_side=0):
    """The real text finder, a little slower, leaving one file per call."""
    from vindr_cli.deid.pixeltext import find_text

    (Path(marker_dir) / f"{os.getpid()}-{time.monotonic_ns()}").touch()
    time.sleep(0.2)
    return find_text(image, frame, hints, min_side=min_side)


def _kill_scheduler_after(c: Cluster, marker_dir: Path, calls: int, out: list) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(list(marker_dir.iterdir())) >= calls:
            c.kill_scheduler()
            out.append(True)
            return
        time.sleep(0.05)


def test_scheduler_lost_stops_and_rerun_resumes(dask_cluster, local, key, tmp_path):
    """Last in this module: it kills the module's scheduler (its workers then end too)."""
    prof = load_profile("basic", dates="shift", options={"retain_patient_characteristics"}, without=set())
    out, link = tmp_path / "anon", tmp_path / "link.parquet"
    markers = tmp_path / "markers"
    markers.mkdir()
    killed: list = []
    killer = threading.Thread(target=_kill_scheduler_after, args=(dask_cluster, markers, 12, killed), daemon=True)   # ~2 finder calls per image (first and coarse views)
    killer.start()
    # one item per task: files are journaled one by one before the scheduler goes
    ex = cluster.DaskExecutor(dask_cluster.client, paths={"INPUT": EXPORT}, output=out.resolve(), batch=1)
    with pytest.raises(cluster.SchedulerLost) as e:
        anonymize(EXPORT, out, key_path=key, profile=prof, workers=2, executor=ex, linkage=link,
                  finder=functools.partial(counting_finder, str(markers)))
    killer.join(timeout=60)
    assert killed and e.value.exit_code == 2 and "\n" not in str(e.value) and "run the same command again" in str(e.value)
    journal = out / ".vindr" / "anonymize.journal.jsonl"
    done = len(journal.read_text().splitlines())
    assert 0 < done < len(_rows(local / "anon" / "manifest.parquet"))
    assert not (out / "manifest.parquet").exists()

    # the same command again (the workers end with their scheduler: here on this machine's pool)
    s = anonymize(EXPORT, out, key_path=key, profile=prof, workers=2, linkage=link)
    assert s.resumed >= done - 1 > 0      # (a duplicate's loser may be journaled again)
    _same_tree(local / "anon", out)
    assert _rows(local / "link.parquet") == _rows(link)


def test_batch_size_rule():
    """About TARGET_TASK_S of work per Dask task, within bounds; the tail spread over workers."""
    assert cluster.batch_size(None, None, 2) == cluster.FIRST_BATCH           # nothing timed yet
    assert cluster.batch_size(0.01, None, 2) == round(cluster.TARGET_TASK_S / 0.01)
    assert cluster.batch_size(1e-7, None, 2) == cluster.MAX_BATCH
    assert cluster.batch_size(5.0, None, 2) == 1                              # a slow item: alone
    assert cluster.batch_size(1e-4, 400, 2) == 400 // (cluster.TASKS_PER_WORKER * 2)
    assert cluster.batch_size(1e-4, 3, 2) == 1
    assert cluster.batch_size(5.0, 3, 2, fixed=7) == 7                         # $VINDR_DASK_BATCH
