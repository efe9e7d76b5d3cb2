"""Inter-rater reliability: Cohen's kappa per pair of raters and Fleiss' kappa for all.

Ratings come as a CSV with an image column and one column per rater (NORMAL/PNEUMONIA or
0/1). Intervals are 95% percentile bootstrap intervals over images.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from pneumocxr.errors import PneumoError
from pneumocxr.evaluation.metrics import percentile_interval
from pneumocxr.fileio.formats import check_utf8_text

IMAGE_COLUMNS = ("image", "path", "file", "filename")
_CODES = {"normal": 0, "0": 0, "pneumonia": 1, "1": 1}


def read_ratings(path) -> tuple[pd.DataFrame, str]:
    """(ratings as 0/1 floats with NaN for blanks, name of the image column)."""
    check_utf8_text(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise PneumoError(f"ratings file not found: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise PneumoError(f"{path} is not a readable CSV: {err}") from None
    image_col = next((c for c in raw.columns if c.strip().lower() in IMAGE_COLUMNS), raw.columns[0])
    raters = [c for c in raw.columns if c != image_col]
    if not raters:
        raise PneumoError(f"{path} needs an image column and at least one rater column")
    ratings = pd.DataFrame({"image": raw[image_col]})
    for rater in raters:
        ratings[rater] = [_code(v, rater, i, path) for i, v in enumerate(raw[rater], start=2)]
    return ratings, image_col


def _code(value: str, rater: str, line: int, path) -> float:
    text = value.strip().lower()
    if text == "":
        return np.nan
    if text in _CODES:
        return float(_CODES[text])
    raise PneumoError(
        f"{path}, line {line}, rater {rater!r}: {value!r} is not NORMAL, PNEUMONIA, 0 or 1"
    )


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
    raters = matrix.shape[-1]
    ones = matrix.sum(axis=-1)
    per_image = (ones**2 + (raters - ones) ** 2 - raters) / (raters * (raters - 1))
    share = ones.mean(axis=-1) / raters
    chance = share**2 + (1 - share) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return (per_image.mean(axis=-1) - chance) / (1 - chance)


def agreement(ratings: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Cohen's kappa for every pair of raters and Fleiss' kappa for all, with 95% CIs."""
    raters = [c for c in ratings.columns if c != "image"]
    if len(raters) < 2:
        raise PneumoError("agreement needs at least two raters (columns besides the image)")
    rng = np.random.default_rng(seed)
    pairs = []
    for a, b in itertools.combinations(raters, 2):
        both = ratings[[a, b]].dropna().to_numpy()
        if len(both) < 2:
            raise PneumoError(f"raters {a!r} and {b!r} rated fewer than 2 images in common")
        pick = rng.integers(0, len(both), (n_boot, len(both)))
        pairs.append(
            {
                "raters": [a, b],
                "n": len(both),
                "kappa": cohen(both[:, 0], both[:, 1]),
                "kappa_ci": percentile_interval(_cohen_binary(both[pick, 0], both[pick, 1])),
                "percent_agreement": float((both[:, 0] == both[:, 1]).mean()),
            }
        )
    complete = ratings[raters].dropna().to_numpy()
    result = {
        "raters": raters,
        "cohen": pairs,
        "ci_method": f"95% percentile bootstrap over images, {n_boot} resamples",
    }
    if len(complete) >= 2:
        pick = rng.integers(0, len(complete), (n_boot, len(complete)))
        result["fleiss"] = {
            "n": len(complete),
            "kappa": fleiss(complete),
            "kappa_ci": percentile_interval(_fleiss_binary(complete[pick])),
        }
    return result


def agreement_text(result: dict) -> str:
    lines = ["Cohen's kappa (pairs of raters)"]
    for pair in result["cohen"]:
        low, high = pair["kappa_ci"]
        lines.append(
            f"  {pair['raters'][0]} vs {pair['raters'][1]}: kappa {pair['kappa']:.3f} "
            f"(95% CI {low:.3f} to {high:.3f}), agreement {pair['percent_agreement']:.1%}, "
            f"n={pair['n']}"
        )
    if "fleiss" in result:
        f = result["fleiss"]
        low, high = f["kappa_ci"]
        lines.append(
            f"Fleiss' kappa ({len(result['raters'])} raters): {f['kappa']:.3f} "
            f"(95% CI {low:.3f} to {high:.3f}), n={f['n']}"
        )
    return "\n".join(lines)
