"""What an input image may be: checked from its header, before any pixel is decoded.

A chest radiograph is at most a few thousand pixels a side (a 43 cm detector at 100 um is
4300 x 4300, 18.5 megapixels) and roughly square. Files far outside that are not radiographs,
and squashing them to the model's square input would give a confident answer about noise:
they are refused with one line instead. The pixel cap and the decoded-bytes cap bound memory
(decompression bombs).
"""

from __future__ import annotations

from pneumocxr.errors import PneumoError

MIN_SIDE = 32  # pixels, the shorter side
MAX_ASPECT = 5.0  # longer side / shorter side
MAX_PIXELS = 64_000_000  # 8000 x 8000
# Decoded bytes, besides pixels: colour, alpha and 16-bit samples multiply what a pixel takes
# (a 300 kB PNG of 40 megapixels in 16-bit RGBA decodes to 153 MB). A 16-bit gray image at the
# pixel limit fits.
BYTES_PER_ALLOWED_PIXEL = 2


def decoded_limit(max_pixels: int) -> int:
    """The most bytes a decoded image may take when `max_pixels` pixels are allowed."""
    return BYTES_PER_ALLOWED_PIXEL * max_pixels


def check_geometry(width: int, height: int, where: str = "") -> None:
    """Refuse an image whose size no radiograph has; `where` starts the message ("path: ")."""
    width, height = int(width), int(height)
    size = f"{width}x{height} pixels"
    if min(width, height) < MIN_SIDE:
        raise PneumoError(
            f"{where}{size} is too small for a radiograph (each side must be at least {MIN_SIDE})"
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise PneumoError(
            f"{where}{size} is too elongated for a radiograph (at most {MAX_ASPECT:g}:1 allowed)"
        )
    if width * height > MAX_PIXELS:
        raise PneumoError(
            f"{where}image too large: {size} ({width * height / 1e6:.0f} megapixels) is over "
            f"the limit of {MAX_PIXELS / 1e6:.0f} megapixels"
        )
