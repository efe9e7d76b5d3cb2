"""Real training runs on small subsets of the shared X-rays."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from conftest import cli, train_quick
from pneumocxr.artifact.load import load_model
from pneumocxr.data.dataset import load_dataset
from pneumocxr.inference.batches import predict_pixels
from pneumocxr.inference.predict import predict_paths
from pneumocxr.training.config import TrainConfig
from pneumocxr.training.fit import train

RUN_FILES = [
    "config.json",
    "splits.csv",
    "distribution.png",
    "summary.txt",
    "history.csv",
    "history.png",
    "model.safetensors",
    "model.json",
    "state.json",
]


def test_training_run_writes_every_file_and_a_faithful_export(small_data, tmp_path):
    cfg = TrainConfig(
        data=str(small_data), out=str(tmp_path), epochs=2, image_size=64, batch_size=16
    )
    result = train(cfg)
    run = result.run_dir
    assert run.name.startswith("smallnet-")
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert any((run / "tb").rglob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "train-best.ckpt").is_file()
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    for column in (
        "train_loss",
        "val_loss",
        "val_accuracy",
        "val_recall",
        "val_precision",
        "val_auc",
        "train_auc",
        "lr",
    ):
        assert history[column].notna().all(), column
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 2 and config["pneumocxr_version"] and config["lr"] == 1e-4
    meta = json.loads((run / "model.json").read_text())
    assert meta["architecture"] == "smallnet"
    assert meta["preprocessing"]["image_size"] == 64
    assert meta["class_names"] == ["NORMAL", "PNEUMONIA"]
    assert 0 <= meta["threshold"] <= 1
    assert meta["training"]["images"]["train"]["images"] > 0

    loaded = load_model(run)
    splits = pd.read_csv(run / "splits.csv")
    test_paths = splits.loc[splits["split"] == "test", "path"].tolist()
    from_files, _ = predict_paths(loaded, test_paths)
    dataset = load_dataset(small_data, 64, splits=splits)
    test_index = dataset.split_index()["test"]
    in_memory = predict_pixels(result.model, dataset.pixels[test_index])
    assert np.allclose(from_files["p_raw"].to_numpy(), in_memory, atol=1e-6)
    calibrated = loaded.calibration.apply(from_files["logit"].to_numpy())
    assert np.allclose(from_files["p_pneumonia"].to_numpy(), calibrated, atol=1e-9)


def test_resume_continues_from_the_saved_epoch(small_data, tmp_path):
    run = train_quick(small_data, tmp_path, "smallnet", "--epochs", 1)
    before = pd.read_csv(run / "history.csv")
    assert before["epoch"].tolist() == [1]
    result = cli("train", "--resume", run / "checkpoints" / "train-last.ckpt", "--epochs", 3)
    assert "resuming phase train" in result.stderr
    after = pd.read_csv(run / "history.csv")
    assert after["epoch"].tolist() == [1, 2, 3]
    assert after.loc[0, "train_loss"] == before.loc[0, "train_loss"]  # epoch 1 was not redone
    ckpt = torch.load(run / "checkpoints" / "train-last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 2  # zero-based: three epochs done


def test_balanced_class_weights(small_data, tmp_path):
    from pneumocxr.training.loop import class_weights_of as _class_weights

    dataset = load_dataset(small_data, 32, limit=None)
    weights = _class_weights(dataset, "balanced")
    train_labels = dataset.labels[dataset.split_index()["train"]]
    n, pos = len(train_labels), float(train_labels.sum())
    assert weights == pytest.approx((n / (2 * (n - pos)), n / (2 * pos)))
    assert _class_weights(dataset, "none") == (1.0, 1.0)


def _head_after_training(data, out, cache: bool, model: str, weights: str = "default"):
    cfg = TrainConfig(
        data=str(data),
        out=str(out),
        model=model,
        epochs=2,
        image_size=32 if model == "vgg16" else 64,  # VGG16's cost: a quarter of the pixels
        batch_size=16,
        augment=False,
        feature_cache=cache,
        unfreeze="0",
        weights=weights,
    )
    result = train(cfg)
    return {k: v.clone() for k, v in result.model.head.state_dict().items()}


@pytest.mark.parametrize(
    ("model", "weights"), [("efficientnet-lite0", "default"), ("vgg16", "none")]
)
def test_cached_and_uncached_head_training_agree(small_data, tmp_path, model, weights):
    cached = _head_after_training(small_data, tmp_path / "a", True, model, weights)
    uncached = _head_after_training(small_data, tmp_path / "b", False, model, weights)
    for key in cached:
        assert torch.allclose(cached[key], uncached[key], atol=1e-4, rtol=1e-3), key


def test_transfer_run_fine_tunes_after_the_head(effnet_run):
    history = pd.read_csv(effnet_run / "history.csv")
    assert history["phase"].tolist() == ["head", "finetune", "finetune"]
    assert history["epoch"].tolist() == [1, 2, 3]
    meta = json.loads((effnet_run / "model.json").read_text())
    assert meta["weights"]["base"]["file"] == "efficientnet-lite0-57934424.pth"
    # only what training changed is stored; the frozen ImageNet stages come from the package
    stored = load_file(effnet_run / "model.safetensors")
    network = sum(t.nbytes for k, t in stored.items() if not k.startswith("scope."))
    assert network < 8_000_000 and any(k.startswith("scope.") for k in stored)
    loaded = load_model(effnet_run)
    assert loaded.predictor.network.training is False


def test_the_exported_epoch_is_the_best_of_the_last_phase():
    import pandas as pd

    from pneumocxr.training.history import exported_epoch

    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4, 5],
            "phase": ["head", "head", "finetune", "finetune", "finetune"],
            "val_loss": [0.30, 0.10, 0.25, 0.20, 0.22],  # head epoch 2 is lower overall
        }
    )
    assert exported_epoch(history) == 4
    assert exported_epoch(history.iloc[:0]) is None


def test_feature_cache_runs_folded_and_trains_channels_last():
    """The frozen stages fill the cache with BatchNorm folded (what prediction runs), and the
    cached feature maps reach the trainable stages channels-last, as images do."""
    from pneumocxr.data.transforms import prepare_batch
    from pneumocxr.networks.folding import folded
    from pneumocxr.networks.registry import build_model
    from pneumocxr.training.features import FeatureDataModule, run_frozen

    torch.manual_seed(0)
    model, stop = build_model("efficientnet-lite0", 32), 5
    model.freeze_before(stop)
    pixels = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    features = run_frozen(model, pixels, 0, stop)
    x = prepare_batch(pixels, model.preprocessing())
    with torch.no_grad():
        assert torch.equal(features, folded(model).run_stages(x, 0, stop).contiguous())
        unfolded = model.eval().run_stages(x, 0, stop)
    assert not torch.equal(features, unfolded) and torch.allclose(features, unfolded, atol=1e-3)
    splits = {"train": torch.arange(6), "val": torch.arange(6, 8)}
    data = FeatureDataModule([features[:6]], features[6:], torch.ones(8), splits, batch_size=3)
    for loader in (data.train_dataloader(), data.val_dataloader()):
        batch = data.on_after_batch_transfer(next(iter(loader)), 0)  # Lightning's hook
        assert batch[0].is_contiguous(memory_format=torch.channels_last)
        assert not batch[0].is_contiguous()  # the loader's own stack is NCHW


def test_phases_give_memory_back_and_bound_it_batch_by_batch(tmp_path, monkeypatch):
    """Freed memory goes back to the kernel before the phases, at each phase's start and after
    the last (`_malloc.release_memory`), and the heap's growth is checked after every training
    batch and validation (`_malloc.release_if_grown`, docs/PERFORMANCE.md)."""
    from pneumocxr.data.dataset import Dataset
    from pneumocxr.networks.smallnet import SmallNet
    from pneumocxr.training import loop, memory
    from pneumocxr.training.phases import Phase

    calls = []
    monkeypatch.setattr(loop, "release_memory", lambda: calls.append("release"))
    monkeypatch.setattr(memory, "release_if_grown", lambda limit: calls.append("check") or False)
    splits = ["train"] * 12 + ["val"] * 4
    table = pd.DataFrame({"label": ["NORMAL", "PNEUMONIA"] * 8, "split": splits})
    pixels = torch.randint(0, 256, (16, 1, 24, 24), dtype=torch.uint8)
    dataset = Dataset(table, pixels, tmp_path)
    cfg = TrainConfig(data=str(tmp_path), batch_size=4, image_size=24, epochs=1).resolved()
    phase = Phase("train", 0, 1, 1e-4)
    loop.fit_phases(cfg, SmallNet(24), dataset, tmp_path, [phase], {"phases": {}}, 0, None, None)
    # before the phases, the phase's start, 3 training batches, 1 validation, after the phases
    assert calls == ["release", "release", "check", "check", "check", "check", "release"]
