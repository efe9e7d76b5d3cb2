"""Decode images once, at the model's size, into a compact in-memory uint8 cache.

Every X-ray becomes one grayscale channel: the Kaggle JPEGs are gray replicated into RGB, so
nothing is lost, and the cache is a third of the RGB size. Models that want three channels get
the gray plane repeated at batch time (see `transforms.prepare_batch`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pneumocxr.data.dicom import is_dicom, read_dicom_gray
from pneumocxr.data.index import DICOM_SUFFIXES
from pneumocxr.errors import PneumoError

# Full-size radiographs are large, bombs are larger. PIL refuses twice this; `read_gray` refuses
# anything above it, DICOM included. The server passes a lower limit of its own.
MAX_PIXELS = 20000 * 20000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class UnsupportedImage(PneumoError):
    """The bytes are not JPEG, PNG or DICOM at all (as opposed to a damaged or unusable one)."""


def read_gray(path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open any supported file (JPEG, PNG, DICOM) as an 8-bit grayscale PIL image."""
    path = Path(path)
    dicom = path.suffix.lower() in DICOM_SUFFIXES or is_dicom(path)
    try:
        with open(path, "rb") as handle:
            return _decode_gray(handle, f"{path}: ", dicom, None, max_pixels)
    except FileNotFoundError:
        raise PneumoError(f"image not found: {path}") from None
    except OSError as err:  # a folder, no permission...
        raise PneumoError(f"{path}: not a readable image ({_reason(err)})") from None


def read_gray_bytes(
    data: bytes, max_pixels: int = MAX_PIXELS, formats=("JPEG", "PNG"), dicom: bool = False
) -> Image.Image:
    """`read_gray` for a file held in memory (an upload); messages name no file.

    DICOM is recognised by its preamble, or taken as given with `dicom=True`; other files must
    be one of `formats`.
    """
    if not data:
        raise PneumoError("empty file")
    dicom = dicom or data[128:132] == b"DICM"
    return _decode_gray(io.BytesIO(data), "", dicom, formats, max_pixels)


def _decode_gray(handle, where: str, dicom: bool, formats, max_pixels: int) -> Image.Image:
    if dicom:
        return Image.fromarray(read_dicom_gray(handle, where, max_pixels))
    try:
        image = Image.open(handle, formats=formats)
        _check_pixels(image.width * image.height, max_pixels, where)
        return _to_gray8(image)
    except UnidentifiedImageError:
        kinds = "JPEG, PNG or DICOM" if formats else "an image format PIL can read"
        raise UnsupportedImage(f"{where}not a readable image (not {kinds})") from None
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise PneumoError(f"{where}not a readable image ({_reason(err)})") from None


def _check_pixels(count: int, limit: int, where: str) -> None:
    """Refuse before decoding: a small file may claim billions of pixels."""
    if count > limit:
        raise PneumoError(
            f"{where}image too large: {count:,} pixels, the limit is {limit:,} "
            "(a decompression bomb?)"
        )


def squash(image: Image.Image, size: int) -> np.ndarray:
    """Resize to `size` x `size`, aspect not kept (as Keras' target_size does)."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.array(image, dtype=np.uint8)


def load_image(path, size: int) -> np.ndarray:
    """Decode `path` and squash it to `size` x `size`."""
    return squash(read_gray(path), size)


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


class DecodeStream:
    """Batches of decoded images (uint8, B x 1 x size x size) for files in input order,
    decoded in chunks: threads decode the next chunk while the caller works on the current
    batches, so memory holds two chunks instead of every image.

    Unreadable files are skipped; after iterating, `ok` masks the readable inputs and
    `failures` lists (path, reason), sorted, as `decode_all` does. Batches have exactly
    `batch_size` images but the last, whatever the failures, so a model sees the same batches
    as it would from `decode_all`.
    """

    def __init__(self, paths, size: int, batch_size: int, chunk: int | None = None):
        self.paths, self.size, self.batch_size = [str(p) for p in paths], size, batch_size
        self.chunk = chunk or 4 * batch_size
        self.ok = np.zeros(len(self.paths), dtype=bool)
        self.failures: list[tuple[str, str]] = []

    def _decode(self, i: int) -> np.ndarray | None:
        try:
            return load_image(self.paths[i], self.size)
        except PneumoError as err:
            self.failures.append((self.paths[i], str(err)))
            return None

    def _submit(self, pool: ThreadPoolExecutor, start: int) -> list:
        stop = min(start + self.chunk, len(self.paths))
        return [pool.submit(self._decode, i) for i in range(start, stop)]

    def __iter__(self) -> Iterator[torch.Tensor]:
        buffer: list[np.ndarray] = []
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            pending = self._submit(pool, 0)
            for start in range(0, len(self.paths), self.chunk):
                images = [f.result() for f in pending]
                pending = self._submit(pool, start + self.chunk)  # decodes while we compute
                for offset, image in enumerate(images):
                    if image is not None:
                        self.ok[start + offset] = True
                        buffer.append(image)
                while len(buffer) >= self.batch_size:
                    yield _stack(buffer[: self.batch_size])
                    del buffer[: self.batch_size]
        if buffer:
            yield _stack(buffer)
        self.failures.sort()


def _stack(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)[:, None])


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
        values = np.asarray(image, dtype=np.float64).clip(min=0)
        bits = max(8, int(np.ceil(np.log2(values.max() + 1))))
        scaled = values * 255.0 / (2**bits - 1)
        return Image.fromarray(np.round(scaled).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA").convert("RGB")
    return image.convert("L")


def _reason(err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text.splitlines()[0][:200]
