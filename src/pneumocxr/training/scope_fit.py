"""The one path that fits a model's scope check on a run's training split (cut on its
validation split) and says so in the model card: `train` calls it at the end of a run,
`export --splits-from` for a model without one."""

from __future__ import annotations

import logging
import time

import torch

from pneumocxr.networks.base import PneumoNet
from pneumocxr.scope.check import ScopeCheck
from pneumocxr.scope.fit import MAX_TRAIN, fit_scope

log = logging.getLogger("pneumocxr")


def fit_scope_recorded(
    network: PneumoNet, train: torch.Tensor, val: torch.Tensor, seed: int = 0, run=None
) -> tuple[ScopeCheck, dict]:
    """(scope check, its model-card record) for `network` from decoded uint8 training and
    validation images (N x 1 x S x S); `run` names the run they come from."""
    fitted = min(len(train), MAX_TRAIN)
    log.info("fitting the scope check on %d training images", fitted)
    started = time.perf_counter()
    check = fit_scope(network, train, val, seed)
    seconds = time.perf_counter() - started
    log.info("scope check fitted in %.1f s (%s features)", seconds, check.source)
    of = f" of {run}" if run else ""
    record = {
        "fit_on": f"train split{of} ({fitted} of {len(train)} images) and synthetic outliers "
        "made from others",
        "cut_on": f"val split{of} ({len(val)} images)",
        "fit_seconds": round(seconds, 1),
    }
    return check, record
