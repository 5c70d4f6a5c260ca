"""Map a function over inputs in a process pool, in-process for one worker, with a rich
progress bar. Results come back to the calling process, which alone writes shared state.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
R = TypeVar("R")

_worker_state: dict[str, Any] = {}


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _init(setup: Callable[[Any], Any], config: Any) -> None:
    _worker_state["ctx"] = setup(config)


def _call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_worker_state["ctx"], item)


def progress_bar(console: Console | None = None, *, transient: bool = False) -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=transient, disable=console is not None and not console.is_terminal and os.environ.get("VINDR_PROGRESS") != "1",
    )


def run_pool(
    items: Sequence[T],
    fn: Callable[[Any, T], R],
    *,
    setup: Callable[[Any], Any],
    config: Any,
    workers: int,
    on_result: Callable[[T, R], None],
    description: str = "working",
    console: Console | None = None,
) -> None:
    """Call ``fn(setup(config), item)`` for every item; ``on_result(item, result)`` in this process.

    ``setup`` runs once per worker (e.g. to build a profile and key schedule). ``fn`` must
    catch its own per-item errors and return them as results: an exception escaping it
    stops the batch.
    """
    import time

    start = time.monotonic()
    with progress_bar(console) as progress:
        task = progress.add_task(description, total=len(items), rate="")

        def advance(done: int) -> None:
            el = max(time.monotonic() - start, 1e-6)
            progress.update(task, completed=done, rate=f"{done / el:.1f} files/s")

        done = 0
        if workers <= 1 or len(items) <= 1:
            ctx = setup(config)
            for item in items:
                on_result(item, fn(ctx, item))
                done += 1
                advance(done)
            return
        window = workers * 4
        with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(setup, config)) as pool:
            it: Iterable[T] = iter(items)
            pending: dict = {}
            for item in it:
                pending[pool.submit(_call, fn, item)] = item
                if len(pending) >= window:
                    break
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item = pending.pop(fut)
                    on_result(item, fut.result())
                    done += 1
                    advance(done)
                for item in it:
                    pending[pool.submit(_call, fn, item)] = item
                    if len(pending) >= window:
                        break
