"""Atomic writes and the naming of OUTPUT's write faults (see :mod:`vindr_cli.atomic`, a leaf
module so that ``tables`` and the runner can both use it without importing each other)."""
from vindr_cli.atomic import TMP_SUFFIX, atomic_write, output_fault, raise_output_fault, remove_stale_parts

__all__ = ["TMP_SUFFIX", "atomic_write", "output_fault", "raise_output_fault", "remove_stale_parts"]
