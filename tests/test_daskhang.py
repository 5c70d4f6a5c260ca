"""`--executor dask` when the scheduler misbehaves (issue 13, daskhang): each case ends in one
fixed line and exit 2 (or 130 for Ctrl-C), never a traceback, a path or a wait without end.

* an address that accepts the TCP connection and then stays silent (a plain socket server),
  or speaks another protocol (an HTTP server): Dask's handshake read has no time limit of its
  own; vindr bounds it with ``distributed.comm.timeouts.connect`` (2 s here);
* nothing listening, a name that does not resolve, ``$VINDR_SCHEDULER`` set to garbage;
* Ctrl-C (SIGINT) while connecting to the silent server: exit 130, the "interrupted" line,
  nothing written;
* a real ``dask scheduler`` with no worker: exit 2 after the same bound, saying so.

Real processes only (the CLI, ``dask scheduler``), on 127.0.0.1; the subprocess timeouts only
keep a regression from hanging the suite.
"""
from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from helpers import VINDR  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXPORT = REPO / "sample_dicoms" / "export"
DASK = Path(sys.executable).parent / "dask"
BOUND = 120          # no run here should come near it: it only keeps a hang from stalling the suite


def _env(**more: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "400"
    env["DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"] = "2s"
    env.pop("VINDR_SCHEDULER", None)
    env.update(more)
    return env


def _vindr(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*VINDR, *map(str, args)], capture_output=True, text=True, env=env or _env(),
                          timeout=BOUND, cwd=REPO)


def _one_error_line(p: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and str(EXPORT) not in p.stderr and "NGUYEN" not in p.stderr
    return lines[0]


class Silent:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def silent():
    s = Silent()
    yield s
    s.close()


@pytest.fixture
def http_server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]        # closed again: nothing listens there


NO_ANSWER = ("did not answer within 2 s: something there accepts connections but does not speak Dask's "
             "protocol")


def test_a_silent_address_ends_in_one_line(silent, tmp_path):
    line = _one_error_line(_vindr("info", EXPORT, "--executor", "dask", "--scheduler", silent.address))
    assert line == (f"error: the Dask scheduler at {silent.address} {NO_ANSWER} (is it a `dask scheduler`, and its "
                    "scheduler port, not the dashboard's?); check --scheduler / $VINDR_SCHEDULER, or raise "
                    "distributed.comm.timeouts.connect (README 'Cluster')")
    assert silent.accepted.is_set()
    # anonymize the same: nothing is written under OUTPUT, and the key is neither read out nor printed
    key = tmp_path / "k.key"
    key.write_text(os.urandom(32).hex() + "\n")
    os.chmod(key, 0o600)
    p = _vindr("anonymize", EXPORT, tmp_path / "anon", "--key", key, "--executor", "dask",
               env=_env(VINDR_SCHEDULER=silent.address))
    assert NO_ANSWER in _one_error_line(p) and key.read_text().strip() not in p.stderr + p.stdout
    assert not (tmp_path / "anon").exists()


def test_an_http_server_at_the_address_ends_in_one_line(http_server):
    line = _one_error_line(_vindr("info", EXPORT, "--executor", "dask", "--scheduler", http_server))
    assert line.startswith(f"error: the Dask scheduler at {http_server} ")
    assert NO_ANSWER in line or "answered with something that is not Dask's protocol" in line


def test_an_answer_dask_cannot_read_ends_in_one_line():
    """A server that answers each connection at once with one frame, in Dask's framing, of bytes
    msgpack cannot read: Dask's client raises (not a wait); vindr names the type only."""
    import struct

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    conns: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                c, _ = sock.accept()
            except OSError:
                return
            conns.append(c)
            c.sendall(struct.pack("<Q", 1) + struct.pack("<Q", 3) + b"\xc1\xc1\xc1")

    threading.Thread(target=serve, daemon=True).start()
    address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    try:
        line = _one_error_line(_vindr("info", EXPORT, "--executor", "dask", "--scheduler", address))
    finally:
        sock.close()
        for c in conns:
            c.close()
    assert line.startswith(f"error: the Dask scheduler at {address} answered with something that is not Dask's "
                           "protocol (")
    assert line.endswith("): is it a `dask scheduler`, and its scheduler port, not the dashboard's?; check "
                         "--scheduler / $VINDR_SCHEDULER (README 'Cluster')")


