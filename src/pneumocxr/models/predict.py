"""Forward passes over cached uint8 images, shared by training, evaluation and the apps."""

from __future__ import annotations

import numpy as np
import torch

from pneumocxr.data.transforms import prepare_batch
from pneumocxr.models.base import PneumoNet


@torch.inference_mode()
def predict_logits(model: PneumoNet, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """One logit per cached uint8 image (N x 1 x S x S), in eval mode, on the model's device."""
    model.eval()
    prep = model.preprocessing()
    device = next(model.parameters()).device
    out = [
        model(prepare_batch(pixels[start : start + batch_size].to(device), prep))
        .squeeze(1)
        .float()
        .cpu()
        for start in range(0, len(pixels), batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def predict_pixels(model: PneumoNet, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """P(pneumonia) for cached uint8 images, exactly as `predict` computes it for files."""
    return 1.0 / (1.0 + np.exp(-predict_logits(model, pixels, batch_size)))
