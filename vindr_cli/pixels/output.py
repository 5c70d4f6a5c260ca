"""Where decoded images go and how they are written (PNG 8/16-bit or .npy)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
FORMATS = ("png", "npy")


def image_name(rel: str, frame: int | None, fmt: str) -> str:
    """Output path named after the input's relative path: 'a/b.dcm' -> 'a/b.png';
    archive members 'x.zip!c/d.dcm' -> 'x.zip/c/d.png'; frames get '_f0001'."""
    rel = rel.replace("!", "/")
    p = Path(rel)
    stem = p.with_suffix("") if p.suffix.lower() in DICOM_SUFFIXES else p
    tail = f"_f{frame + 1:04d}" if frame is not None else ""
    return f"{stem.as_posix()}{tail}.{fmt}"


def write_image(path: Path, image: np.ndarray, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        with open(path, "wb") as f:
            np.save(f, image)
    elif fmt == "png":
        Image.fromarray(image).save(path, format="PNG", compress_level=1)
    else:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}")
