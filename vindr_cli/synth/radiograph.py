"""Radiograph-like pixel content: simple analytic chest and spine phantoms.

Phantoms are rendered as float32 "attenuation" in [0, 1] (1 = dense bone),
then quantised to stored values for a given bit depth and photometric
interpretation. Anatomical regions are returned as normalized boxes
(x0, y0, x1, y1) so that findings can be placed on plausible anatomy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NormBox = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of cols/rows
PixelBox = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in pixels


@dataclass
class Phantom:
    attenuation: np.ndarray
    regions: dict[str, list[NormBox]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.attenuation.shape  # type: ignore[return-value]


def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    y = ((np.arange(rows, dtype=np.float32) + 0.5) / rows)[:, None]
    x = ((np.arange(cols, dtype=np.float32) + 0.5) / cols)[None, :]
    return y, x


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blob(y, x, cy, cx, ry, rx, soft=0.15, power=2.0) -> np.ndarray:
    """Soft-edged (super)ellipse mask in [0, 1]."""
    d = (np.abs((y - cy) / ry) ** power + np.abs((x - cx) / rx) ** power) ** (1.0 / power)
    return _smoothstep((1.0 - d) / soft)


def _band(dist: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-((dist / width) ** 2))


def smooth_noise(rows: int, cols: int, rng: np.random.Generator, cells: int = 6) -> np.ndarray:
    """Low-frequency noise in about [-1, 1], bilinear upsampling of a coarse grid."""
    coarse = rng.normal(0.0, 0.5, (cells + 2, cells + 2)).astype(np.float32)
    ys = np.linspace(0, cells, rows, dtype=np.float32)
    xs = np.linspace(0, cells, cols, dtype=np.float32)
    y0, x0 = ys.astype(int), xs.astype(int)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    c00 = coarse[y0[:, None], x0[None, :]]
    c01 = coarse[y0[:, None], x0[None, :] + 1]
    c10 = coarse[y0[:, None] + 1, x0[None, :]]
    c11 = coarse[y0[:, None] + 1, x0[None, :] + 1]
    return (1 - wy) * ((1 - wx) * c00 + wx * c01) + wy * ((1 - wx) * c10 + wx * c11)


def _ribs(y, x, side: int, torso: np.ndarray) -> np.ndarray:
    """Posterior rib arcs on one side (side=-1 patient right/image left, +1 other)."""
    out = np.zeros(np.broadcast_shapes(y.shape, x.shape), dtype=np.float32)
    lateral = np.clip((x - 0.5) * side, 0.0, None)
    inside = _smoothstep((0.40 - lateral) / 0.05) * _smoothstep((lateral - 0.04) / 0.03)
    for i in range(10):
        arc = 0.17 + 0.055 * i - 0.10 * lateral + 1.1 * lateral ** 2
        out += _band(y - arc, 0.011) * inside
    return out * torso


def chest_frontal(rows: int, cols: int, rng: np.random.Generator) -> Phantom:
    """PA/AP chest: torso, lungs, heart, mediastinum, spine, ribs, clavicles."""
    y, x = _grid(rows, cols)
    torso = np.maximum(_blob(y, x, 0.60, 0.5, 0.62, 0.45, 0.08, 3.0), _blob(y, x, 0.05, 0.5, 0.16, 0.10, 0.3))
    thickness = 1.0 - 0.5 * ((x - 0.5) / 0.45) ** 2
    att = 0.08 + torso * (0.50 * thickness)
    dome = 0.70 + 0.35 * (np.abs(x - 0.5) - 0.17) ** 2 * 4
    below = _smoothstep((dome - y) / 0.03)
    lungs = (_blob(y, x, 0.44, 0.31, 0.30, 0.15, 0.25, 2.4) + _blob(y, x, 0.45, 0.69, 0.29, 0.14, 0.25, 2.4)) * below
    att -= 0.27 * lungs
    heart = _blob(y, x, 0.61, 0.55, 0.14, 0.16, 0.35)
    mediastinum = _blob(y, x, 0.38, 0.5, 0.30, 0.075, 0.5, 3.0)
    aorta = _blob(y, x, 0.30, 0.57, 0.04, 0.04, 0.5)
    att += 0.17 * np.maximum(heart, mediastinum) + 0.07 * aorta
    spine = _band(x - 0.5, 0.035) * torso
    att += spine * (0.08 + 0.03 * np.cos(2 * np.pi * y / 0.055))
    att += 0.07 * (_ribs(y, x, -1, torso) + _ribs(y, x, 1, torso))
    clavicle = _band(y - (0.17 + 0.6 * (np.abs(x - 0.5) - 0.15) ** 2), 0.012)
    lateral = np.abs(x - 0.5)
    att += 0.10 * clavicle * _smoothstep((lateral - 0.05) / 0.03) * _smoothstep((0.33 - lateral) / 0.03)
    regions = {
        "lungs": [(0.19, 0.22, 0.43, 0.70), (0.58, 0.23, 0.81, 0.70)],
        "heart": [(0.41, 0.48, 0.70, 0.73)],
        "aortic_knob": [(0.52, 0.26, 0.62, 0.35)],
        "bases": [(0.17, 0.60, 0.32, 0.74), (0.68, 0.60, 0.83, 0.74)],
        "apices": [(0.20, 0.16, 0.40, 0.30), (0.60, 0.16, 0.80, 0.30)],
    }
    return Phantom(_finish(att, rng), regions)


def chest_lateral(rows: int, cols: int, rng: np.random.Generator) -> Phantom:
    """Left lateral chest: anterior to the image left, spine posterior (right)."""
    y, x = _grid(rows, cols)
    torso = _blob(y, x, 0.58, 0.50, 0.62, 0.40, 0.08, 3.0)
    att = 0.08 + torso * 0.62
    dome = 0.74 + 0.3 * (x - 0.55) ** 2
    lung = _blob(y, x, 0.46, 0.52, 0.32, 0.24, 0.3, 2.5) * _smoothstep((dome - y) / 0.03)
    att -= 0.30 * lung
    att += 0.18 * _blob(y, x, 0.62, 0.38, 0.14, 0.14, 0.35)
    spine_x = 0.76 + 0.03 * np.sin(np.pi * y)
    vert = _band(x - spine_x, 0.05) * (0.6 + 0.4 * (np.cos(2 * np.pi * y / 0.06) > -0.6))
    att += 0.16 * vert * torso
    att += 0.12 * _band(x - (0.17 + 0.05 * y), 0.012) * _smoothstep((0.6 - y) / 0.1) * torso
    regions = {
        "lungs": [(0.33, 0.22, 0.70, 0.70)],
        "heart": [(0.22, 0.46, 0.54, 0.78)],
        "aortic_knob": [(0.45, 0.24, 0.60, 0.34)],
        "bases": [(0.30, 0.62, 0.70, 0.76)],
        "apices": [(0.40, 0.16, 0.65, 0.30)],
    }
    return Phantom(_finish(att, rng), regions)


def spine(rows: int, cols: int, rng: np.random.Generator, *, lateral: bool, cervical: bool) -> Phantom:
    """Lumbar or cervical spine, AP or lateral: stacked vertebral bodies and discs."""
    y, x = _grid(rows, cols)
    count = 7 if cervical else 5
    top, bottom = (0.16, 0.88) if cervical else (0.10, 0.80)
    pitch = (bottom - top) / count
    height, width = pitch * 0.74, (0.16 if cervical else 0.26) * (0.9 if lateral else 1.0)
    body_rx = 0.30 if cervical else 0.44
    torso = _blob(y, x, 0.55, 0.5, 0.75, body_rx, 0.06, 4.0)
    att = 0.08 + torso * 0.45
    if not cervical and not lateral:
        att += 0.16 * (_blob(y, x, 0.93, 0.27, 0.13, 0.17, 0.3) + _blob(y, x, 0.93, 0.73, 0.13, 0.17, 0.3))
    if cervical:
        att += 0.22 * _blob(y, x, 0.04, 0.45 if lateral else 0.5, 0.10, 0.25, 0.3)
    vertebrae, discs, posterior = [], [], []
    for i in range(count):
        cy = top + pitch * (i + 0.5)
        cx = 0.5 + (0.05 * np.sin(np.pi * (i + 0.5) / count) if lateral else 0.0) - (0.06 if lateral else 0.0)
        w = width * (0.85 + 0.15 * i / count)
        att += 0.26 * _blob(y, x, cy, cx, height / 2, w / 2, 0.25, 4.0)
        vertebrae.append((cx - w / 2, cy - height / 2, cx + w / 2, cy + height / 2))
        if lateral:
            px = cx + w / 2 + 0.08
            att += 0.18 * _blob(y, x, cy + 0.01, px, height * 0.35, 0.09, 0.4, 2.0)
            posterior.append((px - 0.08, cy - height * 0.4, px + 0.10, cy + height * 0.45))
        else:
            for side in (-1, 1):
                att += 0.14 * _blob(y, x, cy - height * 0.15, cx + side * w * 0.32, height * 0.2, w * 0.1, 0.5)
            att += 0.10 * _blob(y, x, cy + height * 0.25, cx, height * 0.2, w * 0.06, 0.5)
        if i < count - 1:
            dy = cy + pitch / 2
            discs.append((cx - w / 2, dy - pitch * 0.2, cx + w / 2, dy + pitch * 0.2))
    regions = {"vertebrae": vertebrae, "discs": discs, "posterior": posterior}
    return Phantom(_finish(att, rng), regions)


def phantom_for(body_part: str, view: str, rows: int, cols: int, rng: np.random.Generator) -> Phantom:
    """Pick the phantom for a body part (CHEST, LSPINE, CSPINE) and view."""
    lateral = view in ("LL", "LATERAL")
    if body_part == "CHEST":
        return (chest_lateral if lateral else chest_frontal)(rows, cols, rng)
    return spine(rows, cols, rng, lateral=lateral, cervical=body_part == "CSPINE")


def _finish(att: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows, cols = att.shape
    att = att + 0.035 * smooth_noise(rows, cols, rng) + 0.02 * (np.arange(rows, dtype=np.float32) / rows)[:, None]
    return np.clip(att, 0.0, 1.0).astype(np.float32)


def to_pixel_box(box: NormBox, rows: int, cols: int) -> PixelBox:
    x0, y0, x1, y1 = box
    return (x0 * cols, y0 * rows, x1 * cols, y1 * rows)


def draw_lesion(phantom: Phantom, box: PixelBox, amplitude: float, rng: np.random.Generator) -> None:
    """Add a soft irregular blob (amplitude > 0 denser, < 0 lucent) filling `box`."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    h, w = max(y1 - y0, 2), max(x1 - x0, 2)
    yy = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    xx = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :]
    mask = _blob(yy, xx, 0.5, 0.5, 0.5, 0.5, 0.6)
    mask *= 1.0 + 0.35 * smooth_noise(h, w, rng, cells=3)
    region = phantom.attenuation[y0:y0 + h, x0:x0 + w]
    region += amplitude * mask[: region.shape[0], : region.shape[1]]
    np.clip(region, 0.0, 1.0, out=region)


