"""Decode images once, at the model's size, into a compact in-memory uint8 cache.

Every X-ray becomes one grayscale channel: the Kaggle JPEGs are gray replicated into RGB, so
nothing is lost, and the cache is a third of the RGB size. Models that want three channels get
the gray plane repeated at batch time (see `transforms.prepare_batch`).
"""

from __future__ import annotations

import importlib
import io
import os
import struct
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pneumocxr.data.borders import trim_borders
from pneumocxr.data.dicom import read_dicom_gray_scoped
from pneumocxr.data.index import DICOM_SUFFIXES
from pneumocxr.data.limits import MAX_PIXELS, check_geometry, decoded_limit
from pneumocxr.errors import PneumoError, first_line
from pneumocxr.fileio.folders import link_problem
from pneumocxr.fileio.regular import NotRegularFile, open_regular

# The formats Pillow may open, whatever a file's name says. Pillow knows many more; some run
# external programs (EPS calls Ghostscript), and none of them is a radiograph export.
PIL_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")  # JPEG includes MPO
UPLOAD_FORMATS = ("JPEG", "PNG")  # what the web app takes besides DICOM (docs/SERVING.md)
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


SCOPE_NOTE = "pneumocxr_scope"  # Image.info key: why a file is out of scope by its header


class UnsupportedImage(PneumoError):
    """The bytes are not an image format pneumocxr reads at all (as opposed to a damaged or
    unusable image)."""


