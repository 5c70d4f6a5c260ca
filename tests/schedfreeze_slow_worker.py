"""Preloaded into a test's ``dask worker`` (``--preload schedfreeze_slow_worker``,
tests/test_schedfreeze.py): vindr's text finder, 0.3 s slower per call while the file named by
``$VINDR_TEST_SLOW_MARKER`` exists (the test removes it before the re-run, which then goes at
full speed). The real finder still does the work: the outputs are those of any run."""
import os
import time

from vindr_cli.deid import pixeltext

_real = pixeltext.find_text
_marker = os.environ.get("VINDR_TEST_SLOW_MARKER", "")


def slow_find_text(image, frame=0, hints=None, min_side=0):
    if _marker and os.path.exists(_marker):
        time.sleep(0.3)
    return _real(image, frame, hints, min_side=min_side)


pixeltext.find_text = slow_find_text
