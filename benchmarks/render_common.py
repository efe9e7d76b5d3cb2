"""Helpers every section of docs/BENCHMARKS.md uses: a result by name, the machine it ran on,
a confidence interval."""

from __future__ import annotations

import json
from pathlib import Path


def load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def machine_text(r: dict) -> str:
    m = r["machine"]
    return f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, measured {m['date']}"


def ci_text(metrics: dict, name: str) -> str:
    low, high = metrics[f"{name}_ci"]
    return f"{metrics[name]:.4f} (95% CI {low:.4f}-{high:.4f})"

