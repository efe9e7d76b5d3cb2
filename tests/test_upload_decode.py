"""The lower-layer pieces the web app shares with the CLI: decoding from memory, Grad-CAM on
decoded pixels, a heatmap over a picture of another size, and the model card it shows."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from conftest import shared_images
from dicom_factory import RLELossless, jpeg_pixels, make_dicom, twelve_bit
from pneumocxr.artifact.load import load_model
from pneumocxr.artifact.save import save_model
from pneumocxr.data.decode import (
    UnsupportedImage,
    load_image,
    read_gray,
    read_gray_bytes,
    squash,
)
from pneumocxr.errors import PneumoError
from pneumocxr.explain.gradcam import explain_images, explain_pixels, overlay
from pneumocxr.inference.predict import predict_images, predict_paths
from pneumocxr.networks.registry import build_model
from pneumocxr.serve.card import model_card


@pytest.fixture(scope="module")
def xray():
    return shared_images("NORMAL", 1, 11)[0]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    save_model(build_model("smallnet", 64, weights="none"), folder)
    return load_model(folder)


def test_bytes_decode_like_the_file(xray, tmp_path):
    assert np.array_equal(
        np.asarray(read_gray_bytes(xray.read_bytes())), np.asarray(read_gray(xray))
    )
    dicom = make_dicom(tmp_path / "x.dcm", twelve_bit(jpeg_pixels(xray)), compress=RLELossless)
    from_bytes = read_gray_bytes(dicom.read_bytes())
    assert np.array_equal(np.asarray(from_bytes), np.asarray(read_gray(dicom)))
    assert np.array_equal(squash(from_bytes, 64), load_image(dicom, 64))


def test_bytes_errors_name_no_file(xray):
    with pytest.raises(UnsupportedImage, match="not JPEG, PNG or DICOM") as err:
        read_gray_bytes(b"just some text, not a picture")
    with pytest.raises(PneumoError, match="truncated"):
        read_gray_bytes(xray.read_bytes()[:2000])
    with pytest.raises(PneumoError, match="empty file"):
        read_gray_bytes(b"")
    gif = io.BytesIO()
    Image.new("L", (8, 8)).save(gif, format="GIF")
    with pytest.raises(UnsupportedImage):  # PIL reads GIFs; the upload path takes three formats
        read_gray_bytes(gif.getvalue())
    assert "BytesIO" not in str(err.value) and "/" not in str(err.value)


def test_too_many_pixels_refused_before_decoding(tmp_path, xray):
    bomb = io.BytesIO()
    Image.new("1", (5000, 5000)).save(bomb, format="PNG")  # a few kB, 25 million pixels
    assert len(bomb.getvalue()) < 20_000
    with pytest.raises(PneumoError, match="image too large: 25,000,000 pixels"):
        read_gray_bytes(bomb.getvalue(), max_pixels=10_000_000)
    path = make_dicom(tmp_path / "big.dcm", twelve_bit(jpeg_pixels(xray)))
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 60000  # a header that claims 3.6 billion pixels
    ds.save_as(path)
    with pytest.raises(PneumoError, match="over the limit of 64 megapixels"):
        read_gray(path)
    with pytest.raises(PneumoError, match="over the limit of 64 megapixels"):
        read_gray_bytes(path.read_bytes(), max_pixels=10_000_000)
    ds.Rows = ds.Columns = 4000  # 16 million: under the CLI's limit, over the one given
    ds.save_as(path)
    with pytest.raises(PneumoError, match="image too large"):
        read_gray_bytes(path.read_bytes(), max_pixels=10_000_000)


def test_a_dcm_upload_without_preamble_gets_a_dicom_error(xray, tmp_path):
    path = make_dicom(tmp_path / "x.dcm", twelve_bit(jpeg_pixels(xray)))
    raw = path.read_bytes()[132:]  # the dataset without the preamble and "DICM"
    with pytest.raises(UnsupportedImage):
        read_gray_bytes(raw)
    with pytest.raises(PneumoError, match="not a DICOM file"):
        read_gray_bytes(raw, dicom=True)  # pydicom wants the preamble: a clear refusal


def test_pixels_explain_and_predict_like_files(tiny_model):
    paths = shared_images("PNEUMONIA", 2, 30) + shared_images("NORMAL", 1, 30)
    images = np.stack([load_image(p, 64) for p in paths])
    from_pixels = explain_pixels(tiny_model, images, 0.4)
    from_files = explain_images(tiny_model, paths, 0.4)
    for a, b in zip(from_pixels, from_files):
        assert a.probability == pytest.approx(b.probability, abs=1e-6)
        assert np.allclose(a.heatmap, b.heatmap, atol=1e-5) and a.predicted == b.predicted
    assert from_files[0].true_label == "PNEUMONIA" and from_pixels[0].true_label is None
    probs = predict_images(tiny_model, torch.from_numpy(images)[:, None])
    table, _ = predict_paths(tiny_model, paths)
    assert np.allclose(probs, table["p_pneumonia"], atol=1e-6)
    assert np.allclose(probs, [e.probability for e in from_pixels], atol=1e-5)


def test_overlay_stretches_the_heatmap_to_the_picture():
    heat = np.zeros((4, 4))
    heat[:, 2:] = 1.0  # the right half is hot
    blended = overlay(np.full((30, 80), 128, np.uint8), heat)
    assert blended.shape == (30, 80, 3)
    assert blended[15, 75, 0] > blended[15, 5, 0] + 0.2  # jet: red where hot, on the right


def test_model_card_reads_model_json_defensively(tiny_model):
    meta = tiny_model.meta
    meta["training"] = {"run": "smallnet-1", "validation": {"n": 10, "auc": 0.9, "accuracy": 0.8}}
    card = model_card(tiny_model, "smallnet (smallnet-1)", 0.4)
    assert card["validation"]["internal"]["auc"] == 0.9 and card["validation"]["external"] is None
    meta["validation"] = {
        "internal": {"n": 5, "auc": 0.7, "data": "/secret/place/chest_xray"},
        "external": {"n": 7, "auc": "high", "sensitivity": 0.5, "data": {"path": "C:\\x\\ext"}},
    }
    card = model_card(tiny_model, "x", 0.4)
    internal, external = card["validation"]["internal"], card["validation"]["external"]
    assert internal["auc"] == 0.7 and internal["data"] == "chest_xray"
    assert external["auc"] is None and external["sensitivity"] == 0.5 and external["data"] == "ext"
    meta["validation"] = "damaged"
    assert model_card(tiny_model, "x", 0.4)["validation"]["external"] is None
    assert "secret" not in str(card)
    meta["threshold_method"] = "chosen on /secret/data/external (312 images) and runs/a/b"
    method = model_card(tiny_model, "x", 0.4)["threshold_method"]
    assert method == "chosen on external (312 images) and b"


def test_decoded_bytes_are_limited_not_only_pixels(tmp_path, xray):
    from corpus_hostile import rgba16_png

    bomb = rgba16_png(8000, 5000)  # 40 megapixels, at the web app's limit: 311 kB on disk
    assert len(bomb) < 400_000
    with pytest.raises(PneumoError, match="8000x5000 RGBA pixels take 153 MB decoded, the limit"
                                          " is 76 MB"):  # fmt: skip
        read_gray_bytes(bomb, max_pixels=40_000_000)
    (tmp_path / "bomb.png").write_bytes(bomb)
    with pytest.raises(PneumoError, match="the limit is 122 MB"):  # files: 64 megapixels
        read_gray(tmp_path / "bomb.png")
    path = make_dicom(tmp_path / "rgb.dcm", twelve_bit(jpeg_pixels(xray)))
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 6000  # under 40 megapixels, but three 16-bit samples each
    ds.SamplesPerPixel = 3
    ds.save_as(path)
    with pytest.raises(PneumoError, match="6000 x 6000 pixels of 3 x 16 bits take 206 MB"):
        read_gray_bytes(path.read_bytes(), max_pixels=40_000_000)


def test_in_memory_images_decode_alike_and_complex_arrays_are_refused(xray, tmp_path):
    """A float PIL image (mode F) in 0-1 was read as 0-255 (nearly black), unlike the same
    array; a complex array got a raw ComplexWarning (issue 22)."""
    import warnings

    from pneumocxr.data.decode import gray_from_array, gray_from_image

    gray = np.asarray(read_gray(xray))
    unit = gray.astype(np.float32) / 255.0
    Image.fromarray(unit, mode="F").save(tmp_path / "unit.tiff")  # a float TIFF file too
    for decoded in (gray_from_image(Image.fromarray(unit, mode="F")), gray_from_array(unit),
                    read_gray(tmp_path / "unit.tiff")):  # fmt: skip
        assert np.array_equal(np.asarray(decoded), gray)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a raw warning fails the test
        with pytest.raises(PneumoError, match="must hold real numbers, not complex128"):
            gray_from_array(gray.astype(np.complex128))
