"""Peak memory of `Model.predict` on a long list of small arrays, and a digest of its answers
(equal digests: the same answers bit for bit).

    .venv/bin/python benchmarks/predict_memory.py [--count 5000] [--side 64]
        [--json benchmarks/results/predict_memory.json]

The arrays are synthetic (uint8 noise, seed 0), predicted by the shipped model with its defaults.
Run it with PYTHONPATH pointing at another source tree to measure that code instead: the work
happens in a fresh child process, so each figure is that process's own peak resident set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import emit

_CHILD = """
import hashlib, json, resource, sys, time
import numpy as np
from pneumocxr.api import load_model


count, side = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
arrays = [rng.integers(0, 256, (side, side), dtype=np.uint8) for _ in range(count)]
model = load_model("default")
model.predict(arrays[:32])  # a first full batch allocates what every later one reuses
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
found = model.predict(arrays)
wall = time.perf_counter() - start
digest = hashlib.sha256()
for answer in found:
    digest.update(f"{answer.label} {answer.p_pneumonia!r} {answer.scope_score!r}\\n".encode())
print(json.dumps({
    "images": count, "side": side, "wall_s": round(wall, 1),
    "peak_rss_before_mb": round(before),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    "answers_sha256": digest.hexdigest(),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # as the CLI runs
    done = subprocess.run([sys.executable, "-c", _CHILD, str(options.count), str(options.side)],
                          capture_output=True, text=True, check=True, env=env)  # fmt: skip
    result = json.loads(done.stdout.splitlines()[-1])
    result["pythonpath"] = os.environ.get("PYTHONPATH", "")
    emit(result, options.json)


if __name__ == "__main__":
    main()
