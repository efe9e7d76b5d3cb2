"""The Secondary Capture sent back for an answered image: the Grad-CAM overlay, with "NOT FOR
DIAGNOSTIC USE" and the answer burnt into its pixels.

A viewer shows a Secondary Capture as a picture beside the study's images; it cannot be
mistaken for the radiograph, since the warning and the label are part of the pixels
(BurnedInAnnotation YES) and the series says it is derived and not for diagnosis.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from pneumocxr.dicom_results.evidence import instance_number
from pneumocxr.dicom_results.model_info import ModelInfo
from pneumocxr.dicom_results.report import MANUFACTURER
from pneumocxr.dicom_results.uids import result_uid, series_uid

SC_SERIES_NUMBER = 9902
SC_SERIES_DESCRIPTION = "pneumocxr Grad-CAM: derived image, NOT FOR DIAGNOSTIC USE"
WARNING = "NOT FOR DIAGNOSTIC USE"
SIDE = 512  # the longer side of the capture, in pixels: big enough for legible text


def build_capture(evidence: Dataset, picture: np.ndarray, answer, info: ModelInfo) -> Dataset:
    """The Secondary Capture for one input: `picture` is the overlay (H x W x 3 uint8, the
    input's aspect ratio), `answer` its api.Prediction."""
    pixels = burn(picture, _caption(answer, info))
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=evidence,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=tuple(evidence.PatientOrientation),
        series_instance_uid=series_uid("sc", evidence.StudyInstanceUID, info.weights),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=result_uid("sc", evidence.SOPInstanceUID, info.weights),
        instance_number=instance_number(evidence),
        manufacturer=MANUFACTURER,
        series_description=SC_SERIES_DESCRIPTION,
    )
    _mark_derived(capture, evidence, info)
    return capture


def picture_base(gray: np.ndarray) -> np.ndarray:
    """The gray picture the overlay is drawn on: the input, at most SIDE pixels a side."""
    height, width = gray.shape
    if max(height, width) <= SIDE:
        return gray
    return _resize(gray, SIDE / max(height, width))


def overlay_picture(base: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The Grad-CAM overlay of `explain.gradcam.overlay` (the heat map, made at the model's
    square input, stretched back over the picture), as uint8 RGB, SIDE pixels on the longer
    side. A smaller picture is overlaid at its own size, then enlarged (ten times faster)."""
    from pneumocxr.explain.gradcam import overlay

    rgb = np.round(overlay(base, heatmap) * 255).astype(np.uint8)
    height, width = base.shape
    return rgb if max(height, width) == SIDE else _resize(rgb, SIDE / max(height, width))


def _resize(pixels: np.ndarray, scale: float) -> np.ndarray:
    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))


def burn(picture: np.ndarray, caption: str) -> np.ndarray:
    """The warning on a black band at the top, the caption at the bottom, both in the pixels."""
    image = Image.fromarray(picture)
    draw = ImageDraw.Draw(image)
    size = max(10, image.height // 28)
    font = ImageFont.load_default(size=size)
    band = size + size // 2
    draw.rectangle((0, 0, image.width, band), fill=(0, 0, 0))
    draw.text((size // 3, size // 4), WARNING, fill=(255, 255, 0), font=font)
    draw.rectangle((0, image.height - band, image.width, image.height), fill=(0, 0, 0))
    draw.text(
        (size // 3, image.height - band + size // 4), caption, fill=(255, 255, 255), font=font
    )
    return np.asarray(image)


def _caption(answer, info: ModelInfo) -> str:
    return f"pneumocxr {answer.label}  P={answer.p_pneumonia:.3f}  threshold {info.threshold:.3f}"


def _mark_derived(capture: Dataset, evidence: Dataset, info: ModelInfo) -> None:
    capture.BurnedInAnnotation = "YES"
    capture.DerivationDescription = (
        f"Grad-CAM heat map of {info.name} (weights {info.short}) over the source image; "
        "not for diagnostic use"
    )
    source = Dataset()
    source.ReferencedSOPClassUID = evidence.SOPClassUID
    source.ReferencedSOPInstanceUID = evidence.SOPInstanceUID
    capture.SourceImageSequence = [source]
