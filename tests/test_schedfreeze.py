"""`--executor dask` when the cluster freezes mid-run (issue 13, schedfreeze): a `dask scheduler`
stopped with SIGSTOP (alive, its socket open, never answering), the link to it cut (a proxy
that stops forwarding: a partition as the driver sees it), or every `dask worker` stopped
while the scheduler answers, ends the run with one fixed line and exit 2 once the cluster has
been silent for ``$VINDR_SCHEDULER_TIMEOUT`` seconds (set short here; 120 s by default), never
a wait without end. The journal holds what finished; after SIGCONT the same command on the
same cluster resumes and writes the tree a local run writes.

Real processes only (the CLI, ``dask scheduler``, ``dask worker`` with a slower text finder so
that the run is still going when it is frozen), on 127.0.0.1; every stopped process is
continued (and the cluster stopped) in ``finally``. No assertion on times: the subprocess
timeouts only keep a regression from hanging the suite.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from helpers import VINDR, run_cli  # noqa: E402
from test_dask_cluster import Cluster, _same_tree  # noqa: E402
from test_daskhang import BOUND, EXPORT, REPO, _env, _journaled  # noqa: E402

SILENCE = "10"       # the bound the frozen runs use (seconds): short for a test, with room for 2 loaded cores


class Slow(Cluster):
    """A scheduler and one worker whose text finder is 0.3 s slower per call while the file
    :attr:`marker` exists (schedfreeze_slow_worker): the frozen runs are slow, the re-runs not."""

    def __init__(self, logs: Path, n: int = 1):
        super().__init__(logs, n)
        self.marker = logs / "slow"

    def _spawn(self, name, *args):
        if args[0] == "worker":
            args = (*args, "--preload", "schedfreeze_slow_worker")
        os.environ["VINDR_TEST_SLOW_MARKER"] = str(self.marker)      # read by Cluster's _env() for the worker
        try:
            return super()._spawn(name, *args)
        finally:
            del os.environ["VINDR_TEST_SLOW_MARKER"]


@pytest.fixture(scope="module")
def frozen_cluster(tmp_path_factory):
    c = Slow(tmp_path_factory.mktemp("freezedask"), n=1)
    try:
        c.start()
        yield c
    finally:
        for p in c.procs:                 # a stopped process group is continued before it is ended
            _signal_group(p.pid, signal.SIGCONT)
        c.stop()


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    p = d / "k.key"
    p.write_text(os.urandom(32).hex() + "\n")
    os.chmod(p, 0o600)
    return p


@pytest.fixture(scope="module")
def local(tmp_path_factory, key) -> Path:
    """The reference: the sample export anonymized on this machine with the same key."""
    out = tmp_path_factory.mktemp("local") / "anon"
    run_cli("anonymize", EXPORT, out, "--key", key, "-j", "2")
    return out


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _signal(pids, sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _run_until(args: list, out: Path, files: int, act, marker: Path, **env: str) -> subprocess.Popen:
    """Start the CLI (the workers slowed); once ``files`` inputs are journaled, ``act()``; return
    the process ended (the workers at full speed again)."""
    marker.touch()
    p = subprocess.Popen([*VINDR, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=REPO, env=_env(VINDR_DASK_BATCH="1", DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="10s",
                                            **env))
    try:
        deadline = time.monotonic() + BOUND
        while _journaled(out) < files and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, ("the run ended before the cluster was frozen", p.communicate())
        act()
        p.stdout_text, p.stderr_text = p.communicate(timeout=BOUND)
    finally:
        marker.unlink(missing_ok=True)
        if p.poll() is None:
            p.kill()
            p.wait()
    return p


def _stopped_line(p: subprocess.Popen, out: Path) -> str:
    """The run ended with exit 2 and one error line (no traceback, no path); the journal holds
    what finished and no table was written."""
    assert p.returncode == 2, (p.returncode, p.stderr_text)
    errors = [ln for ln in p.stderr_text.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, p.stderr_text
    assert "Traceback" not in p.stderr_text and str(EXPORT) not in p.stderr_text and str(out) not in p.stderr_text
    assert _journaled(out) >= 2 and not (out / "manifest.parquet").exists()
    return errors[0]


def _resumes_on_the_cluster(args: list, out: Path, local: Path) -> None:
    q = subprocess.run([*VINDR, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=BOUND,
                       env=_env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="30s"))
    assert q.returncode == 0, q.stderr
    assert "resumed:" in q.stdout and (out / "manifest.parquet").is_file()
    assert _same_tree(local, out) >= 20


def test_a_bad_silence_bound_is_refused_before_connecting():
    for bad in ("0", "soon", "nan"):
        p = subprocess.run([*VINDR, "info", EXPORT, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"],
                           capture_output=True, text=True, cwd=REPO, timeout=BOUND,
                           env=_env(VINDR_SCHEDULER_TIMEOUT=bad))
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and lines == ["error: $VINDR_SCHEDULER_TIMEOUT must be a positive number of seconds "
                                               "(how long the Dask scheduler may go without answering mid-run)"], \
            (bad, p.stderr)


def test_every_worker_stopped_mid_run_is_one_line_and_resumes(frozen_cluster, key, local, tmp_path):
    """SIGSTOP stops the worker's --task-timeout thread too: only the driver can notice."""
    out = tmp_path / "anon"
    args = ["anonymize", EXPORT, out, "--key", key, "--executor", "dask", "--scheduler", frozen_cluster.address]
    pids = set(frozen_cluster.worker_pids().values())
    assert pids
    try:
        p = _run_until(args, out, 2, lambda: _signal(pids, signal.SIGSTOP), frozen_cluster.marker,
                       VINDR_SCHEDULER_TIMEOUT=SILENCE)
    finally:
        _signal(pids, signal.SIGCONT)
    line = _stopped_line(p, out)
    assert line == (f"error: no Dask worker has answered the scheduler at {frozen_cluster.address} for {SILENCE} s "
                    "mid-run (every worker stopped, hung or unreachable, or none left): finished files are kept; "
                    "restart the workers, then run the same command again to resume (the bound: "
                    "$VINDR_SCHEDULER_TIMEOUT, README 'Cluster')")
    _resumes_on_the_cluster(args, out, local)


