"""Where the project's data files (``schemas/``) are found."""
from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path


@cache
def schemas_dir() -> Path:
    """The ``schemas/`` folder: the copy installed inside the package (a wheel), else the
    checkout's top-level folder (a source tree or an editable install)."""
    installed = Path(str(resources.files("vindr_cli") / "schemas"))
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "schemas").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "schemas"
    raise RuntimeError("vindr's data folder (schemas/) is missing: reinstall vindr")


def schema_path(*parts: str) -> Path:
    return schemas_dir().joinpath(*parts)
