"""`pneumocxr agreement` on many raters: wall time, time to the first line, peak memory.

    .venv/bin/python benchmarks/agreement_scale.py [--raters 300] [--images 100]
        [--limit 600] [--args "--all-pairs"] [--json benchmarks/results/agreement_scale.json]

The ratings are synthetic: each rater agrees with a hidden truth on 85% of the images (seed 0).
A command still running at `--limit` seconds is killed and reported as such. Run it with
PYTHONPATH pointing at another source tree to measure that code instead.
"""

from __future__ import annotations

import argparse
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import emit


def ratings_csv(path: Path, raters: int, images: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, images)
    agree = rng.random((images, raters)) < 0.85
    votes = np.where(agree, truth[:, None], 1 - truth[:, None])
    names = np.array(["NORMAL", "PNEUMONIA"])[votes]
    table = pd.DataFrame(names, columns=[f"rater{i:03d}" for i in range(raters)])
    table.insert(0, "image", [f"img{i:04d}.jpeg" for i in range(images)])
    table.to_csv(path, index=False)
    return path


def measure(command: list[str], limit: float) -> dict:
    """Wall seconds, seconds to the first byte on stdout or stderr, peak RSS, exit code."""
    start = time.perf_counter()
    first: list[float] = []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def read():
        for index, _ in enumerate(iter(lambda: process.stdout.read(1), b"")):
            if index == 0:
                first.append(time.perf_counter() - start)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        code = None
    reader.join(5)
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "first_output_s": round(first[0], 1) if first else None,
        "finished": code is not None,
        "returncode": code,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=300)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--limit", type=float, default=600)
    parser.add_argument("--args", default="", help="more options for the command")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        csv = ratings_csv(Path(folder) / "ratings.csv", options.raters, options.images)
        extra = shlex.split(options.args)
        command = [sys.executable, "-m", "pneumocxr.cli", "agreement", str(csv), *extra]
        result = {"raters": options.raters, "images": options.images, "options": extra,
                  "limit_s": options.limit, **measure(command, options.limit)}  # fmt: skip
    emit(result, options.json)


if __name__ == "__main__":
    main()
