"""Faults of the machine and of concurrency: a worker that dies costs only its file, workers
die with the driver, one run at a time per OUTPUT, and a full, read-only or unwritable
OUTPUT is named (exit 2) instead of an internal error or a failed row.

No test here depends on the machine's speed: runs that must be caught mid-way are frozen
with SIGSTOP first, and every wait is a poll with a hang guard far above need."""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import make_cr
from helpers import decoded_rows, key_hex, run_cli, split_file, VINDR
from vindr_cli import errors
from vindr_cli.deid.profile import load_profile
from vindr_cli.runner.executor import OOM_SCORE_ADJ, WORKER_DIED, InProcessExecutor, ItemFailed, ProcessExecutor
from vindr_cli.runner.faults import output_fault
from vindr_cli.runner.lock import OutputLock, OutputLocked

HANG_GUARD_S = 300          # only a hang guard: each wait below takes well under a second when idle
MARK = "marked"             # an input whose name holds this kills its worker (the tasks below)


def _deid(d):
    d.PatientIdentityRemoved = "YES"


def _tree(root: Path, n: int, *, rows=64, cols=48, marked: int | None = None) -> Path:
    """``n`` de-identified CR files under ``root``; file ``marked`` (if any) is named with MARK."""
    for i in range(n):
        name = f"{MARK}{i:03d}.dcm" if i == marked else f"{i:03d}.dcm"
        make_cr(root / f"p{i % 3}" / name, sop=f"1.2.826.0.1.3680043.10.543.9.{i}", rows=rows, cols=cols, seed=i,
                extra=_deid)
    return root


def _poll(what: str, cond, proc: subprocess.Popen | None = None, guard: float = HANG_GUARD_S):
    """Poll ``cond()`` until it is truthy (returned); fail clearly on a hang."""
    start = time.monotonic()
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() - start > guard:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            pytest.fail(f"hang guard: {what} after {guard} s")
        time.sleep(0.01)


# --- the executor: a worker that dies costs only its item ----------------------------------------

def _setup(cfg):
    return cfg


def _kill_on_mark(ctx, item):
    if item == ctx:
        os.kill(os.getpid(), signal.SIGKILL)
    return item * 2


def _kill_first_try(ctx, item):
    """Kills its worker the first time it sees item ``ctx`` (a marker file says it did)."""
    flag = Path(os.environ["VINDR_TEST_FLAG"])
    if item == ctx and not flag.exists():
        flag.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return item * 2


def test_a_worker_that_dies_costs_only_its_item():
    got = dict(ProcessExecutor(2, in_flight=4).run(_kill_on_mark, range(30), setup=_setup, config=7))
    assert set(got) == set(range(30))
    assert got[7] == ItemFailed(WORKER_DIED)
    assert all(got[i] == i * 2 for i in range(30) if i != 7)


def test_an_item_in_flight_when_a_worker_died_is_tried_again(tmp_path, monkeypatch):
    """Killed once (a signal from outside, not the item's fault): retried alone, it succeeds."""
    monkeypatch.setenv("VINDR_TEST_FLAG", str(tmp_path / "flag"))
    got = dict(ProcessExecutor(2, in_flight=4).run(_kill_first_try, range(20), setup=_setup, config=3))
    assert (tmp_path / "flag").exists()             # the worker did die
    assert got == {i: i * 2 for i in range(20)}


def _pid_and_double(ctx, item):
    return os.getpid(), item * 2


def test_a_worker_killed_while_idle_costs_nothing():
    """Killed between items (nothing in flight: the next submit, or its future, finds the pool
    broken): every item still comes back, none failed."""
    gen = ProcessExecutor(2, in_flight=1).run(_pid_and_double, range(10), setup=_setup, config=None)
    item, (pid, value) = next(gen)                   # the generator waits here: nothing in flight
    os.kill(pid, signal.SIGKILL)
    _poll("the killed worker is still running", lambda: not _alive(pid))
    got = {item: value, **{i: r[1] for i, r in gen}}
    assert got == {i: i * 2 for i in range(10)}


