"""The process entry: ``python -m vindr_cli`` and the ``vindr`` console script
(pyproject ``[project.scripts]``) both call :func:`entry`.

Once the command has finished and its exit code is known, :func:`leave` does the parts of
CPython's exit that vindr's work depends on -- joins non-daemon threads and runs the
``threading`` exit hooks (``concurrent.futures`` pools), runs every ``atexit`` hook (logging's
flush, ``multiprocessing``'s children, ``weakref.finalize`` temp-dir cleanup, Dask's client),
flushes stdout and stderr -- and then ends the process with ``os._exit``, skipping native
teardown: module deallocation and the C++ static destructors of native thread pools, which
under load can abort a finished run with ``terminate called without an active exception``
(exit 134; apache/arrow#34314). Every output is already complete by then: vindr writes each
file under a temporary name, fsyncs it and renames it before the command returns.

Library use and ``cli.main()`` called in a process (tests, CliRunner) never take this path:
``cli.main`` still ends with ``SystemExit``."""
from __future__ import annotations

import os
import sys
from typing import NoReturn

EXIT_FLUSH_FAILED = 120        # CPython's own status when stdout cannot be flushed at exit


def exit_status(code: object) -> int:
    """The process status of ``SystemExit(code)``, by CPython's rules: None is 0, an int is
    itself, anything else is printed to stderr and gives 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)
    try:
        print(code, file=sys.stderr)
    except Exception:  # pragma: no cover - stderr gone
        pass
    return 1


def leave(code: object) -> NoReturn:
    """End the process with ``SystemExit(code)``'s status after the Python-level exit work
    (threads, ``atexit`` hooks, stdio flush), without native teardown (see the module doc)."""
    status = exit_status(code)
    try:
        import threading

        shutdown = getattr(threading, "_shutdown", None)   # what Py_FinalizeEx calls first
        if shutdown is not None:
            shutdown()
    except BaseException:  # pragma: no cover - as at a normal exit: ignored, the exit goes on
        pass
    import atexit

    atexit._run_exitfuncs()        # LIFO; a failing hook is reported and skipped, as at a normal exit
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:          # e.g. a closed pipe (`vindr info X | head -1`)
            if stream is sys.stdout and status == 0:
                status = EXIT_FLUSH_FAILED
    os._exit(status)


def entry() -> NoReturn:
    """Run the command given in ``sys.argv``, then :func:`leave` with its exit code. An
    exception other than SystemExit (only with VINDR_DEBUG=1) takes Python's normal exit,
    with its traceback."""
    from vindr_cli.cli import main

    try:
        main()
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


if __name__ == "__main__":
    entry()
