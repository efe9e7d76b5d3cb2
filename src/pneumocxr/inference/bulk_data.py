"""One process's share of a bulk run: every `world`-th batch of the inputs (batch numbers count
runs of `batch_size` inputs, so every process and every resumed run cuts them alike), decoded
by threads one batch ahead of the model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pneumocxr.data.decode import load_image_noted
from pneumocxr.errors import PneumoError
from pneumocxr.inference.sources import InputSource


def rank_batches(source: InputSource, size: int, batch_size: int, rank: int = 0,
                 world: int = 1, done: int = 0) -> Iterator[dict]:  # fmt: skip
    """This process's batches after its first `done`, each decoded while the previous one is
    predicted: {"batch": number, "pixels", "names", "notes", "failures", "inputs"}."""
    mine = (
        (number, paths)
        for number, paths in source.batches(batch_size)
        if number % world == rank and number // world >= done
    )
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ahead = None
        for number, paths in mine:
            chunk = [paths[i::workers] for i in range(workers)]  # decoded in parallel
            job = (number, paths, [pool.submit(_decode_many, part, size) for part in chunk])
            if ahead is not None:
                yield _collect(*ahead, workers)
            ahead = job
        if ahead is not None:
            yield _collect(*ahead, workers)


def _decode_many(paths: list[str], size: int) -> list:
    out = []
    for path in paths:
        try:
            out.append((path, *load_image_noted(path, size)))
        except PneumoError as err:
            out.append((path, None, str(err)))
    return out


def _collect(number: int, paths: list[str], futures: list, workers: int) -> dict:
    parts = [f.result() for f in futures]
    ordered = [parts[i % workers][i // workers] for i in range(len(paths))]  # input order
    pixels = [image for _, image, _ in ordered if image is not None]
    size_hint = pixels[0].shape[0] if pixels else 1
    stacked = np.stack(pixels)[:, None] if pixels else np.zeros((0, 1, size_hint, size_hint),
                                                                  np.uint8)  # fmt: skip
    return {
        "batch": number,
        "pixels": torch.from_numpy(stacked),
        "names": [path for path, image, _ in ordered if image is not None],
        "notes": [note for _, image, note in ordered if image is not None],
        "failures": [(path, reason) for path, image, reason in ordered if image is None],
        "inputs": len(paths),
    }
