"""The scope check: is an image like the chest X-rays the model was trained on?

A classifier labels whatever it is shown; a knee, a page of text or a grey square all get
NORMAL or PNEUMONIA. The scope check refuses them. It reads the model's own activations, pooled
per stage (the mean and standard deviation of each channel), from the same forward pass that
gives the logit, and scores them two ways, both fitted on the model's training X-rays only:

- Mahalanobis distance per stage (FRODO, Calli et al. 2019; Lee et al. 2018), each scaled by
  its spread on held-out X-rays and averaged: far from the training X-rays in any stage;
- a linear discriminant between the training X-rays and synthetic outliers made from them
  (negatives, rotations, corner crops, noise, flat images; `data.outliers`): the near misses
  that a distance reads as close (a negative X-ray has the statistics of an X-ray).

Each score is scaled so that 1 is its cut: the 99.9th percentile on held-out X-rays of the
model's own run (its validation split), extrapolated from its top tenth when there are too few
of them to read it off. `scope_score` is the larger of the two; above 1 the
image is out of scope. docs/VALIDATION.md ("Out of scope") gives the measurements behind each
choice.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pneumocxr.errors import PneumoError

PREFIX = "scope."  # the check's tensors, stored beside the model's in model.safetensors
CUT_QUANTILE = 0.999
# Whose features: the model's own when it grew from ImageNet weights; otherwise (SmallNet,
# anything trained from scratch) those of the packaged ImageNet EfficientNet-Lite0, at
# REFERENCE_SIZE pixels: a small network trained on a few hundred X-rays refused only three
# quarters of the outside images with its own features (docs/VALIDATION.md).
OWN = "own"
REFERENCE = "efficientnet-lite0"
REFERENCE_SIZE = 128
METHOD = (
    "max of (mean per-stage Mahalanobis distance, linear discriminant against synthetic "
    "outliers) on per-channel mean and SD of the model's stages; each 1 at the 99.9th "
    "percentile of held-out X-rays"
)


def pool(x: torch.Tensor) -> torch.Tensor:
    """A stage's output as one vector per image: channel means and SDs of a feature map."""
    if x.ndim == 4:
        # Average pooling reads a channels-last map in place: flattening it first copied every
        # activation, and mean and SD cost the model a third more time (measured: 26 ms ->
        # 3.4 ms for a 32 x 16 x 112 x 112 map). Two passes (mean, then the centred squares):
        # E[x^2] - E[x]^2 lost the SD of near-constant channels to rounding, enough for
        # ONNX Runtime and PyTorch to disagree on scope scores by 0.7%.
        x = x.float()
        n = x.shape[2] * x.shape[3]
        mean = nn.functional.adaptive_avg_pool2d(x, 1)
        squares = (x - mean).square_()
        variance = nn.functional.adaptive_avg_pool2d(squares, 1) * (n / max(n - 1, 1))
        return torch.cat([mean.flatten(1), variance.flatten(1).sqrt()], 1)
    return x.float().flatten(1)


def forward_pooled(model: nn.Module, x: torch.Tensor, stages=None):
    """(logits, pooled outputs of the stages numbered `stages`, by default
    `model.scope_stages()`), in one pass through the stages."""
    keep = set(model.scope_stages() if stages is None else stages)
    features = []
    for i, stage in enumerate(model.stages()):
        x = stage(x)
        if i in keep:
            features.append(pool(x))
    return x, features


