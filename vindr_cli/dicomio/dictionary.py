"""pydicom's data dictionary (``dictionary_VR``, ``dictionary_VM``), remembered per tag.

The de-identification walk and the structure checks ask the dictionary for the same few
hundred tags in every file, several times each, and pydicom's lookup builds a ``Tag`` and
tries the repeater masks every time. These give pydicom's answer (the same string, or the
same ``KeyError`` for a tag it does not know) from a bounded cache keyed by the tag's
integer value. vindr never adds dictionary entries, so an answer cannot change during a run.
"""
from __future__ import annotations

from functools import lru_cache

from pydicom.datadict import dictionary_VM as _pydicom_vm
from pydicom.datadict import dictionary_VR as _pydicom_vr

_SIZE = 1 << 14          # tags remembered (a hostile file's thousands of odd tags cannot grow it)


@lru_cache(maxsize=_SIZE)
def _vr(tag: int) -> str | None:
    try:
        return _pydicom_vr(tag)
    except KeyError:
        return None


@lru_cache(maxsize=_SIZE)
def _vm(tag: int) -> str | None:
    try:
        return _pydicom_vm(tag)
    except KeyError:
        return None


def dictionary_VR(tag: int) -> str:
    """pydicom's ``dictionary_VR(tag)``; ``KeyError`` when the dictionary has no entry."""
    vr = _vr(int(tag))
    if vr is None:
        raise KeyError(f"Tag {int(tag):08X} not found in DICOM dictionary")
    return vr


def dictionary_VM(tag: int) -> str:
    """pydicom's ``dictionary_VM(tag)``; ``KeyError`` when the dictionary has no entry."""
    vm = _vm(int(tag))
    if vm is None:
        raise KeyError(f"Tag {int(tag):08X} not found in DICOM dictionary")
    return vm
