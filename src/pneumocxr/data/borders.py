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

# Measured (benchmarks/border_tolerance.py, docs/VALIDATION.md): 12 is the smallest tolerance
# that leaves at most 2 pixels of a black or white border saved as a JPEG of quality 75 or 95;
# the ringing a tighter one leaves got up to 104 of 104 padded X-rays refused. 2% lets a line
# hold a stray pixel or two (JPEG, dust) without ending the border.
TOLERANCE = 12  # gray levels a border pixel may differ from the edge's value
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
    """`image` (8-bit gray) without its uniform borders; itself when it has none.

    Padding goes first, lines that are uniform to the last pixel: measured over the whole
    canvas, a dark column of the X-ray inside a wide border would pass for border if stray
    pixels were allowed there. Then, on what remains, lines with a few stray pixels."""
    if image.mode != "L" or not _edge_may_be_border(image):  # anything else is left alone
        return image
    pixels = np.asarray(image)
    top, left, (bottom, right) = 0, 0, pixels.shape
    for stray in (0.0, STRAY):
        for _ in range(ROUNDS):
            found = find_borders(pixels[top:bottom, left:right], stray)
            if not found:
                break
            top, bottom = top + found.top, bottom - found.bottom
            left, right = left + found.left, right - found.right
    if (top, left, bottom, right) == (0, 0, *pixels.shape):
        return image
    return image.crop((left, top, right, bottom))


def find_borders(pixels: np.ndarray, stray: float = STRAY) -> Borders:
    """The border widths of an H x W uint8 image, or none when what they enclose is no image
    `limits.check_geometry` would take (a blank image, a sliver): such an image is left to the
    scope check, which refuses it as mostly border, rather than blown up from a few pixels."""
    found = measure_borders(pixels, stray)
    height = pixels.shape[0] - found.top - found.bottom
    width = pixels.shape[1] - found.left - found.right
    if min(height, width) < MIN_SIDE or max(height, width) > MAX_ASPECT * min(height, width):
        return Borders()
    return found


def measure_borders(pixels: np.ndarray, stray: float = STRAY) -> Borders:
    """The uniform run at each edge, whatever remains inside (a blank image is all border)."""
    edges = (pixels, pixels[::-1], pixels.T, pixels.T[::-1])
    return Borders(*(_edge(lines, stray) for lines in edges))


def inner_share(pixels: np.ndarray) -> float:
    """The share of the image inside its uniform borders (0 for a blank image)."""
    found, (height, width) = measure_borders(pixels), pixels.shape
    inside = max(0, height - found.top - found.bottom) * max(0, width - found.left - found.right)
    return inside / (height * width)


def _edge_may_be_border(image: Image.Image) -> bool:
    """Whether one of the four outermost lines could begin a border: the whole image is read
    only then (for 9 megapixels, reading them took 10 ms, looking at their edges 0.3)."""
    width, height = image.size
    boxes = ((0, 0, width, 1), (0, height - 1, width, height), (0, 0, 1, height),
             (width - 1, 0, width, height))  # fmt: skip
    return any(_edge(np.asarray(image.crop(box)).reshape(1, -1), STRAY) for box in boxes)


def _edge(lines: np.ndarray, stray: float) -> int:
    """How many leading rows of `lines` are (nearly) all the first row's typical value. The
    first row is judged from its histogram: most images end there, at little cost."""
    counts = np.bincount(lines[0], minlength=256)
    value = _median(counts, len(lines[0]))
    near = counts[max(0, value - TOLERANCE) : value + TOLERANCE + 1].sum()
    if near < (1 - stray) * len(lines[0]):
        return 0
    for start in range(1, len(lines), STEP):
        chunk = lines[start : start + STEP].astype(np.int16)
        near = (np.abs(chunk - value) <= TOLERANCE).mean(axis=1) >= 1 - stray
        if not near.all():
            return start + int(np.argmin(near))
    return len(lines)


def _median(counts: np.ndarray, size: int) -> int:
    """int(np.median(line)) from the line's histogram, without sorting it."""
    total = np.cumsum(counts)
    upper = int(np.searchsorted(total, size // 2 + 1))
    lower = upper if size % 2 else int(np.searchsorted(total, size // 2))
    return (lower + upper) // 2
