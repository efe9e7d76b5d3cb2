"""Fitting a scope check on a run's training X-rays, and cutting it on its validation split:
seconds, not minutes (docs/VALIDATION.md, "Out of scope")."""

from __future__ import annotations

import math

import torch
from torch import nn

from pneumocxr.data.outliers import synthetic_outliers
from pneumocxr.errors import PneumoError
from pneumocxr.scope.check import CUT_QUANTILE, OWN, REFERENCE, REFERENCE_SIZE, ScopeCheck
from pneumocxr.scope.features import batch_features
from pneumocxr.scope.reference import reference_network, uses_own_features

MAX_TRAIN = 2000  # training X-rays the check is fitted on: more gained nothing measurable
SPREAD_QUANTILE = 0.99


def fit_scope(model: nn.Module, train_pixels: torch.Tensor, heldout_pixels: torch.Tensor,
              seed: int = 0, max_train: int = MAX_TRAIN) -> ScopeCheck:  # fmt: skip
    """Fit a scope check for `model` on its training X-rays (uint8, N x 1 x S x S) and set
    its cuts on held-out X-rays of the same run (its validation split). Seconds, not minutes:
    at most `max_train` training images and as many synthetic outliers made from others."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_pixels), generator=generator)
    fit = train_pixels[order[:max_train]]
    spare = train_pixels[order[max_train:]] if len(order) > max_train else fit
    outliers = synthetic_outliers(spare[: max(len(fit) // 3, 60)], seed)
    own = uses_own_features(model)
    stages = (model if own else reference_network(REFERENCE_SIZE)).feature_stages()
    shell = ScopeCheck([], OWN if own else REFERENCE, None if own else REFERENCE_SIZE, stages)
    train_features = batch_features(model, fit, shell)
    if not all(torch.isfinite(f).all() for f in train_features):
        raise PneumoError("the model's features hold NaN or infinite values; no scope check")
    check = ScopeCheck([f.shape[1] for f in train_features], shell.source, shell.size, stages)
    _fit_distances(check, train_features)
    heldout = batch_features(model, heldout_pixels, shell)
    _set_distance_cut(check, heldout)
    _fit_discriminant(check, train_features, batch_features(model, outliers, shell), heldout)
    return check


def _fit_distances(check: ScopeCheck, features: list[torch.Tensor]) -> None:
    """Per stage: standardise, then the Cholesky factor of the Ledoit-Wolf precision."""
    for k, f in enumerate(features):
        # A channel silent in training must not turn a faint activation into a huge distance.
        spread = f.std(0)
        mean, scale = f.mean(0), spread.clamp_min(1e-2 * float(spread.mean()) + 1e-6)
        getattr(check, f"mean_{k}").copy_(mean)
        getattr(check, f"scale_{k}").copy_(scale)
        precision = ledoit_wolf_precision(((f - mean) / scale).double())
        getattr(check, f"whiten_{k}").copy_(torch.linalg.cholesky(precision).float())


def ledoit_wolf_precision(z: torch.Tensor) -> torch.Tensor:
    """Inverse of the Ledoit-Wolf shrunk covariance of centred rows `z`.

    The shrinkage comes from scikit-learn; the covariance and its inverse are formed here:
    scikit-learn's LedoitWolf.fit spent 9.6 s on one 640-wide stage (its pseudo-inverse),
    this 0.6 s, with the same precision to 1e-12."""
    from sklearn.covariance import ledoit_wolf_shrinkage

    shrinkage = ledoit_wolf_shrinkage(z.numpy(), assume_centered=True)
    covariance = z.T @ z / len(z)
    target = torch.eye(len(covariance), dtype=z.dtype) * covariance.diagonal().mean()
    return torch.linalg.inv((1 - shrinkage) * covariance + shrinkage * target)


def _distances(check: ScopeCheck, features: list[torch.Tensor]) -> torch.Tensor:
    z = check.standardised(features)
    return torch.stack(
        [(zk @ getattr(check, f"whiten_{k}")).square().sum(1) for k, zk in enumerate(z)], 1
    )


def _set_distance_cut(check: ScopeCheck, heldout: list[torch.Tensor]) -> None:
    distances = _distances(check, heldout)
    median = distances.median(0).values
    spread = (torch.quantile(distances, SPREAD_QUANTILE, dim=0) - median).clamp_min(1e-6)
    check.distance_median.copy_(median)
    check.distance_spread.copy_(spread)
    combined = ((distances - median) / spread).mean(1)
    check.cuts[0] = max(tail_quantile(combined), 1e-3)


def _fit_discriminant(check, train: list[torch.Tensor], outliers: list[torch.Tensor],
                      heldout: list[torch.Tensor]) -> None:  # fmt: skip
    """Logistic regression, strongly regularised (C = 0.01: near misses without memorising
    the synthetic kinds), classes balanced."""
    from sklearn.linear_model import LogisticRegression

    inside = torch.cat(check.standardised(train), 1).numpy()
    outside = torch.cat(check.standardised(outliers), 1).numpy()
    x = torch.cat([torch.from_numpy(inside), torch.from_numpy(outside)]).numpy()
    y = [0] * len(inside) + [1] * len(outside)
    fitted = LogisticRegression(C=0.01, class_weight="balanced", max_iter=2000).fit(x, y)
    check.discriminant.copy_(torch.from_numpy(fitted.coef_[0]).float())
    check.cuts[1] = float(fitted.intercept_[0])
    scores = torch.cat(check.standardised(heldout), 1) @ check.discriminant + check.cuts[1]
    check.cuts[2] = scores.median()
    check.cuts[3] = max(tail_quantile(scores), float(check.cuts[2]) + 1e-3)


TAIL_FROM = 0.9  # the top tenth of held-out scores is modelled as an exponential tail


def tail_quantile(scores: torch.Tensor, q: float = CUT_QUANTILE) -> float:
    """The `q` quantile of held-out scores, never below an exponential tail's extrapolation:
    with 50 validation images the empirical 99.9th percentile is just their maximum, and one
    in-scope image in fifty would be refused."""
    scores = scores.double()
    empirical = float(torch.quantile(scores, q))
    start = float(torch.quantile(scores, TAIL_FROM))
    excess = scores[scores > start] - start
    if not len(excess):
        return empirical
    return max(empirical, start + float(excess.mean()) * math.log((1 - TAIL_FROM) / (1 - q)))
