"""The CLI process's start-up: no cyclic garbage collections over it, and no BLAS thread
pool spinning through it (issue 13).

Start-up (typer, rich, pydicom, pyarrow, vindr's own modules and policy tables) allocates
some 80,000 container objects that all live to the end; with CPython's default thresholds
(700, 10, 10) the collector runs about 125 times meanwhile, once over the whole heap, and
finds nothing: ≈ 40 ms CPU, a tenth of a one-file ``vindr anonymize``. :func:`defer_first_collection`
raises the first generation's threshold so that the first automatic collection comes only after
``budget`` more allocations than deallocations, and that collection puts the thresholds back
as they were: a short run never collects, a long one collects once late and then as before.
Only when cyclic garbage is freed changes (reference counting frees everything else at once),
never what a command computes or writes.
"""
from __future__ import annotations

import gc
import os
import sys

BUDGET = 200_000
# what OpenBLAS reads for its thread count, in its own order of precedence
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def defer_first_collection(budget: int = BUDGET) -> None:
    """Hold automatic collections back until ``budget`` net allocations, once per process
    (a forked worker that inherits the raised threshold gets its own first collection)."""
    if any(getattr(cb, "_vindr_restore", False) for cb in gc.callbacks):
        return
    before = gc.get_threshold()
    if before[0] == 0 or before[0] >= budget:          # collection off, or already that late
        return

    def restore(phase, info) -> None:
        if phase != "stop":
            return
        if gc.get_threshold()[0] == budget:            # nobody changed it meanwhile
            gc.set_threshold(*before)
        try:
            gc.callbacks.remove(restore)
        except ValueError:
            pass

    restore._vindr_restore = True
    gc.callbacks.append(restore)
    gc.set_threshold(budget, *before[1:])


# commands left with OpenBLAS's own thread count: torch may link OpenBLAS itself (aarch64 wheels)
BLAS_COMMANDS = frozenset({"baseline"})


def one_blas_thread(environ=None, command: str | None = None) -> bool:
    """Set ``OPENBLAS_NUM_THREADS=1`` before numpy is imported, unless the user already chose
    a BLAS thread count (any of :data:`BLAS_THREAD_VARS`), numpy is loaded, or ``command`` is
    one of :data:`BLAS_COMMANDS`. True if set.

    numpy's OpenBLAS starts a pool of ``cores - 1`` threads when numpy is imported, and each
    busy-waits for work a while before it sleeps: on 2 cores ≈ 25–35 ms CPU of a one-file
    ``vindr anonymize`` (≈ 0.3 s), competing with the main thread for the other core
    (startup3, bench/README.md). vindr never needs them: its batch stages run one file per
    worker process (``-j``), and its only BLAS calls are small (an RGB weighting, a 32×32
    DCT, label co-occurrences), far below the sizes OpenBLAS splits between threads. The
    setting is inherited by the worker processes, where a pool per worker would only
    oversubscribe the cores. ``vindr baseline`` is left as it is: torch has its own threads, but
    may use OpenBLAS for them."""
    env = os.environ if environ is None else environ
    if "numpy" in sys.modules or command in BLAS_COMMANDS or any(var in env for var in BLAS_THREAD_VARS):
        return False
    env["OPENBLAS_NUM_THREADS"] = "1"
    return True
