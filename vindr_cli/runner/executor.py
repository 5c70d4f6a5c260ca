"""The seam through which a stage's work is run: ``Executor.run(task, items, setup=, config=)``.

An executor calls ``setup(config)`` once per worker (build a profile, read the key file
from its path, ...), then ``task(ctx, item)`` for every item, and yields ``(item, result)``
back to the driver as each one finishes, with a bounded number of items in flight. It
knows nothing of progress bars, journals, tables or renames: the runner
(:mod:`vindr_cli.runner.stage`) does those, in the driver, as results arrive.

What crosses the seam is pickled: ``task`` and ``setup`` (module-level functions),
``config`` (once per worker) and each item. None of them may hold a secret: a stage
passes the *path* of its key file and the key's expected fingerprint, and its ``setup``
reads the key there with the same permission checks as the driver (see ``deid.task``).

``task`` must turn per-item failures into results; an exception escaping it (or
``setup``) ends the run and is raised in the driver. If the driver stops iterating
(an error, Ctrl-C), the executor cancels what has not started.

An item the executor itself could not finish comes back as ``(item, ItemFailed(reason))``
with a fixed PHI-free reason; the runner turns it into the stage's ``failed`` row(s)
(:meth:`vindr_cli.runner.stage.Stage.failed`). The process executor does this for a
worker that dies (out of memory, a signal): the pool is rebuilt, the items that were in
flight are tried again one at a time in a pool of their own, and one that kills its
worker again is ``ItemFailed(WORKER_DIED)``; every other item finishes as usual. Workers
are tied to the driver: on Linux each asks the kernel for SIGKILL when its parent dies
(``PR_SET_PDEATHSIG``), elsewhere a watchdog thread polls the parent's pid, so a driver
killed with ``kill -9`` leaves no worker behind; and each raises its own
``oom_score_adj`` so that the kernel's out-of-memory killer takes a worker (one file)
rather than the driver (the batch).

Two local executors are here:

* :class:`InProcessExecutor` — one worker, this process (tests, ``-j 1``, tiny inputs); it
  cannot stop a hung item (no per-item time limit: there is no other process to kill);
* :class:`ProcessExecutor` — a local ``concurrent.futures.ProcessPoolExecutor``.

and :class:`LocalExecutor`, what ``--executor local`` gives a stage: the pool's settings
(``--task-timeout``) without its size, which :meth:`Executor.sized` picks at run time from
``-j`` and the number of items (:func:`make_executor`).

A third runs the same work on a Dask cluster, in its own module so that a local run never
imports Dask:

* :class:`vindr_cli.runner.cluster.DaskExecutor` — ``dask.distributed`` (``vindr <stage> --executor dask
  --scheduler tcp://HOST:PORT``). ``setup(config)`` runs once per worker process through a
  worker plugin (:class:`vindr_cli.runner.cluster.SetupPlugin`, registered for the run and
  removed after it; a worker that joins or is restarted mid-run runs it too), so ``config``
  crosses the network once per worker, never per item. ``task(ctx, item)`` runs on the
  workers; the driver, as with the local pool, renames, journals and writes the tables.
  A worker killed mid-task is Dask's to retry elsewhere; an item whose task was on a worker
  that died more than the scheduler's ``distributed.scheduler.allowed-failures`` times
  (default 3) comes back as ``KilledWorker`` and becomes ``ItemFailed(WORKER_DIED)``. An
  item slower than ``task_timeout`` seconds becomes ``ItemFailed(TIMED_OUT)`` and its worker
  is restarted (the thread cannot be stopped; nothing it writes later is ever renamed). A scheduler lost
  mid-run stops the run with :class:`~vindr_cli.runner.cluster.SchedulerLost` (exit 2;
  what was journaled is kept and the same command resumes), and so does one that stays up
  but stops answering, or whose workers all fall silent, for ``$VINDR_SCHEDULER_TIMEOUT``
  seconds (:class:`~vindr_cli.runner.cluster.ClusterSilent`, found by the driver's
  :class:`~vindr_cli.runner.cluster.Watch`).

The key file must then be readable at the same path on the workers (shared storage with
the same 0600 owner), which is the deployment's decision, not the stage's. Choosing a
local executor happens in one place: :func:`make_executor`; a Dask one is made by
:func:`vindr_cli.runner.cluster.open_executor` (it connects and checks that every worker
sees INPUT and OUTPUT).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from typing import Any

from vindr_cli.errors import InternalError

Task = Callable[[Any, Any], Any]
Setup = Callable[[Any], Any]

WORKER_DIED = "worker process died (out of memory or killed) while reading this file"
PR_SET_PDEATHSIG = 1             # <linux/prctl.h>
WATCHDOG_S = 1.0                 # how often a worker without prctl checks that its parent lives
OOM_SCORE_ADJ = 500              # workers go first when memory runs out (the driver holds the batch)
TIMED_OUT = "took longer than the per-file time limit (--task-timeout); nothing of it was written"
DEFAULT_TASK_TIMEOUT = 1800.0    # seconds: a 2k radiograph takes < 1 s; only a hung file comes near it

_worker_state: dict[str, Any] = {}


@dataclass(frozen=True)
class ItemFailed:
    """The result for an item the executor could not finish (a fixed, PHI-free reason);
    the runner makes the stage's failed row(s) of it."""

    reason: str


