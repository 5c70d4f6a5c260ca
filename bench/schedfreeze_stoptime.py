"""From a freeze to the driver's exit (issue 13, schedfreeze): one slowed worker and a scheduler
(tests/test_schedfreeze.py's parts), `vindr anonymize --executor dask` with
``VINDR_SCHEDULER_TIMEOUT=6``; once 2 files are journaled the scheduler (then, in a second run,
the worker) is SIGSTOPped; prints (case, exit code, seconds from the signal to the exit, load).
Every stopped process is continued in ``finally``.

    python bench/schedfreeze_stoptime.py
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from test_schedfreeze import EXPORT, VINDR, Slow, _env, _journaled, _signal, _signal_group  # noqa: E402

base = Path(tempfile.mkdtemp(prefix="schedfreeze-stop-"))
key = base / "k.key"
key.write_text(os.urandom(32).hex() + "\n")
os.chmod(key, 0o600)
c = Slow(base / "logs", n=1)
c.start()
try:
    for case in ("scheduler", "workers"):
        out = base / f"anon-{case}"
        pids = list(c.worker_pids().values())
        c.marker.touch()
        p = subprocess.Popen([*VINDR, "anonymize", str(EXPORT), str(out), "--key", str(key), "--executor", "dask",
                              "--scheduler", c.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO, env=_env(VINDR_DASK_BATCH="1", VINDR_SCHEDULER_TIMEOUT="6"))
        while _journaled(out) < 2 and p.poll() is None:
            time.sleep(0.05)
        t0 = time.monotonic()
        if case == "scheduler":
            _signal_group(c.scheduler.pid, signal.SIGSTOP)
        else:
            _signal(pids, signal.SIGSTOP)
        try:
            _, err = p.communicate(timeout=200)
        finally:
            _signal_group(c.scheduler.pid, signal.SIGCONT)
            _signal(pids, signal.SIGCONT)
            c.marker.unlink(missing_ok=True)
        print(case, p.returncode, round(time.monotonic() - t0, 1), round(os.getloadavg()[0], 1),
              [ln[:70] for ln in err.splitlines() if ln.startswith("error:")], flush=True)
        time.sleep(3)
finally:
    c.stop()
