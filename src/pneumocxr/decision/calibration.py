"""Probabilities that are probabilities: the calibration of a network's logit.

A network's sigmoid output is a score: trained with balanced class weights on one hospital's
children, the shipped model said P = 0.80 for images it then called NORMAL. Calibration maps
the logit to a probability fitted on labelled images that nothing was trained on (the run's
validation split, or `--calibrate-on DIR`); the operating threshold and the UNCERTAIN band live
on that scale. Both are stored in model.json. The referral rule is in docs/VALIDATION.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pneumocxr.errors import PneumoError

METHODS = ("platt", "temperature", "isotonic", "none")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibration:
    """p = sigmoid(a * logit + b) (Platt; temperature scaling is b = 0, a = 1 / T), or a
    monotone step function of the logit (isotonic: `xs`, `ys`)."""

    method: str = "none"
    a: float = 1.0
    b: float = 0.0
    xs: tuple[float, ...] = ()
    ys: tuple[float, ...] = ()
    fit_on: str = ""
    n: int = 0

    def apply(self, logits) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(z, self.xs, self.ys)
        return sigmoid(self.a * z + self.b)

    def logit_for(self, p: float) -> float:
        """The network logit whose calibrated probability is `p` (a threshold moved between
        scales: calibration is monotone)."""
        if self.method == "isotonic":
            ys, xs = np.maximum.accumulate(np.asarray(self.ys)), np.asarray(self.xs)
            return float(np.interp(p, ys, xs))
        return float((logit(p) - self.b) / self.a)

    def to_json(self) -> dict:
        record = asdict(self)
        if self.method != "isotonic":
            del record["xs"], record["ys"]
        return record

    @classmethod
    def from_json(cls, record: dict | None) -> Calibration:
        if record is None:
            return cls()
        if not isinstance(record, dict) or record.get("method") not in METHODS:
            raise PneumoError("calibration record")
        values = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
        values["xs"] = tuple(values.get("xs", ()))
        values["ys"] = tuple(values.get("ys", ()))
        made = cls(**values)
        numbers = [made.a, made.b, *made.xs, *made.ys]
        if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in numbers) or made.a <= 0:
            raise PneumoError("calibration record")
        if made.method == "isotonic" and (len(made.xs) != len(made.ys) or len(made.xs) < 2):
            raise PneumoError("calibration record")
        return made


def fit_calibration(logits, labels, method: str = "platt", fit_on: str = "") -> Calibration:
    """Fit `method` on held-out logits and their labels (0/1)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if len(np.unique(y)) < 2:
        raise PneumoError(f"calibration needs both classes; {fit_on or 'the set'} has one")
    if method == "none":
        return Calibration(fit_on=fit_on, n=len(y))
    if method == "platt":
        a, b = _platt(z, y)
        if a <= 0:  # a model that ranks backwards: no monotone map repairs it
            raise PneumoError(f"the model ranks {fit_on or 'the set'} backwards; not calibrated")
        return Calibration("platt", a, b, fit_on=fit_on, n=len(y))
    if method == "temperature":
        from scipy.optimize import minimize_scalar

        def loss(log_t):
            p = np.clip(sigmoid(z / np.exp(log_t)), 1e-12, 1 - 1e-12)
            return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

        best = minimize_scalar(loss, bounds=(-5, 5), method="bounded")
        return Calibration("temperature", float(np.exp(-best.x)), 0.0, fit_on=fit_on, n=len(y))
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(z, y)
        xs, ys = fitted.X_thresholds_, fitted.y_thresholds_
        return Calibration("isotonic", xs=tuple(map(float, xs)), ys=tuple(map(float, ys)),
                           fit_on=fit_on, n=len(y))  # fmt: skip
    raise PneumoError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")


def calibration_error(labels, probs, bins: int = 10) -> float:
    """Expected calibration error: the mean |observed rate - mean P| over `bins` equal-width
    bins of P, weighted by how many images each holds."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if not len(p):
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return float(error)


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt (1999) with his targets (N+ + 1) / (N+ + 2) and 1 / (N- + 2): a validation set
    the model separates perfectly would otherwise push the slope to infinity."""
    from scipy.optimize import minimize

    positives, negatives = y.sum(), len(y) - y.sum()
    target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(params):
        a, b = params
        s = a * z + b
        # cross-entropy with soft targets, and its gradient, in a numerically stable form
        value = np.mean(np.logaddexp(0, s) - target * s)
        residual = sigmoid(s) - target
        return value, np.array([np.mean(residual * z), np.mean(residual)])

    prior = np.log((positives + 1) / (negatives + 1))
    fitted = minimize(loss, np.array([1.0, prior]), jac=True, method="L-BFGS-B")
    return float(fitted.x[0]), float(fitted.x[1])
