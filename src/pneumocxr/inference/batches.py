"""A predictor over batches of uint8 images (B x 1 x S x S), in eval mode, without gradients:
logits, and scope scores when asked; what it gives is checked after every batch
(`predictors.checks`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from pneumocxr.data.transforms import to_unit
from pneumocxr.decision.calibration import sigmoid
from pneumocxr.errors import whole_number
from pneumocxr.predictors.base import Predictor
from pneumocxr.predictors.checks import checked_outputs
from pneumocxr.predictors.single import as_predictor


@torch.inference_mode()
def batch_logits(model: Predictor, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """One logit per image of uint8 batches, on the predictor's device (a bare network is
    taken as a predictor without a scope check)."""
    predictor = as_predictor(model).eval()
    device = predictor.device
    out = []
    for batch in batches:
        logits = predictor.logits(to_unit(batch.to(device)))
        out.append(checked_outputs(logits, None, len(batch))[0].float().cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


@torch.inference_mode()
def batch_outputs(model: Predictor, batches: Iterable[torch.Tensor]):
    """(logits, scope scores or None) for uint8 batches: one pass gives both; None when the
    predictor has no scope check."""
    predictor = as_predictor(model).eval()
    device = predictor.device
    logits, scopes = [], []
    for batch in batches:
        out, scope = checked_outputs(*predictor.outputs(to_unit(batch.to(device))), len(batch))
        logits.append(out.float().cpu())
        scopes.append(None if scope is None else scope.float().cpu())
    if not logits:
        return np.zeros(0), (np.zeros(0) if predictor.scoped else None)
    scope = None if any(s is None for s in scopes) else torch.cat(scopes).numpy()
    return torch.cat(logits).numpy().astype(np.float64), scope


def predict_logits(model: Predictor, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """One logit per cached uint8 image (N x 1 x S x S)."""
    starts = range(0, len(pixels), whole_number(batch_size, "batch_size"))
    return batch_logits(model, (pixels[start : start + batch_size] for start in starts))


def predict_pixels(model: Predictor, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """The network's own sigmoid for cached uint8 images (uncalibrated)."""
    return sigmoid(predict_logits(model, pixels, batch_size))