def _die_in_setup(cfg):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_that_dies_in_setup_blames_no_item():
    from vindr_cli.runner.executor import WorkerStartFailed

    with pytest.raises(WorkerStartFailed, match="before it read any file"):
        list(ProcessExecutor(2).run(_kill_on_mark, range(5), setup=_die_in_setup, config=None))


def _pdeathsig(ctx, item):
    import ctypes

    sig = ctypes.c_int(-1)
    ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(sig), 0, 0, 0)    # PR_GET_PDEATHSIG
    return sig.value


def _oom_score_adj(ctx, item):
    return int(Path("/proc/self/oom_score_adj").read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and oom_score_adj are Linux's")
def test_workers_ask_to_die_with_their_parent_and_before_it():
    got = dict(ProcessExecutor(2).run(_pdeathsig, range(4), setup=_setup, config=None))
    assert set(got.values()) == {int(signal.SIGKILL)}
    mine = int(Path("/proc/self/oom_score_adj").read_text())
    got = dict(ProcessExecutor(2).run(_oom_score_adj, range(4), setup=_setup, config=None))
    assert set(got.values()) == {max(mine, OOM_SCORE_ADJ)}


# --- the runner: the stage's failed row for a dead worker ------------------------------------------

def _killing_decode(ctx, src):
    from vindr_cli.pixels.task import decode_one

    if MARK in src.rel and src.missing_reason is None:
        os.kill(os.getpid(), signal.SIGKILL)
    return decode_one(ctx, src)


def test_decode_stage_with_a_worker_killed_by_one_input(tmp_path):
    from vindr_cli.pixels.batch import DecodeStage
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import DecodeConfig
    from vindr_cli.runner.stage import run_stage

    class KillingDecode(DecodeStage):
        task = staticmethod(_killing_decode)

    src = _tree(tmp_path / "in", 12, marked=5)
    out = tmp_path / "o"
    stage = KillingDecode(out, DecodeConfig(output=str(out), size=SizeSpec()))
    s = run_stage(stage, src, executor=ProcessExecutor(2, in_flight=4))
    rows = decoded_rows(out, src)          # not an anonymize OUTPUT: keyed names, mapped back to the paths
    assert len(rows) == 12 and s.inputs == 12
    (bad,) = [r for r in rows if r["status"] != "ok"]
    assert MARK in bad["input"] and bad["status"] == "failed" and bad["reason"] == WORKER_DIED
    assert not any(MARK in r["output"] for r in rows if r["status"] == "ok")
    assert s.counts == {"ok": 11, "failed": 1} and s.reasons == {("failed", WORKER_DIED): 1}
    assert all((out / r["output"]).is_file() for r in rows if r["status"] == "ok")
    assert not (out / ".vindr" / "tmp").exists()


def test_anonymize_stage_builds_its_failed_rows_for_an_item_failed(tmp_path, key_file):
    """Stage.failed goes through the task's own path for an unreadable input: both tables."""
    from vindr_cli.deid.batch import anonymize

    class FailingExecutor(InProcessExecutor):
        def run(self, task, items, *, setup, config):
            for item, result in super().run(task, items, setup=setup, config=config):
                yield item, (ItemFailed(WORKER_DIED) if item.rel.endswith("001.dcm") else result)

    src = _tree(tmp_path / "in", 3)
    out = tmp_path / "o"
    s = anonymize(src, out, key_path=key_file, profile=load_profile("basic"), workers=1, executor=FailingExecutor())
    assert s.counts == {"ok": 2, "failed": 1}
    man = pq.read_table(out / "manifest.parquet").to_pylist()
    link = pq.read_table(s.linkage).to_pylist()
    (bad,) = [r for r in man if r["status"] == "failed"]
    assert bad["reason"] == WORKER_DIED and bad["output"] is None
    (lbad,) = [r for r in link if r["input_key"] == bad["input_key"]]
    assert lbad["status"] == "failed" and lbad["input_path"].endswith("001.dcm")
    p = run_cli("anonymize", src, out, "--key", key_file)       # a re-run tries the failed input again
    assert "already done" in p.stdout
    assert {r["status"] for r in pq.read_table(out / "manifest.parquet").to_pylist()} == {"ok"}


# --- the CLI: worker deaths, orphans, the lock --------------------------------------------------------

def _children(pid: int) -> set[int]:
    """Live worker processes of ``pid``: its children running the same command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return set()
    out = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat_ = (d / "stat").read_text()
            fields = stat_[stat_.rindex(")") + 2:].split()
            if int(fields[1]) == pid and fields[0] != "Z" and (d / "cmdline").read_bytes() == cmd:
                out.add(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie is dead: only its exit status is left)."""
    try:
        stat_ = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_[stat_.rindex(")") + 2:].split()[0] != "Z"


def _decode_cli(src, out, *extra, env=None):
    e = dict(os.environ, COLUMNS="200", **(env or {}))
    return subprocess.Popen([*VINDR, "decode", src, out, "-j", "2", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=e)


def _frozen_mid_run(proc):
    """Wait for the pool's two workers, then freeze the driver (SIGSTOP) so that the test acts
    while the run is mid-way, however fast the machine is; returns the worker pids."""
    def workers():
        if proc.poll() is not None:
            pytest.fail(f"decode ended ({proc.returncode}) before its workers were seen")
        found = _children(proc.pid)
        return found if len(found) == 2 else None
    found = _poll("no worker processes", workers, proc)
    os.kill(proc.pid, signal.SIGSTOP)
    return found


def test_cli_decode_finishes_when_a_worker_is_killed_mid_run(tmp_path):
    n = 150
    src = _tree(tmp_path / "in", n, rows=256, cols=256)
    out = tmp_path / "o"
    proc = _decode_cli(src, out)
    try:
        workers = _frozen_mid_run(proc)
        done = len(list(out.rglob("*.png")))
        assert done < n - 8, "the driver should be frozen before the last in-flight window"
        os.kill(min(workers), signal.SIGKILL)
        os.kill(proc.pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, stderr
    rows = pq.read_table(out / "images.parquet").to_pylist()
    assert len(rows) == n and {r["status"] for r in rows} == {"ok"}      # killed from outside: retried, fine
    assert len(list(out.rglob("*.png"))) == n


KILLING_CLI = textwrap.dedent("""
    import os, signal, sys
    import vindr_cli.pixels.batch as batch
    from vindr_cli.pixels.task import decode_one

    def killing(ctx, src):
        if "{mark}" in src.rel and src.missing_reason is None:
            os.kill(os.getpid(), signal.SIGKILL)
        return decode_one(ctx, src)

    batch.DecodeStage.task = staticmethod(killing)
    from vindr_cli.cli import main
    sys.argv = ["vindr"] + sys.argv[1:]
    main()
""").format(mark=MARK)


@pytest.mark.parametrize("strict", [False, True])
def test_cli_decode_with_an_input_that_kills_its_worker(tmp_path, strict):
    """The CLI's whole path: the culprit's failed row, every table written, exit 0 (1 with --strict)."""
    src = _tree(tmp_path / "in", 10, marked=4)
    out = tmp_path / "o"
    p = subprocess.run([sys.executable, "-c", KILLING_CLI, "decode", src, out, "-j", "2",
                        *(["--strict"] if strict else [])], capture_output=True, text=True,
                       env=dict(os.environ, COLUMNS="200"), timeout=HANG_GUARD_S)
    assert p.returncode == (1 if strict else 0), p.stderr
    assert WORKER_DIED in p.stdout and "internal error" not in p.stderr
    rows = pq.read_table(out / "images.parquet").to_pylist()
    assert len(rows) == 10
    assert [r["reason"] for r in rows if r["status"] != "ok"] == [WORKER_DIED]


def test_workers_die_with_a_killed_driver(tmp_path):
    src = _tree(tmp_path / "in", 150, rows=256, cols=256)
    proc = _decode_cli(src, tmp_path / "o")
    workers: set[int] = set()
    try:
        workers = _frozen_mid_run(proc)
        os.kill(proc.pid, signal.SIGKILL)          # kill -9 of the main process
        proc.wait(timeout=HANG_GUARD_S)
        _poll("workers still running after their driver was killed", lambda: not any(_alive(w) for w in workers))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for w in workers:                          # clean up after a failure (these are the test's own)
            if _alive(w):
                os.kill(w, signal.SIGKILL)
    assert workers and not any(_alive(w) for w in workers)


def test_a_second_run_into_one_output_is_refused_and_a_stale_lock_is_not(tmp_path):
    src = _tree(tmp_path / "in", 150, rows=256, cols=256)
    out = tmp_path / "o"
    first = _decode_cli(src, out)
    try:
        workers = _frozen_mid_run(first)
        lock = out / ".vindr" / "lock"
        assert f'"pid": {first.pid}' in lock.read_text()
        def workers_hold_lock():                   # a worker closes its copy right after fork
            return any(os.path.realpath(f) == str(lock) for w in workers for f in Path(f"/proc/{w}/fd").iterdir())
        _poll("a worker still holds the lock file open", lambda: not workers_hold_lock())
        p = run_cli("decode", src, out, "-j", "2", check=False)
        assert p.returncode == 2
        msg = " ".join(p.stderr.split())
        assert f"in use by another vindr run (pid {first.pid} on host {socket.gethostname()})" in msg
        key = tmp_path / "keys" / "other.key"       # an existing key: the lock, not the key, must refuse it
        key.parent.mkdir(mode=0o700)
        key.write_text(key_hex("ef") + "\n")
        key.chmod(0o600)
        p = run_cli("anonymize", src, out, "--key", key, check=False)   # refused, whatever the stage
        assert p.returncode == 2 and "in use by another vindr run" in " ".join(p.stderr.split())
        assert not (out / "manifest.parquet").exists()
        os.kill(first.pid, signal.SIGKILL)         # a killed run leaves a stale lock file behind
        first.wait(timeout=HANG_GUARD_S)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert lock.read_text()                        # still naming the dead run: it blocks nothing
    p = run_cli("decode", src, out, "-j", "2")
    rows = pq.read_table(out / "images.parquet").to_pylist()
    assert len(rows) == 150 and {r["status"] for r in rows} == {"ok"}
    assert not lock.exists()                       # released and removed at the end


def test_output_lock_in_process(tmp_path):
    a, b = OutputLock(tmp_path / "o"), OutputLock(tmp_path / "o")
    with a:
        with pytest.raises(OutputLocked, match=f"pid {os.getpid()} on host"):
            b.acquire()
        assert not b.held and a.held
    assert not a.path.exists()
    b.acquire()                                    # released: free again
    b.release()
    (tmp_path / "o" / ".vindr").mkdir(exist_ok=True)
    (tmp_path / "o" / ".vindr" / "lock").write_text('{"pid": 1, "host": "gone"}')   # stale content, no holder
    with OutputLock(tmp_path / "o") as c:
        assert c.held


# --- environmental faults are named ------------------------------------------------------------------

def test_output_fault_names_what_and_where(tmp_path):
    out = tmp_path / "o"
    link = tmp_path / "o.linkage.parquet"
    full = output_fault(OSError(errno.ENOSPC, "No space left on device"), out)
    assert isinstance(full, errors.RequestError) and full.exit_code == 2
    assert str(full).startswith("no space left on the device holding OUTPUT")
    assert "disk quota exceeded" in str(output_fault(OSError(errno.EDQUOT, "q", str(out / "a.png")), out))
    ro = output_fault(OSError(errno.EROFS, "Read-only file system", str(out / ".vindr")), out)
    assert str(ro).startswith("OUTPUT is on a read-only file system")
    denied = output_fault(PermissionError(errno.EACCES, "Permission denied", str(out / "P1" / "x.png")), out)
    assert str(denied).startswith("permission denied writing OUTPUT/P1/x.png")
    assert str(output_fault(PermissionError(errno.EPERM, "x", str(out)), out)).startswith("permission denied writing OUTPUT:")
    # a path outside OUTPUT that the run writes (the linkage table, or its atomic temp file) is named as given
    tmp_link = tmp_path / ".o.linkage.parquet.k2j4.vindr-part"
    assert f"writing {link}" in str(output_fault(PermissionError(errno.EACCES, "x", str(tmp_link)), out, [link]))
    assert f"holding {link}" in str(output_fault(OSError(errno.ENOSPC, "x", str(link)), out, [link]))
    # a permission error elsewhere may be an input that cannot be read: not named, not turned into exit 2
    assert output_fault(PermissionError(errno.EACCES, "x", str(tmp_path / "in" / "NGUYEN.dcm")), out, [link]) is None
    assert output_fault(PermissionError(errno.EACCES, "x"), out) is None
    assert output_fault(OSError(errno.EIO, "x", str(out / "a.png")), out) is None
    assert output_fault(ValueError("x"), out) is None


def _enospc_after(n: int, real):
    calls = {"n": 0}

    def write(*a, **kw):
        calls["n"] += 1
        if calls["n"] > n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **kw)
    return write


@pytest.mark.parametrize("executor", ["in-process", "process"])
def test_decode_worker_out_of_space_stops_the_batch_and_resumes(tmp_path, monkeypatch, executor):
    from vindr_cli.pixels import output as naming
    from vindr_cli.pixels.batch import decode_tree
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import DecodeConfig

    src = _tree(tmp_path / "in", 12)
    out = tmp_path / "o"
    cfg = DecodeConfig(output=str(out), size=SizeSpec())
    real = naming.write_image
    # workers fork from this process: the patch reaches them too (each worker's own count)
    monkeypatch.setattr(naming, "write_image", _enospc_after(3, real))
    ex = InProcessExecutor() if executor == "in-process" else ProcessExecutor(2, in_flight=2)
    with pytest.raises(errors.OutputFault, match="^no space left on the device holding OUTPUT: free some space"):
        decode_tree(src, out, cfg, workers=2, executor=ex)
    assert not (out / "images.parquet").exists()
    journal = (out / ".vindr" / "decode.journal.jsonl").read_text()
    assert '"failed"' not in journal                     # the disk's fault, not a file's
    finals = [p for p in out.rglob("*.png")]
    assert 3 <= len(finals) < 12 and all(p.stat().st_size > 0 for p in finals)
    monkeypatch.setattr(naming, "write_image", real)
    s = decode_tree(src, out, cfg, workers=2, executor=InProcessExecutor())
    assert s.resumed >= 3 and s.counts == {"ok": 12}


def test_anonymize_worker_out_of_space_stops_the_batch(tmp_path, monkeypatch, key_file):
    from vindr_cli.deid import task
    from vindr_cli.deid.batch import anonymize

    src = _tree(tmp_path / "in", 6)
    out = tmp_path / "o"
    monkeypatch.setattr(task, "_write", _enospc_after(2, task._write))
    with pytest.raises(errors.OutputFault, match="no space left on the device holding OUTPUT"):
        anonymize(src, out, key_path=key_file, profile=load_profile("basic"), workers=1)
    assert not (out / "manifest.parquet").exists()
    assert len([p for p in out.rglob("*.dcm")]) == 2 and not list(out.rglob("*.vindr-part"))


def test_driver_permission_denied_names_the_path_under_output(tmp_path, monkeypatch):
    from vindr_cli.pixels import output as naming
    from vindr_cli.pixels.batch import decode_tree
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import DecodeConfig
    from vindr_cli.runner.stage import Run

    src = _tree(tmp_path / "in", 3)
    out = tmp_path / "o"

    def denied(self, tmp, rel):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.output / rel))

    monkeypatch.setattr(Run, "rename", denied)
    with pytest.raises(errors.OutputFault, match=r"^permission denied writing OUTPUT/[0-9a-f]{32}\.png") as e:
        decode_tree(src, out, DecodeConfig(output=str(out), size=SizeSpec()), workers=1)
    # the first input's keyed name (a raw tree is named by keyed hashes of its paths), relative to OUTPUT
    salt = naming.read_salt(out / ".vindr" / naming.SALT_FILE)
    assert str(e.value).startswith(f"permission denied writing OUTPUT/{naming.keyed_name(salt, 'p0/000.dcm')}.png:")
    assert str(out) not in str(e.value)


