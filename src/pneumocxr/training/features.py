"""Cached features for frozen backbones.

While the stages before the first trainable one are frozen (and in eval mode), their output
for a given input never changes, so it is computed once per input *view* and the trainable
stages train on the cache. With augmentation, `views` differently augmented copies of the
training set are cached and epoch e trains on view e mod `views`; validation (and the external
set, when there is one) has one un-augmented view. VGG16's head then trains in seconds per
epoch instead of running the 15 GFLOP convolutional base on every image of every epoch.

A run with a head phase and a fine-tuning phase computes the deeper cache once, at the
fine-tuning boundary, and derives the head's features from it through the (still frozen) stages
in between.
"""

from __future__ import annotations

import os

import lightning as L
import torch

from pneumocxr.data.datamodule import loader, make_augment
from pneumocxr.data.transforms import prepare_batch
from pneumocxr.networks.base import PneumoNet
from pneumocxr.networks.folding import folded


def _device() -> torch.device:
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # this DDP process's GPU


@torch.no_grad()
def run_frozen(
    model: PneumoNet,
    inputs: torch.Tensor,
    start: int,
    stop: int,
    augment=None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Stages [start, stop) in eval mode over `inputs` (uint8 images when start is 0).

    They run with each BatchNorm folded into its convolution (networks/folding.py, what
    prediction runs): the same features up to rounding (1e-4 on values up to 26) for 10-29%
    less time per image (docs/PERFORMANCE.md, 13)."""
    was_training, device = model.training, _device()
    model.eval().to(device)
    runner = folded(model).to(device)
    prep = model.preprocessing()
    chunks = []
    for first in range(0, len(inputs), batch_size):
        batch = inputs[first : first + batch_size].to(device)
        if start == 0:
            batch = prepare_batch(batch, prep, augment)
        chunks.append(runner.run_stages(batch, start, stop).contiguous().cpu())
    model.to("cpu").train(was_training)
    return torch.cat(chunks)


def feature_bytes(model: PneumoNet, stop: int, images: int) -> int:
    """Memory a cache of `images` feature maps at stage `stop` will take (float32)."""
    side = model.image_size
    probe = torch.zeros(1, 1, side, side, dtype=torch.uint8)
    return run_frozen(model, probe, 0, stop).numel() * 4 * images


class FeatureCache:
    """Frozen-stage outputs per stage boundary: `views` training views and one view each of the
    validation split and of the external set (if any)."""

    def __init__(self, model: PneumoNet, pixels, splits, augment, views: int, seed: int,
                 external: torch.Tensor | None = None):  # fmt: skip
        self.model, self.seed = model, seed
        self.train_pixels, self.val_pixels = pixels[splits["train"]], pixels[splits["val"]]
        self.external_pixels = external
        self.augment = make_augment(augment, model.image_size)
        self.views = views if self.augment is not None else 1
        self.store: dict[int, tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]] = {}

    def get(self, stage: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        if stage not in self.store:
            below = [s for s in self.store if s < stage]
            self.store[stage] = self._derive(max(below), stage) if below else self._compute(stage)
        return self.store[stage]

    def _compute(self, stage: int):
        views = []
        for view in range(self.views):
            with torch.random.fork_rng():  # leave the training RNG stream untouched
                torch.manual_seed(self.seed * 1000 + view)  # each view reproducible on its own
                views.append(run_frozen(self.model, self.train_pixels, 0, stage, self.augment))
        val = run_frozen(self.model, self.val_pixels, 0, stage)
        external = self.external_pixels
        return views, val, None if external is None else run_frozen(self.model, external, 0, stage)

    def _derive(self, base: int, stage: int):
        views, val, external = self.store[base]
        return (
            [run_frozen(self.model, v, base, stage) for v in views],
            run_frozen(self.model, val, base, stage),
            None if external is None else run_frozen(self.model, external, base, stage),
        )


class FeatureDataModule(L.LightningDataModule):
    """Train/val batches of cached features; one training view per epoch, in rotation; the
    external set's features as a second validation loader when given."""

    def __init__(
        self, train_views, val_features, labels, splits, batch_size: int = 32, seed: int = 42,
        external: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):  # fmt: skip
        super().__init__()
        self.train_views, self.val_features = train_views, val_features
        labels = labels.float()
        self.train_labels, self.val_labels = labels[splits["train"]], labels[splits["val"]]
        self.batch_size, self.seed, self.external = batch_size, seed, external

    def train_dataloader(self):
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        features = self.train_views[epoch % len(self.train_views)]
        return loader(features, self.train_labels, self.batch_size, self.seed, epoch)

    def val_dataloader(self):
        val = loader(self.val_features, self.val_labels, self.batch_size)
        if self.external is None:
            return val
        features, labels = self.external
        return [val, loader(features, labels.float(), self.batch_size)]

    def on_after_batch_transfer(self, batch, dataloader_idx):
        # The loader stacks feature maps in NCHW; the trainable stages' convolutions are 1.5x
        # faster on channels-last ones (EfficientNet-Lite0's fine-tuning step 420 -> 281 ms
        # per batch of 32; docs/PERFORMANCE.md, 13). A cheap copy: 1.2 MB per batch.
        features, labels = batch
        if features.ndim == 4:
            features = features.contiguous(memory_format=torch.channels_last)
        return features, labels
