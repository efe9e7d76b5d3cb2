"""DICOM input: LUTs, MONOCHROME1, compressed syntaxes, conversion, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEGLSLossless

from conftest import cli, shared_images
from dicom_factory import JPEG2000Lossless, RLELossless, jpeg_pixels, make_dicom, twelve_bit
from pneumocxr.data.decode import load_image
from pneumocxr.data.dicom import normalise_to_uint8, read_dicom_gray
from pneumocxr.errors import PneumoError


@pytest.fixture(scope="module")
def xray():
    return shared_images("PNEUMONIA", 1, 7)[0]


@pytest.fixture(scope="module")
def dicoms(xray, tmp_path_factory):
    out = tmp_path_factory.mktemp("dicom")
    gray = jpeg_pixels(xray)
    stored = twelve_bit(gray)
    return {
        "plain": make_dicom(out / "plain.dcm", stored),
        "mono1": make_dicom(out / "mono1.dcm", 4095 - stored, photometric="MONOCHROME1"),
        "rle": make_dicom(out / "rle.dcm", stored, compress=RLELossless),
        "j2k": make_dicom(out / "j2k.dcm", stored, compress=JPEG2000Lossless),
        "lut": make_dicom(
            out / "lut.dcm", (stored + 1024) // 2, slope=2, intercept=-1024, window=(2048, 4096)
        ),
        "no_suffix": make_dicom(out / "IMAGE0001", stored),
    }


def test_twelve_bit_dicom_decodes_like_its_jpeg(xray, dicoms):
    gray = jpeg_pixels(xray)
    decoded = read_dicom_gray(dicoms["plain"])
    assert decoded.dtype == np.uint8 and decoded.shape == gray.shape
    assert np.array_equal(decoded, normalise_to_uint8(gray))
    assert np.abs(decoded.astype(int) - gray).mean() < 3  # this JPEG already spans 0-253


@pytest.mark.parametrize("variant", ["mono1", "rle", "j2k", "lut", "no_suffix"])
def test_every_variant_gives_the_same_pixels(dicoms, variant):
    assert np.array_equal(read_dicom_gray(dicoms[variant]), read_dicom_gray(dicoms["plain"]))


def test_normalisation_clips_outliers():
    values = np.random.default_rng(0).normal(1000, 100, (100, 100))
    values[:2, :10] = 5000  # a burned-in marker far brighter than the anatomy
    out = normalise_to_uint8(values)
    assert (out[:2, :10] == 255).all()
    assert out[2:].max() > 180 and out[2:].min() == 0  # the anatomy keeps its contrast
    naive = (values - values.min()) / (values.max() - values.min()) * 255
    assert naive[2:].max() < 60  # which plain min-max scaling would have squashed


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "JPEG2000.dcm",
        "JPGExtended.dcm",
        "MR_small_jp2klossless.dcm",
        "SC_rgb_rle.dcm",
    ],
)
def test_pydicom_test_files(name):
    image = load_image(get_testdata_file(name), 64)
    assert image.shape == (64, 64) and image.dtype == np.uint8 and image.std() > 5


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("rtplan.dcm", "no pixel data"),
        ("waveform_ecg.dcm", "no pixel data"),
        ("reportsi.dcm", "no pixel data"),
        ("rtdose.dcm", "modality RTDOSE is not an image"),
    ],
)
def test_dicoms_that_are_not_images(name, message):
    with pytest.raises(PneumoError, match=message):
        read_dicom_gray(get_testdata_file(name))


def test_a_non_radiograph_modality_is_refused(xray, tmp_path):
    path = make_dicom(tmp_path / "ecg.dcm", twelve_bit(jpeg_pixels(xray)), modality="ECG")
    with pytest.raises(PneumoError, match="modality ECG is not an image"):
        read_dicom_gray(path)


def test_an_invalid_window_is_a_clear_error(xray, tmp_path):
    stored = twelve_bit(jpeg_pixels(xray))
    path = make_dicom(tmp_path / "w.dcm", stored, window=(2048, 0))  # width must be >= 1
    with pytest.raises(PneumoError, match="cannot decode DICOM pixel data"):
        read_dicom_gray(path)


def test_prediction_on_dicom_matches_the_image(effnet_run, xray, dicoms):
    paths = [xray, dicoms["plain"], dicoms["mono1"], dicoms["rle"], dicoms["lut"]]
    result = cli("predict", "--model", effnet_run, "--json", *paths)
    probs = [json.loads(line)["p_pneumonia"] for line in result.stdout.splitlines()]
    assert len(probs) == 5
    assert max(abs(p - probs[0]) for p in probs[1:]) < 0.02
    assert len(set(probs[1:])) == 1  # the DICOM variants are pixel-identical


def test_predict_finds_dicoms_in_folders_even_without_suffix(effnet_run, dicoms):
    result = cli("predict", "--model", effnet_run, dicoms["plain"].parent)
    names = sorted(line.split("\t")[0].rsplit("/", 1)[1] for line in result.stdout.splitlines())
    assert names == ["IMAGE0001", "j2k.dcm", "lut.dcm", "mono1.dcm", "plain.dcm", "rle.dcm"]


def test_predict_reports_a_dicom_without_pixels(effnet_run):
    result = cli("predict", "--model", effnet_run, get_testdata_file("rtplan.dcm"), check=False)
    assert result.returncode == 1 and "no pixel data" in result.stderr
    assert "Traceback" not in result.stderr


def test_dicom2png_file_and_tree(dicoms, tmp_path):
    cli("dicom2png", dicoms["rle"], tmp_path / "one.png")
    png = load_image(tmp_path / "one.png", 224)
    assert np.array_equal(png, load_image(dicoms["plain"], 224))
    tree = dicoms["plain"].parent
    result = cli("dicom2png", tree, tmp_path / "tree")
    written = sorted(p.name for p in (tmp_path / "tree").glob("*.png"))
    assert written == ["IMAGE0001.png", "j2k.png", "lut.png", "mono1.png", "plain.png", "rle.png"]
    assert result.returncode == 0


def test_dicom2png_errors(tmp_path):
    result = cli("dicom2png", get_testdata_file("rtplan.dcm"), tmp_path / "x.png", check=False)
    assert result.returncode == 1 and "no pixel data" in result.stderr
    assert not (tmp_path / "x.png").exists()
    (tmp_path / "empty").mkdir()
    result = cli("dicom2png", tmp_path / "empty", tmp_path / "out", check=False)
    assert result.returncode == 1 and "no DICOM files" in result.stderr


@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEG2000Lossless])
def test_a_codec_failure_says_which_decoder_failed_and_why(tmp_path, syntax):
    from corpus import broken_codec_dicom

    path = broken_codec_dicom(tmp_path / "scan.dcm", syntax)
    with pytest.raises(PneumoError) as refused:
        read_dicom_gray(path)
    message = str(refused.value)
    assert f"no installed decoder could decode its {syntax.name} pixel data: pylibjpeg: " in message
    assert not message.rstrip(")").endswith(":")  # not cut after "all available plugins:"
    result = cli("dicom2png", path, tmp_path / "scan.png", check=False)
    assert result.returncode == 1 and "no installed decoder could decode" in result.stderr
    assert not (tmp_path / "scan.png").exists()
