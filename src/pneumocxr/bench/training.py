"""Training throughput through the real training path.

Each figure runs Lightning's Trainer on the project's own pieces: `Classifier`
(training/module.py), `ImageDataModule` (the in-memory uint8 cache with batched augmentation,
data/datamodule.py) or `FeatureCache` + `FeatureDataModule` (training/features.py). A callback
times the batches after a warm-up; each interval runs from one batch's end to the next, so it
covers fetching, augmentation, forward, backward and the optimizer step.
"""

from __future__ import annotations

import logging
import time
import warnings

import lightning as L
import torch

from pneumocxr.bench.reference import train_flop_per_image
from pneumocxr.data.datamodule import ImageDataModule
from pneumocxr.networks.base import PneumoNet
from pneumocxr.training.features import FeatureCache, FeatureDataModule
from pneumocxr.training.module import Classifier


class BatchClock(L.Callback):
    """Seconds per training batch after the first `warmup` batches. Each interval runs from the
    end of one batch to the end of the next; `between` (if given) runs after each batch,
    outside the intervals."""

    def __init__(self, warmup: int, between=None):
        self.warmup, self.between = warmup, between
        self.intervals: list[float] = []
        self.resumed: float | None = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.resumed is not None:
            self.intervals.append(time.perf_counter() - self.resumed)
        if self.between is not None:
            with torch.enable_grad():
                self.between()
        self.resumed = time.perf_counter()

    def seconds_per_batch(self) -> float:
        timed = self.intervals[max(0, self.warmup - 1) :]
        return sum(timed) / len(timed)


def _fit(module: Classifier, datamodule, warmup: int, batches: int | None = None, between=None):
    """Train one epoch (or its first `batches` batches, then validate on one batch);
    (the batch clock, seconds of the whole fit)."""
    clock = BatchClock(warmup, between)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=batches,
        # ReduceLROnPlateau wants a validation loss at the end of the epoch.
        limit_val_batches=1 if batches else None,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, datamodule=datamodule)
    return clock, time.perf_counter() - start


def _splits(n_train: int, n_val: int) -> dict[str, torch.Tensor]:
    """The first `n_train` images train, the next `n_val` validate (at least one: the feature
    cache always computes a validation view)."""
    return {
        "train": torch.arange(n_train),
        "val": torch.arange(n_train, n_train + max(1, n_val)),
        "test": torch.arange(0),
    }


def _repeat(pixels: torch.Tensor, count: int) -> torch.Tensor:
    """`count` images from `pixels`, cycling through them."""
    return pixels[torch.arange(count) % len(pixels)]


def _labels(count: int) -> torch.Tensor:
    return (torch.arange(count) % 4 != 0).float()  # 3 PNEUMONIA : 1 NORMAL, as in the data


def image_training(
    model: PneumoNet, pixels, batch: int, steps: int, warmup: int, between=None
) -> dict:
    """Images/s of training every stage of `model` from augmented uint8 images (with
    `between` run after every batch, untimed)."""
    n_train = batch * (steps + warmup)
    images = _repeat(pixels, n_train + batch)
    data = ImageDataModule(
        images, _labels(len(images)), _splits(n_train, batch), model.preprocessing(), batch
    )
    module = Classifier(model, model.default_lr)
    clock, _ = _fit(module, data, warmup, steps + warmup, between)
    return {"img_s": batch / clock.seconds_per_batch(), "flop": _train_flop(module, 0, pixels)}


def _train_flop(module: Classifier, stage: int, inputs: torch.Tensor) -> float:
    """FLOP per image of the training step as it runs (forward and backward, counted)."""
    if stage == 0:
        from pneumocxr.data.transforms import prepare_batch

        inputs = prepare_batch(inputs[:2], module.model.preprocessing())
    elif inputs.ndim == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)  # as the loader's
    module.train()
    flop = train_flop_per_image(lambda x: module(x).sum(), inputs[:2])
    module.zero_grad(set_to_none=True)
    return flop


def cached_training(model: PneumoNet, pixels, stage: int, batch: int, steps: int, warmup: int):
    """Images/s of training stages `stage`.. on features cached from the frozen ones, and of
    filling the cache (one augmented view of the training images)."""
    model.freeze_before(stage)
    n_train = batch * (steps + warmup)
    images = _repeat(pixels, min(len(pixels), n_train) + 1)
    splits = _splits(len(images) - 1, 1)
    start = time.perf_counter()
    cache = FeatureCache(model, images, splits, augment=True, views=1, seed=0)
    (train,), _, _ = cache.get(stage)
    fill_s = time.perf_counter() - start
    features = _repeat(train, n_train + batch)
    labels = _labels(len(features))
    data = FeatureDataModule(
        [features[:n_train]],
        features[n_train:],
        labels,
        {"train": torch.arange(n_train), "val": torch.arange(n_train, len(features))},
        batch,
    )
    module = Classifier(model, model.default_lr, input_stage=stage)
    clock, _ = _fit(module, data, warmup, steps + warmup)
    return {
        "img_s": batch / clock.seconds_per_batch(),
        "cache_img_s": len(images) / fill_s,
        "flop": _train_flop(module, stage, features),
    }


def head_epoch_seconds(model: PneumoNet, pixels, batch: int, n_train: int, n_val: int) -> float:
    """Wall time of one whole head-only epoch on cached features (training and validation)
    at the full run's split sizes."""
    model.freeze_before(model.backbone_stages)
    splits = _splits(len(pixels) - 1, 1)
    cache = FeatureCache(model, pixels, splits, augment=True, views=1, seed=0)
    (train,), _, _ = cache.get(model.backbone_stages)
    features = _repeat(train, n_train + n_val)
    data = FeatureDataModule(
        [features[:n_train]],
        features[n_train:],
        _labels(len(features)),
        {"train": torch.arange(n_train), "val": torch.arange(n_train, len(features))},
        batch,
    )
    module = Classifier(model, model.default_lr, input_stage=model.backbone_stages)
    return _fit(module, data, warmup=0)[1]
