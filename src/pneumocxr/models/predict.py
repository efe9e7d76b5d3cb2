"""Forward passes over cached uint8 images, shared by training, evaluation and the apps."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from copy import deepcopy as copy_module

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from pneumocxr.data.transforms import prepare_batch, to_unit
from pneumocxr.models.base import PneumoNet


@torch.inference_mode()
def batch_logits(model: PneumoNet, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """One logit per image of uint8 batches (B x 1 x S x S each), in eval mode, on the model's
    device."""
    model.eval()
    prep, runner = model.preprocessing(), folded(model)
    device = model_device(model)
    out = [
        runner(prepare_batch(batch.to(device), prep)).squeeze(1).float().cpu() for batch in batches
    ]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def model_device(model: PneumoNet) -> torch.device:
    """Where the model's parameters are (the CPU for one without: an ONNX export)."""
    first = next(iter(model.parameters()), None)
    return torch.device("cpu") if first is None else first.device


_FOLDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def folded(model: PneumoNet) -> PneumoNet:
    """An eval-mode copy with each BatchNorm folded into the convolution before it.

    The same function up to rounding, without BatchNorm's pass over every activation (a quarter
    of EfficientNet-Lite0's inference time, docs/PERFORMANCE.md). Kept per model until a
    parameter or buffer changes (PyTorch counts in-place changes in `_version`).
    """
    pairs = model.conv_bn_pairs()
    if not pairs:
        return model
    version = tuple(t._version for t in [*model.parameters(), *model.buffers()])
    cached = _FOLDED.get(model)
    if cached is not None and cached[0] == version:
        return cached[1]
    copy = copy_module(model).eval()
    for conv_name, bn_name in pairs:
        conv, bn = copy.get_submodule(conv_name), copy.get_submodule(bn_name)
        _replace(copy, conv_name, fuse_conv_bn_eval(conv, bn))
        _replace(copy, bn_name, nn.Identity())
    copy.requires_grad_(False)
    _FOLDED[model] = (version, copy)
    return copy


@torch.inference_mode()
def batch_outputs(model: PneumoNet, batches: Iterable[torch.Tensor]):
    """(logits, scope scores or None) for uint8 batches: one pass gives both (models/scope.py);
    None when the model has no scope check."""
    model.eval()
    runner = folded(model)
    device = model_device(model)
    logits, scopes = [], []
    for batch in batches:
        out, scope = runner.logits_and_scope(to_unit(batch.to(device)))
        logits.append(out.squeeze(1).float().cpu())
        scopes.append(None if scope is None else scope.float().cpu())
    if not logits:
        return np.zeros(0), (np.zeros(0) if getattr(model, "scope", None) is not None else None)
    scope = None if any(s is None for s in scopes) else torch.cat(scopes).numpy()
    return torch.cat(logits).numpy().astype(np.float64), scope


@torch.inference_mode()
def batch_features(model: PneumoNet, pixels: torch.Tensor, check, batch_size: int = 64):
    """Pooled stage features (models/scope.py) of cached uint8 images, one tensor per stage,
    from the network `check.source` names."""
    model.eval()
    runner = folded(model)
    device = model_device(model)
    parts = []
    for start in range(0, len(pixels), batch_size):
        unit = to_unit(pixels[start : start + batch_size].to(device))
        parts.append([f.cpu() for f in runner.scope_features(unit, check)])
    return [torch.cat(stage) for stage in zip(*parts)]


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, module)


def predict_logits(model: PneumoNet, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """One logit per cached uint8 image (N x 1 x S x S), in eval mode, on the model's device."""
    starts = range(0, len(pixels), batch_size)
    return batch_logits(model, (pixels[start : start + batch_size] for start in starts))


def predict_pixels(model: PneumoNet, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """P(pneumonia) for cached uint8 images, exactly as `predict` computes it for files."""
    return sigmoid(predict_logits(model, pixels, batch_size))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))
