"""Real DICOM files built with pydicom from the shared JPEGs (for the DICOM tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def jpeg_pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.uint8)


def make_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    photometric="MONOCHROME2",
    bits=12,
    modality="CR",
    compress=None,
    slope=None,
    intercept=None,
    window=None,
    pixel_data=True,
    sop_class=None,
    **tags,
) -> Path:
    meta = FileMetaDataset()
    default_class = CR_IMAGE_STORAGE if modality == "CR" else CTImageStorage
    meta.MediaStorageSOPClassUID = sop_class or default_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.PatientName, ds.PatientID, ds.Modality = "Test^Child", "TEST001", modality
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for name, value in tags.items():  # Modality, BodyPartExamined, ViewPosition...
        setattr(ds, name, value)
    if pixel_data:
        ds.PixelData = stored.astype(np.uint16).tobytes()
    if compress is not None:
        ds.compress(compress, encoding_plugin="pylibjpeg" if compress == JPEG2000Lossless else "")
    ds.save_as(path, enforce_file_format=True)
    return path


def twelve_bit(gray: np.ndarray) -> np.ndarray:
    return gray.astype(np.uint16) * 16


__all__ = ["make_dicom", "jpeg_pixels", "twelve_bit", "RLELossless", "JPEG2000Lossless"]
