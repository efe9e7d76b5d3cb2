"""The reference network: the packaged ImageNet EfficientNet-Lite0, whose stage features the
scope check reads for a network trained from scratch (SmallNet), whose own features describe
too little (docs/VALIDATION.md, "Out of scope")."""

from __future__ import annotations

import torch
from torch import nn

from pneumocxr.data.transforms import network_input
from pneumocxr.networks.features import forward_pooled
from pneumocxr.networks.folding import folded
from pneumocxr.networks.registry import build_model
from pneumocxr.scope.check import REFERENCE, ScopeCheck


def reference_features(check: ScopeCheck, unit: torch.Tensor) -> list[torch.Tensor]:
    """Pooled features of [0, 1] gray images (N x 1 x S x S) from the reference network."""
    network = reference_network(check.size, unit.device)
    prep = network.preprocessing()
    if unit.shape[-1] != check.size or unit.shape[-2] != check.size:
        size = (check.size, check.size)
        unit = nn.functional.interpolate(unit, size=size, mode="bilinear", antialias=True)
    return forward_pooled(network, network_input(unit, prep), check.stages)[1]


_REFERENCE: dict[tuple, nn.Module] = {}


def reference_network(size: int, device=None) -> nn.Module:
    """The packaged ImageNet EfficientNet-Lite0 (SHA-256 checked on loading), BatchNorm folded,
    one per size, device and process."""
    key = (size, str(torch.device("cpu") if device is None else device))
    if key not in _REFERENCE:
        with torch.inference_mode(False):  # built once, used inside and outside inference
            network = folded(build_model(REFERENCE, size, "default").eval())
            _REFERENCE[key] = network.to(key[1]) if key[1] != "cpu" else network
    return _REFERENCE[key]


def uses_own_features(model: nn.Module) -> bool:
    """A model that grew from ImageNet weights has features worth reading; one trained from
    scratch (SmallNet, --weights none) borrows the reference network's."""
    source = getattr(model, "pretrained_source", None)
    return bool(source) and getattr(model, "weights_source", "") != "random initialisation"