def test_the_scheduler_stopped_mid_run_is_one_line_and_resumes(frozen_cluster, key, local, tmp_path):
    out = tmp_path / "anon"
    args = ["anonymize", EXPORT, out, "--key", key, "--executor", "dask", "--scheduler", frozen_cluster.address]
    sched = frozen_cluster.scheduler.pid
    try:
        p = _run_until(args, out, 2, lambda: _signal_group(sched, signal.SIGSTOP), frozen_cluster.marker,
                       VINDR_SCHEDULER_TIMEOUT=SILENCE)
    finally:
        _signal_group(sched, signal.SIGCONT)
    line = _stopped_line(p, out)
    assert line == (f"error: the Dask scheduler at {frozen_cluster.address} has not answered for {SILENCE} s mid-run "
                    "(stopped, hung or unreachable): finished files are kept; restart the scheduler and workers, then "
                    "run the same command again to resume (the bound: $VINDR_SCHEDULER_TIMEOUT, README 'Cluster')")
    _resumes_on_the_cluster(args, out, local)        # the same scheduler, continued


class Proxy:
    """A TCP proxy on 127.0.0.1 to ``target`` (tcp://HOST:PORT) whose link can be cut: after
    :attr:`cut` is set it forwards nothing more in either direction and connects nothing new,
    but keeps every socket open (what the driver sees of a network partition, and of a stopped
    scheduler: its kernel, here the proxy's, still acknowledges)."""

    def __init__(self, target: str):
        host, port = target.rsplit("/", 1)[1].rsplit(":", 1)
        self.target = (host, int(port))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.cut = threading.Event()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.socks.append(c)
            if self.cut.is_set():
                continue                       # accepted, never forwarded
            u = socket.create_connection(self.target)
            self.socks.append(u)
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self.cut.is_set():
                if not select.select([a], [], [], 0.1)[0]:
                    continue
                data = a.recv(65536)
                if not data:
                    b.shutdown(socket.SHUT_WR)
                    return
                if not self.cut.is_set():
                    b.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()
        for s in self.socks:
            s.close()


def test_the_link_to_the_scheduler_cut_mid_run_is_one_line_and_resumes(frozen_cluster, key, local, tmp_path):
    out = tmp_path / "anon"
    proxy = Proxy(frozen_cluster.address)
    args = ["anonymize", EXPORT, out, "--key", key, "--executor", "dask", "--scheduler", proxy.address]
    try:
        p = _run_until(args, out, 2, proxy.cut.set, frozen_cluster.marker,
                       VINDR_SCHEDULER_TIMEOUT=SILENCE)
    finally:
        proxy.close()
    line = _stopped_line(p, out)
    assert line == (f"error: the Dask scheduler at {proxy.address} has not answered for {SILENCE} s mid-run "
                    "(stopped, hung or unreachable): finished files are kept; restart the scheduler and workers, then "
                    "run the same command again to resume (the bound: $VINDR_SCHEDULER_TIMEOUT, README 'Cluster')")
    args[-1] = frozen_cluster.address                 # the link back: the same scheduler, reached directly
    _resumes_on_the_cluster(args, out, local)