class WorkerStartFailed(InternalError):
    """A worker process died before it could take any item: not one file's fault (exit 3)."""


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class Executor(ABC):
    """Runs ``task(setup(config), item)`` for every item; see the module docstring."""

    workers: int = 1

    @abstractmethod
    def run(self, task: Task, items: Iterable[Any], *, setup: Setup, config: Any) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, result)`` in completion order; ``result`` is an :class:`ItemFailed`
        for an item the executor could not finish. A generator: the runner calls its
        ``close()`` when it stops early, and the executor then cancels what has not started."""

    def sized(self, workers: int, items: int | None = None) -> "Executor":
        """The executor to run ``items`` items with ``-j workers``: itself (a Dask cluster
        or a pool built by hand has its own size); :class:`LocalExecutor` chooses here."""
        return self


class InProcessExecutor(Executor):
    """One worker: this process. ``setup`` runs once, here."""

    workers = 1

    def run(self, task: Task, items: Iterable[Any], *, setup: Setup, config: Any) -> Iterator[tuple[Any, Any]]:
        ctx = setup(config)
        for item in items:
            yield item, task(ctx, item)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCHDOG_S)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int | None = None) -> str:
    """Make this process end when its parent does: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on
    Linux (the kernel kills it), else a daemon thread that polls the parent's pid. Returns
    which ("prctl" or "watchdog"); exits at once if the parent is already gone.

    ``parent`` is the driver's pid as the driver knew it before the fork: a worker that is
    forked but has not run this yet when the driver is killed would otherwise read its new
    parent (init) from ``getppid()`` and live on."""
    parent = os.getppid() if parent is None else parent
    how = "watchdog"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                how = "prctl"
        except (OSError, AttributeError):   # no libc symbol: fall back to the watchdog
            pass
    if how == "watchdog":
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="vindr-parent-watch").start()
    if os.getppid() != parent:      # the parent died before the request took effect
        os._exit(1)
    return how


def prefer_oom_kill(score: int = OOM_SCORE_ADJ) -> bool:
    """Ask the kernel's out-of-memory killer to pick this process (a worker) before the
    driver, whose death would cost the whole batch. False where that cannot be set."""
    try:
        with open("/proc/self/oom_score_adj", "r+") as f:
            if int(f.read().strip() or 0) < score:     # never make a worker less likely than it was
                f.seek(0)
                f.write(str(score))
        return True
    except (OSError, ValueError):
        return False


def _init(setup: Setup, config: Any, driver: int | None = None, slots: Any = None) -> None:
    die_with_parent(driver)
    prefer_oom_kill()
    if slots is not None:            # claim this process's slot: [pid, seq, start] (see ProcessExecutor)
        with slots.get_lock():
            for i in range(0, len(slots), 3):
                if slots[i] == 0:
                    slots[i] = os.getpid()
                    _worker_state["slot"] = (slots, i)
                    break
    try:
        _worker_state["ctx"] = setup(config)
    except BaseException as exc:     # raised again by each task, so the driver sees why
        _worker_state["error"] = exc


def _call(task: Task, item: Any, seq: int = 0) -> Any:
    if "error" in _worker_state:
        raise _worker_state["error"]
    slot = _worker_state.get("slot")
    if slot is None or not seq:
        return task(_worker_state["ctx"], item)
    slots, i = slot
    with slots.get_lock():           # the driver reads (seq, start) together, under the same lock
        slots[i + 1], slots[i + 2] = seq, time.monotonic()
    try:
        return task(_worker_state["ctx"], item)
    finally:
        with slots.get_lock():
            slots[i + 1] = 0


def _ready() -> bool:
    """Sent first to a fresh pool that tries suspects alone: a worker that cannot even take
    this died in its own start, and no item is to blame."""
    return True


class _Queue:
    """The items still to run: those handed back after a pool was torn down first, then the rest."""

    def __init__(self, items: Iterable[Any]):
        self.front: deque[Any] = deque()
        self.rest = iter(items)

    def take(self, n: int) -> list[Any]:
        out = [self.front.popleft() for _ in range(min(n, len(self.front)))]
        out += islice(self.rest, n - len(out))
        return out


def _overdue(slots: Any, timeout: float) -> list[tuple[int, int]]:
    """(pid, seq) of every worker whose current item has run longer than ``timeout`` s."""
    now = time.monotonic()
    with slots.get_lock():
        got = [(int(slots[i]), int(slots[i + 1]), slots[i + 2]) for i in range(0, len(slots), 3)]
    return [(pid, seq) for pid, seq, start in got if pid and seq and now - start > timeout]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:       # it ended meanwhile
        pass


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """End a pool the driver has stopped iterating: cancel what has not started and kill the
    workers. The results of the items in flight would never reach the journal (the driver is
    leaving), so waiting for them only delays the stop, silently, for as long as a worker takes
    to read text in every frame of a long cine loop (new-user walk 7: SIGTERM on `vindr
    anonymize --allow-burned-in` of deid-data, workers 12 minutes into their items under a
    load of 15-19 on 2 cores, printed nothing for 59 s, until the run was killed by hand).
    A killed worker leaves at most a temporary file, which the next run removes
    (``remove_stale_parts``); the item is done again on resume, as any unjournaled one."""
    procs = list((getattr(pool, "_processes", None) or {}).keys())
    pool.shutdown(wait=False, cancel_futures=True)
    for pid in procs:
        _kill(pid)
    pool.shutdown(wait=True)


class ProcessExecutor(Executor):
    """A local process pool; ``in_flight`` items submitted at a time (default 4 per worker).

    A worker that dies (``BrokenProcessPool``) costs only the item that killed it: the
    items in flight then are tried again one at a time, each alone in a one-worker pool
    (kept while its worker lives), so the culprit is the item whose worker dies again; it
    comes back as ``ItemFailed(WORKER_DIED)``. Then a fresh pool takes the rest.

    ``task_timeout`` (seconds, None: no limit): each worker notes in shared memory which
    item it holds and since when; the driver looks every ``poll`` seconds, kills a worker
    whose item is overdue, and that item is ``ItemFailed(TIMED_OUT)``; the other items in
    flight then go, first, to a fresh pool (they are not suspects: the culprit is known)."""

    def __init__(self, workers: int, in_flight: int | None = None, task_timeout: float | None = None):
        self.workers = max(1, workers)
        self.in_flight = in_flight or 4 * self.workers
        self.task_timeout = task_timeout
        self.poll = None if task_timeout is None else min(1.0, max(0.02, task_timeout / 10))
        self._seq = 0

    def _pool(self, workers: int, setup: Setup, config: Any) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context()
        slots = None if self.task_timeout is None else ctx.Array("d", 3 * workers)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                                   initargs=(setup, config, os.getpid(), slots))
        pool.vindr_slots = slots    # type: ignore[attr-defined]
        return pool

    def _submit(self, pool: ProcessPoolExecutor, task: Task, item: Any) -> tuple[Future, int]:
        self._seq += 1
        return pool.submit(_call, task, item, self._seq if self.task_timeout is not None else 0), self._seq

    def run(self, task: Task, items: Iterable[Any], *, setup: Setup, config: Any) -> Iterator[tuple[Any, Any]]:
        queue = _Queue(items)
        suspects: deque[Any] = deque()
        pools: list[ProcessPoolExecutor] = []     # the live ones, for the finally below
        try:
            more = True
            while more or suspects:
                if suspects:
                    yield from self._alone(task, suspects, setup, config, pools)
                    continue
                pool = self._pool(self.workers, setup, config)
                pools.append(pool)
                more = yield from self._batch(pool, task, queue, suspects)
                pools.remove(pool)
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            # normal end: no pool is left here; early end (Ctrl-C, SIGTERM, an error in the
            # driver): drop what has not started and stop the workers at once
            for pool in pools:
                _stop_now(pool)

    def _batch(self, pool: ProcessPoolExecutor, task: Task, queue: _Queue,
               suspects: deque[Any]) -> Iterator[tuple[Any, Any]]:
        """Run items from ``queue`` on ``pool`` until it is exhausted (returns False) or a
        worker dies (returns True, with the items then in flight added to ``suspects``, or,
        when the driver killed it for the time limit, handed back to ``queue``)."""
        pending: dict[Future, Any] = {}
        by_seq: dict[int, Future] = {}        # the items in flight, by the number their worker notes
        seq_of: dict[Future, int] = {}
        timed_out: set[Future] = set()

        def fill(n: int) -> bool:
            taken = queue.take(n)
            for i, item in enumerate(taken):
                try:
                    fut, seq = self._submit(pool, task, item)
                except BrokenProcessPool:    # a worker died while idle: this one never started
                    suspects.append(item)
                    queue.front.extendleft(reversed(taken[i + 1:]))     # nor these: back to the queue
                    return False
                pending[fut] = item
                by_seq[seq], seq_of[fut] = fut, seq
            return True

        alive = fill(self.in_flight)
        while pending or not alive:
            finished: set[Future] = set()
            if alive:
                finished, _ = wait(pending, timeout=self.poll, return_when=FIRST_COMPLETED)
                alive = not any(isinstance(f.exception(), BrokenProcessPool) for f in finished)
                if alive and self.task_timeout is not None:
                    for pid, seq in _overdue(pool.vindr_slots, self.task_timeout):   # type: ignore[attr-defined]
                        fut = by_seq.get(seq)
                        if fut is not None and fut in pending and not fut.done():
                            timed_out.add(fut)
                            _kill(pid)
            if not alive:
                if pending:
                    wait(pending)             # the pool fails every other pending future too
                for fut, item in pending.items():
                    if not isinstance(fut.exception(), BrokenProcessPool):
                        yield item, fut.result()      # finished before the death: kept
                    elif fut in timed_out:
                        yield item, ItemFailed(TIMED_OUT)
                    elif timed_out:
                        queue.front.append(item)      # the death was ours: not a suspect
                    else:
                        suspects.append(item)
                return True
            for fut in finished:
                item = pending.pop(fut)
                by_seq.pop(seq_of.pop(fut), None)
                yield item, fut.result()
            alive = fill(self.in_flight - len(pending))
        return False

    def _alone(self, task: Task, suspects: deque[Any], setup: Setup, config: Any,
               pools: list[ProcessPoolExecutor]) -> Iterator[tuple[Any, Any]]:
        """Each suspect alone in a one-worker pool: one whose worker dies is the culprit
        (one that outruns the time limit is killed there and is ``TIMED_OUT``)."""
        pool: ProcessPoolExecutor | None = None

        def drop() -> None:
            nonlocal pool
            assert pool is not None
            pools.remove(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            pool = None

        try:
            while suspects:
                if pool is None:
                    pool = self._pool(1, setup, config)
                    pools.append(pool)
                    try:
                        pool.submit(_ready).result()
                    except BrokenProcessPool:
                        raise WorkerStartFailed("a worker process died while starting (out of memory or "
                                                "killed), before it read any file") from None
                item = suspects[0]
                try:
                    fut, _ = self._submit(pool, task, item)
                except BrokenProcessPool:    # the worker died while idle: not this item's doing
                    drop()
                    continue
                try:
                    result = fut.result(timeout=self.task_timeout)
                except BrokenProcessPool:
                    result = ItemFailed(WORKER_DIED)
                    drop()
                except FutureTimeout:        # the pool's one worker holds it: kill that worker
                    slots = pool.vindr_slots      # type: ignore[attr-defined]
                    for i in range(0, len(slots), 3):
                        if slots[i]:
                            _kill(int(slots[i]))
                    result = ItemFailed(TIMED_OUT)
                    drop()
                suspects.popleft()
                yield item, result
        finally:
            if pool is not None:
                drop()


class LocalExecutor(Executor):
    """``--executor local``: this machine's pool, its size chosen at run time (``-j`` and
    the number of items: :func:`make_executor`), with a per-item ``task_timeout``."""

    def __init__(self, task_timeout: float | None = DEFAULT_TASK_TIMEOUT, workers: int | None = None):
        self.task_timeout = task_timeout
        self.workers = workers or 1
        self._workers = workers

    def sized(self, workers: int, items: int | None = None) -> Executor:
        return make_executor(self._workers or workers, items, task_timeout=self.task_timeout)

    def run(self, task: Task, items: Iterable[Any], *, setup: Setup, config: Any) -> Iterator[tuple[Any, Any]]:
        items = list(items)
        yield from self.sized(self.workers, len(items)).run(task, items, setup=setup, config=config)


def make_executor(workers: int, items: int | None = None, *, task_timeout: float | None = None) -> Executor:
    """The executor for ``workers`` local workers: in-process for one worker or one item
    (then without a time limit), else a pool with ``task_timeout`` seconds per item."""
    if workers <= 1 or (items is not None and items <= 1):
        return InProcessExecutor()
    if items is not None:
        workers = min(workers, items)    # -j 2000 on 8 files started 2000 workers (minutes, not seconds)
    return ProcessExecutor(workers, task_timeout=task_timeout)
