"""What sets a refused image apart from the training X-rays, where its pixels can tell.

The scope score says *that* an image is unlike the X-rays a model knows, not *how*. For an image
it refuses, a few cheap statistics of the pixels the model saw (the uint8 S x S input, borders
already trimmed) name what a user can change: a border too wide to trim, low contrast, a
brightness far off, noise, or too little fine detail (an image enlarged from a small one or
blurred). They only explain a refusal and never decide one. Their limits sit at or outside the
extremes of the 5,216 X-rays of the shared training pool at 224 pixels, trimmed as models see
them (`benchmarks/border_tolerance.py` measures them); other training sets may range wider.
"""

from __future__ import annotations

import numpy as np

from pneumocxr.data.borders import inner_share

BLANK = 8  # gray levels between the 1st and 99th percentile: nothing to see
MOSTLY_BORDER = 0.5  # the share inside a uniform border below which it is "mostly border"
SPREAD_MIN = 85  # gray levels from the 1st to the 99th percentile; the training pool's: 85+
MEAN_RANGE = (60, 222)  # the training pool's mean gray levels lie within 61-222
NOISE_MAX = 3.0  # gray levels of noise (Immerkaer's estimate); the training pool's: 1.4 at most
DETAIL_MIN = 0.0015  # that estimate over the spread; the training pool's: 0.00155 or more


def what_differs(pixels: np.ndarray) -> str | None:
    """A short phrase for an H x W uint8 image that is unlike the training X-rays, or None.
    A border too wide to trim is named alone: the rest describes the border, not the X-ray."""
    share = inner_share(pixels)
    values = pixels.astype(np.float32)
    low, high = np.percentile(values, (1, 99))
    spread = float(high - low)
    if share == 0 or (spread < BLANK and share >= MOSTLY_BORDER):
        return "nearly a single gray level"
    if share < MOSTLY_BORDER:
        return f"mostly a uniform border (the picture inside is {share:.0%} of it): crop to it"
    found = [_contrast(spread), _brightness(float(values.mean())), _grain(_noise(values), spread)]
    return "; ".join(f for f in found if f) or None


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
        return f"noisy (noise of about {noise:.0f} gray levels, the training X-rays 1.4 at most)"
    if noise / spread < DETAIL_MIN:
        return "little fine detail (blurred, or enlarged from a small or tightly cropped image)"
    return None


def _noise(values: np.ndarray) -> float:
    """Immerkaer's fast estimate of Gaussian noise (1996): the mean absolute response to the
    difference of two Laplacians, which flat regions and straight edges cancel."""
    rows = values[:, :-2] - 2 * values[:, 1:-1] + values[:, 2:]
    both = rows[:-2] - 2 * rows[1:-1] + rows[2:]
    return float(np.sqrt(np.pi / 2) / 6 * np.abs(both).mean())


def refused_differences(pixels, scopes) -> dict[int, str]:
    """{index in the batch: what differs} for the images of a uint8 batch (B x 1 x S x S)
    whose scope score refuses them (above 1)."""
    return {int(i): what_differs(pixels[i, 0].cpu().numpy()) for i in np.flatnonzero(scopes > 1.0)}
