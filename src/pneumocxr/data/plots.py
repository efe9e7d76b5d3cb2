"""The tutorial's data figures: class counts per split and a grid of augmented images."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import torch

from pneumocxr.data.augment import Augment
from pneumocxr.data.index import class_counts
from pneumocxr.data.split import SPLITS
from pneumocxr.task import CLASS_NAMES

CLASS_COLORS = {"NORMAL": "#4c78a8", "PNEUMONIA": "#e45756"}


def distribution_figure(table: pd.DataFrame):
    """Bar plot of images per class in each split."""
    splits = [s for s in SPLITS if (table["split"] == s).any()]
    fig, axes = plt.subplots(1, len(splits), figsize=(4 * len(splits), 3.6), squeeze=False)
    for ax, split in zip(axes[0], splits):
        values = list(class_counts(table[table["split"] == split]).values())
        bars = ax.bar(CLASS_NAMES, values, color=[CLASS_COLORS[c] for c in CLASS_NAMES])
        ax.bar_label(bars)
        ax.set_title(f"{split} ({sum(values)} images)")
        ax.set_ylabel("images")
        ax.margins(y=0.15)
    fig.suptitle("Images per class")
    fig.tight_layout()
    return fig


def augmentation_figure(pixels: torch.Tensor, labels, seed: int = 42, count: int = 16):
    """A 4x4 grid of augmented training images titled with their class."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        pick = torch.randperm(len(pixels))[:count]
        images = Augment()(pixels[pick])
    fig, axes = plt.subplots(4, 4, figsize=(9, 9.6))
    for ax, image, i in zip(axes.flat, images, pick.tolist()):
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(CLASS_NAMES[int(labels[i])], fontsize=10)
        ax.axis("off")
    for ax in list(axes.flat)[len(pick) :]:
        ax.axis("off")
    fig.suptitle("Augmented training images (rotation +/-5 deg, shifts +/-10%)")
    fig.tight_layout()
    return fig
