"""What a predictor gives back is checked after every call, whatever the engine: one finite
logit per image (and a scope score per image that is a number), or one line saying what the
model gave instead.

A damaged or hostile model must not be answered for: an ONNX graph that returned 1 logit for
10 images got 1 answer and exit 0, and a NaN logit was printed as `NORMAL nan` (issue 22).
Weights whose products overflow give NaN in PyTorch just as well.
"""

from __future__ import annotations

import numpy as np
import torch

from pneumocxr.errors import PneumoError

DAMAGED = "the model is damaged or is no pneumocxr model; no answer was given"


def checked_outputs(logits, scopes, count: int):
    """(logits, scopes) as they are, if each is `count` long and they are numbers: finite
    logits, scope scores that are not NaN (infinitely unlike the training X-rays is out of
    scope, not an error)."""
    check_shape(logits, "logit", count)
    bad = int((~torch.isfinite(logits)).sum())
    if bad:
        raise PneumoError(
            f"the model gave {bad} NaN or infinite logit(s) for {count} image(s): {DAMAGED}"
        )
    if scopes is not None:
        check_shape(scopes, "scope score", count)
        if bool(torch.isnan(scopes).any()):
            raise PneumoError(f"the model gave NaN scope scores: {DAMAGED}")
    return logits, scopes


def check_shape(values, what: str, count: int) -> None:
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        kind = getattr(values, "dtype", type(values).__name__)
        raise PneumoError(f"the model gave {what}s of type {kind}, not numbers: {DAMAGED}")
    if tuple(values.shape) != (count,):
        raise PneumoError(
            f"the model gave {what}s of shape {tuple(values.shape)} for {count} image(s), not "
            f"one each: {DAMAGED}"
        )


def tensor_of(output, name: str) -> torch.Tensor:
    """An engine's raw output (ONNX Runtime gives numpy arrays, or lists and maps for other
    output types) as a float tensor, or one line saying what it was."""
    if not isinstance(output, np.ndarray) or output.dtype.kind != "f":
        kind = getattr(output, "dtype", type(output).__name__)
        raise PneumoError(f"the graph's output {name!r} is {kind}, not numbers: {DAMAGED}")
    return torch.from_numpy(np.ascontiguousarray(output, dtype=np.float32))
