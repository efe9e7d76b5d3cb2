"""Forward passes over cached uint8 images, shared by training, evaluation and the apps."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from pneumocxr.data.transforms import prepare_batch
from pneumocxr.models.base import PneumoNet


@torch.inference_mode()
def batch_logits(model: PneumoNet, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """One logit per image of uint8 batches (B x 1 x S x S each), in eval mode."""
    model.eval()
    prep = model.preprocessing()
    out = [model(prepare_batch(batch, prep)).squeeze(1).float() for batch in batches]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def predict_logits(model: PneumoNet, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """One logit per cached uint8 image (N x 1 x S x S), in eval mode."""
    starts = range(0, len(pixels), batch_size)
    return batch_logits(model, (pixels[start : start + batch_size] for start in starts))


def predict_pixels(model: PneumoNet, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """P(pneumonia) for cached uint8 images, exactly as `predict` computes it for files."""
    return sigmoid(predict_logits(model, pixels, batch_size))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))
