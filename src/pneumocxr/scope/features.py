"""The pooled stage features a scope check reads: the network's own, or the reference
network's (`check.source`), for [0, 1] gray images or batches of uint8 ones."""

from __future__ import annotations

import torch

from pneumocxr.data.transforms import network_input, to_unit
from pneumocxr.networks.base import PneumoNet, device_of
from pneumocxr.networks.features import forward_pooled
from pneumocxr.networks.folding import folded
from pneumocxr.scope.check import OWN, ScopeCheck
from pneumocxr.scope.reference import reference_features


def stage_features(network: PneumoNet, unit: torch.Tensor, check: ScopeCheck):
    """The pooled features `check` reads for [0, 1] gray images (N x 1 x S x S)."""
    if check.source == OWN:
        return forward_pooled(network, network_input(unit, network.preprocessing()),
                              check.stages)[1]  # fmt: skip
    return reference_features(check, unit)


@torch.inference_mode()
def batch_features(network: PneumoNet, pixels: torch.Tensor, check, batch_size: int = 64):
    """Pooled stage features of cached uint8 images, one tensor per stage, from the network
    `check.source` names (BatchNorm folded)."""
    network.eval()
    runner = folded(network)
    device = device_of(network)
    parts = []
    for start in range(0, len(pixels), batch_size):
        unit = to_unit(pixels[start : start + batch_size].to(device))
        parts.append([f.cpu() for f in stage_features(runner, unit, check)])
    return [torch.cat(stage) for stage in zip(*parts)]
