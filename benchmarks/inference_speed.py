"""Milliseconds per 224 px image for one model, in a fresh process (malloc settings are global).

python benchmarks/inference_speed.py efficientnet-lite0 1   # 1: with pneumocxr's malloc tuning
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch

from pneumocxr._malloc import tune_malloc
from pneumocxr.data.transforms import prepare_batch
from pneumocxr.networks.registry import build_model


def main(name: str, tuned: bool, batch: int = 32, repeats: int = 3) -> None:
    if tuned:
        tune_malloc()
    model = build_model(name, 224, weights="none").eval()
    pixels = torch.randint(0, 256, (batch, 1, 224, 224), dtype=torch.uint8)
    prep = model.preprocessing()
    times = []
    with torch.no_grad():
        model(prepare_batch(pixels, prep))  # warm-up
        before = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(repeats):
            start = time.perf_counter()
            model(prepare_batch(pixels, prep))
            times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        json.dumps(
            {
                "model": name,
                "malloc_tuned": tuned,
                "batch": batch,
                "threads": torch.get_num_threads(),
                "ms_per_image": min(times) / batch * 1000,
                "system_cpu_share": (after.ru_stime - before.ru_stime) / cpu if cpu else 0.0,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] == "1")
