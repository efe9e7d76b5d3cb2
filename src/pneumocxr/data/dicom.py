"""Read a DICOM radiograph into the 8-bit grayscale image the models expect.

Order matters and follows the standard's display pipeline: stored values -> modality LUT
(rescale slope/intercept) -> VOI LUT or window -> MONOCHROME1 inversion. The result is then
normalised like the tutorial: clipped to mean +/- 2.5 SD and rescaled to 0-255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pneumocxr.errors import PneumoError

# Modalities that are not pictures of anatomy, even when they carry pixel-like data
# (dose grids, segmentations, waveforms, documents, reports).
NON_IMAGE_MODALITIES = {
    "AU",
    "DOC",
    "ECG",
    "EPS",
    "FID",
    "HD",
    "IOL",
    "KO",
    "M3D",
    "PLAN",
    "PR",
    "REG",
    "RESP",
    "RTDOSE",
    "RTPLAN",
    "RTRECORD",
    "RTSTRUCT",
    "RWV",
    "SEG",
    "SMR",
    "SR",
}
PIXEL_DATA_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def is_dicom(path) -> bool:
    """True for a file with the DICOM preamble, whatever its suffix."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_dicom_display(source, where: str | None = None, max_pixels: int | None = None):
    """Pixel values as a clinician's viewer would display them (float, bright = dense).

    `source` is a path or a binary file object; `where` starts each message (default: the path).
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if where is None:
        where = f"{source}: "
    try:
        ds = pydicom.dcmread(source)
        _check_is_image(ds, where)  # elements are parsed when first read: these may fail too
        _check_size(ds, where, max_pixels)
    except PneumoError:
        raise
    except Exception as err:  # pydicom raises many types for a broken file
        raise PneumoError(f"{where}not a readable DICOM file ({_first_line(err)})") from None
    try:
        pixels = ds.pixel_array
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            pixels = pixels[0]  # a radiograph series: take the first frame
        if int(getattr(ds, "SamplesPerPixel", 1)) == 3:
            return _rgb_to_gray(ds, pixels)
        values = apply_modality_lut(pixels, ds)
        values = apply_voi_lut(values, ds, prefer_lut=True)
    except Exception as err:  # missing decoder plugin, truncated data, invalid LUT/window...
        raise PneumoError(f"{where}cannot decode DICOM pixel data ({_first_line(err)})") from None
    values = np.asarray(values, dtype=np.float64)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        values = values.max() + values.min() - values
    return values


def _check_size(ds, where: str, max_pixels: int | None) -> None:
    """Refuse before decoding: compressed pixel data may expand to any size the header claims."""
    if max_pixels is None:
        return
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        raise PneumoError(f"{where}DICOM image size missing or invalid") from None
    if rows * columns > max_pixels or rows * columns * frames * samples > 4 * max_pixels:
        raise PneumoError(
            f"{where}image too large: {frames} x {rows} x {columns} pixels, the limit is "
            f"{max_pixels:,} per image (a decompression bomb?)"
        )


def _first_line(err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text.splitlines()[0][:200]


def normalise_to_uint8(values: np.ndarray, sd: float = 2.5) -> np.ndarray:
    """The tutorial's normalisation: clip to mean +/- `sd` SD, rescale to 0-255."""
    values = np.asarray(values, dtype=np.float64)
    mean, std = float(values.mean()), float(values.std())
    low = max(float(values.min()), mean - sd * std)
    high = min(float(values.max()), mean + sd * std)
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.clip(values, low, high) - low) / (high - low) * 255.0
    return np.round(scaled).astype(np.uint8)


def read_dicom_gray(source, where: str | None = None, max_pixels: int | None = None):
    """A DICOM file (path or binary file object) as an 8-bit grayscale array, ready to resize."""
    return normalise_to_uint8(read_dicom_display(source, where, max_pixels))


def _check_is_image(ds, where: str) -> None:
    if not any(tag in ds for tag in PIXEL_DATA_TAGS):
        kind = getattr(ds, "Modality", "") or "unknown modality"
        raise PneumoError(f"{where}DICOM has no pixel data ({kind}); it is not an image")
    modality = str(getattr(ds, "Modality", "") or "").upper()
    if modality in NON_IMAGE_MODALITIES:
        raise PneumoError(f"{where}DICOM modality {modality} is not an image")


def _rgb_to_gray(ds, pixels: np.ndarray) -> np.ndarray:
    # pydicom's pixel_array has already converted YBR colour spaces to RGB.
    return pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def dicom_to_png(source, target) -> list[tuple[str, str]]:
    """Convert a DICOM file, or every DICOM in a folder tree, to 8-bit 3-channel PNGs.

    A folder keeps its layout under `target`. Returns (path, reason) for files that failed.
    """
    from PIL import Image

    from pneumocxr.fileio import atomic_path

    source, target = Path(source), Path(target)
    if not source.exists():
        raise PneumoError(f"no such file or folder: {source}")
    if source.is_file():
        jobs = [(source, target / f"{source.stem}.png" if target.is_dir() else target)]
    else:
        files = sorted(p for p in source.rglob("*") if p.is_file() and is_dicom(p))
        if not files:
            raise PneumoError(f"no DICOM files under {source}")
        jobs = [(f, (target / f.relative_to(source)).with_suffix(".png")) for f in files]
    failures = []
    for src, dst in jobs:
        try:
            gray = read_dicom_gray(src)
        except PneumoError as err:
            if source.is_file():
                raise
            failures.append((str(src), str(err)))
            continue
        with atomic_path(dst) as tmp:
            Image.fromarray(gray).convert("RGB").save(tmp, format="PNG")
    return failures
