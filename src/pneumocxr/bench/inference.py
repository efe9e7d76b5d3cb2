"""Inference figures through `predict`'s own path: files on disk, decoded and predicted by
`predict_paths` in a warm process."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.inference.predict import predict_paths


def batch_img_s(loaded: LoadedModel, paths: list[Path], batch: int) -> float:
    """Images/s of predicting `paths` (decoding included), after one warm-up batch."""
    predict_paths(loaded, paths[:batch], batch)
    start = time.perf_counter()
    predict_paths(loaded, paths, batch)
    return len(paths) / (time.perf_counter() - start)


def latency_ms(loaded: LoadedModel, paths: list[Path], repeats: int) -> dict[str, float]:
    """p50 and p99 milliseconds of predicting one image from its file, one call each."""
    predict_paths(loaded, paths[:1], 1)  # warm-up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        predict_paths(loaded, [paths[i % len(paths)]], 1)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}
