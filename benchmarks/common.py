"""What every benchmark job shares: where things are, the machine, saving a result, timing a
CLI command with its peak memory."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "chest_xray").resolve()
RESULTS = ROOT / "benchmarks" / "results"
PNEUMOCXR = [sys.executable, "-m", "pneumocxr.cli"]
EXTERNAL = (ROOT / ".." / "shared" / "data" / "external").resolve()


def machine() -> dict:
    """CPU, cores, threads, torch, Python, date and load average (`pneumocxr bench`'s)."""
    from pneumocxr.bench.suite import machine as bench_machine

    return bench_machine()


def emit(result: dict, path: Path | None) -> None:
    """A standalone benchmark's result: printed, and written to `path` (its --json) if given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")


def save(name: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), **result}
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


# Runs a command and prints its wall seconds and peak RSS (this wrapper's only child).
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"wall_s": time.perf_counter() - start, "returncode": done.returncode,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "stdout": done.stdout[-20000:], "stderr": done.stderr[-3000:]}))
"""


def measured(command: list[str]) -> dict:
    """Run `command`; its wall seconds, peak RSS (MB), output. Fails loudly if it failed."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, command)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(out.stdout)
    if result["returncode"]:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{result['stderr']}")
    return result


def timed_cli(args: str, out: Path) -> tuple[float, Path]:
    """Run a pneumocxr command; return (wall seconds, the run folder it printed)."""
    command = [*PNEUMOCXR, *shlex.split(args), "--data", str(DATA), "--out", str(out)]
    start = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.time() - start
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    folders = [
        x.split(":", 1)[1].strip()
        for x in result.stderr.splitlines() + result.stdout.splitlines()
        if x.startswith("run folder:")
    ]
    return wall, Path(folders[-1])


def run_summary(run: Path) -> dict:
    import pandas as pd

    history = pd.read_csv(run / "history.csv")
    meta = json.loads((run / "model.json").read_text())
    best = history.set_index("epoch").loc[meta["training"]["best_epoch"]]
    return {
        "epochs_run": int(len(history)),
        "best_epoch": int(best.name),
        "best_epoch_val": {
            k: float(best[f"val_{k}"]) for k in ("loss", "accuracy", "auc", "recall", "precision")
        },
        "final_epoch_val": {
            k: float(history.iloc[-1][f"val_{k}"]) for k in ("loss", "accuracy", "auc")
        },
        "exported_model_val": meta["training"]["validation"],
        "threshold": meta["threshold"],
        **({"mean_epoch_s": float(history["seconds"].mean())} if "seconds" in history else {}),
    }


def report(_args) -> None:
    from render import render  # benchmarks/render.py

    (ROOT / "docs" / "BENCHMARKS.md").write_text(render(RESULTS))
    print(f"wrote {ROOT / 'docs' / 'BENCHMARKS.md'}")
