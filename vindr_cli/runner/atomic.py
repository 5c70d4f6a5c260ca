"""Atomic writes (see :mod:`vindr_cli.atomic`, a leaf module so that ``tables`` and the
runner can both use it without importing each other)."""
from vindr_cli.atomic import TMP_SUFFIX, atomic_write, remove_stale_parts

__all__ = ["TMP_SUFFIX", "atomic_write", "remove_stale_parts"]
