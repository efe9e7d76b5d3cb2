"""Read a DICOM radiograph into the 8-bit grayscale image the models expect.

Order matters and follows the standard's display pipeline: stored values -> modality LUT
(rescale slope/intercept) -> VOI LUT or window -> MONOCHROME1 inversion. The result is then
normalised like the tutorial: clipped to mean +/- 2.5 SD and rescaled to 0-255.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import warnings

import numpy as np

from pneumocxr.data.limits import check_geometry, decoded_limit
from pneumocxr.errors import PneumoError, first_line
from pneumocxr.fileio.regular import NotRegularFile, open_regular

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
# What a chest radiograph's header may say. Any other modality (CT, MR, US, NM, secondary
# capture...), a body part that is not the chest, or a lateral view is out of scope by its
# header, whatever its pixels look like.
RADIOGRAPH_MODALITIES = {"CR", "DX", "DR", "RG"}
CHEST_WORDS = ("CHEST", "THORAX", "THORAC", "LUNG", "TORAX", "TORSO")
LATERAL_VIEWS = {"LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "XTABLE LATERAL"}
# A radiograph is one grayscale frame; a series of frames or colour pixels is something else.
GRAY_PHOTOMETRICS = {"MONOCHROME1", "MONOCHROME2"}


def is_dicom(path) -> bool:
    """True for a plain file with the DICOM preamble, whatever its suffix (a named pipe is
    never opened: reading it would wait forever)."""
    try:
        with open_regular(path) as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def dicom_patient(path) -> str | None:
    """A pseudonym of the PatientID in a DICOM header (None when there is none): images are
    grouped by patient with it, and the identifier itself reaches no file and no message."""
    import pydicom

    _quiet_pydicom()
    try:
        with open_regular(path) as handle:
            ds = pydicom.dcmread(handle, stop_before_pixels=True, specific_tags=["PatientID"])
        value = str(ds.get("PatientID", "") or "").strip()
    except Exception:  # a damaged header: decoding reports the file
        return None
    return "dicom-" + hashlib.sha256(value.encode()).hexdigest()[:16] if value else None


def read_dicom_display(source, where: str | None = None, max_pixels: int | None = None):
    """Pixel values as a clinician's viewer would display them (float, bright = dense)."""
    return _read(source, where, max_pixels)[0]


