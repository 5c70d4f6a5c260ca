"""Running a stage on a Dask cluster: connect, check the workers, set them up, read results.

:func:`vindr_cli.runner.backend.open_executor` is what the CLI calls for
``--executor local|dask``; for ``dask`` it calls :func:`open_dask`, which connects to
the scheduler (``--scheduler tcp://HOST:PORT``, else ``$VINDR_SCHEDULER``; a ``tls://``
address uses the TLS settings of Dask's own configuration, ``distributed.comm.tls.*``),
waits a bounded time for a worker, and returns the client and a :class:`DaskExecutor`.
:func:`connect` bounds both waits itself (Dask's client waits for a scheduler's first answer
without end) and runs them in a thread, so Ctrl-C ends them at once.

Deployment contract (checked, not assumed): the driver and every worker see INPUT, OUTPUT
and the key file at the same paths, on a shared file system. Before the first item is
sent, :func:`check_workers` writes a random token under ``OUTPUT/.vindr/tmp`` and asks
every worker to read it back, to write and remove a file there, and to read INPUT; a worker
that cannot is a :class:`WorkersCannotSee` (exit 2, one line naming the worker's address,
never a path). The key never crosses the network: the stage's ``config`` holds the key
file's path and fingerprint, and ``setup`` on each worker reads the file with the driver's
own permission checks (a worker that cannot is the stage's key error, exit 2).

A run's setup reaches each worker (also one that joins or restarts mid-run) inside a carrier
plugin sent by value (:func:`carrier`), which loads the stage's :class:`SetupPlugin` only where
vindr imports and otherwise reports the worker on the run's topic (the driver stops the run,
one line, exit 2); a name-only :class:`RequiresVindr` keeps such a worker from starting. The
plugin re-checks the paths on a worker that joins after :func:`check_workers`, which leaves out
a worker going away (restarting) during the check. What the CLI prints of a run
(:meth:`DaskExecutor.start_line`, :meth:`DaskExecutor.label`) never holds credentials
(:func:`public_address`) nor a path.

Mid-run, a :class:`Watch` asks the scheduler for its workers every few seconds: a scheduler
that has not answered for ``$VINDR_SCHEDULER_TIMEOUT`` seconds (120 by default: stopped with
SIGSTOP, hung, unreachable; its socket stays open, so Dask's client would wait without end),
or no worker heard from for as long, stops the run with :class:`ClusterSilent` (one line,
exit 2; the journal is kept, a re-run resumes).

Only this module imports ``distributed``, and only when a Dask run is asked for.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import Client, KilledWorker, WorkerPlugin, as_completed
from distributed.comm.core import CommClosedError

from vindr_cli.errors import InternalError, RequestError
from vindr_cli.runner.discover import STATE_DIR
from vindr_cli.runner.executor import TIMED_OUT, WORKER_DIED, Executor, ItemFailed, Setup, Task

FINISH_S = 5.0            # at most this long removing the run's plugins at its end
IN_FLIGHT = 256           # items out at a time, at least: Dask's round trip per task is ms, not µs
PROBE = ".vindr-probe-"    # the token file under OUTPUT/.vindr/tmp
BATCH_ENV = "VINDR_DASK_BATCH"   # a fixed number of items per Dask task (default: chosen as the run goes)
TARGET_TASK_S = 1.0       # auto batch: about this much work per Dask task (the scheduler's ms per task amortised)
FIRST_BATCH = 4           # auto batch: items per task until a first batch has been timed
MAX_BATCH = 512           # auto batch: at most (tiny items: one task's results stay a small message)
TASKS_PER_WORKER = 4      # auto batch: a batch never so large that a worker gets fewer tasks than this
SILENCE_ENV = "VINDR_SCHEDULER_TIMEOUT"   # seconds the cluster may stay silent mid-run (default SILENCE_S)
SILENCE_S = 120.0         # mid-run: the scheduler unanswering, or no worker heard from, this long stops the run
PING_S = 5.0              # mid-run: the driver asks the scheduler for its workers this often (or silence / 4)
SHARED = ("INPUT and OUTPUT (and the key file) must be on a file system every worker shares with "
          "this machine, at the same paths")
SAME_CODE = ("install this same vindr and the same libraries (one environment: the same virtual environment or "
             "wheels) on every worker and restart them (README 'Cluster')")
# besides vindr's code: what decides output bytes or whether Dask can talk to a worker at all
LIBRARIES = ("dask", "distributed", "cloudpickle", "msgpack", "numpy", "pydicom", "pillow", "pylibjpeg",
             "pylibjpeg-openjpeg", "pylibjpeg-libjpeg", "pylibjpeg-rle", "pyjpegls", "python-gdcm", "imagecodecs",
             "tesserocr", "pyarrow", "scipy")


def _fingerprint(package: Path, schemas: Path) -> str:
    """SHA-256 (16 hex) of vindr's code and policy: every ``*.py`` under ``package`` and every
    file under ``schemas``, by relative path and bytes (``package/schemas`` counted once, as
    schemas). The same for a wheel and a checkout of one commit; any other edit changes it."""
    import hashlib

    h = hashlib.sha256()
    files = [("py", f.relative_to(package)) for f in package.rglob("*.py")
             if "__pycache__" not in f.parts and not f.relative_to(package).parts[0] == "schemas"]
    files += [("schemas", f.relative_to(schemas)) for f in schemas.rglob("*")
              if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"]
    for kind, rel in sorted(files, key=lambda t: (t[0], t[1].as_posix())):
        data = ((package if kind == "py" else schemas) / rel).read_bytes()
        h.update(f"{kind}/{rel.as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


_code: list[str] = []


def code_fingerprint() -> str:
    """:func:`_fingerprint` of the vindr this process runs (cached): the driver and every
    Dask worker must run the same code and policy, or outputs would depend on which worker
    took a file. A worker with another vindr (or none) stops the run (exit 2)."""
    if not _code:
        import vindr_cli
        from vindr_cli.resources import schemas_dir

        _code.append(_fingerprint(Path(vindr_cli.__file__).resolve().parent, schemas_dir()))
    return _code[0]


_environment: list[dict[str, str]] = []


def environment() -> dict[str, str]:
    """What must be the same on the driver and every Dask worker for a cluster run to write
    a local run's bytes (cached): vindr's code and schemas (:func:`code_fingerprint`), the
    Python version and the versions of :data:`LIBRARIES` (``absent`` where not installed)."""
    if not _environment:
        import platform
        from importlib import metadata

        env = {"vindr code": code_fingerprint(), "python": platform.python_version()}
        for name in LIBRARIES:
            try:
                env[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                env[name] = "absent"
        _environment.append(env)
    return dict(_environment[0])


def difference(here: dict[str, str], there: Any) -> str | None:
    """The first thing a worker's :func:`environment` (``there``; an exception where it could
    not run it) differs in from ``here``, in words, or None. Versions only, never a path."""
    if isinstance(there, BaseException):
        return "it cannot import vindr"
    if not isinstance(there, dict):
        return "it runs another vindr"
    for name, mine in here.items():
        theirs = there.get(name, "absent")
        if theirs != mine:
            if name == "vindr code":
                return "other vindr code or schemas/"
            return f"{name} {theirs} there, {mine} here"
    return None


def public_address(address: str) -> str:
    """``address`` without credentials (``tls://user:secret@host:port`` -> ``tls://host:port``):
    what vindr prints of a scheduler's address."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        return address.rpartition("@")[2]
    return f"{scheme}://{rest.rpartition('@')[2]}"


def quiet_dask_logs() -> None:
    """Silence ``distributed``'s loggers, also the children its own configuration gives a
    level and handler (``distributed.client``: its ERROR on a lost scheduler is a traceback on
    stderr beside our one-line error; task logs may quote task arguments)."""
    manager = logging.Logger.manager
    for name in ["distributed", *(n for n in list(manager.loggerDict) if n.startswith("distributed."))]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


# --- on the workers -------------------------------------------------------------------------
_dask_ctx: dict[str, tuple[bool, Any]] = {}     # run id -> (ok, ctx or the setup's exception), per worker process
_dask_lock = threading.Lock()
_dask_items = [0]          # items this worker process has run (all runs): items_run()


def items_run() -> int:
    """How many items this worker process has run (for ``client.run``: where work went)."""
    return _dask_items[0]


def dask_setup(run_id: str, setup: Setup, config: Any, code: dict[str, str] | None = None,
               check: tuple[dict[str, str], str | None, str] | None = None) -> None:
    """Run on each Dask worker by the run's plugin: ``setup(config)`` once, kept for the
    run's tasks; an exception is kept too and raised by each task (the driver sees why).
    ``code``: the driver's :func:`environment`; a worker whose own differs (one that joined
    mid-run) keeps a :class:`WorkersDiffer` instead of setting up. ``check``: the arguments
    of :func:`_probe` (paths, the run's token file, its token): a worker that cannot see them
    (one that joined, or came back from a restart, after :func:`check_workers`) keeps a
    :class:`WorkersCannotSee`."""
    with _dask_lock:
        if run_id in _dask_ctx:
            return
        try:
            what = None if code is None else difference(code, environment())
            if what:
                raise WorkersDiffer(f"a Dask worker that joined mid-run differs from this machine ({what}): {SAME_CODE}")
            bad = [] if check is None else _probe(*check)
            if bad:
                raise WorkersCannotSee(f"a Dask worker that joined during the run cannot see {' and '.join(bad)} as "
                                       f"this machine does: {SHARED}")
            _dask_ctx[run_id] = (True, setup(config))
        except PermissionError:      # the worker's account may not read the key file (or the linkage table)
            _dask_ctx[run_id] = (False, WorkersCannotSee(
                "a Dask worker may not read a file the run needs (the key file, or the linkage table): run the "
                "workers as the account that owns the key file and OUTPUT (README 'Cluster')"))
        except Exception as exc:
            _dask_ctx[run_id] = (False, exc)


def dask_teardown(run_id: str) -> None:
    with _dask_lock:
        _dask_ctx.pop(run_id, None)


@dataclass(frozen=True)
class Raised:
    """An exception the task (or setup) raised on a worker, returned as a result rather than
    raised there: Dask's worker would log a failed task with its arguments (an input path);
    the driver raises it again (:func:`outcomes`)."""

    exc: Exception


NOT_RUN = "not run: an earlier item of its batch outran the time limit"


@dataclass(frozen=True)
class Batch:
    """What one Dask task returns: a result per item (``ItemFailed(NOT_RUN)`` for items
    after one that timed out: the worker is held by that item's thread, they go again
    alone), and the seconds the items took, for the auto batch size."""

    results: list
    seconds: float


def _dask_batch(items: list, task: Task, run_id: str, timeout: float | None) -> Any:
    """Several items on a Dask worker, one after another (:func:`_call` each); an
    exception (the task's, not an input's fault) comes back as :class:`Raised`."""
    t0 = time.perf_counter()
    out: list = []
    try:
        for item in items:
            r = _call(item, task, run_id, timeout)
            _dask_items[0] += 1
            out.append(r)
            if isinstance(r, ItemFailed) and r.reason == TIMED_OUT:
                out += [ItemFailed(NOT_RUN)] * (len(items) - len(out))
                break
    except Exception as exc:
        return Raised(_portable(exc))
    return Batch(out, time.perf_counter() - t0)


def _portable(exc: Exception) -> Exception:
    """``exc``, or an :class:`InternalError` naming only its type when it cannot be pickled:
    Dask's worker logs a result it fails to serialize with its repr, whose text may quote an
    input's path or a header value (red team 6), and the driver would get a TypeError quoting
    it too."""
    import pickle

    import cloudpickle

    for dumps in (pickle.dumps, cloudpickle.dumps):
        try:       # and back: an exception whose __init__ wants other arguments pickles but fails to load
            pickle.loads(dumps(exc))
            return exc
        except Exception:
            pass
    return InternalError(f"{type(exc).__name__} raised on a Dask worker (it cannot be sent back; its text stays there)")


def _call(item: Any, task: Task, run_id: str, timeout: float | None) -> Any:
    entry = _dask_ctx.get(run_id)
    if entry is None:
        raise InternalError("a Dask worker ran a task before the run's setup (plugin missing)")
    ok, ctx = entry
    if not ok:
        raise ctx
    if timeout is None:
        return task(ctx, item)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = task(ctx, item)
        except BaseException as exc:     # raised again below, in the worker's own thread
            box["error"] = exc

    t = threading.Thread(target=work, daemon=True, name="vindr-task")
    t.start()
    t.join(timeout)
    if t.is_alive():
        return ItemFailed(TIMED_OUT)
    if "error" in box:
        raise box["error"]
    return box["result"]


class SchedulerLost(RequestError):
    """The connection to the Dask scheduler was lost mid-run (exit 2, like a full disk: a
    fault of the machinery, not of a file). What was journaled is kept; re-run to resume."""


class ClusterSilent(SchedulerLost):
    """Mid-run, the Dask scheduler has not answered for :func:`silence_bound` seconds (a
    process stopped or hung with its socket open, a network partition), or it answers but no
    worker has been heard from for as long (every worker stopped, hung or unreachable): exit
    2, like the scheduler lost; what was journaled is kept; re-run to resume. ``scheduler``:
    the scheduler itself is silent (nothing more is asked of it)."""

    def __init__(self, message: str, scheduler: bool = True):
        super().__init__(message)
        self.scheduler = scheduler


def silence_bound() -> float:
    """Seconds the cluster may stay silent mid-run (:class:`Watch`): ``$VINDR_SCHEDULER_TIMEOUT``,
    else :data:`SILENCE_S` (120 s)."""
    text = os.environ.get(SILENCE_ENV, "").strip()
    if not text:
        return SILENCE_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise RequestError(f"${SILENCE_ENV} must be a positive number of seconds (how long the Dask scheduler may "
                           "go without answering mid-run)")
    return value


def _direct(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


class Watch:
    """The driver's watch over a run's cluster. A thread asks the scheduler every
    :data:`PING_S` seconds (at most a quarter of the bound) for its workers
    (``scheduler.identity``, bounded by ``silence`` seconds): Dask's client itself sends
    heartbeats but awaits no answer, and a process stopped with SIGSTOP keeps its socket open
    (the kernel still acknowledges, so neither TCP keepalive nor
    ``distributed.comm.timeouts.tcp`` ends the wait), so without this a run waits without end.
    The scheduler not answering for ``silence`` seconds, or answering while no worker's
    heartbeat (``last_seen``) has moved for as long, is a :class:`ClusterSilent`, raised in
    the driver's thread by :meth:`check`; every blocking call the run makes to the cluster
    goes through :meth:`call`, which waits in short steps and checks."""

    def __init__(self, client: Any, silence: float, where: str):
        self.client, self.silence, self.where = client, float(silence), where
        self.every = max(0.05, min(PING_S, self.silence / 4))
        self.fault: ClusterSilent | None = None
        self.heard = self.workers_heard = time.monotonic()
        self.seen: dict[str, Any] = {}
        self._stop = threading.Event()

    def start(self) -> "Watch":
        self.heard = self.workers_heard = time.monotonic()
        threading.Thread(target=self._watch, daemon=True, name="vindr-dask-watch").start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _ping(self) -> dict | None:
        try:
            return self.client.sync(self.client.scheduler.identity, n_workers=-1, callback_timeout=self.silence)
        except Exception:          # no answer within the bound, a closed comm, a closed client: silence
            return None

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            info = self._ping()
            now = time.monotonic()
            if isinstance(info, dict):
                self.heard = now
                workers = {str(a): (w or {}).get("last_seen") for a, w in (info.get("workers") or {}).items()}
                if any(self.seen.get(a, self) != s for a, s in workers.items()):   # a heartbeat, a new worker
                    self.workers_heard = now
                self.seen = workers
            if self._stop.is_set():
                return
            wait = f"{self.silence:g} s"
            if now - self.heard > self.silence:
                self.fault = ClusterSilent(
                    f"the Dask scheduler at {self.where} has not answered for {wait} mid-run (stopped, hung or "
                    "unreachable): finished files are kept; restart the scheduler and workers, then run the same "
                    f"command again to resume (the bound: ${SILENCE_ENV}, README 'Cluster')")
                return
            if now - self.workers_heard > self.silence:
                self.fault = ClusterSilent(
                    f"no Dask worker has answered the scheduler at {self.where} for {wait} mid-run (every worker "
                    "stopped, hung or unreachable, or none left): finished files are kept; restart the workers, then "
                    f"run the same command again to resume (the bound: ${SILENCE_ENV}, README 'Cluster')",
                    scheduler=False)
                return

    def gone(self) -> bool:
        """The scheduler has stopped answering (nothing more is asked of it)."""
        return self.fault is not None and self.fault.scheduler

    def check(self) -> None:
        """Raise the watch's :class:`ClusterSilent`, if it has one."""
        if self.fault is not None:
            raise self.fault

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` (a blocking call to the cluster) in a thread of its own, waited
        for in steps of :data:`TICK_S`: raises the watch's fault as soon as it has one (the call
        is left to end with the process; Ctrl-C lands at once too)."""
        self.check()
        box: dict[str, Any] = {}
        finished = threading.Event()

        def work() -> None:
            try:
                box["result"] = fn(*args, **kwargs)
            except BaseException as exc:      # raised again below, in the driver's thread
                box["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=work, daemon=True, name="vindr-dask-call").start()
        while not finished.wait(TICK_S):
            self.check()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def next_batch(self, done: Any) -> list | None:
        """The futures of ``done`` (an ``as_completed``) that finished, once at least one has:
        as ``as_completed.batches()`` but checking the watch while it waits; None when nothing
        is left to wait for."""
        while not done.has_ready():
            if done.is_empty():
                return None
            self.check()
            with done.thread_condition:
                done.thread_condition.wait(timeout=TICK_S)
        return done.next_batch(block=False)


class WorkersCannotSee(RequestError):
    """A Dask worker cannot see INPUT or OUTPUT at the driver's paths (exit 2)."""


class WorkersDiffer(RequestError):
    """A Dask worker runs other vindr code or policy than the driver, or cannot import vindr
    (exit 2): its outputs would differ from the driver's for the same key."""


class SetupPlugin(WorkerPlugin):
    """Runs the stage's ``setup(config)`` once on every worker (also one that joins or is
    restarted mid-run) for one run, carried there by :func:`carrier`; removed again when the
    run ends."""

    def __init__(self, run_id: str, setup: Setup, config: Any,
                 check: tuple[dict[str, str], str | None, str] | None = None):
        self.run_id, self.setup_fn, self.config = run_id, setup, config
        self.name = f"vindr-{run_id}"
        self.code = environment()
        self.check = check

    def setup(self, worker: Any) -> None:
        dask_setup(self.run_id, self.setup_fn, self.config, getattr(self, "code", None), getattr(self, "check", None))

    def teardown(self, worker: Any) -> None:
        dask_teardown(self.run_id)


class RequiresVindr(WorkerPlugin):
    """Registered after the run's carrier (:func:`carrier`), holding nothing but a name: a
    worker without vindr cannot load it, and so does not start (no task, no input path ever
    reaches it); Dask logs the bytes it could not load, which are this class's name and the
    run's id only."""

    def __init__(self, run_id: str):
        self.name = f"vindr-{run_id}-requires"


def refuse(run_id: str, what: str) -> None:
    """On a worker: keep a :class:`WorkersDiffer` for the run (each task raises it)."""
    with _dask_lock:
        _dask_ctx.setdefault(run_id, (False, WorkersDiffer(
            f"a Dask worker that joined mid-run differs from this machine ({what}): {SAME_CODE}")))


def _carrier_class() -> type:
    """The class of the run's carrier plugin, made here so that cloudpickle sends it by value:
    a worker without vindr can load it (it could not load :class:`SetupPlugin`, and Dask would
    log the bytes it failed to load: the run's config, with OUTPUT's and the key file's paths)."""
    from distributed import WorkerPlugin as _Base

    class VindrRun(_Base):
        """Carries the run's :class:`SetupPlugin` as bytes, loaded only where vindr imports; on
        a worker that cannot import vindr it logs an event on the run's topic (its name), for
        the driver to stop the run in one line (:class:`RequiresVindr` keeps that worker from
        starting)."""

        def __init__(self, name: str, run_id: str, payload: bytes):
            self.name, self.topic, self.run_id, self.payload = name, name, run_id, payload

        def setup(self, worker: Any) -> None:
            try:
                from vindr_cli.runner import cluster as here
            except Exception:
                worker.log_event(self.topic, {"event": "cannot-import-vindr", "worker": str(worker.address)})
                return
            import pickle

            try:
                plugin = pickle.loads(self.payload)
            except Exception:
                here.refuse(self.run_id, "it cannot load this run's setup: other vindr code")
                return
            plugin.setup(worker)

        def teardown(self, worker: Any) -> None:
            try:
                from vindr_cli.runner.cluster import dask_teardown
            except Exception:
                return
            dask_teardown(self.run_id)

    return VindrRun


def carrier(plugin: SetupPlugin) -> Any:
    """The plugin registered for ``plugin`` (:func:`_carrier_class`); its topic is its name."""
    import cloudpickle

    return _carrier_class()(plugin.name, plugin.run_id, cloudpickle.dumps(plugin))


def connect_timeout() -> float:
    """Seconds Dask's ``distributed.comm.timeouts.connect`` gives a connection (default 30 s;
    ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s`` or Dask's YAML to change it). vindr bounds
    with it each phase of :func:`connect`: reaching the scheduler and its answer, then a first
    worker."""
    import dask.config
    from dask.utils import parse_timedelta

    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds"))


GRACE_S = 1.0             # connect: Dask's own error first, if it has one, before vindr's deadline
TICK_S = 0.2              # connect: the main thread waits in steps this long (Ctrl-C stops it at once)
_abandoned: list = []     # connect threads given up on (a deadline, Ctrl-C): kept, never collected mid-connect


def _connecting(address: str, timeout: float, workers_timeout: float) -> tuple[dict[str, Any], threading.Event, Any]:
    """Start ``Client(address)`` and the wait for a first worker in a daemon thread: Dask's
    handshake read has no time limit (an address that accepts the connection and then stays
    silent, or speaks another protocol, holds ``Client()`` forever), and the main thread stays
    in short waits of its own, where Ctrl-C lands at once. The thread notes its phase
    (``connecting`` -> ``workers`` -> ``done``) and its client or exception in the box.
    Returns (box, done event, ``abandon()``: to call when giving up on the thread)."""
    box: dict[str, Any] = {"phase": "connecting", "since": time.monotonic()}
    done, gone, lock = threading.Event(), threading.Event(), threading.Lock()

    def work() -> None:
        try:
            client = Client(address, set_as_default=False, timeout=timeout)
            box.update(client=client, phase="workers", since=time.monotonic())
            client.wait_for_workers(1, timeout=workers_timeout)
            box["phase"] = "done"
        except BaseException as exc:
            box["error"] = exc
        finally:
            with lock:
                done.set()
                late = gone.is_set()
            if late and box.get("client") is not None:    # given up on meanwhile: let go of it
                close(box["client"])

    t = threading.Thread(target=work, daemon=True, name="vindr-dask-connect")
    t.start()

    def abandon() -> None:
        """Give the thread up: it closes its client if it gets one later; one it got already is closed here."""
        with lock:
            gone.set()
            finished = done.is_set()
        _abandoned.append(t)
        if finished and box.get("client") is not None:
            close(box["client"])

    return box, done, abandon


def connect(address: str, *, timeout: float | None = None, workers_timeout: float | None = None) -> Client:
    """A client of the scheduler at ``address`` with at least one worker, or a RequestError
    (one line, exit 2). ``timeout`` (None: :func:`connect_timeout`, 30 s by default) bounds
    reaching the scheduler and its answer; ``workers_timeout`` (None: the same) the wait for a
    first worker. Both run in a thread (:func:`_connecting`) that this one waits for in short
    steps, so Ctrl-C (KeyboardInterrupt) ends the wait at once; a thread given up on is left
    to Dask (a daemon; its client, if it ever connects, is closed)."""
    if "://" not in address:
        raise RequestError(f"--scheduler (or $VINDR_SCHEDULER) must be an address like tcp://HOST:PORT or "
                           f"tls://HOST:PORT, not {public_address(address)!r}")
    quiet_dask_logs()   # its logs may quote task arguments; faults become our one-line errors
    import warnings

    from distributed.versions import VersionMismatchWarning

    # Dask's own table of versions (many lines on stderr): check_workers says the same in one line
    warnings.filterwarnings("ignore", category=VersionMismatchWarning)
    waited = connect_timeout() if timeout is None else float(timeout)
    workers_timeout = waited if workers_timeout is None else float(workers_timeout)
    where = public_address(address)
    box, done, abandon = _connecting(address, waited, workers_timeout)
    try:
        while not done.wait(TICK_S):
            limit = waited if box["phase"] == "connecting" else workers_timeout
            if time.monotonic() - box["since"] > limit + GRACE_S:
                break
    except BaseException:             # Ctrl-C (or SIGTERM, raised as KeyboardInterrupt by the CLI)
        abandon()
        raise
    if not done.is_set():
        abandon()
        if box["phase"] == "connecting":
            raise RequestError(f"the Dask scheduler at {where} did not answer within {waited:.0f} s: something there "
                               "accepts connections but does not speak Dask's protocol (is it a `dask scheduler`, "
                               "and its scheduler port, not the dashboard's?); check --scheduler / $VINDR_SCHEDULER, "
                               "or raise distributed.comm.timeouts.connect (README 'Cluster')")
        raise _no_worker(where, workers_timeout)
    exc = box.get("error")
    if exc is None:
        return box["client"]
    if box["phase"] == "workers":
        close(box["client"])
        if isinstance(exc, (OSError, TimeoutError)):
            raise _no_worker(where, workers_timeout) from None
        raise exc
    from msgpack.exceptions import ExtraData, UnpackException

    if isinstance(exc, ValueError) and not isinstance(exc, (UnpackException, ExtraData)):   # a bad address
        raise RequestError(f"--scheduler (or $VINDR_SCHEDULER) {where!r} is not an address Dask can use (ValueError): "
                           "give tcp://HOST:PORT or tls://HOST:PORT") from None
    if isinstance(exc, (OSError, TimeoutError)):    # refused, no route, a name that does not resolve
        raise RequestError(f"cannot reach the Dask scheduler at {where} ({type(exc).__name__}, waited {waited:.0f} s): "
                           f"start it, or check --scheduler / $VINDR_SCHEDULER") from None
    if isinstance(exc, RuntimeError) and "encryption" in str(exc):   # require-encryption with a tcp:// address
        raise RequestError(f"Dask's configuration requires encryption (distributed.comm.require-encryption): "
                           f"give a tls:// address, not {where} (README 'Cluster')") from None
    if isinstance(exc, TypeError) and ("ssl" in str(exc).lower() or "tls" in str(exc).lower()):
        # a tls:// address without distributed.comm.tls.* on this machine
        raise RequestError(f"{where} needs Dask's TLS settings on this machine: distributed.comm.tls.ca-file, "
                           "distributed.comm.tls.client.cert and .client.key (README 'Cluster')") from None
    if isinstance(exc, Exception) and not isinstance(exc, (TypeError, RuntimeError)):
        # an answer that is not Dask's (another protocol: bytes msgpack cannot read, or not Dask's
        # first message): its type only. A TypeError or RuntimeError is not that: raised (exit 3)
        raise RequestError(f"the Dask scheduler at {where} answered with something that is not Dask's protocol "
                           f"({type(exc).__name__}): is it a `dask scheduler`, and its scheduler port, not the "
                           "dashboard's?; check --scheduler / $VINDR_SCHEDULER (README 'Cluster')") from None
    raise exc


def _no_worker(where: str, waited: float) -> RequestError:
    return RequestError(f"the Dask scheduler at {where} has no worker (waited {waited:.0f} s): "
                        "start `dask worker` processes, then run again")


def worker_counts(client: Any, call: Any = _direct) -> tuple[int, int]:
    """(workers, task threads across them) of the cluster now (``call``: :meth:`Watch.call`)."""
    try:
        info = call(client.scheduler_info, n_workers=-1)["workers"]
    except TypeError:            # distributed before n_workers= (it listed every worker)
        info = call(client.scheduler_info)["workers"]
    return len(info), sum(int(w.get("nthreads", 1)) for w in info.values())


def worker_threads(client: Any) -> int:
    """Task threads across the cluster's workers (at least 1)."""
    return max(1, worker_counts(client)[1])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _probe(paths: dict[str, str], probe: str | None, token: str) -> list[str]:
    """On a worker: the labels of ``paths`` it cannot see as the driver does."""
    bad = [label for label, p in paths.items() if not (os.path.exists(p) and os.access(p, os.R_OK))]
    if probe is not None:
        try:
            with open(probe, encoding="ascii") as f:
                same = f.read() == token
            mine = f"{probe}.{secrets.token_hex(8)}"
            with open(mine, "x") as f:
                f.write(token)
            os.unlink(mine)
        except OSError:
            same = False
        if not same and "OUTPUT" not in bad:
            bad.append("OUTPUT")
    return bad


def _going_away(answer: Any) -> bool:
    """``client.run``'s answer of a worker that is going away (restarted by its nanny, or
    lost): a comm error, not the function's. Such a worker is not judged by a check; when it
    comes back, the run's plugin checks it before its first task (:func:`dask_setup`)."""
    return isinstance(answer, (OSError, TimeoutError))


def judge_paths(answers: dict[str, Any]) -> dict[str, list[str]]:
    """The workers that cannot see the paths (address -> labels), from ``client.run``'s
    answers of :func:`_probe`; a worker going away (:func:`_going_away`) is left out."""
    bad = {addr: (["INPUT or OUTPUT (the check failed there)"] if isinstance(a, BaseException) else a)
           for addr, a in answers.items() if not _going_away(a)}
    return {addr: a for addr, a in bad.items() if a}


def check_workers(client: Any, paths: dict[str, Any], output: Any = None, *, keep: bool = False,
                  call: Any = _direct) -> tuple[dict[str, str], str | None, str]:
    """Every worker sees ``paths`` (label -> path) and, when ``output`` is given, the very
    folder ``OUTPUT/.vindr/tmp`` this driver sees (a token written here is read there, and a
    worker can write there). Raises :class:`WorkersCannotSee` naming the first such worker.
    A worker restarting during the check is not judged (:func:`judge_paths`). Returns
    :func:`_probe`'s arguments (paths, token file, token) for the run's plugin, which checks a
    worker that joins later; with ``keep`` the token file stays (the caller removes it).
    ``call``: how a blocking call to the cluster is made (:meth:`Watch.call` in a run)."""
    envs = call(client.run, environment, on_error="return")
    here = environment()
    # a worker that is going away (restarted by its nanny) answers with a comm error: not counted
    # here; when it comes back, the run's plugin checks it before its first task
    other = sorted((addr, difference(here, e)) for addr, e in envs.items()
                   if not isinstance(e, (OSError, TimeoutError)) and difference(here, e))
    if other:
        raise WorkersDiffer(f"{len(other)} of {len(envs)} Dask workers differ from this machine in vindr or a library "
                            f"it uses (first: {other[0][0]}: {other[0][1]}): {SAME_CODE}")
    probe = None
    token = secrets.token_hex(16)
    if output is not None:
        tmp = Path(output) / STATE_DIR / "tmp"     # runner.stage.tmp_dir: where workers write
        tmp.mkdir(parents=True, exist_ok=True)
        probe = tmp / f"{PROBE}{secrets.token_hex(8)}"
        probe.write_text(token, encoding="ascii")
    args = ({k: str(v) for k, v in paths.items()}, None if probe is None else str(probe), token)
    done = False
    try:
        answers = call(client.run, _probe, *args, on_error="return")
        bad = judge_paths(answers)
        if not answers:
            raise WorkersCannotSee("the Dask cluster has no worker left: start `dask worker` processes, then run again")
        if bad:
            addr, labels = sorted(bad.items())[0]
            raise WorkersCannotSee(f"{len(bad)} of {len(answers)} Dask workers cannot see {' and '.join(labels)} as "
                                   f"this machine does (first: {addr}): {SHARED}")
        done = True
    finally:
        if probe is not None and not (keep and done):
            probe.unlink(missing_ok=True)
    return args


def register(client: Any, plugin: SetupPlugin, call: Any = _direct) -> None:
    call(client.register_plugin, plugin, name=plugin.name)


def outcomes(client: Any, futures: list, call: Any = _direct) -> list:
    """The results of finished futures, in order, fetched in one gather: the task's result,
    ``ItemFailed(WORKER_DIED)`` for an item whose workers kept dying. A cancelled future
    (only the loss of the scheduler cancels one the run still waits for) or a lost
    connection is :class:`SchedulerLost`; an exception the task raised (a full disk, a key
    error) is raised again here, in the driver. ``call``: as in :func:`check_workers`."""
    lost = SchedulerLost(f"lost the Dask scheduler at {public_address(str(client.scheduler.address))} mid-run: finished files are kept; "
                         "restart the scheduler and workers, then run the same command again to resume")
    out: list = [None] * len(futures)
    ok = [i for i, f in enumerate(futures) if f.status == "finished"]
    fetched = set(ok)
    try:
        for i, r in zip(ok, call(client.gather, [futures[i] for i in ok]) if ok else []):
            if isinstance(r, Raised):
                raise r.exc
            out[i] = r
        for i, f in enumerate(futures):
            if i in fetched:
                continue
            if f.cancelled():
                raise lost
            exc = f.exception()
            if isinstance(exc, KilledWorker):
                out[i] = ItemFailed(WORKER_DIED)
            else:
                raise exc
    except (CancelledError, CommClosedError):
        raise lost from None
    return out


def restart_hung(client: Any, futures: list, call: Any = _direct) -> None:
    """Restart (through its nanny) each worker that gave up on an item after the time limit:
    the item's thread may still hold the worker (or a lock its next items need). Its other
    items are Dask's to run again elsewhere. Best effort: a worker without a nanny stays."""
    if not futures:
        return
    try:
        held = call(client.who_has, futures)
        addrs = sorted({a for f in futures for a in held.get(f.key, ())})
        if addrs:
            call(client.restart_workers, addrs, raise_for_error=False)
    except (OSError, TimeoutError, ValueError, CancelledError):
        pass


def finish(client: Any, pending: list, plugins: Any, topic: str | None = None, probe: str | None = None,
           silent: bool = False) -> None:
    """End of a run (also an early one): drop what has not finished, remove the ``plugins``
    (or one plugin), the ``topic``'s handler and the run's token file (:func:`check_workers`);
    all of it within :data:`FINISH_S`. ``silent``: the scheduler stopped answering
    (:class:`Watch`): only the token file is removed."""
    if probe is not None:
        Path(probe).unlink(missing_ok=True)
    if client.status != "running" or silent:
        return

    def quietly(step: Any) -> None:
        try:
            step()
        except (OSError, TimeoutError, CancelledError, ValueError, KeyError):   # the scheduler went away meanwhile,
            pass                                                                 # or it was never registered

    names = [p.name for p in (plugins if isinstance(plugins, (list, tuple)) else [plugins])]

    def unregister() -> None:
        try:
            quietly(lambda: pending and client.cancel(pending))
            if topic is not None:
                quietly(lambda: client.unsubscribe_topic(topic))
        except Exception:            # the client closed meanwhile (best effort, after FINISH_S)
            pass
        for name in names:
            try:
                quietly(lambda: client.unregister_worker_plugin(name))
            except Exception:        # the client closed meanwhile (best effort, after FINISH_S)
                pass

    # The scheduler drops a plugin at once, then waits for every worker's answer: a worker that
    # registered but failed its start (no vindr: it cannot load the plugin) answers after Dask's
    # timeouts (~30 s), so the run's end waits at most FINISH_S for that (and for a cancel that
    # a scheduler gone silent meanwhile would never answer).
    t = threading.Thread(target=unregister, daemon=True, name="vindr-unregister")
    t.start()
    t.join(FINISH_S)


def batch_size(per_item_s: float | None, remaining: int | None, workers: int, fixed: int | None = None) -> int:
    """Items per Dask task: ``fixed`` if given; else about :data:`TARGET_TASK_S` of work
    (``per_item_s``, measured; :data:`FIRST_BATCH` until then), at most :data:`MAX_BATCH`,
    and never so many that the ``remaining`` items give a worker fewer than
    :data:`TASKS_PER_WORKER` tasks (a run's tail stays spread over the workers)."""
    if fixed:
        return max(1, fixed)
    n = FIRST_BATCH if per_item_s is None else int(TARGET_TASK_S / max(per_item_s, 1e-6))
    if remaining is not None:
        n = min(n, remaining // (TASKS_PER_WORKER * workers))
    return max(1, min(n, MAX_BATCH))


class DaskExecutor(Executor):
    """Items run on a Dask cluster through ``client`` (a ``distributed.Client``); see the
    module docstring. Items go several to a Dask task (``batch`` per task, or, None, sized
    as the run goes by :func:`batch_size`: about a second of work per task, so the
    scheduler's milliseconds per task are amortised); at least ``in_flight`` items are out
    at a time (default 8 per worker thread, at least 256), submitted in one call, and what
    finished meanwhile is fetched in one gather. Every item still gets its own result. A
    batch whose workers kept dying (``KilledWorker``) is split: its items go again one per
    task, and only one that kills its workers alone, twice (the second time with nothing
    else in flight: the first time it may only have shared a worker with the item that
    kills them), is ``ItemFailed(WORKER_DIED)``. An item
    over ``task_timeout`` seconds (None: no limit) is ``ItemFailed(TIMED_OUT)`` and the
    items after it in its batch go again one per task. ``paths`` (label -> path, e.g.
    INPUT, OUTPUT) are checked on every worker before the first item is sent
    (:func:`check_workers`). A run is watched (:class:`Watch`): the scheduler silent for
    ``silence`` seconds (None: :func:`silence_bound`), or no worker heard from for as long,
    stops it with :class:`ClusterSilent`."""

    def __init__(self, client: Any, *, in_flight: int | None = None, task_timeout: float | None = None,
                 paths: dict[str, Any] | None = None, output: Any = None, batch: int | None = None,
                 silence: float | None = None):
        self.client = client
        self.silence = silence_bound() if silence is None else float(silence)
        self.address = public_address(str(client.scheduler.address))
        watch = Watch(client, self.silence, self.address).start()     # a scheduler silent since connect
        try:
            self.n_workers, threads = worker_counts(client, watch.call)
        finally:
            watch.stop()
        self.workers = max(1, threads)           # task threads
        self.in_flight = in_flight or max(IN_FLIGHT, 8 * self.workers)
        self.task_timeout = task_timeout
        self.paths = dict(paths or {})
        self.output = output
        self.batch = batch
        self.batches: list[int] = []             # the size of every task sent (a run's record)
        self.submitted: list[tuple] = []         # what was sent, for tests (arguments only), if asked
        self.record = False
        self.announce: Any = None                # called once, when a first run has passed its checks

    def label(self) -> str:
        """The executor in a few words, for a summary table (no credentials, no path)."""
        return f"dask at {self.address} ({_plural(self.n_workers, 'worker')}, {_plural(self.workers, 'thread')})"

    def start_line(self, secret: str | None = None) -> str:
        """The line a run prints when it starts on the cluster: where, how many workers, and
        that ``secret`` (e.g. "the key file") is not sent (workers read it at its path)."""
        line = (f"running on the Dask cluster at {self.address}: {_plural(self.n_workers, 'worker')}, "
                f"{_plural(self.workers, 'thread')}")
        if secret:
            line += f"; {secret} is not sent over the network: each worker reads it at its path on the shared file system"
        return line

    def run(self, task: Task, items: Iterable[Any], *, setup: Setup, config: Any) -> Iterator[tuple[Any, Any]]:
        watch = Watch(self.client, self.silence, self.address).start()
        try:
            yield from self._run(watch, task, items, setup, config)
        finally:
            watch.stop()

    def _run(self, watch: Watch, task: Task, items: Iterable[Any], setup: Setup,
             config: Any) -> Iterator[tuple[Any, Any]]:
        call = watch.call
        check = check_workers(self.client, self.paths, self.output, keep=True, call=call)
        run_id = uuid.uuid4().hex
        plugin = SetupPlugin(run_id, setup, config, check)
        if self.record:
            self.submitted.append((plugin,))
        carried, required = carrier(plugin), RequiresVindr(run_id)
        plugins = (carried, required)
        joined: list = []                     # events of workers that joined without vindr
        try:
            self.client.subscribe_topic(carried.topic, joined.append)
            for p in plugins:                 # in this order: a worker loads them in the order registered
                register(self.client, p, call)
        except BaseException:
            finish(self.client, [], plugins, carried.topic, check[1], silent=watch.gone())
            raise
        if self.announce is not None:          # the start line: after the checks, so that a refusal
            announce, self.announce = self.announce, None    # stays the run's only line
            self.n_workers, threads = worker_counts(self.client, call)
            self.workers = max(1, threads)
            announce()
        remaining = len(items) if hasattr(items, "__len__") else None      # not yet taken from ``it``
        it, futs = iter(items), {}
        alone: deque = deque()                # items to send one per task (their batch failed as a whole)
        last: deque = deque()                 # died alone once: once more, with nothing else in flight
        retried: set[int] = set()             # id() of the items in or through ``last``
        out = [0]                             # items out now
        per_item: list[float] = []            # measured seconds per item (a moving average)
        done = as_completed(loop=self.client.loop)

        def size() -> int:
            return batch_size(per_item[0] if per_item else None, remaining, self.workers, self.batch)

        def submit(n: int) -> None:           # one call to the scheduler for about n items
            nonlocal remaining
            groups: list[list] = []
            while alone and n > 0:
                groups.append([alone.popleft()])
                n -= 1
            while n > 0:
                group = list(islice(it, min(size(), n)))
                if not group:
                    break
                if remaining is not None:
                    remaining -= len(group)
                groups.append(group)
                n -= len(group)
            if not groups:
                return
            if self.record:
                self.submitted.extend((g, task, run_id, self.task_timeout) for g in groups)
            fs = self.client.map(_dask_batch, groups, task=task, run_id=run_id, timeout=self.task_timeout, pure=False)
            for f, g in zip(fs, groups):
                futs[f] = g
                done.add(f)
                self.batches.append(len(g))
                out[0] += len(g)

        try:
            submit(self.in_flight)
            while (finished := watch.next_batch(done)) is not None:   # what finished meanwhile: one gather
                results = outcomes(self.client, finished, call)
                hung = []
                for f, result in zip(finished, results):
                    group = futs.pop(f)
                    out[0] -= len(group)
                    if isinstance(result, ItemFailed):          # KilledWorker: the task, whole
                        if len(group) > 1:
                            alone.extend(group)                 # which item kills workers? each alone
                        elif id(group[0]) not in retried:       # it may have shared a worker with the
                            retried.add(id(group[0]))           # one that kills them: once more, with
                            last.append(group[0])               # nothing else in flight
                        else:
                            yield group[0], result
                        continue
                    ran = sum(not (isinstance(r, ItemFailed) and r.reason == NOT_RUN) for r in result.results)
                    if ran:
                        seconds = result.seconds / ran
                        per_item[:] = [seconds if not per_item else 0.7 * per_item[0] + 0.3 * seconds]
                    for item, r in zip(group, result.results):
                        if isinstance(r, ItemFailed) and r.reason == NOT_RUN:
                            alone.append(item)
                            continue
                        if isinstance(r, ItemFailed) and r.reason == TIMED_OUT:
                            hung.append(f)
                        yield item, r
                restart_hung(self.client, hung, call)
                if joined:
                    raise WorkersDiffer(f"a Dask worker that joined during the run cannot import vindr "
                                        f"({joined[0][1].get('worker', '?')}): {SAME_CODE}; finished files are kept: "
                                        "run the same command again to resume")
                submit(max(self.in_flight, 2 * self.workers * size()) - out[0])
                if out[0] == 0 and last:        # everything else is done: one suspect alone
                    alone.append(last.popleft())
                    submit(1)
        finally:
            finish(self.client, list(futs), plugins, carried.topic, check[1], silent=watch.gone())


def open_dask(address: str, *, input: Path, output: Path | None = None,
              task_timeout: float | None = None) -> tuple[Any, DaskExecutor]:
    """(client, executor) for the scheduler at ``address``; the paths the workers must see
    are INPUT and OUTPUT's folder (OUTPUT itself may not exist yet: the run checks it).
    ``$VINDR_DASK_BATCH`` (a positive number) fixes the items per Dask task;
    ``$VINDR_SCHEDULER_TIMEOUT`` (seconds) the silence that stops a run (:class:`Watch`)."""
    fixed = os.environ.get(BATCH_ENV, "").strip()
    if fixed and not (fixed.isdigit() and int(fixed) > 0):
        raise RequestError(f"${BATCH_ENV} must be a positive whole number of items per Dask task")
    silence = silence_bound()                # a bad $VINDR_SCHEDULER_TIMEOUT is refused before connecting
    client = connect(address)
    paths = {"INPUT": Path(input).resolve()}
    if output is not None:
        paths["OUTPUT"] = Path(output).resolve().parent
    return client, DaskExecutor(client, task_timeout=task_timeout, paths=paths, batch=int(fixed) if fixed else None,
                                output=None if output is None else Path(output).resolve(), silence=silence)


def close(client: Any) -> None:
    try:
        client.close(timeout=5)
    except (OSError, TimeoutError, CancelledError):
        pass


__all__ = ["TIMED_OUT", "Batch", "ClusterSilent", "Watch", "silence_bound", "RequiresVindr", "carrier", "judge_paths", "public_address", "worker_counts", "DaskExecutor", "batch_size", "items_run", "SchedulerLost", "SetupPlugin", "WorkersCannotSee", "WorkersDiffer", "check_workers", "code_fingerprint", "connect", "difference", "environment",
           "open_dask", "close", "outcomes", "worker_threads"]
