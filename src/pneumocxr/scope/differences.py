"""What sets a refused image apart from the training X-rays, where its pixels can tell.

The scope score says *that* an image is unlike the X-rays a model knows, not *how*. For an image
it refuses, a few cheap statistics of the pixels the model saw (the uint8 S x S input, borders
already trimmed) name what a user can change: a border too wide to trim, low contrast, a
brightness far off, noise, or too little fine detail (an image enlarged from a small one or
blurred). They only explain a refusal and never decide one. Their limits sit outside what the
5,216 X-rays of the shared training pool give at 224 pixels (`benchmarks/border_tolerance.py`
measures them); other models' training sets may range wider.
"""

from __future__ import annotations

import numpy as np

from pneumocxr.data.borders import inner_share

BLANK = 8  # gray levels between the 1st and 99th percentile: nothing to see
MOSTLY_BORDER = 0.5  # the share inside a uniform border below which it is "mostly border"
SPREAD_MIN = 120  # the training pool's narrowest spread (1st to 99th percentile) is 120
MEAN_RANGE = (60, 190)  # the training pool's mean gray levels lie within 67-183
NOISE_MAX = 3.0  # gray levels of noise (Immerkaer's estimate); the training pool's: at most 1.1
DETAIL_MIN = 0.0016  # that estimate over the spread; the training pool's: at least 0.0018


def what_differs(pixels: np.ndarray) -> str | None:
    """A short phrase for an H x W uint8 image that is unlike the training X-rays, or None."""
    values = pixels.astype(np.float32)
    low, high = np.percentile(values, (1, 99))
    spread = float(high - low)
    if spread < BLANK:
        return "nearly a single gray level"
    found = [_border(pixels), _contrast(spread), _brightness(float(values.mean()))]
    found.append(_grain(_noise(values), spread))
    return "; ".join(f for f in found if f) or None


def _border(pixels: np.ndarray) -> str | None:
    share = inner_share(pixels)
    if share >= MOSTLY_BORDER:
        return None
    return f"mostly a uniform border (the picture inside it is {share:.0%} of the image): crop it"


def _contrast(spread: float) -> str | None:
    if spread >= SPREAD_MIN:
        return None
    return f"low contrast (gray levels span {spread:.0f} of 255, the training X-rays {SPREAD_MIN}+)"


def _brightness(mean: float) -> str | None:
    low, high = MEAN_RANGE
    if low <= mean <= high:
        return None
    side = "darker" if mean < low else "brighter"
    return f"{side} than the training X-rays (mean gray level {mean:.0f}, theirs {low}-{high})"


def _grain(noise: float, spread: float) -> str | None:
    if noise > NOISE_MAX:
        return f"noisy (noise of about {noise:.0f} gray levels, the training X-rays about 1)"
    if noise / spread < DETAIL_MIN:
        return "little fine detail (blurred, or enlarged from a small or tightly cropped image)"
    return None


def _noise(values: np.ndarray) -> float:
    """Immerkaer's fast estimate of Gaussian noise (1996): the mean absolute response to the
    difference of two Laplacians, which flat regions and straight edges cancel."""
    rows = values[:, :-2] - 2 * values[:, 1:-1] + values[:, 2:]
    both = rows[:-2] - 2 * rows[1:-1] + rows[2:]
    return float(np.sqrt(np.pi / 2) / 6 * np.abs(both).mean())