def test_driver_out_of_space_in_its_journal_stops_the_run(tmp_path, monkeypatch):
    from vindr_cli.pixels.batch import decode_tree
    from vindr_cli.pixels.resize import SizeSpec
    from vindr_cli.pixels.task import DecodeConfig
    from vindr_cli.runner.state import StageState

    src = _tree(tmp_path / "in", 3)
    out = tmp_path / "o"

    def full(self, key, rows):
        raise OSError(errno.ENOSPC, "No space left on device")   # a write to an open file: no path

    monkeypatch.setattr(StageState, "append", full)
    with pytest.raises(errors.OutputFault, match="^no space left on the device holding OUTPUT"):
        decode_tree(src, out, DecodeConfig(output=str(out), size=SizeSpec()), workers=1)
    assert not (out / "images.parquet").exists() and not (out / ".vindr" / "lock").exists()


@pytest.fixture
def tmpfs(tmp_path):
    """A tiny tmpfs (root only): a real full or read-only file system."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_cli_full_disk_exits_2_and_a_rerun_resumes(tmp_path, tmpfs, key_file):
    src = tmp_path / "in"
    for i in range(12):                      # ~256 KB each: the 400 KB tmpfs fills on the second
        make_cr(src / f"{i:02d}.dcm", sop=f"1.2.826.0.1.3680043.10.543.7.{i}", rows=512, cols=256, seed=i)
    out = tmpfs / "o"
    p = run_cli("anonymize", src, out, "--key", key_file, "--no-linkage", "-j", "2", check=False)
    assert p.returncode == 2, p.stderr
    msg = " ".join(p.stderr.split())
    assert "no space left on the device holding OUTPUT" in msg and "internal error" not in msg
    assert not (out / "manifest.parquet").exists()
    for f in out.rglob("*.dcm"):             # nothing partial under a final name
        assert split_file(f)[1] is not None
    subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs)], check=True)
    p = run_cli("anonymize", src, out, "--key", key_file, "--no-linkage", "-j", "2")
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}


def test_cli_read_only_output_exits_2(tmp_path, tmpfs, key_file):
    src = _tree(tmp_path / "in", 3)
    run_cli("decode", src, tmpfs / "o")                            # an OUTPUT made before, then mounted read-only
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    for args in (["decode", src, tmpfs / "o", "-j", "2"], ["decode", src, tmpfs / "new"],
                 ["anonymize", src, tmpfs / "a", "--key", key_file, "--no-linkage"]):
        p = run_cli(*args, check=False)
        assert p.returncode == 2, p.stderr
        assert "OUTPUT is on a read-only file system" in " ".join(p.stderr.split())


def test_a_key_file_that_cannot_be_created_is_named_exit_2(tmp_path):
    """Creating the default key is a write the runner does not own: a folder that cannot
    hold it (here a path through a regular file; as root, permissions cannot be used) is an
    environmental fault, exit 2 naming the key path, never an internal error."""
    (tmp_path / "in").mkdir()
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    p = run_cli("anonymize", tmp_path / "in", tmp_path / "o", "--key", blocker / "vindr.key", check=False)
    msg = " ".join(p.stderr.split())
    assert p.returncode == 2, p.stderr
    assert f"cannot create the key file {blocker / 'vindr.key'}: a file stands where its folder should be" in msg
    assert "internal error" not in msg and "Traceback" not in msg


def test_a_worker_whose_driver_died_before_its_setup_exits_at_once():
    """A worker forked just before the driver is killed runs its setup with init as its
    parent: it must compare with the driver's pid known before the fork, and leave."""
    code = "import os; from vindr_cli.runner.executor import die_with_parent; die_with_parent(os.getppid() + 999999); print('alive')"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 1 and "alive" not in p.stdout
    code = "import os; from vindr_cli.runner.executor import die_with_parent; print(die_with_parent(os.getppid()))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() in ("prctl", "watchdog")