def read_gray(path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open any supported file (JPEG, PNG, GIF, BMP, TIFF, WebP, DICOM) as an 8-bit
    grayscale PIL image. The content decides the format; a name ending in .dcm that holds a
    JPEG is read as the JPEG. At most `max_pixels`, and at most `decoded_limit(max_pixels)`
    bytes once decoded."""
    path = Path(path)
    named_dicom = path.suffix.lower() in DICOM_SUFFIXES
    try:
        handle = open_regular(path)  # never a named pipe: reading it would wait forever
    except NotRegularFile as err:
        raise PneumoError(f"{path}: {err.reason}") from None
    except FileNotFoundError:
        raise PneumoError(link_problem(path) or f"image not found: {path}") from None
    except OSError as err:  # no permission, a link loop...
        raise PneumoError(
            link_problem(path) or f"{path}: not a readable image ({first_line(err, 200)})"
        ) from None
    with handle:
        try:
            dicom = handle.read(132)[128:132] == b"DICM"
            handle.seek(0)
            return _decode_gray(handle, f"{path}: ", dicom, PIL_FORMATS, max_pixels, named_dicom)
        except OSError as err:  # a read error of the disk
            raise PneumoError(f"{path}: not a readable image ({first_line(err, 200)})") from None


def read_gray_bytes(
    data: bytes, max_pixels: int = MAX_PIXELS, formats=UPLOAD_FORMATS, dicom: bool = False
) -> Image.Image:
    """`read_gray` for a file held in memory (an upload); messages name no file.

    As for files, the content decides: DICOM is recognised by its preamble, other files must
    be one of `formats`. `dicom=True` (the file was named as a DICOM) only makes the message
    for a file that is neither say so. The decoded bytes are limited as the pixels are: a
    300 kB PNG of 40 megapixels in 16-bit RGBA decodes to 153 MB.
    """
    if not data:
        raise PneumoError("empty file")
    marker = data[128:132] == b"DICM"
    return _decode_gray(io.BytesIO(data), "", marker, formats, max_pixels, named_dicom=dicom)


def _decode_gray(handle, where: str, dicom: bool, formats, max_pixels: int,
                 named_dicom: bool = False) -> Image.Image:  # fmt: skip
    if dicom:
        gray, note = read_dicom_gray_scoped(handle, where, max_pixels)
        image = Image.fromarray(gray)
        if note:
            image.info[SCOPE_NOTE] = note  # the header says: not a chest radiograph
        return image
    try:
        with Image.open(handle, formats=formats) as image:
            check_geometry(*image.size, where)
            _check_pixels(image.width * image.height, max_pixels, where)
            _refuse_own_figure(image, where)
            if image.format == "JPEG":
                image.draft("L", image.size)  # decode straight to gray: faster, same pixels
            _check_bytes(image, decoded_limit(max_pixels), where)
            return _to_gray8(image)
    except UnidentifiedImageError:
        damaged = _signature(handle)
        if damaged in formats:  # a PNG with a bad checksum is not some other format
            raise PneumoError(f"{where}not a readable image (a damaged {damaged} file)") from None
        if named_dicom:
            raise PneumoError(f"{where}not a DICOM file (no DICM marker) nor an image") from None
        upload = formats == UPLOAD_FORMATS
        reason = "not JPEG, PNG or DICOM" if upload else "unknown format or damaged"
        raise UnsupportedImage(f"{where}not a readable image ({reason})") from None
    except Image.DecompressionBombError:
        raise PneumoError(
            f"{where}over {2 * MAX_PIXELS / 1e6:.0f} megapixels (the limit is "
            f"{MAX_PIXELS / 1e6:.0f}); a decompression bomb or not a radiograph"
        ) from None
    except _DECODE_ERRORS as err:
        raise PneumoError(f"{where}not a readable image ({first_line(err, 200)})") from None


def gray_from_image(image: Image.Image) -> Image.Image:
    """An in-memory PIL image as `read_gray` would decode its file: EXIF orientation applied,
    16-bit values scaled, colour and palettes to 8-bit gray."""
    check_geometry(*image.size)
    try:
        return _to_gray8(image.copy())
    except _DECODE_ERRORS as err:
        raise PneumoError(f"not a usable image ({first_line(err, 200)})") from None


def gray_from_array(array) -> Image.Image:
    """A numpy array (H x W, or H x W x 1/3/4) as an 8-bit gray image: uint8 as it is, other
    integers scaled from their bit depth, floats read as 0-1 (or 0-255 when larger than 1)."""
    values = np.asarray(array)
    if values.ndim == 3 and values.shape[2] in (1, 3, 4):
        channels = values.shape[2]
    elif values.ndim == 2:
        channels = 0
    else:
        raise PneumoError(f"an image array must be H x W or H x W x 1, 3 or 4; got {values.shape}")
    check_geometry(values.shape[1], values.shape[0])
    if values.dtype != np.uint8:
        values = _to_uint8(values)
    if channels == 1:
        values = values[:, :, 0]
    mode = {0: "L", 1: "L", 3: "RGB", 4: "RGBA"}[channels]
    return _to_gray8(Image.fromarray(np.ascontiguousarray(values), mode))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Floats in 0-1 (or 0-255) and integers of any bit depth (12-bit data in uint16, say)
    to 0-255, as the 16-bit PNG path scales them."""
    if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
        raise PneumoError(f"an image array must hold numbers, not {values.dtype}")
    if np.iscomplexobj(values):  # casting would drop the imaginary part with a raw warning
        raise PneumoError(f"an image array must hold real numbers, not {values.dtype}")
    scaled = values.astype(np.float64)
    if not np.isfinite(scaled).all() or scaled.min() < 0:
        raise PneumoError("the image array holds negative, NaN or infinite values")
    top = scaled.max()
    if np.issubdtype(values.dtype, np.floating):
        if top > 255:
            raise PneumoError("float image values must be 0-1 or 0-255")
        scaled = scaled * 255.0 if top <= 1.0 else scaled
    elif top > 255:
        scaled = scaled * 255.0 / (2 ** int(np.ceil(np.log2(top + 1))) - 1)
    return np.round(scaled).astype(np.uint8)


def _signature(handle) -> str | None:
    """JPEG or PNG by the first bytes, however damaged the rest is."""
    handle.seek(0)
    head = handle.read(8)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    return "JPEG" if head.startswith(b"\xff\xd8\xff") else None


# Bytes per pixel Pillow allocates for a decoded image of each mode (3-band modes and LA are
# stored in 4 bytes); our conversion to 8-bit gray needs a small multiple of it at most.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}


def _check_bytes(image: Image.Image, limit: int, where: str) -> None:
    """Refuse before decoding what would take more memory than the largest gray radiograph
    allowed: colour and alpha channels multiply the bytes of each pixel."""
    size = image.width * image.height * _BYTES_PER_PIXEL.get(image.mode, 4)
    if size > limit:
        raise PneumoError(
            f"{where}image too large in memory: {image.width}x{image.height} {image.mode} "
            f"pixels take {size / 2**20:.0f} MB decoded, the limit is {limit / 2**20:.0f} MB "
            "(a decompression bomb?)"
        )


def _refuse_own_figure(image: Image.Image, where: str) -> None:
    """A figure pneumocxr drew (an evaluation's plots, a Grad-CAM panel) is never read as an
    X-ray: one left inside a data folder would count as one."""
    if image.format == "PNG" and image.info.get("Software") == "pneumocxr":
        raise PneumoError(f"{where}a figure drawn by pneumocxr, not an X-ray")


def _check_pixels(count: int, limit: int, where: str) -> None:
    """Refuse before decoding: a small file may claim billions of pixels."""
    if count > limit:
        raise PneumoError(
            f"{where}image too large: {count:,} pixels, the limit is {limit:,} "
            "(a decompression bomb?)"
        )


def squash(image: Image.Image, size: int) -> np.ndarray:
    """Trim uniform borders (`borders.trim_borders`), then resize to `size` x `size`, aspect
    not kept (as Keras' target_size does): what every model gets from every input."""
    image = trim_borders(image)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.array(image, dtype=np.uint8)


def load_image(path, size: int) -> np.ndarray:
    """Decode `path` and squash it to `size` x `size`."""
    return squash(read_gray(path), size)


def load_image_noted(path, size: int) -> tuple[np.ndarray, str | None]:
    """`load_image`, and why the file's header puts it out of scope (or None)."""
    image = read_gray(path)
    return squash(image, size), image.info.get(SCOPE_NOTE)


@dataclass
class DecodedImages:
    """Decoded images (N x 1 x size x size, uint8) and the files that could not be read."""

    pixels: torch.Tensor
    ok: np.ndarray  # bool mask over the input paths
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[int, str] = field(default_factory=dict)  # input index -> header's scope note


def decode_all(paths, size: int) -> DecodedImages:
    """Decode many files in parallel threads (PIL releases the GIL while decoding)."""
    paths = [str(p) for p in paths]
    pixels = torch.zeros((len(paths), 1, size, size), dtype=torch.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    failures, notes = [], {}

    def work(i: int):
        try:
            image, note = load_image_noted(paths[i], size)
            pixels[i, 0] = torch.from_numpy(image)
            ok[i] = True
            if note:
                notes[i] = note
        except PneumoError as err:
            failures.append((paths[i], str(err)))

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(work, range(len(paths))))
    failures.sort()
    return DecodedImages(pixels[torch.from_numpy(ok)], ok, failures, notes)


def unreadable_error(failures) -> PneumoError:
    """--strict: the first unreadable file, and how many more there are."""
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return PneumoError(f"unreadable image: {failures[0][1]}{more}")


class DecodeStream:
    """Batches of decoded images (uint8, B x 1 x size x size) for inputs in input order,
    decoded in chunks: threads decode the next chunk while the caller works on the current
    batches, so memory holds two chunks instead of every image.

    Inputs are files, or anything `decode(item, size)` turns into (S x S uint8 pixels, the
    header's scope note or None). Batch k holds the readable images among inputs
    k * batch_size to (k + 1) * batch_size: an image's batch, and so its answer to the last
    bit, never depends on whether other inputs could be read, and any run over a share of the
    batches (a resumed run, one process of several) computes them exactly as one run over all.
    Unreadable inputs are skipped (with `stop_on_error`, the first one's PneumoError is raised
    instead); after iterating, `ok` masks the readable inputs and `failures` lists (path,
    reason), sorted, as `decode_all` does. A batch of only unreadable inputs is not yielded.
    """

    def __init__(self, paths, size: int, batch_size: int, chunk: int | None = None,
                 decode=None, stop_on_error: bool = False):  # fmt: skip
        self.paths = [str(p) for p in paths] if decode is None else list(paths)
        self.size, self.batch_size = size, batch_size
        self.chunk = max(1, (chunk or 4 * batch_size) // batch_size) * batch_size
        self.decode, self.stop_on_error = decode or load_image_noted, stop_on_error
        self.ok = np.zeros(len(self.paths), dtype=bool)
        self.failures: list[tuple[str, str]] = []
        self.notes: dict[int, str] = {}  # input index -> why its header puts it out of scope

    def _decode(self, i: int) -> np.ndarray | None:
        try:
            pixels, note = self.decode(self.paths[i], self.size)
            if note:
                self.notes[i] = note
            return pixels
        except PneumoError as err:
            if self.stop_on_error:
                raise
            self.failures.append((str(self.paths[i]), str(err)))
            return None

    def _submit(self, pool: ThreadPoolExecutor, start: int) -> list:
        stop = min(start + self.chunk, len(self.paths))
        return [pool.submit(self._decode, i) for i in range(start, stop)]

    def __iter__(self) -> Iterator[torch.Tensor]:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            pending = self._submit(pool, 0)
            for start in range(0, len(self.paths), self.chunk):
                images = [f.result() for f in pending]
                pending = self._submit(pool, start + self.chunk)  # decodes while we compute
                for offset in range(0, len(images), self.batch_size):
                    batch = images[offset : offset + self.batch_size]
                    for k, image in enumerate(batch):
                        self.ok[start + offset + k] = image is not None
                    kept = [image for image in batch if image is not None]
                    if kept:
                        yield _stack(kept)
        self.failures.sort()


def _stack(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)[:, None])


def _to_gray8(image: Image.Image) -> Image.Image:
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
        # In place: one float64 copy of the image, not four (the same arithmetic, in order).
        np.clip(values, 0, None, out=values)
        if image.mode == "F" and values.max() <= 1.0:  # floats in 0-1, as an array's are read
            return Image.fromarray(np.round(values * 255.0).astype(np.uint8))
        bits = max(8, int(np.ceil(np.log2(values.max() + 1))))
        np.multiply(values, 255.0, out=values)
        np.divide(values, 2**bits - 1, out=values)
        return Image.fromarray(np.round(values, out=values).astype(np.uint8))
    if image.mode in ("LA", "P", "PA"):  # palettes and transparency resolved to colours
        image = image.convert("RGBA")
    # RGBA -> L ignores alpha as RGBA -> RGB -> L does: the same pixels, without two copies.
    return image.convert("L")
