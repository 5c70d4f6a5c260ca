"""A finding of a checking command (`audit`, `validate`): what, where, and a PHI-free detail."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    kind: str
    where: str
    detail: str
