"""The DICOM header rules added for the DICOM node hold for every front end: a multi-frame or
a colour DICOM is OUT_OF_SCOPE by its header, with the reason, from `pneumocxr predict` and the
API alike (docs/EVALUATION.md, docs/PACS.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import cli, shared_images
from dicom_factory import jpeg_pixels, make_dicom, twelve_bit
from pneumocxr.data.dicom import header_scope_of


@pytest.fixture(scope="module")
def stored():
    return twelve_bit(jpeg_pixels(shared_images("NORMAL", 1, 3)[0]))


def _multiframe(path, stored):
    frames = np.stack([stored, stored, stored])
    return make_dicom(
        path,
        frames.reshape(-1, stored.shape[1]),
        NumberOfFrames=3,
        Rows=stored.shape[0],
        Modality="DX",
        BodyPartExamined="CHEST",
    )


def _colour(path, stored):
    rgb = np.repeat((stored // 16).astype(np.uint8)[..., None], 3, axis=2)
    made = make_dicom(path, stored, Modality="DX", BodyPartExamined="CHEST")
    import pydicom

    ds = pydicom.dcmread(made)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = rgb.tobytes()
    ds.save_as(made, enforce_file_format=True)
    return made


def test_header_rules_name_frames_and_colour(stored, tmp_path):
    import pydicom

    frames = pydicom.dcmread(_multiframe(tmp_path / "frames.dcm", stored))
    colour = pydicom.dcmread(_colour(tmp_path / "rgb.dcm", stored))
    plain = pydicom.dcmread(
        make_dicom(
            tmp_path / "pa.dcm", stored, Modality="DX", BodyPartExamined="CHEST", ViewPosition="PA"
        )
    )
    assert header_scope_of(frames) == "DICOM image of 3 frames: the model reads single radiographs"
    assert header_scope_of(colour) == "DICOM image in RGB: not a grayscale radiograph"
    assert header_scope_of(plain) is None
    plain.PhotometricInterpretation = "PALETTE COLOR"
    assert "not a grayscale radiograph" in header_scope_of(plain)
    plain.PhotometricInterpretation, plain.NumberOfFrames = "MONOCHROME1", "1"
    assert header_scope_of(plain) is None  # one frame, declared: still a radiograph


def test_predict_answers_them_out_of_scope(stored, tmp_path):
    files = [_multiframe(tmp_path / "frames.dcm", stored), _colour(tmp_path / "rgb.dcm", stored)]
    lines = cli("predict", "--json", *files).stdout.splitlines()
    answers = {json.loads(line)["path"]: json.loads(line) for line in lines}
    assert answers[str(files[0])]["label"] == "OUT_OF_SCOPE"
    assert "3 frames" in answers[str(files[0])]["reason"]
    assert answers[str(files[1])]["label"] == "OUT_OF_SCOPE"
    assert "grayscale" in answers[str(files[1])]["reason"]