@pytest.mark.parametrize("address,start", [
    (None, "cannot reach the Dask scheduler at tcp://127.0.0.1:"),      # a port nothing listens on
    ("tcp://vindr-no-such-host.invalid:8786", "cannot reach the Dask scheduler at tcp://vindr-no-such-host.invalid:8786 ("),
], ids=["refused", "no-such-host"])
def test_nothing_listening_and_a_name_that_does_not_resolve(address, start):
    address = address or f"tcp://127.0.0.1:{_refused_port()}"
    line = _one_error_line(_vindr("info", EXPORT, "--executor", "dask", "--scheduler", address))
    assert line.startswith(f"error: {start}") and "waited 2 s): start it, or check --scheduler / $VINDR_SCHEDULER" in line


@pytest.mark.parametrize("garbage,says", [
    ("garbage", "must be an address like tcp://HOST:PORT or tls://HOST:PORT, not 'garbage'"),
    ("foo://bar", "'foo://bar' is not an address Dask can use (ValueError): give tcp://HOST:PORT or tls://HOST:PORT"),
    ("tcp://host:notaport", "'tcp://host:notaport' is not an address Dask can use (ValueError)"),
    ("tcp://", "'tcp://' is not an address Dask can use (ValueError)"),
], ids=["no-scheme", "unknown-scheme", "bad-port", "empty"])
def test_vindr_scheduler_set_to_garbage(garbage, says):
    line = _one_error_line(_vindr("info", EXPORT, "--executor", "dask", env=_env(VINDR_SCHEDULER=garbage)))
    assert says in line


def test_ctrl_c_while_connecting_is_the_interrupted_line_and_nothing_written(silent, tmp_path):
    """SIGINT once the driver has connected to the silent server (it waits for the answer):
    exit 130 and the command's "interrupted" line, long before the connect bound (600 s here),
    and no OUTPUT; the same command then runs (here: locally) from scratch."""
    key = tmp_path / "k.key"
    key.write_text(os.urandom(32).hex() + "\n")
    os.chmod(key, 0o600)
    out = tmp_path / "anon"
    p = subprocess.Popen([*VINDR, "anonymize", str(EXPORT), str(out), "--key", str(key), "--burned-in", "off",
                          "--executor", "dask", "--scheduler", silent.address],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                         env=_env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="600s"),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert silent.accepted.wait(BOUND), "the driver never connected"
        time.sleep(0.5)        # into the wait for the handshake's answer (any moment of it will do)
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=BOUND)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["interrupted: finished files are kept; run the same command again to resume"]
    assert not out.exists()
    q = _vindr("anonymize", EXPORT, out, "--key", key, "--burned-in", "off", "-j", "1")
    assert q.returncode == 0, q.stderr
    assert (out / "manifest.parquet").is_file()


def test_a_scheduler_with_no_worker_says_so_and_ends(tmp_path):
    port = _refused_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "scheduler.log", "ab")
    sched = subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                             stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True, cwd=tmp_path)
    log.close()
    try:
        deadline = time.monotonic() + BOUND
        while True:            # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and sched.poll() is None
                time.sleep(0.2)
        line = _one_error_line(_vindr("info", EXPORT, "--executor", "dask", "--scheduler", address))
        assert line == (f"error: the Dask scheduler at {address} has no worker (waited 2 s): start `dask worker` "
                        "processes, then run again")
    finally:
        os.killpg(sched.pid, signal.SIGTERM)
        try:
            sched.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(sched.pid, signal.SIGKILL)
            sched.wait()


