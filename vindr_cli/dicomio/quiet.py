"""Keep pydicom from printing: its warnings quote element values (an invalid UID, a name
with a bad character), and values from a raw export are PHI."""
from __future__ import annotations

import logging
import warnings


def quiet_pydicom() -> None:
    import pydicom.config

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
    warnings.filterwarnings("ignore", message=r".*(VR|value|Invalid|charset|encoding).*")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
