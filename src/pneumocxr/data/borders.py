"""Uniform borders: padding to a square or a larger canvas, collimation, a scanner's frame.

`decode.squash` trims them before any model sees an image, so training, evaluation, `predict`,
the web app, the API, the DICOM node and an ONNX export's input all get the same pixels: the
X-ray itself, stretched to the model's square as before. A border is a run of rows (or
columns) at an edge whose pixels are all (nearly) the edge's own value. An image without one
comes out unchanged, the same object; the tolerances are measured in docs/VALIDATION.md
("Borders and other alterations").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from pneumocxr.data.limits import MAX_ASPECT, MIN_SIDE

# Measured (docs/VALIDATION.md): 16 is the smallest tolerance that trims a border saved as a
# JPEG of quality 75 to the last pixel; the ringing left by a tighter one got 43-104 of 104
# padded X-rays refused. 2% lets a line hold a stray pixel or two without ending the border.
TOLERANCE = 16  # gray levels a border pixel may differ from the edge's value
STRAY = 0.02  # share of a border line that may differ more
STEP = 16  # lines examined at a time: an image without a border costs one look per edge
ROUNDS = 4  # a marker in a corner can hide a column until the rows around it are gone
DESCRIPTION = (
    f"uniform borders trimmed first: edge rows and columns within {TOLERANCE} gray levels of "
    f"the edge's value ({STRAY:.0%} of a line may stray), unless what remains would be under "
    f"{MIN_SIDE} pixels a side or over {MAX_ASPECT:g}:1"
)


@dataclass(frozen=True)
class Borders:
    """Widths in pixels of the uniform border at each edge."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    def __bool__(self) -> bool:
        return any((self.top, self.bottom, self.left, self.right))


def trim_borders(image: Image.Image) -> Image.Image:
    """`image` (8-bit gray) without its uniform borders; itself when it has none."""
    if image.mode != "L":  # every decoder gives 8-bit gray; anything else is left alone
        return image
    for _ in range(ROUNDS):
        found = find_borders(np.asarray(image))
        if not found:
            return image
        width, height = image.size
        image = image.crop((found.left, found.top, width - found.right, height - found.bottom))
    return image


def find_borders(pixels: np.ndarray) -> Borders:
    """The border widths of an H x W uint8 image, or none when what they enclose is no image
    `limits.check_geometry` would take (a blank image, a sliver): such an image is left to the
    scope check, which refuses it as mostly border, rather than blown up from a few pixels."""
    found = measure_borders(pixels)
    height = pixels.shape[0] - found.top - found.bottom
    width = pixels.shape[1] - found.left - found.right
    if min(height, width) < MIN_SIDE or max(height, width) > MAX_ASPECT * min(height, width):
        return Borders()
    return found


def measure_borders(pixels: np.ndarray) -> Borders:
    """The uniform run at each edge, whatever remains inside (a blank image is all border)."""
    return Borders(_edge(pixels), _edge(pixels[::-1]), _edge(pixels.T), _edge(pixels.T[::-1]))


def inner_share(pixels: np.ndarray) -> float:
    """The share of the image inside its uniform borders (0 for a blank image)."""
    found, (height, width) = measure_borders(pixels), pixels.shape
    inside = max(0, height - found.top - found.bottom) * max(0, width - found.left - found.right)
    return inside / (height * width)


def _edge(lines: np.ndarray) -> int:
    """How many leading rows of `lines` are (nearly) all the first row's typical value."""
    value = int(np.median(lines[0]))
    count = len(lines)
    for start in range(0, count, STEP):
        chunk = lines[start : start + STEP].astype(np.int16)
        near = (np.abs(chunk - value) <= TOLERANCE).mean(axis=1) >= 1 - STRAY
        if not near.all():
            return start + int(np.argmin(near))
    return count