def _read(source, where: str | None, max_pixels: int | None):
    """(display values, why the header puts the file out of scope or None).

    `source` is a path or a binary file object; `where` starts each message (default: the
    path). Patient data never reaches a message: pydicom's own texts may quote element values,
    so they are scrubbed of the file's identifying values, or replaced when there is no dataset.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    _quiet_pydicom()
    if where is None:
        where = f"{source}: "
    if isinstance(source, (str, os.PathLike)):  # opened here: never a named pipe
        try:
            handle = open_regular(source)
        except NotRegularFile as err:
            raise PneumoError(f"{where}{err.reason}") from None
        except OSError as err:
            raise PneumoError(f"{where}cannot be read ({err.strerror or err})") from None
        with handle:
            return _read(handle, where, max_pixels)
    try:
        ds = pydicom.dcmread(source, defer_size="1 MB")  # pixel data read later, if at all
    except InvalidDicomError:
        raise PneumoError(f"{where}not a readable DICOM file (no DICOM header)") from None
    except Exception as err:  # pydicom raises many types for a broken file
        raise PneumoError(
            f"{where}not a readable DICOM file (damaged: {type(err).__name__})"
        ) from None
    try:
        return _display_values(ds, where, max_pixels), header_scope_of(ds)
    except PneumoError:
        raise
    except Exception as err:  # missing decoder plugin, truncated data, invalid LUT/window...
        reason = _scrub(_decode_failure(err, ds), ds)
        raise PneumoError(f"{where}cannot decode DICOM pixel data ({reason})") from None


def _display_values(ds, where: str, max_pixels: int | None) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    _check_is_image(ds, where)
    check_geometry(int(ds.Columns), int(ds.Rows), where)  # before any pixel is decoded
    _check_size(ds, where, max_pixels)
    ds.pixel_array_options(index=0)  # a radiograph series: decode the first frame only
    pixels = ds.pixel_array
    if int(getattr(ds, "SamplesPerPixel", 1)) == 3:
        values = _rgb_to_gray(ds, pixels)
    else:
        values = apply_modality_lut(pixels, ds)
        values = apply_voi_lut(values, ds, prefer_lut=True)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise PneumoError(f"{where}DICOM pixel data has {values.ndim} dimensions, not 2")
    if not np.isfinite(values).all() or np.abs(values).max() > 1e12:
        raise PneumoError(f"{where}DICOM pixel values are not finite or out of range")
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
    depth = max(1, -(-(_number(ds, "BitsAllocated") or 8) // 8))  # bytes per sample
    size, limit = rows * columns * samples * depth, decoded_limit(max_pixels)
    if size > limit:  # the one frame decoded
        raise PneumoError(
            f"{where}image too large in memory: {rows} x {columns} pixels of {samples} x "
            f"{8 * depth} bits take {size / 2**20:.0f} MB decoded, the limit is "
            f"{limit / 2**20:.0f} MB (a decompression bomb?)"
        )


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


def read_dicom_gray_scoped(source, where: str | None = None, max_pixels: int | None = None):
    """(read_dicom_gray's array, why its header puts it out of scope or None)."""
    values, note = _read(source, where, max_pixels)
    return normalise_to_uint8(values), note


def header_scope_of(ds) -> str | None:
    """Why the header says the file is no frontal chest radiograph (modality, body part, view,
    frames, colour), or None: the same rules for `predict`, the web app and the DICOM node."""
    modality = _modality(ds)
    if modality and modality not in RADIOGRAPH_MODALITIES:
        return f"DICOM modality {modality}: not a radiograph"
    part = _code(getattr(ds, "BodyPartExamined", ""))
    if part and not any(word in part for word in CHEST_WORDS):
        return f"DICOM body part {part}: not the chest"
    view = _code(getattr(ds, "ViewPosition", ""))
    if view in LATERAL_VIEWS:
        return f"DICOM view {view}: a lateral view; the model knows frontal chest X-rays"
    frames = _number(ds, "NumberOfFrames")
    if frames is not None and frames > 1:
        return f"DICOM image of {frames} frames: the model reads single radiographs"
    return _colour_scope_of(ds)


def _colour_scope_of(ds) -> str | None:
    """A colour image is no radiograph as the modality wrote it (a photo, a screen capture)."""
    samples = _number(ds, "SamplesPerPixel")
    photometric = _code(getattr(ds, "PhotometricInterpretation", ""))
    if (samples is not None and samples != 1) or (
        photometric and photometric not in GRAY_PHOTOMETRICS
    ):
        kind = photometric or f"{samples} samples per pixel"
        return f"DICOM image in {kind}: not a grayscale radiograph"
    return None


def _number(ds, name: str) -> int | None:
    """An integer attribute, or None when it is absent or unreadable (decoding judges it)."""
    try:
        value = getattr(ds, name, None)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


# What a DICOM shows, never whom: the tags the web page shows beside an answer.
SHOWN_TAGS = {
    "modality": "Modality",
    "view_position": "ViewPosition",
    "body_part": "BodyPartExamined",
}


def shown_header(source) -> dict[str, str] | None:
    """Modality, view position and body part of a DICOM file (path or binary file object), as
    printable codes; None when it cannot be read. No name, identifier or date."""
    import pydicom

    _quiet_pydicom()
    try:
        if isinstance(source, (str, os.PathLike)):
            with open_regular(source) as handle:
                return shown_header(handle)
        ds = pydicom.dcmread(
            source, stop_before_pixels=True, specific_tags=list(SHOWN_TAGS.values())
        )
    except Exception:  # decoding, not this, reports a damaged file
        return None
    found = {key: _code(getattr(ds, name, "")) for key, name in SHOWN_TAGS.items()}
    return {key: value for key, value in found.items() if value}


def _code(value) -> str:
    """A code string as printable upper-case text of at most 32 characters."""
    text = " ".join(str(value or "").upper().replace("_", " ").split())
    return "".join(c for c in text if c.isalnum() or c == " ")[:32]


def _check_is_image(ds, where: str) -> None:
    modality = _modality(ds)
    if not any(tag in ds for tag in PIXEL_DATA_TAGS):
        kind = modality or "unknown modality"
        raise PneumoError(f"{where}DICOM has no pixel data ({kind}); it is not an image")
    if modality in NON_IMAGE_MODALITIES:
        raise PneumoError(f"{where}DICOM modality {modality} is not an image")


def _modality(ds) -> str:
    """The Modality code, reduced to what a code can hold (it is printed)."""
    text = str(getattr(ds, "Modality", "") or "").upper()
    return "".join(c for c in text if c.isalnum() or c == "_")[:16]


# Elements that identify a person or a visit: their values are scrubbed from messages.
_IDENTIFYING_VRS = {"PN", "DA", "DT", "TM", "AS", "LO", "SH", "LT", "ST", "UT", "UC"}


def _scrub(text: str, ds) -> str:
    """`text` without any value of the file's patient group (0010) or of any free-text,
    name, date or identifier element (a damaged file may quote them in pydicom's errors)."""
    values = set()
    for tag in list(ds.keys()):
        try:
            elem = ds.get_item(tag)
            if tag.group != 0x0010 and str(elem.VR) not in _IDENTIFYING_VRS:
                continue
            raw = elem.value
        except Exception:  # a damaged element: nothing to learn from it
            continue
        if isinstance(raw, bytes):
            raw = raw.decode("latin-1")
        for part in str(raw).replace("\\", "^").split("^"):
            if len(part.strip()) >= 2:
                values.add(part.strip())
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return text



# pydicom lists each decoder's error on the lines after this one.
_ALL_PLUGINS_FAILED = re.compile(r"raised by all available plugins:\s*\n\s*(.+)")


def _decode_failure(err: Exception, ds) -> str:
    """pydicom's reason, with the first decoder's own reason when every decoder failed."""
    found = _ALL_PLUGINS_FAILED.search(str(err))
    if not found:
        return first_line(err)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    name = getattr(syntax, "name", None) or "compressed"
    return f"no installed decoder could decode its {name} pixel data: {found.group(1)[:200]}"


@functools.cache
def _quiet_pydicom() -> None:
    """pydicom's warnings and log lines quote element values (names, dates): keep them out of
    the output. Values are not validated on reading; what matters is checked here."""
    import pydicom

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    logging.getLogger("pydicom").setLevel(logging.CRITICAL + 1)


# pydicom's warnings quote element values; they are attributed to the caller of a pydicom
# function, which may be this module.
warnings.filterwarnings("ignore", module=r"(pydicom|pneumocxr\.data\.dicom)(\.|$)")


def _rgb_to_gray(ds, pixels: np.ndarray) -> np.ndarray:
    # pydicom's pixel_array has already converted YBR colour spaces to RGB.
    return pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
