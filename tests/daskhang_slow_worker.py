"""Preloaded into a test's ``dask worker`` (``--preload daskhang_slow_worker``,
tests/test_daskhang.py): vindr's text finder, 0.3 s slower per call, so that a run on that
worker is still going when the test interrupts it or kills its scheduler. The real finder
still does the work: the outputs are those of any run."""
import time

from vindr_cli.deid import pixeltext

_real = pixeltext.find_text


def slow_find_text(image, frame=0, hints=None, min_side=0):
    time.sleep(0.3)
    return _real(image, frame, hints, min_side=min_side)


pixeltext.find_text = slow_find_text
