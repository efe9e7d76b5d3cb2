"""The main job, `pneumocxr run --quick`, its report in a real browser, and the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import cli, launch_chromium, shared_images

MODEL_FILES = [
    "config.json",
    "splits.csv",
    "summary.txt",
    "history.csv",
    "history.png",
    "model.safetensors",
    "model.json",
    "evaluation/metrics.json",
    "evaluation/report.txt",
    "evaluation/confusion_matrix.png",
    "evaluation/roc.png",
    "evaluation/calibration.png",
    "evaluation_external/metrics.json",
    "gradcam/panel.png",
]


def test_quick_run_leaves_every_file(quick_run):
    for name in (
        "splits.csv",
        "distribution.png",
        "preview.png",
        "report.html",
        "comparison/roc_comparison.png",
        "comparison/comparison.md",
    ):
        assert (quick_run / name).is_file(), name
    for model in ("smallnet", "efficientnet-lite0"):
        for name in MODEL_FILES:
            assert (quick_run / model / name).is_file(), f"{model}/{name}"
    top = pd.read_csv(quick_run / "splits.csv")
    for model in ("smallnet", "efficientnet-lite0"):
        assert pd.read_csv(quick_run / model / "splits.csv").equals(top)  # the same split
    patients = [set(top.loc[top["split"] == s, "patient"]) for s in ("train", "val", "test")]
    assert not (patients[0] & patients[2])


def test_quick_run_models_learn(quick_run):
    def metrics(model):
        return json.loads((quick_run / model / "evaluation" / "metrics.json").read_text())

    assert metrics("efficientnet-lite0")["auc"] > 0.9  # pretrained: learns even when quick
    smallnet = metrics("smallnet")
    assert smallnet["auc"] > 0.8
    # Both classes predicted at 0.5: the quick profile trains long enough to leave the prior.
    assert smallnet["sensitivity"] > 0.5 and smallnet["specificity"] > 0.3
    comparison = json.loads((quick_run / "comparison" / "comparison.json").read_text())
    assert [c["name"] for c in comparison] == ["smallnet", "efficientnet-lite0"]
    for c in comparison:  # every model on the external set too, with the gap
        assert c["external"]["n"] == 312
        assert c["gap"]["auc"] == pytest.approx(c["external"]["auc"] - c["auc"])
    transfer = json.loads((quick_run / "efficientnet-lite0" / "model.json").read_text())
    assert transfer["validation"]["external"]["n"] == 312
    history = pd.read_csv(quick_run / "efficientnet-lite0" / "history.csv")
    assert history["ext_auc"].notna().all()
    config = json.loads((quick_run / "efficientnet-lite0" / "config.json").read_text())
    assert config["augment"] == "strong" and config["keep"] == "last"  # the run's recipe


def test_same_three_gradcam_images_for_both_models(quick_run):
    from PIL import Image

    panels = [
        Image.open(quick_run / m / "gradcam" / "panel.png")
        for m in ("smallnet", "efficientnet-lite0")
    ]
    assert panels[0].size == panels[1].size
    names = [
        sorted(p.name for p in (quick_run / m / "gradcam").glob("*_gradcam.png"))
        for m in ("smallnet", "efficientnet-lite0")
    ]
    assert names[0] == names[1] and len(names[0]) == 3


def test_report_opens_in_chromium_with_every_image(quick_run, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    html = (quick_run / "report.html").read_text()
    assert 'src="data:image/png;base64,' in html and 'src="http' not in html
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((quick_run / "report.html").resolve().as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => i.complete && i.naturalWidth)"
        )
        headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    # distribution, augmentation, ROC comparison, and per model: curves, confusion matrix,
    # reliability diagram, risk-coverage curve, Grad-CAM panel
    assert len(widths) == 3 + 2 * 5 and all(w and w > 0 for w in widths), widths
    assert "Internal vs external" in html
    order = ["The data", "The models", "Training", "Evaluation", "ROC", "Grad-CAM"]
    positions = [next(i for i, h in enumerate(headings) if key in h) for key in order]
    assert positions == sorted(positions)
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_report_command_rebuilds_it(quick_run):
    report = quick_run / "report.html"
    before = report.stat().st_mtime_ns
    result = cli("report", quick_run)
    assert report.stat().st_mtime_ns > before and "report.html" in result.stdout
    bad = cli("report", Path(quick_run) / "smallnet" / "evaluation", check=False)
    assert bad.returncode == 1 and "not a folder made by" in bad.stderr


def test_default_model_predicts_without_model_option():
    image = shared_images("PNEUMONIA", 1, 123)[0]
    result = cli("predict", "--json", image)
    row = json.loads(result.stdout)
    assert row["path"] == str(image) and 0 <= row["p_pneumonia"] <= 1
    assert row["label"] in ("NORMAL", "PNEUMONIA")


def test_default_model_card_and_size():
    from pneumocxr.artifact.resolve import DEFAULT_MODEL_DIR

    weights = DEFAULT_MODEL_DIR / "model.safetensors"
    assert weights.stat().st_size <= 20 * 2**20
    card = (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text()
    for needle in ("not a medical device", "pneumocxr train", "validation", "95% CI"):
        assert needle.lower() in card.lower(), needle
