"""The tutorial's augmentation: labels untouched, reproducible under a seed, within bounds."""

from __future__ import annotations

import lightning as L
import torch
from PIL import Image

from conftest import cli
from pneumocxr.data.augment import Augment
from pneumocxr.data.datamodule import ImageDataModule
from pneumocxr.data.dataset import load_dataset
from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.data.transforms import to_unit


def _batches(small_data, seed: int, augment: bool = True):
    L.seed_everything(seed, verbose=False)
    dataset = load_dataset(small_data, 64, seed=42)
    dm = ImageDataModule(dataset.pixels, dataset.labels, dataset.split_index(),
                         Preprocessing(64), batch_size=16, augment=augment, seed=seed)  # fmt: skip
    dm.trainer = type("T", (), {"training": True})()  # what Lightning sets while fitting
    batches = [dm.on_after_batch_transfer(b, 0) for b in dm.train_dataloader()]
    return dataset, batches


def test_augmentation_keeps_labels_and_is_reproducible(small_data):
    dataset, first = _batches(small_data, seed=3)
    _, again = _batches(small_data, seed=3)
    _, other = _batches(small_data, seed=4)
    _, plain = _batches(small_data, seed=3, augment=False)
    labels = torch.cat([y for _, y in first])
    assert sorted(labels.tolist()) == sorted(
        dataset.labels[dataset.split_index()["train"]].tolist()
    )
    for (x1, y1), (x2, y2), (x0, y0) in zip(first, again, plain):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert torch.equal(y1, y0)  # same order and labels with or without augmentation
        assert not torch.equal(x1, x0)  # but different pixels
    assert not torch.equal(first[0][0], other[0][0])


def test_augmentation_moves_pixels_only_a_little():
    image = torch.zeros(1, 1, 100, 100)
    image[:, :, 40:60, 40:60] = 1.0  # a bright square in the middle
    torch.manual_seed(0)
    moved = Augment()(image.repeat(64, 1, 1, 1))
    rows = torch.arange(100.0).view(1, 100, 1)
    centre_y = (moved[:, 0] * rows).sum((1, 2)) / moved[:, 0].sum((1, 2))
    assert (centre_y - 49.5).abs().max() <= 10.5  # shifts within 10% of 100 px
    assert (centre_y - 49.5).abs().max() > 2  # and it does shift
    assert moved.min() >= 0 and moved.max() <= 1


def test_validation_batches_are_not_augmented(small_data):
    dataset = load_dataset(small_data, 64)
    dm = ImageDataModule(dataset.pixels, dataset.labels, dataset.split_index(), Preprocessing(64))
    dm.trainer = type("T", (), {"training": False})()
    x, _ = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    first = dataset.pixels[dataset.split_index()["val"][0]]
    assert torch.allclose(x[0, 0], to_unit(first)[0])


def test_preview_command(small_data, tmp_path):
    cli("preview", "--data", small_data, "--out", tmp_path / "grid.png", "--image-size", 96)
    image = Image.open(tmp_path / "grid.png")
    assert image.width > 600 and image.height > 600
