"""BatchNorm folded into the convolution before it: the same function up to rounding, without
BatchNorm's pass over every activation (a quarter of EfficientNet-Lite0's inference time,
docs/PERFORMANCE.md)."""

from __future__ import annotations

import weakref
from copy import deepcopy as copy_module

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from pneumocxr.networks.base import PneumoNet

_FOLDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def folded(model: PneumoNet) -> PneumoNet:
    """An eval-mode copy with each BatchNorm folded into the convolution before it (the
    network itself when it has none). Kept per network until a parameter or buffer changes
    (PyTorch counts in-place changes in `_version`) or the network moves to another device."""
    pairs = model.conv_bn_pairs()
    if not pairs:
        return model
    tensors = [*model.parameters(), *model.buffers()]
    version = (tuple(t._version for t in tensors), tuple(str(t.device) for t in tensors[:1]))
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


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, module)
