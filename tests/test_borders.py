"""Uniform borders are trimmed before every model sees an image (files, arrays, uploads, DICOM,
the CLI), an X-ray without one is left as it is, and a refused image's reason names what
differs (docs/VALIDATION.md, "Borders and other alterations")."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import EXTERNAL, cli
from dicom_factory import make_dicom
from pneumocxr.data.borders import DESCRIPTION, find_borders, trim_borders
from pneumocxr.data.decode import read_gray, squash
from pneumocxr.data.preprocessing import Preprocessing

# A padded PNG holds the X-ray's own pixels, so trimming gives them back exactly and the
# answer is the X-ray's to the last bits a row's place in a batch can change (1e-7, as in
# tests/test_scope.py); before trimming, 312 of 312 X-rays with a 25% border were refused.
SAME_P = 1e-7


@pytest.fixture(scope="module")
def default():
    import pneumocxr

    return pneumocxr.load_model("default")


@pytest.fixture(scope="module")
def xrays():
    """Two external X-rays (NORMAL, PNEUMONIA) without a border, decoded."""
    found = []
    for label in ("NORMAL", "PNEUMONIA"):
        files = sorted((EXTERNAL / label).glob("*.jpeg"))
        found.append(next(g for g in map(read_gray, files) if not find_borders(np.asarray(g))))
    return found


def framed(gray: Image.Image, fraction: float, value: int, sides: str = "all") -> Image.Image:
    """`gray` centred on a canvas whose border takes `fraction` of its side."""
    width, height = round(gray.width / (1 - fraction)), gray.height
    height = round(gray.height / (1 - fraction)) if sides == "all" else height
    canvas = Image.new("L", (width, height), value)
    canvas.paste(gray, ((width - gray.width) // 2, (height - gray.height) // 2))
    return canvas


def test_a_padded_xray_gets_the_answer_of_the_xray(default, xrays, tmp_path):
    files = []
    for i, gray in enumerate(xrays):
        gray.save(tmp_path / f"{i}.png")
        for fraction, value, sides in ((0.25, 0, "all"), (0.4, 255, "all"), (0.25, 0, "sides"),
                                       (0.8, 0, "all")):  # fmt: skip
            name = f"{i}-{fraction}-{sides}-{value}.png"
            framed(gray, fraction, value, sides).save(tmp_path / name)
        files.append(sorted(tmp_path.glob(f"{i}*.png")))
    for group in files:
        found = default.predict(group)
        assert all(f.in_scope for f in found), [(f.path, f.scope_score) for f in found]
        p = [f.p_pneumonia for f in found]
        assert np.ptp(p) < SAME_P and len({f.label for f in found}) == 1, p


def test_a_padded_jpeg_loses_its_border_to_the_last_rows(default, xrays):
    """JPEG rings next to the X-ray: the tolerance (12 gray levels) was chosen so that at most 2
    pixels of a quality-75 border stay; the X-ray inside changes by compression, not border."""
    for gray in xrays:
        buffer = io.BytesIO()
        framed(gray, 0.25, 255).save(buffer, format="JPEG", quality=75)
        trimmed = trim_borders(Image.open(buffer).convert("L"))
        assert abs(trimmed.width - gray.width) <= 2 and abs(trimmed.height - gray.height) <= 2
        assert default.predict(np.asarray(trimmed)).in_scope


def test_an_xray_without_a_border_is_untouched(xrays):
    for gray in xrays:
        assert trim_borders(gray) is gray
        assert np.array_equal(squash(gray, gray.width), np.asarray(gray))
        big = gray.resize((900, 700), Image.Resampling.BILINEAR)
        assert trim_borders(big) is big
        expected = np.asarray(big.resize((224, 224), Image.Resampling.BILINEAR))
        assert np.array_equal(squash(big, 224), expected)  # bit for bit


def test_borders_that_are_not_uniform_or_leave_too_little_stay():
    rng = np.random.default_rng(0)
    xray = rng.integers(0, 256, (100, 100), dtype=np.uint8)
    canvas = np.full((200, 200), 40, np.uint8)
    canvas[50:150, 50:150] = xray
    noisy = canvas.copy()
    noisy[:50] = rng.integers(0, 81, (50, 200))  # a border 40 gray levels either way
    assert trim_borders(Image.fromarray(canvas)).size == (100, 100)
    # its top is no border, nor are the columns that cross it: only the bottom goes
    assert trim_borders(Image.fromarray(noisy)).size == (200, 150)
    speck = np.zeros((300, 300), np.uint8)
    speck[140:160, 140:160] = xray[:20, :20]  # 20 pixels a side is under MIN_SIDE
    kept = Image.fromarray(speck)
    assert trim_borders(kept) is kept
    blank = Image.new("L", (64, 64), 128)
    assert trim_borders(blank) is blank


def test_a_refused_image_names_the_cause(default, xrays):
    gray = np.asarray(xrays[1], dtype=np.float64)
    rng = np.random.default_rng(0)
    speck = np.zeros((240, 240), np.uint8)
    speck[108:132, 108:132] = np.asarray(xrays[1].resize((24, 24), Image.Resampling.BILINEAR))
    cases = {
        "low contrast": (gray - gray.mean()) * 0.3 + gray.mean(),
        "noisy": gray + rng.normal(0, 25, gray.shape),
        "mostly a uniform border": speck,
        "little fine detail": np.asarray(xrays[1].resize((64, 64), Image.Resampling.BILINEAR)),
        "nearly a single gray level": np.full((300, 300), 200),
    }
    images = [np.clip(np.round(v), 0, 255).astype(np.uint8) for v in cases.values()]
    for cause, found in zip(cases, default.predict(images)):
        assert found.label == "OUT_OF_SCOPE", (cause, found)
        assert found.reason.startswith("unlike the chest X-rays") and cause in found.reason, (
            cause, found.reason)  # fmt: skip
        assert "\n" not in found.reason
    assert default.predict(gray.astype(np.uint8)).reason == ""


def test_the_cli_answers_a_padded_xray_as_the_xray_and_says_why_it_refuses(xrays, tmp_path):
    gray = xrays[0]
    gray.save(tmp_path / "xray.png")
    framed(gray, 0.3, 0).save(tmp_path / "padded.png")
    values = np.asarray(gray, dtype=np.float64)
    flat = (values - values.mean()) * 0.3 + values.mean()
    Image.fromarray(np.round(flat).astype(np.uint8)).save(tmp_path / "flat.png")
    names = ("xray.png", "padded.png", "flat.png")
    result = cli("predict", "--json", *(tmp_path / name for name in names))
    xray, padded, flat = [json.loads(line) for line in result.stdout.splitlines()]
    assert padded["in_scope"] and padded["p_pneumonia"] == pytest.approx(xray["p_pneumonia"])
    assert flat["label"] == "OUT_OF_SCOPE" and "low contrast" in flat["reason"]


def test_uploads_and_dicom_see_the_trimmed_xray(default, xrays, tmp_path):
    from pneumocxr.serve.service import Service

    gray = xrays[1]
    service = Service(default.loaded)
    buffer = io.BytesIO()
    framed(gray, 0.25, 0).save(buffer, format="PNG")
    upload = service.decode(buffer.getvalue(), "padded.png", gradcam=True)
    assert np.array_equal(upload.pixels, squash(gray, service.size))
    assert upload.display.shape == (gray.height, gray.width)  # the picture the heat map is on
    tags = {"Modality": "CR", "BodyPartExamined": "CHEST", "ViewPosition": "PA"}
    paths = [make_dicom(tmp_path / f"{name}.dcm", np.asarray(pixels), bits=8, **tags)
             for name, pixels in (("plain", gray), ("padded", framed(gray, 0.25, 0)))]  # fmt: skip
    plain, padded = default.dicom_results(paths, heatmap=False)
    assert padded.prediction.in_scope
    assert abs(padded.prediction.p_pneumonia - plain.prediction.p_pneumonia) < SAME_P


def test_model_json_records_the_trimming_and_older_ones_read_the_same():
    written = Preprocessing(image_size=224).to_json()
    assert written["borders"] == DESCRIPTION and "trimmed" in DESCRIPTION
    older = {k: v for k, v in written.items() if k != "borders"}  # a model.json before it
    assert Preprocessing.from_json(older).borders == DESCRIPTION
