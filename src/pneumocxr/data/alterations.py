"""Radiographs altered as real exports alter them: padded to a square (and saved as JPEG),
cropped tighter, lower in contrast. Unlike the stress test's corruptions (data/corruptions.py,
on batches at the model's size) these work on whole gray images before decoding, as a user's
file would arrive. `TEMPERING` is what shift tempering is fitted on (decision/shift.py);
benchmarks/border_transforms.py measures these and more on the external set.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from pneumocxr.data.decode import read_gray_bytes

Alteration = Callable[[np.ndarray], np.ndarray]


def border(gray: np.ndarray, fraction: float, value: int, sides: str = "all") -> np.ndarray:
    """The X-ray centred on a canvas whose border takes `fraction` of its side (`sides`
    "all", or "sides" for left and right only)."""
    height, width = gray.shape
    grow = 1 / (1 - fraction)
    canvas_w = round(width * grow)
    canvas_h = round(height * grow) if sides == "all" else height
    canvas = np.full((canvas_h, canvas_w), value, dtype=np.uint8)
    top, left = (canvas_h - height) // 2, (canvas_w - width) // 2
    canvas[top : top + height, left : left + width] = gray
    return canvas


def as_jpeg(gray: np.ndarray, quality: int = 75) -> np.ndarray:
    """Saved as a JPEG and decoded as an upload would be."""
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="JPEG", quality=quality)
    return np.asarray(read_gray_bytes(buffer.getvalue()))


def central_crop(gray: np.ndarray, fraction: float) -> np.ndarray:
    """The central `fraction` of each side."""
    height, width = gray.shape
    w, h = round(width * fraction), round(height * fraction)
    left, top = (width - w) // 2, (height - h) // 2
    return gray[top : top + h, left : left + w]


def contrast(gray: np.ndarray, factor: float) -> np.ndarray:
    """Contrast scaled by `factor` about the image's mean."""
    values = gray.astype(np.float64)
    mean = values.mean()
    return np.clip(np.round((values - mean) * factor + mean), 0, 255).astype(np.uint8)


TEMPERING: dict[str, Alteration] = {
    "black border 25%, JPEG": lambda g: as_jpeg(border(g, 0.25, 0)),
    "white border 25%, JPEG": lambda g: as_jpeg(border(g, 0.25, 255)),
    "central crop 90%": lambda g: central_crop(g, 0.90),
    "central crop 80%": lambda g: central_crop(g, 0.80),
    "contrast x0.7": lambda g: contrast(g, 0.7),
    "contrast x0.5": lambda g: contrast(g, 0.5),
}
