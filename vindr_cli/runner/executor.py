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

Two executors are here:

* :class:`InProcessExecutor` — one worker, this process (tests, ``-j 1``, tiny inputs);
* :class:`ProcessExecutor` — a local ``concurrent.futures.ProcessPoolExecutor``.

A cluster backend is one new class, e.g. for Dask (``dask.distributed``)::

    class _Setup(WorkerPlugin):               # per-worker setup, run on every worker as it joins
        def __init__(self, setup, config): self.setup_fn, self.config = setup, config
        def setup(self, worker): worker.vindr_ctx = self.setup_fn(self.config)

    def _dask_call(task, item):               # like _call below
        return task(get_worker().vindr_ctx, item)

    class DaskExecutor(Executor):
        def __init__(self, client, in_flight=None):
            self.client = client
            self.workers = len(client.scheduler_info()["workers"])
            self.in_flight = in_flight or 4 * self.workers
        def run(self, task, items, *, setup, config):
            self.client.register_plugin(_Setup(setup, config))   # register_worker_plugin before 2023.9
            it, futs, done = iter(items), {}, as_completed()
            def submit(n):
                for item in islice(it, n):
                    f = self.client.submit(_dask_call, task, item, pure=False)
                    futs[f] = item
                    done.add(f)
            try:
                submit(self.in_flight)
                for f in done:                # results as they finish
                    yield futs.pop(f), f.result()
                    submit(1)                 # keep in_flight items out, no more
            finally:
                self.client.cancel(list(futs))    # an early end: drop what is left

The key file must then be readable at the same path on the workers (shared storage with
the same 0600 owner), which is the deployment's decision, not the stage's. Choosing an
executor happens in one place: :func:`make_executor`.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from itertools import islice
from typing import Any

Task = Callable[[Any, Any], Any]
Setup = Callable[[Any], Any]

_worker_state: dict[str, Any] = {}


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
        """Yield ``(item, result)`` in completion order. A generator: the runner calls its
        ``close()`` when it stops early, and the executor then cancels what has not started."""


class InProcessExecutor(Executor):
    """One worker: this process. ``setup`` runs once, here."""

    workers = 1

    def run(self, task: Task, items: Iterable[Any], *, setup: Setup, config: Any) -> Iterator[tuple[Any, Any]]:
        ctx = setup(config)
        for item in items:
            yield item, task(ctx, item)


def _init(setup: Setup, config: Any) -> None:
    try:
        _worker_state["ctx"] = setup(config)
    except BaseException as exc:     # raised again by each task, so the driver sees why
        _worker_state["error"] = exc


def _call(task: Task, item: Any) -> Any:
    if "error" in _worker_state:
        raise _worker_state["error"]
    return task(_worker_state["ctx"], item)


class ProcessExecutor(Executor):
    """A local process pool; ``in_flight`` items submitted at a time (default 4 per worker)."""

    def __init__(self, workers: int, in_flight: int | None = None):
        self.workers = max(1, workers)
        self.in_flight = in_flight or 4 * self.workers

    def run(self, task: Task, items: Iterable[Any], *, setup: Setup, config: Any) -> Iterator[tuple[Any, Any]]:
        pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_init, initargs=(setup, config))
        it = iter(items)
        pending: dict[Future, Any] = {}
        try:
            for item in islice(it, self.in_flight):
                pending[pool.submit(_call, task, item)] = item
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item = pending.pop(fut)
                    yield item, fut.result()
                for item in islice(it, self.in_flight - len(pending)):
                    pending[pool.submit(_call, task, item)] = item
        finally:
            # normal end: nothing is pending; early end: drop what has not started
            pool.shutdown(wait=True, cancel_futures=True)


def make_executor(workers: int, items: int | None = None) -> Executor:
    """The executor for ``workers`` local workers: in-process for one worker or one item."""
    if workers <= 1 or (items is not None and items <= 1):
        return InProcessExecutor()
    return ProcessExecutor(workers)
