"""Deterministic UIDs drawn from a seeded RNG (never uuid or the clock)."""
from __future__ import annotations

import numpy as np

# Fixed identity of the fake PACS vendor that "exported" the data.
IMPLEMENTATION_CLASS_UID = "2.25.178237459371239917520541327870385634913"
IMPLEMENTATION_VERSION_NAME = "MEDIVIEW_PACS_42"


class UidFactory:
    """Hands out '2.25.<128-bit int>' UIDs from a numpy Generator."""

    def __init__(self, seed: int | list[int]) -> None:
        self._rng = np.random.default_rng(seed)

    def new(self) -> str:
        value = int.from_bytes(self._rng.bytes(16), "big")
        return f"2.25.{value}"
