"""Batches for Lightning from the in-memory uint8 cache.

Augmentation and normalisation run per batch after the batch is on its device (Lightning's
`on_after_batch_transfer`), so they are vectorised and run on a GPU when there is one.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler, Subset, TensorDataset

from pneumocxr.data.augment import Augment
from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.data.transforms import prepare_batch


class EpochShuffle(Sampler):
    """A permutation that depends only on (seed, epoch), however often loaders are rebuilt.

    Lightning calls `set_epoch` at the start of every epoch. Image batches and cached-feature
    batches therefore come in the same order, and resuming a run repeats no epoch's order.
    """

    def __init__(self, size: int, seed: int, epoch: int = 0):
        self.size, self.seed, self.epoch = size, seed, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


def loader(features: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle_seed=None,
           epoch: int = 0, index: torch.Tensor | None = None) -> DataLoader:  # fmt: skip
    """Batches in memory; `shuffle_seed` shuffles with `EpochShuffle`. With `index`, the rows
    of `features` and `labels` it names, read in place: the batches of `features[index]`
    without its copy (the training and validation splits of the 224-px images are 160 + 41 MB
    that lived as long as their loaders; docs/PERFORMANCE.md, "Memory while training")."""
    dataset = TensorDataset(features, labels)
    if index is not None:
        dataset = Subset(dataset, index.tolist())
    sampler = None if shuffle_seed is None else EpochShuffle(len(dataset), shuffle_seed, epoch)
    # A private generator: the loader's worker seed must not draw from torch's global RNG.
    return DataLoader(dataset, batch_size, sampler=sampler, generator=torch.Generator())


def make_augment(augment, size: int):
    """An `Augment` from a policy name or the older on/off switch (None for no augmentation)."""
    if augment is True:
        augment = "tutorial"
    if augment in (False, None, "none"):
        return None
    return augment if isinstance(augment, Augment) else Augment(augment, size=size)


class ImageDataModule(L.LightningDataModule):
    """Train and validation batches of cached images; with `external` (pixels, labels), a second
    validation loader over an external set, evaluated every epoch beside the validation split."""

    def __init__(
        self,
        pixels: torch.Tensor,
        labels: torch.Tensor,
        splits: dict[str, torch.Tensor],
        prep: Preprocessing,
        batch_size: int = 32,
        augment="tutorial",
        seed: int = 42,
        external: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        super().__init__()
        self.pixels, self.labels, self.splits = pixels, labels.float(), splits
        self.prep, self.batch_size, self.seed = prep, batch_size, seed
        self.augment = make_augment(augment, prep.image_size)
        self.external = external

    def train_dataloader(self):
        index = self.splits["train"]
        return loader(self.pixels, self.labels, self.batch_size, self.seed, index=index)

    def val_dataloader(self):
        index = self.splits["val"]
        val = loader(self.pixels, self.labels, self.batch_size, index=index)
        if self.external is None:
            return val
        pixels, labels = self.external
        return [val, loader(pixels, labels.float(), self.batch_size)]

    def on_after_batch_transfer(self, batch, dataloader_idx):
        images, labels = batch
        training = self.trainer is not None and self.trainer.training
        augment = self.augment if training else None
        return prepare_batch(images, self.prep, augment), labels
