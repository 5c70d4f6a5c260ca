"""The CLI process's start-up without cyclic garbage collections (issue 13).

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

BUDGET = 200_000


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
