"""External validation, the stress test, recipes' options, ensembles and operating thresholds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import EXTERNAL, cli, make_subset, train_quick
from pneumocxr.data.corruptions import CORRUPTIONS, MEDMNIST_C
from pneumocxr.errors import PneumoError


@pytest.fixture(scope="module")
def external_small(tmp_path_factory):
    """30 + 30 images of the external set (symlinks), for quick checks."""
    root = tmp_path_factory.mktemp("external") / "external"
    for label in ("NORMAL", "PNEUMONIA"):
        (root / label).mkdir(parents=True)
        for image in sorted((EXTERNAL / label).glob("*.jpeg"))[:30]:
            (root / label / image.name).symlink_to(image)
    return root


@pytest.fixture(scope="module")
def external_run(small_data, external_small, tmp_path_factory):
    return train_quick(
        small_data, tmp_path_factory.mktemp("ext-runs"), "smallnet", "--external", external_small
    )


def test_training_reports_the_external_set_every_epoch(external_run, external_small):
    history = pd.read_csv(external_run / "history.csv")
    for column in ("ext_loss", "ext_accuracy", "ext_auc", "val_auc"):
        assert history[column].notna().all(), column
    assert not np.allclose(history["ext_loss"], history["val_loss"])  # a different data set
    meta = json.loads((external_run / "model.json").read_text())
    internal, external = meta["validation"]["internal"], meta["validation"]["external"]
    assert external["n"] == 60 and internal["n"] > 0
    assert external["data"] == f"{external_small.name} (not used)"  # a name, no path
    assert meta["training"]["selected_on"] == "val"
    config = json.loads((external_run / "config.json").read_text())
    assert config["external"] == str(external_small) and config["select_on"] == "val"


def test_external_figures_match_an_evaluation(external_run, external_small, tmp_path):
    meta = json.loads((external_run / "model.json").read_text())
    cli("evaluate", external_run, "--data", external_small, "--out", tmp_path / "e",
        "--threshold", "model")  # fmt: skip
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    for name in ("auc", "accuracy", "sensitivity", "specificity"):
        assert metrics[name] == pytest.approx(meta["validation"]["external"][name], abs=1e-6)


def test_external_set_never_overlaps_training(small_data, tmp_path):
    overlap = make_subset(tmp_path / "ext", 5, 5)  # the same files the training data holds
    result = cli("train", "--data", small_data, "--external", overlap, "--out", tmp_path / "o",
                 "--epochs", "1", "--image-size", "32", check=False)  # fmt: skip
    assert result.returncode == 1 and "shares 10 image(s) with the training data" in result.stderr
    copy = tmp_path / "copy" / "NORMAL"
    copy.mkdir(parents=True)
    first = sorted((small_data / "NORMAL").iterdir())[0]
    (copy / "renamed.jpeg").write_bytes(first.read_bytes())  # same content, another name
    (tmp_path / "copy" / "PNEUMONIA").mkdir()
    (tmp_path / "copy" / "PNEUMONIA" / "x.jpeg").symlink_to(EXTERNAL / "PNEUMONIA" / sorted(
        p.name for p in (EXTERNAL / "PNEUMONIA").iterdir())[0])  # fmt: skip
    result = cli("train", "--data", small_data, "--external", tmp_path / "copy", "--out",
                 tmp_path / "o", "--epochs", "1", "--image-size", "32", check=False)  # fmt: skip
    assert "shares 1 image(s)" in result.stderr


def test_select_on_external_follows_the_external_loss(small_data, external_small, tmp_path):
    run = train_quick(small_data, tmp_path, "smallnet", "--external", external_small,
                      "--select-on", "external", "--epochs", "3",
                      "--calibrate-on", external_small)  # fmt: skip
    history = pd.read_csv(run / "history.csv")
    meta = json.loads((run / "model.json").read_text())
    assert meta["training"]["best_epoch"] == int(history.loc[history["ext_loss"].idxmin(), "epoch"])
    external = meta["validation"]["external"]["data"]
    assert "used for selection and calibration" in external
    assert meta["calibration"]["fit_on"] == f"{external_small.name} (60 images)"
    bad = cli("train", "--data", small_data, "--select-on", "external", check=False)
    assert bad.returncode == 1 and "--select-on external needs --external" in bad.stderr


def test_a_bad_calibration_folder_fails_before_training(small_data, tmp_path):
    out = tmp_path / "runs"
    bad = cli("train", "--data", small_data, "--out", out, "--calibrate-on", tmp_path / "gone",
              check=False)  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "gone" in bad.stderr.splitlines()[-1]
    assert list(out.iterdir()) == []  # no run folder: nothing was trained


def test_keep_last_exports_the_last_epoch(small_data, tmp_path):
    run = train_quick(small_data, tmp_path, "smallnet", "--keep", "last", "--epochs", "3")
    meta = json.loads((run / "model.json").read_text())
    assert meta["training"]["best_epoch"] == 3 and meta["training"]["kept"] == "last"
    last = torch.load(run / "checkpoints" / "train-last.ckpt", weights_only=True)["state_dict"]
    from pneumocxr.artifact.load import load_model

    exported = load_model(run).predictor.state_dict()
    for key, value in exported.items():
        if not key.startswith("scope."):  # fitted after training, not in a checkpoint
            assert torch.allclose(value, last[f"model.{key}"]), key


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_changes_the_image_more_with_severity(name):
    from conftest import shared_images
    from pneumocxr.data.decode import decode_all

    images = decode_all(shared_images("NORMAL", 4), 96).pixels
    changes = []
    for severity in (1, 5):
        out = CORRUPTIONS[name](images, severity, torch.Generator().manual_seed(0))
        assert out.dtype == torch.uint8 and out.shape == images.shape
        changes.append((out.float() - images.float()).abs().mean().item())
    assert 0 < changes[0] < changes[1], changes


def test_corruptions_follow_medmnist_c():
    assert len(MEDMNIST_C) == 13 and len(CORRUPTIONS) == 15
    assert CORRUPTIONS["jpeg"].severities == (50, 30, 15, 10, 7)
    assert CORRUPTIONS["shot_noise"].severities == (300, 200, 150, 100, 80)
    flat = torch.full((1, 1, 8, 8), 100, dtype=torch.uint8)
    assert CORRUPTIONS["brightness_down"](flat, 5).unique().tolist() == [50]  # x 0.5
    assert CORRUPTIONS["gamma_up"](flat, 5).unique().tolist() == [int(255 * (100 / 255) ** 1.6)]
    assert CORRUPTIONS["contrast_down"](flat, 1).unique().tolist() == [100]  # flat stays flat


def test_stress_command(external_run, external_small, tmp_path):
    result = cli("stress", external_run, "--data", external_small, "--out", tmp_path / "s",
                 "--corruption", "gaussian_noise", "--corruption", "masked_borders")  # fmt: skip
    table = pd.read_csv(tmp_path / "s" / "stress.csv")
    assert len(table) == 10 and set(table["severity"]) == {1, 2, 3, 4, 5}
    summary = json.loads((tmp_path / "s" / "stress.json").read_text())
    assert summary["mean_corruption_auc"] == pytest.approx(table["auc"].mean())
    meta = json.loads((external_run / "model.json").read_text())
    assert summary["clean_auc"] == pytest.approx(meta["validation"]["external"]["auc"], abs=1e-6)
    assert "mean-corruption AUC" in result.stdout
    assert (tmp_path / "s" / "stress.png").stat().st_size > 10_000
    assert "| gaussian_noise |" in (tmp_path / "s" / "stress.md").read_text()
    again = cli("stress", external_run, "--data", external_small, "--out", tmp_path / "t",
                "--corruption", "gaussian_noise", "--corruption", "masked_borders")  # fmt: skip
    assert again.stdout == result.stdout.replace(str(tmp_path / "s"), str(tmp_path / "t"))
    bad = cli("stress", external_run, "--data", external_small, "--out", tmp_path / "u",
              "--corruption", "fog", check=False)  # fmt: skip
    assert bad.returncode == 1 and "unknown corruption 'fog'" in bad.stderr


def test_augmentation_policies_stay_in_range_and_are_reproducible():
    from pneumocxr.data.augment import Augment

    images = torch.randint(0, 256, (16, 1, 64, 64), dtype=torch.uint8)
    for policy, share in (("strong", 0.0), ("tutorial", 1.0), ("none", 0.5)):
        torch.manual_seed(0)
        first = Augment(policy, share, 64)(images)
        torch.manual_seed(0)
        again = Augment(policy, share, 64)(images)
        assert first.dtype == torch.float32 and first.min() >= 0 and first.max() <= 1
        assert torch.equal(first, again), policy
        assert not torch.equal(first, images.float() / 255), policy
    with pytest.raises(PneumoError, match="--augment must be one of"):
        Augment("wild")


def test_label_smoothing_and_mixup():
    from pneumocxr.networks.smallnet import SmallNet
    from pneumocxr.training.module import Classifier

    module = Classifier(SmallNet(32), 1e-3, label_smoothing=0.2, mixup=0.4)
    logits, y = torch.zeros(4), torch.tensor([0.0, 1.0, 1.0, 0.0])
    smooth = module._loss(torch.full((4,), 10.0), y, 0.2)
    target = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.full((4,), 10.0), y * 0.8 + 0.1
    )
    assert smooth == pytest.approx(target.item())
    assert module._loss(logits, y) == pytest.approx(np.log(2), abs=1e-6)
    torch.manual_seed(0)
    labels = (torch.arange(16) % 2).float()
    images = labels.view(-1, 1, 1, 1).expand(-1, 1, 2, 2)  # each image's pixels = its label
    mixed, soft = module._mix(images, labels)
    assert torch.allclose(mixed[:, 0, 0, 0], soft)  # pixels and labels blended alike
    assert ((soft > 0) & (soft < 1)).any()  # pairs of different classes were mixed
    assert ((soft - labels).abs() <= 0.5).all()  # and each keeps its own label's majority


def test_operating_threshold_is_the_most_accurate_with_enough_sensitivity():
    from pneumocxr.training.threshold import _best_threshold, operating_threshold

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    probs = np.clip(labels * 0.35 + rng.random(200) * 0.65, 0, 1)
    best = None
    for cut in np.unique(probs):  # brute force
        called = probs >= cut
        sensitivity, accuracy = called[labels == 1].mean(), (called == labels).mean()
        if sensitivity >= 0.95 and (best is None or accuracy > best[1]):
            best = (cut, accuracy)
    assert _best_threshold(labels, probs, 0.95) == pytest.approx(best[0])
    stable = operating_threshold(labels, probs, 0.95, n_boot=200)
    called = probs >= stable
    assert called[labels == 1].mean() >= 0.9  # about the asked sensitivity on the full set
    assert operating_threshold(labels, probs, 0.95, n_boot=200) == stable  # seeded


def test_ensemble_averages_its_members(external_run, effnet_run, external_small, tmp_path):
    out = tmp_path / "ensemble"
    cli("ensemble", external_run, effnet_run, "--out", out, "--external", external_small,
        "--threshold", "operating", "--threshold-on", external_small)  # fmt: skip
    meta = json.loads((out / "model.json").read_text())
    assert meta["format"] == "pneumocxr-ensemble/2" and len(meta["members"]) == 2
    assert "used to fit the threshold" in meta["validation"]["external"]["data"]
    assert meta["validation"]["external"]["sensitivity"] >= 0.9
    image = sorted((external_small / "NORMAL").iterdir())[0]

    def logit(model):  # the network's own output, before each model's calibration
        import pneumocxr

        return pneumocxr.load_model(model).predict(image).logit

    members = [logit(external_run), logit(effnet_run)]
    assert logit(out) == pytest.approx(np.mean(members), abs=1e-3)  # mean of logits
    cli("gradcam", out, image, "--out", tmp_path / "gc")
    assert (tmp_path / "gc" / "panel.png").is_file()
    meta["members"][0]["path"] = "../../elsewhere"
    (out / "model.json").write_text(json.dumps(meta))
    bad = cli("predict", "--model", out, image, check=False)  # the record names the edit
    assert bad.returncode == 1 and "members" in bad.stderr and "not what was exported" in bad.stderr


def test_compare_shows_internal_external_and_the_gap(external_run, external_small, tmp_path):
    result = cli("compare", external_run, "--split", "test", "--external", external_small,
                 "--out", tmp_path)  # fmt: skip
    assert "auc gap" in result.stdout
    record = json.loads((tmp_path / "comparison.json").read_text())[0]
    assert record["gap"]["auc"] == pytest.approx(record["external"]["auc"] - record["auc"])
    assert record["external"]["n"] == 60


def test_every_command_defaults_to_the_models_threshold(external_run, external_small, tmp_path):
    def predictions(model):
        result = cli("predict", "--model", model, "--json", external_small)
        return [json.loads(line) for line in result.stdout.splitlines()]

    probs = sorted(r["p_pneumonia"] for r in predictions(external_run))
    own = json.loads((external_run / "model.json").read_text())["threshold"]
    # Far enough from the model's to change some labels, and between two images' P (an image
    # exactly at the cut would be on either side of it once P is rounded for printing).
    k = next(k for k in range(len(probs) // 3, len(probs)) if probs[k] - probs[k - 1] > 2e-6)
    cut = round((probs[k - 1] + probs[k]) / 2, 6)
    assume = [p for p in probs if min(cut, own) <= p < max(cut, own)]
    assert assume, "the model's outputs give no image between the two thresholds"
    out = tmp_path / "exported"
    cli("export", external_run, "--out", out, "--threshold", str(cut))
    meta = json.loads((out / "model.json").read_text())
    assert meta["threshold"] == pytest.approx(cut)
    assert meta["threshold_method"] == "set by hand (calibrated scale)"
    cli("evaluate", out, "--data", external_small, "--out", tmp_path / "e")
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["threshold"] == pytest.approx(cut)
    rows = [r for r in predictions(out) if r["label"] in ("NORMAL", "PNEUMONIA")]
    assert rows and all((r["p_pneumonia"] >= cut) == (r["label"] == "PNEUMONIA") for r in rows)
    trained = json.loads((external_run / "model.json").read_text())
    # the network's sigmoid 0.5 (logit 0), moved to the calibrated scale
    a, b = trained["calibration"]["a"], trained["calibration"]["b"]
    assert trained["threshold_logit"] == 0 and trained["threshold"] == pytest.approx(
        1 / (1 + np.exp(-b))
    )
    assert a > 0 and 0 < trained["youden_threshold_val"] < 1
