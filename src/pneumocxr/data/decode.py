"""Decode images once, at the model's size, into a compact in-memory uint8 cache.

Every X-ray becomes one grayscale channel: the Kaggle JPEGs are gray replicated into RGB, so
nothing is lost, and the cache is a third of the RGB size. Models that want three channels get
the gray plane repeated at batch time (see `transforms.prepare_batch`).
"""

from __future__ import annotations

import importlib
import os
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pneumocxr.data.dicom import is_dicom, read_dicom_gray
from pneumocxr.data.index import DICOM_SUFFIXES
from pneumocxr.data.limits import MAX_PIXELS, check_geometry
from pneumocxr.errors import PneumoError

# The formats Pillow may open, whatever a file's name says. Pillow knows many more; some run
# external programs (EPS calls Ghostscript), and none of them is a radiograph export.
PIL_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")  # JPEG includes MPO
for _plugin in ("Bmp", "Gif", "Jpeg", "Png", "Tiff", "WebP"):  # register just these
    importlib.import_module(f"PIL.{_plugin}ImagePlugin")
# Pillow's own bomb check stays as a safety net for frames and formats it sizes later;
# `check_geometry` refuses oversized images first, with a clearer message than its warning.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Pillow warns about damaged metadata (EXIF) it then ignores: not the user's business.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
# What Pillow raises on damaged or hostile files (found by benchmarks/fuzz.py among others).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    struct.error,
    MemoryError,
)


def read_gray(path) -> Image.Image:
    """Open any supported file (JPEG, PNG, GIF, BMP, TIFF, WebP, DICOM) as an 8-bit
    grayscale PIL image. The content decides the format; a name ending in .dcm that holds a
    JPEG is read as the JPEG."""
    path = Path(path)
    _check_regular_file(path)
    if is_dicom(path):
        return Image.fromarray(read_dicom_gray(path))
    try:
        with Image.open(path, formats=PIL_FORMATS) as image:
            check_geometry(*image.size, path)
            return _to_gray8(image)
    except FileNotFoundError:
        raise PneumoError(f"image not found: {path}") from None
    except UnidentifiedImageError:
        if path.suffix.lower() in DICOM_SUFFIXES:
            raise PneumoError(f"{path}: not a DICOM file (no DICM marker) nor an image") from None
        raise PneumoError(f"{path}: not a readable image (unknown format or damaged)") from None
    except Image.DecompressionBombError:
        raise PneumoError(
            f"{path}: over {2 * MAX_PIXELS / 1e6:.0f} megapixels (the limit is "
            f"{MAX_PIXELS / 1e6:.0f}); a decompression bomb or not a radiograph"
        ) from None
    except _DECODE_ERRORS as err:
        raise PneumoError(f"{path}: not a readable image ({_reason(err)})") from None


def _check_regular_file(path: Path) -> None:
    """Refuse what is not a plain file before opening it: reading a FIFO would wait forever."""
    if path.is_file():
        return
    if path.exists():
        raise PneumoError(f"{path}: not a regular file")
    raise PneumoError(f"image not found: {path}")


def load_image(path, size: int) -> np.ndarray:
    """Decode `path` and squash it to `size` x `size` (as Keras' target_size does)."""
    image = read_gray(path)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.array(image, dtype=np.uint8)


@dataclass
class DecodedImages:
    """Decoded images (N x 1 x size x size, uint8) and the files that could not be read."""

    pixels: torch.Tensor
    ok: np.ndarray  # bool mask over the input paths
    failures: list[tuple[str, str]] = field(default_factory=list)


def decode_all(paths, size: int) -> DecodedImages:
    """Decode many files in parallel threads (PIL releases the GIL while decoding)."""
    paths = [str(p) for p in paths]
    pixels = torch.zeros((len(paths), 1, size, size), dtype=torch.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    failures = []

    def work(i: int):
        try:
            pixels[i, 0] = torch.from_numpy(load_image(paths[i], size))
            ok[i] = True
        except PneumoError as err:
            failures.append((paths[i], str(err)))

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(work, range(len(paths))))
    failures.sort()
    return DecodedImages(pixels[torch.from_numpy(ok)], ok, failures)


def _to_gray8(image: Image.Image) -> Image.Image:
    if image.format == "JPEG":
        image.draft("L", image.size)  # decode straight to gray: faster, same pixels
    image.load()
    # Photos and scanner exports may be stored sideways with an EXIF orientation tag: show the
    # model what a viewer shows.
    ImageOps.exif_transpose(image, in_place=True)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High-bit-depth PNGs: scale by the bit depth the values use (12-bit data in a 16-bit
        # file stays as bright as it was meant to be) instead of clipping at 255.
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all() or values.max() >= 2.0**32:
            raise ValueError("pixel values out of range")
        values = values.clip(min=0)
        bits = max(8, int(np.ceil(np.log2(values.max() + 1))))
        scaled = values * 255.0 / (2**bits - 1)
        return Image.fromarray(np.round(scaled).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA").convert("RGB")
    return image.convert("L")


def _reason(err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text.splitlines()[0][:200]
