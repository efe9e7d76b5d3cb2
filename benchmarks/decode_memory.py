"""Peak memory and time of decoding one upload that is small on disk and huge in memory: a PNG of
40 megapixels in 16-bit RGBA (311 kB), as the web app decodes it (`read_gray_bytes` at its
default `--max-megapixels 40`).

    .venv/bin/python benchmarks/decode_memory.py [--json benchmarks/results/decode_memory.json]

The decoding runs in a fresh child process; its peak resident set is reported above what it
held before decoding. Run it with PYTHONPATH pointing at another source tree to measure that
code instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import emit

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from corpus_hostile import rgba16_png
from pneumocxr.data.decode import read_gray_bytes
from pneumocxr.errors import PneumoError


data = rgba16_png(8000, 5000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
try:
    read_gray_bytes(data, 40_000_000)
    outcome = "decoded"
except PneumoError as err:
    outcome = f"refused: {err}"
print(json.dumps({
    "upload_bytes": len(data), "outcome": outcome,
    "seconds": round(time.perf_counter() - start, 2),
    "peak_rss_above_before_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                                      - before),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT / "tests")],
                          capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(done.stdout.splitlines()[-1])
    result["pythonpath"] = os.environ.get("PYTHONPATH", "")
    emit(result, options.json)


if __name__ == "__main__":
    main()
