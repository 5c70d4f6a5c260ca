"""Which executor a batch command runs on (``--executor local|dask``): :func:`open_executor`.

Dask is imported only for ``dask`` (:mod:`vindr_cli.runner.cluster`), so a local run
starts as fast as before.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from vindr_cli.errors import RequestError

ENV = "VINDR_SCHEDULER"
EXECUTORS = ("local", "dask")
LOCAL_HINT = (f"{ENV} is set but --executor is local: running here; add --executor dask to use the cluster")


def executor_label(ex: Any, workers: int | None = None) -> str:
    """The executor of a run in a few words, for its summary table: ``dask at tcp://…
    (2 workers, 2 threads)``, or ``local (this machine, -j N)``."""
    if hasattr(ex, "label"):
        return ex.label()
    return "local (this machine" + (f", -j {workers})" if workers else ")")


@contextmanager
def open_executor(kind: str, scheduler: str | None, *, input: Path, output: Path | None = None,
                  task_timeout: float | None = None, say: Callable[[str], None] | None = None,
                  waiting: Callable[[str], AbstractContextManager] | None = None,
                  secret: str | None = None) -> Iterator[Any]:
    """The executor a batch command asked for: for ``local`` a
    :class:`~vindr_cli.runner.executor.LocalExecutor` (the stage sizes its pool from ``-j``;
    ``task_timeout`` seconds per item, default 1800), for ``dask`` a connected :class:`~vindr_cli.runner.cluster.DaskExecutor` for
    ``dask`` (scheduler from ``scheduler``, else ``$VINDR_SCHEDULER``), closed after the run.

    What the caller prints (the library prints nothing): ``say(line)`` gets
    :data:`LOCAL_HINT` (a local run while ``$VINDR_SCHEDULER`` is set) or, once the workers
    have passed the run's checks, the Dask run's start line (scheduler, workers, threads, and that ``secret`` — e.g. "the
    key file" — is not sent); ``waiting(text)`` is entered around the connect wait (up to
    Dask's ``distributed.comm.timeouts.connect``, 30 s by default, for the scheduler's answer,
    then as long for a first worker; Ctrl-C ends it at once): a spinner, for the CLI."""
    if kind not in EXECUTORS:
        raise RequestError(f"--executor must be one of {', '.join(EXECUTORS)}")
    if task_timeout is not None and not task_timeout > 0:
        raise RequestError("--task-timeout must be a positive number of seconds")
    if kind == "local" and scheduler:
        # a scheduler given without --executor dask would be ignored: the run would go to the
        # local pool while the user believes it is on the cluster
        raise RequestError("--scheduler is only used with --executor dask: add --executor dask, or drop --scheduler")
    if kind == "local":
        from vindr_cli.runner.executor import DEFAULT_TASK_TIMEOUT, LocalExecutor

        if say is not None and os.environ.get(ENV, "").strip():
            say(LOCAL_HINT)
        yield LocalExecutor(DEFAULT_TASK_TIMEOUT if task_timeout is None else task_timeout)
        return
    address = scheduler or os.environ.get(ENV)
    if not address:
        raise RequestError(f"--executor dask needs --scheduler tcp://HOST:PORT (or ${ENV})")
    try:
        from vindr_cli.runner import cluster
    except ImportError:
        raise RequestError("--executor dask needs Dask: pip install 'vindr[cluster]' (dask[distributed])") from None
    with (waiting or (lambda text: nullcontext()))(f"connecting to the Dask scheduler at {cluster.public_address(address)} "
                                                    "and waiting for a worker ..."):
        client, ex = cluster.open_dask(address, input=input, output=output, task_timeout=task_timeout)
    if say is not None:
        ex.announce = lambda: say(ex.start_line(secret))    # once its checks have passed (cluster.DaskExecutor.run)
    try:
        yield ex
    finally:
        cluster.close(client)


__all__ = ["ENV", "EXECUTORS", "LOCAL_HINT", "executor_label", "open_executor"]