@pytest.fixture(scope="module")
def slow_cluster(tmp_path_factory):
    """A scheduler and one worker whose text finder is slower (daskhang_slow_worker)."""
    from test_dask_cluster import Cluster

    class Slow(Cluster):
        def _spawn(self, name, *args):
            if args[0] == "worker":
                args = (*args, "--preload", "daskhang_slow_worker")
            return super()._spawn(name, *args)

    c = Slow(tmp_path_factory.mktemp("hangdask"), n=1)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _journaled(out: Path) -> int:
    journal = out / ".vindr" / "anonymize.journal.jsonl"
    return len(journal.read_text().splitlines()) if journal.is_file() else 0


def _run_until(args: list, out: Path, files: int, act) -> subprocess.Popen:
    """Start the CLI; once ``files`` inputs are journaled, ``act(process)``; return it ended."""
    p = subprocess.Popen([*VINDR, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=REPO, env=_env(VINDR_DASK_BATCH="1", DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="10s"),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + BOUND
        while _journaled(out) < files and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, ("the run ended before it could be interrupted", p.communicate())
        act(p)
        p.stdout_text, p.stderr_text = p.communicate(timeout=BOUND)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p


def _complete_outputs(out: Path) -> int:
    """Every file under a final name in OUTPUT (not .vindr/) is a whole DICOM file."""
    import pydicom

    n = 0
    for f in out.rglob("*"):
        if f.is_file() and ".vindr" not in f.relative_to(out).parts and f.suffix in (".dcm", ".dicom"):
            pydicom.dcmread(f).PixelData        # a half-written file fails here
            n += 1
    return n


def test_ctrl_c_mid_run_on_the_cluster_keeps_finished_files_and_resumes(slow_cluster, tmp_path):
    from vindr_cli.deid.batch import anonymize
    from vindr_cli.deid.profile import load_profile

    key = tmp_path / "k.key"
    key.write_text(os.urandom(32).hex() + "\n")
    os.chmod(key, 0o600)
    out = tmp_path / "anon"
    args = ["anonymize", EXPORT, out, "--key", key, "--executor", "dask", "--scheduler", slow_cluster.address]
    p = _run_until(args, out, 2, lambda p: p.send_signal(signal.SIGINT))
    assert p.returncode == 130, p.stderr_text
    lines = p.stderr_text.strip().splitlines()
    assert lines[-1] == "interrupted: finished files are kept; run the same command again to resume", lines
    assert "Traceback" not in p.stderr_text and str(EXPORT) not in p.stderr_text
    done = _journaled(out)
    assert done >= 2 and not (out / "manifest.parquet").exists()
    assert _complete_outputs(out) >= 1
    prof = load_profile("basic", dates="shift", options={"retain_patient_characteristics"}, without=set())
    s = anonymize(EXPORT, out, key_path=key, profile=prof, workers=2)      # the same command, here
    assert s.resumed >= done - 1 >= 1 and (out / "manifest.parquet").is_file()
    assert s.total == sum(s.counts.values()) and _complete_outputs(out) >= 1


def test_the_scheduler_killed_mid_run_is_one_line_and_resumes(slow_cluster, tmp_path):
    """Last in this module: it kills the module's scheduler (its worker then ends too)."""
    key = tmp_path / "k.key"
    key.write_text(os.urandom(32).hex() + "\n")
    os.chmod(key, 0o600)
    out = tmp_path / "anon"
    args = ["anonymize", EXPORT, out, "--key", key, "--executor", "dask", "--scheduler", slow_cluster.address]
    p = _run_until(args, out, 2, lambda p: slow_cluster.kill_scheduler())
    assert p.returncode == 2, p.stderr_text
    errors = [ln for ln in p.stderr_text.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: lost the Dask scheduler at {slow_cluster.address} mid-run: finished files are kept; "
                      "restart the scheduler and workers, then run the same command again to resume"], p.stderr_text
    assert "Traceback" not in p.stderr_text and str(EXPORT) not in p.stderr_text
    done = _journaled(out)
    assert done >= 2 and not (out / "manifest.parquet").exists()
    q = _vindr("anonymize", EXPORT, out, "--key", key, "-j", "2")
    assert q.returncode == 0, q.stderr
    assert "resumed:" in q.stdout and (out / "manifest.parquet").is_file()
