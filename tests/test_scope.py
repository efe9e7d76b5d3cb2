"""Knowing what it does not know: the scope check, calibrated probabilities and UNCERTAIN, in
the shipped model, in models users train, in ensembles and exports, and through every path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import EXTERNAL, cli, cli_batch, shared_images
from dicom_factory import jpeg_pixels, make_dicom
from pneumocxr.artifact.resolve import DEFAULT_MODEL_DIR
from pneumocxr.decision.band import Band, fit_band
from pneumocxr.decision.calibration import calibration_error, fit_calibration, sigmoid
from pneumocxr.decision.decide import decide
from pneumocxr.errors import PneumoError

LABELS = {"NORMAL", "PNEUMONIA", "UNCERTAIN", "OUT_OF_SCOPE"}


def external_xrays(count: int) -> list:
    files = sorted(EXTERNAL.rglob("*.jpeg"))
    return files[:: max(1, len(files) // count)][:count]


@pytest.fixture(scope="module")
def default():
    import pneumocxr

    return pneumocxr.load_model("default")


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """Pictures that are no chest X-ray, from what installed packages ship or drawn here."""
    import matplotlib
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("outside")
    china, flower = load_sample_images().images
    Image.fromarray(china).save(folder / "photo_china.jpeg")
    Image.fromarray(flower).save(folder / "photo_flower.png")
    shutil.copy(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg", folder / "hopper.jpg")
    Image.new("L", (256, 256), 128).save(folder / "gray.png")
    Image.new("L", (256, 256), 0).save(folder / "black.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8)).save(folder / "noise.png")
    xray = ImageOps.grayscale(Image.open(external_xrays(1)[0]))
    ImageOps.invert(xray).save(folder / "negative.png")
    xray.rotate(180).save(folder / "upside_down.png")
    xray.rotate(90, expand=True).save(folder / "sideways.png")
    w, h = xray.size
    xray.crop((0, 0, w // 2, h // 2)).save(folder / "corner.png")
    return folder


# -- the shipped model ------------------------------------------------------------------------
def test_the_shipped_model_refuses_what_is_not_a_chest_xray(default, outside):
    found = default.predict(sorted(outside.iterdir()))
    assert {f.label for f in found} == {"OUT_OF_SCOPE"}, [(f.path, f.scope_score) for f in found]
    assert all(not f.in_scope and f.scope_score > 1 and "unlike the chest X-rays" in f.reason
               for f in found)  # fmt: skip


def test_the_shipped_model_answers_external_xrays(default):
    found = default.predict(external_xrays(60))
    assert sum(not f.in_scope for f in found) <= 1, [f.scope_score for f in found]
    assert {f.label for f in found} <= LABELS and all(f.scope_score < 5 for f in found)


def test_scope_check_off_labels_everything(default, outside):
    found = default.predict(sorted(outside.iterdir()), scope_check=False)
    assert {f.label for f in found} <= {"NORMAL", "PNEUMONIA", "UNCERTAIN"}
    assert all(f.in_scope and f.scope_score is None for f in found)


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"Modality": "MR"}, "DICOM modality MR: not a radiograph"),
        ({"Modality": "CT"}, "DICOM modality CT: not a radiograph"),
        ({"Modality": "CR", "BodyPartExamined": "KNEE"}, "DICOM body part KNEE: not the chest"),
        ({"Modality": "DX", "ViewPosition": "LL"}, "DICOM view LL: a lateral view"),
    ],
)
def test_a_dicom_header_puts_a_file_out_of_scope(default, tmp_path, tags, reason):
    image = shared_images("NORMAL", 1)[0]
    path = make_dicom(tmp_path / "scan.dcm", jpeg_pixels(image), bits=8, **tags)
    found = default.predict(path)
    assert found.label == "OUT_OF_SCOPE" and found.reason.startswith(reason)


def test_a_chest_radiograph_header_keeps_the_pixels_deciding(default, tmp_path):
    image = shared_images("NORMAL", 1)[0]
    path = make_dicom(tmp_path / "scan.dcm", jpeg_pixels(image), bits=8, Modality="CR",
                      BodyPartExamined="CHEST", ViewPosition="PA")  # fmt: skip
    assert default.predict(path).in_scope


def test_cli_json_and_csv_carry_the_contract(outside, tmp_path):
    xray = external_xrays(1)[0]
    csv_path = tmp_path / "out.csv"
    results = cli_batch(
        [
            ["predict", "--json", xray, outside / "gray.png"],
            ["predict", xray, outside / "gray.png", "--csv", csv_path],
            ["predict", "--json", "--scope-check", "off", outside / "gray.png"],
        ]
    )
    lines = [json.loads(line) for line in results[0].stdout.splitlines()]
    assert [set(line) for line in lines] == [
        {"path", "label", "p_pneumonia", "in_scope", "scope_score", "reason"}
    ] * 2
    assert lines[0]["in_scope"] is True and lines[1]["label"] == "OUT_OF_SCOPE"
    assert "threshold" in results[0].stderr and "scope check on" in results[0].stderr
    header = csv_path.read_text().splitlines()[0]
    assert header == "path,label,p_pneumonia,in_scope,scope_score,reason"
    off = json.loads(results[2].stdout)
    assert off["label"] in {"NORMAL", "PNEUMONIA", "UNCERTAIN"} and off["scope_score"] is None


# -- one image, any form --------------------------------------------------------------------------
def test_the_same_image_gets_the_same_answer_in_any_form(default):
    path = shared_images("PNEUMONIA", 1, 7)[0]
    image = Image.open(path)
    gray = np.asarray(image.convert("L"))
    forms = [path, str(path), image, gray, np.asarray(image.convert("RGB")), gray / 255.0,
             gray.astype(np.uint16)]  # fmt: skip
    # one at a time, the same pixels give the same numbers to the last bit
    alone = [default.predict(form) for form in forms]
    assert len({f.p_pneumonia for f in alone}) == 1, [f.p_pneumonia for f in alone]
    assert len({f.scope_score for f in alone}) == 1, [f.scope_score for f in alone]
    # in one batch, to rounding (a row's place in a batch can change the last bits)
    found = default.predict(forms)
    assert np.ptp([f.p_pneumonia for f in found]) < 1e-7, [f.p_pneumonia for f in found]
    assert np.ptp([f.scope_score for f in found]) < 1e-5
    assert found[0].path == str(path) and found[2].path is None


def test_bad_inputs_to_the_api_are_one_line_errors(default):
    for bad, message in (
        (np.zeros((10, 10)), "too small"),
        (np.zeros((64, 64, 2)), "H x W"),
        (np.full((64, 64), np.nan), "NaN"),
        (np.full((64, 64), -1.0), "negative"),
        (42, "give a path, a PIL image or a numpy array"),
    ):
        with pytest.raises(PneumoError, match=message):
            default.predict(bad)


# -- calibration and UNCERTAIN -------------------------------------------------------------------
def test_platt_scaling_recovers_a_known_calibration():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, 20000)
    labels = (rng.random(20000) < sigmoid(0.5 * logits - 1.0)).astype(int)
    fitted = fit_calibration(logits, labels, "platt")
    assert fitted.a == pytest.approx(0.5, abs=0.03) and fitted.b == pytest.approx(-1.0, abs=0.06)
    assert calibration_error(labels, fitted.apply(logits)) < 0.02  # its sampling noise: ~0.01
    assert calibration_error(labels, sigmoid(logits)) > 0.05
    assert fitted.apply(fitted.logit_for(0.3)) == pytest.approx(0.3)
    for method in ("temperature", "isotonic", "none"):
        assert fit_calibration(logits, labels, method).method == method


def test_the_band_follows_its_rule():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    probs = np.clip(0.5 + (labels - 0.5) * 0.5 + rng.normal(0, 0.2, 500), 0, 1)
    band = fit_band(probs, labels, 0.5, budget=0.08)
    inside = band.contains(probs)
    assert band.low <= 0.5 <= band.high and inside.mean() <= 0.08
    answered = ~inside
    called = probs >= 0.5
    before = 2 * ((~called) & (labels == 1)).sum() + (called & (labels == 0)).sum()
    after = (
        2 * ((~called) & (labels == 1) & answered).sum() + (called & (labels == 0) & answered).sum()
    )
    assert after < before
    assert fit_band(probs, labels, 0.5, budget=0).low == fit_band(probs, labels, 0.5, 0).high


def test_decisions_in_order_out_of_scope_uncertain_then_the_threshold():
    band = Band(0.3, 0.6)
    assert decide(0.9, False, 0.5, band) == "OUT_OF_SCOPE"
    assert decide(0.45, True, 0.5, band) == "UNCERTAIN"
    assert decide(0.65, True, 0.5, band) == "PNEUMONIA"
    assert decide(0.2, True, 0.5, band) == "NORMAL"
    assert decide(0.45, True, 0.5, None) == "NORMAL"


def test_the_shipped_model_carries_calibration_band_and_scope():
    meta = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())
    assert meta["calibration"]["method"] == "platt" and meta["scope"]["features"] == "own"
    band = meta["uncertain"]
    assert band["low"] < meta["threshold"] < band["high"]
    assert meta["calibration_error"]["after"] < meta["calibration_error"]["before"]
    assert "/" not in json.dumps(
        {k: meta[k] for k in ("validation", "training", "threshold_method", "exported_from")}
    )


# -- models users train, ensembles, exports ---------------------------------------------------
def test_a_trained_model_gets_its_scope_check_and_calibration(smallnet_run, outside):
    meta = json.loads((smallnet_run / "model.json").read_text())
    assert meta["scope"]["features"] == "efficientnet-lite0"  # SmallNet borrows the reference
    assert "train split" in meta["scope"]["fit_on"] and meta["scope"]["fit_seconds"] < 120
    assert meta["calibration"]["fit_on"].startswith("val split")
    assert any(t.startswith("scope.") for t in meta["weights"]["tensors"])
    import pneumocxr

    model = pneumocxr.load_model(smallnet_run)
    assert model.predict(outside / "photo_china.jpeg").label == "OUT_OF_SCOPE"
    assert model.predict(outside / "noise.png").label == "OUT_OF_SCOPE"


def test_ensembles_and_exports_carry_the_scope_check(smallnet_run, effnet_run, outside, tmp_path):
    results = cli_batch(
        [
            ["ensemble", smallnet_run, effnet_run, "--out", tmp_path / "ens"],
            ["export", effnet_run, "--out", tmp_path / "copy", "--half"],
            ["predict", "--json", "--model", tmp_path / "ens", outside / "photo_china.jpeg"],
            ["predict", "--json", "--model", tmp_path / "copy", outside / "gray.png"],
        ]
    )
    assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
    assert json.loads(results[2].stdout)["label"] == "OUT_OF_SCOPE"
    assert json.loads(results[3].stdout)["label"] == "OUT_OF_SCOPE"
    copied = json.loads((tmp_path / "copy" / "model.json").read_text())
    original = json.loads((effnet_run / "model.json").read_text())
    for key in ("threshold", "calibration", "uncertain"):
        assert copied[key] == original[key], key


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda m: m.update(threshold=0.0), "threshold 0.0 (exported: "),
        (lambda m: m["preprocessing"].update(image_size=33), "preprocessing.image_size 33"),
        (
            lambda m: m.update(architecture="efficientnet-lite1"),
            'architecture "efficientnet-lite1"',
        ),
        (lambda m: m["calibration"].update(a=5.0), "calibration.a 5.0"),
        (lambda m: m["scope"].update(fit_on="anything"), "scope.fit_on"),
        (lambda m: m["uncertain"].update(low=0.0), "uncertain.low 0.0"),
    ],
)
def test_model_json_is_what_was_exported(tmp_path, edit, named):
    folder = shutil.copytree(
        DEFAULT_MODEL_DIR, tmp_path / "m", ignore=shutil.ignore_patterns("*.md")
    )
    meta = json.loads((folder / "model.json").read_text())
    edit(meta)
    (folder / "model.json").write_text(json.dumps(meta))
    result = cli("predict", "--model", folder, shared_images("NORMAL", 1)[0], check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert named in result.stderr and "export the model again" in result.stderr
    assert result.stderr.count("\n") == 1


def test_radiographs_of_other_parts_and_other_modalities_are_refused(default, tmp_path):
    """Real DICOM test files (pydicom-data): a lower leg on CR, an MR shoulder, an ultrasound
    frame; and the lower leg again as a plain PNG, with no header to say what it is."""
    import data_store
    from skimage import data as pictures

    from pneumocxr.data.dicom import read_dicom_gray

    files = Path(data_store.__file__).parent / "data"
    leg = tmp_path / "leg.png"
    Image.fromarray(read_dicom_gray(files / "RG3_UNCR.dcm")).save(leg)
    Image.fromarray(pictures.astronaut()).save(tmp_path / "astronaut.png")
    found = default.predict([files / "RG3_UNCR.dcm", files / "MR2_UNCR.dcm",
                             files / "US1_UNCR.dcm", leg, tmp_path / "astronaut.png"])  # fmt: skip
    reasons = [f.reason for f in found]
    assert [f.label for f in found] == ["OUT_OF_SCOPE"] * 5, reasons
    assert reasons[0].startswith("DICOM body part EXTREMITY")
    assert reasons[1].startswith("DICOM modality MR") and reasons[2].startswith("DICOM modality US")
    assert "unlike the chest X-rays" in reasons[3] and found[3].scope_score > 1
