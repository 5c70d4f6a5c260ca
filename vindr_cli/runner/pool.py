"""The progress bar every stage shows, and ``run_pool``: map a function over items through
an :class:`~vindr_cli.runner.executor.Executor` with that bar. Results come back to the
calling process, which alone writes shared state. Stages use :func:`vindr_cli.runner.stage.run_stage`;
``run_pool`` is for one-off maps that keep no state."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vindr_cli.runner.executor import Executor, default_workers, make_executor

__all__ = ["default_workers", "progress_bar", "run_pool"]

T = TypeVar("T")
R = TypeVar("R")


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
    executor: Executor | None = None,
) -> None:
    """Call ``fn(setup(config), item)`` for every item; ``on_result(item, result)`` in this process.

    ``setup`` runs once per worker. ``fn`` must catch its own per-item errors and return
    them as results: an exception escaping it stops the batch. An item whose worker died
    comes back with an :class:`~vindr_cli.runner.executor.ItemFailed` as its result.
    """
    ex = executor.sized(workers, len(items)) if executor is not None else make_executor(workers, len(items))
    start = time.monotonic()
    with progress_bar(console) as progress:
        task = progress.add_task(description, total=len(items), rate="")
        done = 0
        for item, result in ex.run(fn, items, setup=setup, config=config):
            on_result(item, result)
            done += 1
            progress.update(task, completed=done, rate=f"{done / max(time.monotonic() - start, 1e-6):.1f} files/s")
