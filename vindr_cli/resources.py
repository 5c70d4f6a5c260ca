"""Where the project's data files (``schemas/``) are found."""
from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path


@cache
def schemas_dir() -> Path:
    """The ``schemas/`` folder: the checkout's when run from source, else the installed copy."""
    here = Path(__file__).resolve().parent.parent / "schemas"
    if here.is_dir():
        return here
    return Path(str(resources.files("vindr_cli") / "schemas"))


def schema_path(*parts: str) -> Path:
    return schemas_dir().joinpath(*parts)
