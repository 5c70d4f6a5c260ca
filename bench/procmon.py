"""Shared by the bench scripts: peak memory of a process tree, and a warm page cache."""
from __future__ import annotations

import threading
import time
from pathlib import Path


class PeakRSS:
    """Sample the RSS of a process tree; keep the peak of the largest single process."""

    def __init__(self, pid: int):
        import psutil

        self.psutil = psutil
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for p in [self.root, *self.root.children(recursive=True)]:
                    try:
                        self.peak = max(self.peak, p.memory_info().rss)
                    except self.psutil.Error:
                        pass
            except self.psutil.Error:
                pass
            time.sleep(0.01)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def warm(folder: Path) -> None:
    """Read every file once so timings start from a warm page cache."""
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(1 << 22):
                    pass
