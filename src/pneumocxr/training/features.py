"""Cached features for frozen backbones.

While the stages before the first trainable one are frozen (and in eval mode), their output
for a given input never changes, so it is computed once per input *view* and the trainable
stages train on the cache. With augmentation, `views` differently augmented copies of the
training set are cached and epoch e trains on view e mod `views`; validation has one
un-augmented view. VGG16's head then trains in seconds per epoch instead of running the 15 GFLOP
convolutional base on every image of every epoch.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from pneumocxr.data.datamodule import prepare_batch
from pneumocxr.data.transforms import Augment
from pneumocxr.models.base import PneumoNet


@torch.no_grad()
def frozen_features(
    model: PneumoNet, stop: int, pixels: torch.Tensor, augment=None, batch_size: int = 64
) -> torch.Tensor:
    """Output of stages [0, stop) for every image of `pixels` (uint8 N x 1 x H x W)."""
    was_training = model.training
    model.eval()
    prep = model.preprocessing()
    chunks = []
    for start in range(0, len(pixels), batch_size):
        batch = prepare_batch(pixels[start : start + batch_size], prep, augment)
        chunks.append(model.run_stages(batch, 0, stop).contiguous())
    model.train(was_training)
    return torch.cat(chunks)


def feature_bytes(model: PneumoNet, stop: int, images: int) -> int:
    """Memory a cache of `images` feature maps at stage `stop` will take (float32)."""
    side = model.image_size
    probe = torch.zeros(1, 3, side, side).contiguous(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        size = model.run_stages(probe, 0, stop).numel()
    model.train(was_training)
    return size * 4 * images


class FeatureDataModule(L.LightningDataModule):
    """Train/val batches of cached features; one training view per epoch, in rotation."""

    def __init__(
        self,
        model: PneumoNet,
        stop: int,
        pixels: torch.Tensor,
        labels: torch.Tensor,
        splits: dict[str, torch.Tensor],
        batch_size: int = 32,
        augment: bool = True,
        views: int = 4,
        seed: int = 42,
    ):
        super().__init__()
        self.batch_size, self.seed = batch_size, seed
        labels = labels.float()
        self.train_labels, self.val_labels = labels[splits["train"]], labels[splits["val"]]
        train_pixels = pixels[splits["train"]]
        augmenter = Augment() if augment else None
        self.train_views = []
        for view in range(views if augment else 1):
            with torch.random.fork_rng():  # leave the training RNG stream untouched
                torch.manual_seed(seed * 1000 + view)  # each view reproducible on its own
                self.train_views.append(frozen_features(model, stop, train_pixels, augmenter))
        self.val_features = frozen_features(model, stop, pixels[splits["val"]])
        # One generator for all epochs: the same shuffling sequence as ImageDataModule's.
        self.generator = torch.Generator().manual_seed(seed)

    def train_dataloader(self):
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        features = self.train_views[epoch % len(self.train_views)]
        dataset = TensorDataset(features, self.train_labels)
        return DataLoader(dataset, self.batch_size, shuffle=True, generator=self.generator)

    def val_dataloader(self):
        dataset = TensorDataset(self.val_features, self.val_labels)
        return DataLoader(dataset, self.batch_size, shuffle=False)
