"""Keep pydicom from printing: its warnings quote element values (an invalid UID, a name
with a bad character), and values from a raw export are PHI."""
from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
import warnings


def _filters() -> None:
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
    warnings.filterwarnings("ignore", message=r".*(VR|value|Invalid|charset|encoding).*")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def quiet_pydicom() -> None:
    import pydicom.config

    _settings(pydicom.config)


def _settings(config) -> None:
    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE
    _filters()


class _QuietOnImport(importlib.abc.MetaPathFinder):
    """Finds ``pydicom.config`` once, through the normal finders, and runs
    :func:`quiet_pydicom` the moment its code has run: pydicom sets its logger back to
    WARNING when ``pydicom.config`` is executed, so the quieting must follow that, before
    any other of pydicom's code can read a file."""

    def find_spec(self, name, path=None, target=None):
        if name != "pydicom.config":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module):
            run(module)
            _settings(module)       # (the module is not yet an attribute of the package)

        loader.exec_module = exec_module
        return spec


def quiet_pydicom_when_imported() -> None:
    """:func:`quiet_pydicom` now if pydicom is loaded, else as soon as it is (a command that
    never reads DICOM then never pays for importing pydicom: ``--help``, ``split``, ...).
    The warning filters and the logger level are set at once either way."""
    _filters()
    if "pydicom.config" in sys.modules:
        quiet_pydicom()
        return
    if not any(isinstance(f, _QuietOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietOnImport())
