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

* :class:`InProcessExecutor` — one worker, this process (tests, ``-j 1``, tiny inputs);
* :class:`ProcessExecutor` — a local ``concurrent.futures.ProcessPoolExecutor``.

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
  what was journaled is kept and the same command resumes).

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
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
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


def _init(setup: Setup, config: Any, driver: int | None = None) -> None:
    die_with_parent(driver)
    prefer_oom_kill()
    try:
        _worker_state["ctx"] = setup(config)
    except BaseException as exc:     # raised again by each task, so the driver sees why
        _worker_state["error"] = exc


def _call(task: Task, item: Any) -> Any:
    if "error" in _worker_state:
        raise _worker_state["error"]
    return task(_worker_state["ctx"], item)


def _ready() -> bool:
    """Sent first to a fresh pool that tries suspects alone: a worker that cannot even take
    this died in its own start, and no item is to blame."""
    return True


class ProcessExecutor(Executor):
    """A local process pool; ``in_flight`` items submitted at a time (default 4 per worker).

    A worker that dies (``BrokenProcessPool``) costs only the item that killed it: the
    items in flight then are tried again one at a time, each alone in a one-worker pool
    (kept while its worker lives), so the culprit is the item whose worker dies again; it
    comes back as ``ItemFailed(WORKER_DIED)``. Then a fresh pool takes the rest."""

    def __init__(self, workers: int, in_flight: int | None = None):
        self.workers = max(1, workers)
        self.in_flight = in_flight or 4 * self.workers

    @staticmethod
    def _pool(workers: int, setup: Setup, config: Any) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(setup, config, os.getpid()))

    def run(self, task: Task, items: Iterable[Any], *, setup: Setup, config: Any) -> Iterator[tuple[Any, Any]]:
        it = iter(items)
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
                more = yield from self._batch(pool, task, it, suspects)
                pools.remove(pool)
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            # normal end: nothing is pending; early end: drop what has not started
            for pool in pools:
                pool.shutdown(wait=True, cancel_futures=True)

    def _batch(self, pool: ProcessPoolExecutor, task: Task, it: Iterator[Any],
               suspects: deque[Any]) -> Iterator[tuple[Any, Any]]:
        """Run items from ``it`` on ``pool`` until it is exhausted (returns False) or a worker
        dies (returns True, with the items then in flight added to ``suspects``)."""
        pending: dict[Future, Any] = {}

        def fill(n: int) -> bool:
            for item in islice(it, n):
                try:
                    pending[pool.submit(_call, task, item)] = item
                except BrokenProcessPool:    # a worker died while idle: this one never started
                    suspects.append(item)
                    return False
            return True

        alive = fill(self.in_flight)
        while pending or not alive:
            finished: set[Future] = set()
            if alive:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                alive = not any(isinstance(f.exception(), BrokenProcessPool) for f in finished)
            if not alive:
                if pending:
                    wait(pending)             # the pool fails every other pending future too
                for fut, item in pending.items():
                    if isinstance(fut.exception(), BrokenProcessPool):
                        suspects.append(item)
                    else:
                        yield item, fut.result()      # finished before the death: kept
                return True
            for fut in finished:
                item = pending.pop(fut)
                yield item, fut.result()
            alive = fill(self.in_flight - len(pending))
        return False

    def _alone(self, task: Task, suspects: deque[Any], setup: Setup, config: Any,
               pools: list[ProcessPoolExecutor]) -> Iterator[tuple[Any, Any]]:
        """Each suspect alone in a one-worker pool: one whose worker dies is the culprit."""
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
                    fut = pool.submit(_call, task, item)
                except BrokenProcessPool:    # the worker died while idle: not this item's doing
                    drop()
                    continue
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    result = ItemFailed(WORKER_DIED)
                    drop()
                suspects.popleft()
                yield item, result
        finally:
            if pool is not None:
                drop()


def make_executor(workers: int, items: int | None = None) -> Executor:
    """The executor for ``workers`` local workers: in-process for one worker or one item."""
    if workers <= 1 or (items is not None and items <= 1):
        return InProcessExecutor()
    return ProcessExecutor(workers)