def draw_implant(phantom: Phantom, box: PixelBox) -> None:
    """Two dense pedicle-screw-like bars inside `box`."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    h = max(y1 - y0, 4)
    for frac in (0.3, 0.7):
        r = y0 + int(h * frac)
        phantom.attenuation[max(r - 1, 0):r + 2, x0:x1] = 0.97


def to_stored(att: np.ndarray, bits_stored: int, photometric: str, rng: np.random.Generator) -> np.ndarray:
    """Quantise attenuation to uint16 stored values; MONOCHROME1 puts bone LOW."""
    max_value = 2 ** bits_stored - 1
    lo, hi = 0.05 * max_value, 0.92 * max_value
    values = lo + (hi - lo) * att.astype(np.float64)
    values += rng.normal(0.0, 0.004 * max_value, att.shape)
    values = np.clip(np.rint(values), 0, max_value)
    if photometric == "MONOCHROME1":
        values = max_value - values
    return values.astype(np.uint16)


def apply_padding(pixels: np.ndarray, padding_value: int, margin: float = 0.06) -> None:
    """Set a collimation border to `padding_value`; keep the inside distinct from it."""
    rows, cols = pixels.shape
    my, mx = int(rows * margin), int(cols * margin)
    inside = pixels[my:rows - my, mx:cols - mx]
    inside[inside == padding_value] = padding_value + 1 if padding_value == 0 else padding_value - 1
    pixels[:my, :] = padding_value
    pixels[rows - my:, :] = padding_value
    pixels[:, :mx] = padding_value
    pixels[:, cols - mx:] = padding_value
