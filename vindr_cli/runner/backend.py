"""Which executor a batch command runs on (``--executor local|dask``): :func:`open_executor`.

Dask is imported only for ``dask`` (:mod:`vindr_cli.runner.cluster`), so a local run
starts as fast as before.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vindr_cli.errors import RequestError

ENV = "VINDR_SCHEDULER"
EXECUTORS = ("local", "dask")


@contextmanager
def open_executor(kind: str, scheduler: str | None, *, input: Path, output: Path | None = None,
                  task_timeout: float | None = None) -> Iterator[Any]:
    """The executor a batch command asked for: for ``local`` a
    :class:`~vindr_cli.runner.executor.LocalExecutor` (the stage sizes its pool from ``-j``;
    ``task_timeout`` seconds per item, default 1800), for ``dask`` a connected :class:`~vindr_cli.runner.cluster.DaskExecutor` for
    ``dask`` (scheduler from ``scheduler``, else ``$VINDR_SCHEDULER``), closed after the run."""
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

        yield LocalExecutor(DEFAULT_TASK_TIMEOUT if task_timeout is None else task_timeout)
        return
    address = scheduler or os.environ.get(ENV)
    if not address:
        raise RequestError(f"--executor dask needs --scheduler tcp://HOST:PORT (or ${ENV})")
    try:
        from vindr_cli.runner import cluster
    except ImportError:
        raise RequestError("--executor dask needs Dask: pip install 'vindr[cluster]' (dask[distributed])") from None
    client, ex = cluster.open_dask(address, input=input, output=output, task_timeout=task_timeout)
    try:
        yield ex
    finally:
        cluster.close(client)


__all__ = ["ENV", "EXECUTORS", "open_executor"]
