"""Inter-rater reliability: Cohen's kappa per pair of raters and Fleiss' kappa for all.

Ratings come as a CSV with an image column and one column per rater (NORMAL/PNEUMONIA or
0/1). Intervals are 95% percentile bootstrap intervals over images.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from pneumocxr.errors import PneumoError
from pneumocxr.evaluation.metrics import percentile_interval
from pneumocxr.evaluation.ratings import read_ratings

__all__ = ["agreement", "agreement_text", "cohen", "fleiss", "read_ratings"]

log = logging.getLogger("pneumocxr")
# Cohen's kappa for every pair grows with the square of the raters (300 raters: 44,850 pairs,
# each with its bootstrap interval); above this many raters only Fleiss' kappa is computed
# unless every pair is asked for.
MAX_PAIRWISE_RATERS = 20
PROGRESS_EVERY_S = 5.0


def cohen(a: np.ndarray, b: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(a, b, labels=[0, 1]))


def fleiss(matrix: np.ndarray) -> float:
    """Fleiss' kappa of an images x raters matrix of 0/1 ratings."""
    table, _ = aggregate_raters(matrix.astype(int), n_cat=2)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(fleiss_kappa(table, method="fleiss"))


# Bootstrap replicates use these closed forms for two categories, vectorised over resamples:
# scikit-learn's and statsmodels' functions (used for the point estimates, which the tests
# compare with these) took about 6 s per rater pair for 1000 resamples.
def _cohen_binary(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cohen's kappa along the last axis of 0/1 arrays."""
    observed = (a == b).mean(axis=-1)
    pa, pb = a.mean(axis=-1), b.mean(axis=-1)
    chance = pa * pb + (1 - pa) * (1 - pb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (observed - chance) / (1 - chance)


def _fleiss_binary(matrix: np.ndarray) -> np.ndarray:
    """Fleiss' kappa of (..., images, raters) 0/1 arrays."""
    return _fleiss_counts(matrix.sum(axis=-1), matrix.shape[-1])


def _fleiss_counts(ones: np.ndarray, raters: int) -> np.ndarray:
    """Fleiss' kappa from the PNEUMONIA votes of each image (last axis: images)."""
    per_image = (ones**2 + (raters - ones) ** 2 - raters) / (raters * (raters - 1))
    share = ones.mean(axis=-1) / raters
    chance = share**2 + (1 - share) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return (per_image.mean(axis=-1) - chance) / (1 - chance)


def agreement(ratings: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
              all_pairs: bool = False) -> dict:  # fmt: skip
    """Cohen's kappa for every pair of raters (up to MAX_PAIRWISE_RATERS raters, or with
    `all_pairs`) and Fleiss' kappa for all, with 95% CIs."""
    raters = [c for c in ratings.columns if c != "image"]
    if len(raters) < 2:
        raise PneumoError("agreement needs at least two raters (columns besides the image)")
    rng = np.random.default_rng(seed)
    result = {
        "raters": raters,
        "cohen": [],
        "ci_method": f"95% percentile bootstrap over images, {n_boot} resamples",
    }
    pairs = list(itertools.combinations(range(len(raters)), 2))
    if len(raters) <= MAX_PAIRWISE_RATERS or all_pairs:
        result["cohen"] = _cohen_pairs(ratings[raters].to_numpy(), raters, pairs, rng, n_boot)
    else:
        result["cohen_left_out"] = len(pairs)
    complete = ratings[raters].dropna().to_numpy()
    if len(complete) >= 2:
        result["fleiss"] = _fleiss_with_interval(complete, rng, n_boot)
    return result


def _cohen_pairs(matrix: np.ndarray, raters: list[str], pairs, rng, n_boot: int) -> list[dict]:
    found, said = [], time.monotonic()
    rated = ~np.isnan(matrix)
    for done, (i, j) in enumerate(pairs, start=1):
        both = matrix[rated[:, i] & rated[:, j]][:, [i, j]]
        if len(both) < 2:
            raise PneumoError(
                f"raters {raters[i]!r} and {raters[j]!r} rated fewer than 2 images in common"
            )
        pick = rng.integers(0, len(both), (n_boot, len(both)))
        found.append(
            {
                "raters": [raters[i], raters[j]],
                "n": len(both),
                "kappa": cohen(both[:, 0], both[:, 1]),
                "kappa_ci": percentile_interval(_cohen_binary(both[pick, 0], both[pick, 1])),
                "percent_agreement": float((both[:, 0] == both[:, 1]).mean()),
            }
        )
        if time.monotonic() - said >= PROGRESS_EVERY_S and done < len(pairs):
            log.info("Cohen's kappa: %s of %s pairs of raters", f"{done:,}", f"{len(pairs):,}")
            said = time.monotonic()
    return found


def _fleiss_with_interval(complete: np.ndarray, rng, n_boot: int) -> dict:
    """Resampled through per-image counts: resampling the images x raters matrix itself took
    n_boot x images x raters floats (2.4 GB for 1000 images and 300 raters)."""
    pick = rng.integers(0, len(complete), (n_boot, len(complete)))
    ones = complete.sum(axis=1)
    return {
        "n": len(complete),
        "kappa": fleiss(complete),
        "kappa_ci": percentile_interval(_fleiss_counts(ones[pick], complete.shape[1])),
    }


def agreement_text(result: dict) -> str:
    lines = ["Cohen's kappa (pairs of raters)"]
    for pair in result["cohen"]:
        low, high = pair["kappa_ci"]
        lines.append(
            f"  {pair['raters'][0]} vs {pair['raters'][1]}: kappa {pair['kappa']:.3f} "
            f"(95% CI {low:.3f} to {high:.3f}), agreement {pair['percent_agreement']:.1%}, "
            f"n={pair['n']}"
        )
    if "cohen_left_out" in result:
        lines.append(
            f"  not computed for {len(result['raters'])} raters ({result['cohen_left_out']:,} "
            f"pairs; by default up to {MAX_PAIRWISE_RATERS} raters): --all-pairs computes them"
        )
    if "fleiss" in result:
        f = result["fleiss"]
        low, high = f["kappa_ci"]
        lines.append(
            f"Fleiss' kappa ({len(result['raters'])} raters): {f['kappa']:.3f} "
            f"(95% CI {low:.3f} to {high:.3f}), n={f['n']}"
        )
    return "\n".join(lines)