class ScopeCheck(nn.Module):
    """Scores pooled stage features; every number it needs is a buffer (saved with the model).

    `source` says whose features: OWN (the model's stages) or REFERENCE (the packaged ImageNet
    EfficientNet-Lite0 at `size` pixels, loaded from its verified package file when needed)."""

    def __init__(self, dims: list[int], source: str = OWN, size: int | None = None,
                 stages: list[int] | None = None):  # fmt: skip
        super().__init__()
        self.dims, self.source, self.size = list(dims), source, size
        # which stages of the network it reads (recorded: a model keeps its own choice)
        self.stages = list(range(len(dims))) if stages is None else list(stages)
        total = sum(dims)
        for k, d in enumerate(dims):
            self.register_buffer(f"mean_{k}", torch.zeros(d))
            self.register_buffer(f"scale_{k}", torch.ones(d))
            self.register_buffer(f"whiten_{k}", torch.eye(d))  # Cholesky factor of the precision
        # Per stage: distances scaled as (d - median) / (q99 - median) on held-out X-rays.
        self.register_buffer("distance_median", torch.zeros(len(dims)))
        self.register_buffer("distance_spread", torch.ones(len(dims)))
        self.register_buffer("discriminant", torch.zeros(total))
        # [distance cut, discriminant bias, discriminant median, discriminant cut]
        self.register_buffer("cuts", torch.tensor([1.0, 0.0, 0.0, 1.0]))

    def standardised(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [
            (f.float() - getattr(self, f"mean_{k}").float()) / getattr(self, f"scale_{k}").float()
            for k, f in enumerate(features)
        ]

    def parts(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(distance score, discriminant score) per image, each 1 at its cut."""
        z = self.standardised(features)
        distances = torch.stack(
            [(zk @ getattr(self, f"whiten_{k}").float()).square().sum(1) for k, zk in enumerate(z)],
            1,
        )
        spread = (distances - self.distance_median.float()) / self.distance_spread.float()
        cuts = self.cuts.float()
        distance = spread.mean(1) / cuts[0]
        logit = torch.cat(z, 1) @ self.discriminant.float() + cuts[1]
        discriminant = (logit - cuts[2]) / (cuts[3] - cuts[2])
        return distance, discriminant

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        distance, discriminant = self.parts(features)
        return torch.maximum(distance, discriminant)


def reference_features(check: ScopeCheck, unit: torch.Tensor) -> list[torch.Tensor]:
    """Pooled features of [0, 1] gray images (N x 1 x S x S) from the reference network."""
    from pneumocxr.data.transforms import normalise

    network = reference_network(check.size)
    prep = network.preprocessing()
    if unit.shape[-1] != check.size or unit.shape[-2] != check.size:
        size = (check.size, check.size)
        unit = nn.functional.interpolate(unit, size=size, mode="bilinear", antialias=True)
    x = normalise(unit, prep.mean, prep.std, prep.channels)
    return forward_pooled(network, x.contiguous(memory_format=torch.channels_last), check.stages)[1]


_REFERENCE: dict[int, nn.Module] = {}


def reference_network(size: int) -> nn.Module:
    """The packaged ImageNet EfficientNet-Lite0 (SHA-256 checked on loading), BatchNorm folded,
    one per size and process."""
    if size not in _REFERENCE:
        from pneumocxr.models.predict import folded
        from pneumocxr.models.registry import build_model

        with torch.inference_mode(False):  # built once, used inside and outside inference
            _REFERENCE[size] = folded(build_model(REFERENCE, size, "default").eval())
    return _REFERENCE[size]


def uses_own_features(model: nn.Module) -> bool:
    """A model that grew from ImageNet weights has features worth reading; one trained from
    scratch (SmallNet, --weights none) borrows the reference network's."""
    source = getattr(model, "pretrained_source", None)
    return bool(source) and getattr(model, "weights_source", "") != "random initialisation"


# -- fitting --------------------------------------------------------------------------------
MAX_TRAIN = 2000  # training X-rays the check is fitted on: more gained nothing measurable
SPREAD_QUANTILE = 0.99


def fit_scope(model: nn.Module, train_pixels: torch.Tensor, heldout_pixels: torch.Tensor,
              seed: int = 0, max_train: int = MAX_TRAIN) -> ScopeCheck:  # fmt: skip
    """Fit a scope check for `model` on its training X-rays (uint8, N x 1 x S x S) and set
    its cuts on held-out X-rays of the same run (its validation split). Seconds, not minutes:
    at most `max_train` training images and as many synthetic outliers made from others."""
    from pneumocxr.data.outliers import synthetic_outliers
    from pneumocxr.models.predict import batch_features

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_pixels), generator=generator)
    fit = train_pixels[order[:max_train]]
    spare = train_pixels[order[max_train:]] if len(order) > max_train else fit
    outliers = synthetic_outliers(spare[: max(len(fit) // 3, 60)], seed)
    own = uses_own_features(model)
    stages = (model if own else reference_network(REFERENCE_SIZE)).scope_stages()
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
