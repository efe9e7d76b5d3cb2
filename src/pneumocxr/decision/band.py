"""The band of calibrated probabilities where the answer is UNCERTAIN (refer to a person), and
its fitting by the referral rule of docs/VALIDATION.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from pneumocxr.errors import PneumoError


@dataclass(frozen=True)
class Band:
    """UNCERTAIN when low <= p < high (calibrated); empty when low == high."""

    low: float
    high: float
    budget: float = 0.0
    fit_on: str = ""
    referred: float = 0.0  # share of the fitting set it referred
    rule: str = field(default="docs/VALIDATION.md, 'UNCERTAIN: the referral rule'")

    def bounds(self) -> list[float] | None:
        """[low, high] as the outputs show it; None for an empty band (it refers nothing)."""
        return [self.low, self.high] if self.low < self.high else None

    def contains(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        return (p >= self.low) & (p < self.high)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict | None, threshold: float) -> Band | None:
        if record is None:
            return None
        try:
            band = cls(**{k: record[k] for k in cls.__dataclass_fields__ if k in record})
            low, high = float(band.low), float(band.high)
        except (TypeError, ValueError):
            raise PneumoError("uncertain band") from None
        if not (0 <= low <= threshold <= high <= 1):
            raise PneumoError(f"uncertain band [{low}, {high}] around threshold {threshold}")
        return band


MISS_WEIGHT = 2  # a missed pneumonia counts twice a false alarm


def fit_band(probs, labels, threshold: float, budget: float = 0.08, fit_on: str = "") -> Band:
    """The referral rule of docs/VALIDATION.md on calibrated probabilities and labels."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    order = np.argsort(p, kind="stable")
    p, y = p[order], y[order]
    n, cut = len(p), int(np.searchsorted(p, threshold, side="left"))
    most = int(np.floor(budget * n))
    misses = np.concatenate([[0], np.cumsum(y)])  # pneumonia among the first i
    alarms = np.concatenate([[0], np.cumsum((1 - y)[::-1])])  # normals among the last k
    best = (MISS_WEIGHT * misses[cut] + alarms[n - cut], 0, cut, cut)
    for i in range(max(0, cut - most), cut + 1):  # answered NORMAL: the first i
        for j in range(cut, min(n, i + most) + 1):  # answered PNEUMONIA: from j on
            cost = MISS_WEIGHT * misses[i] + alarms[n - j]
            best = min(best, (cost, j - i, i, j))
    _, referred, i, j = best
    low = threshold if i == cut else _between(p, i)
    high = threshold if j == cut else _between(p, j)
    return Band(low, high, budget, fit_on, referred / max(n, 1))


def _between(p: np.ndarray, i: int) -> float:
    """Halfway between the sorted probabilities i - 1 and i (an edge of the band)."""
    if i <= 0:
        return float(p[0])
    if i >= len(p):
        return float(np.nextafter(p[-1], 2.0))
    return float((p[i - 1] + p[i]) / 2)
