"""Run directories: the unit users share (config, splits, logs, curves, checkpoints, model)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.folders import ensure_dir
from pneumocxr.fileio.formats import read_json, write_json

CONFIG_NAME = "config.json"
STATE_NAME = "state.json"


def new_run_dir(out, prefix: str) -> Path:
    """Create RUNS/<prefix>-<YYYYmmdd-HHMMSS> (with -2, -3... if that exists already)."""
    out = ensure_dir(out)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = out / (f"{prefix}-{stamp}" if n == 1 else f"{prefix}-{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise PneumoError(f"cannot create a new run folder in {out}")


def read_config(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / CONFIG_NAME)


def read_state(run_dir: Path) -> dict:
    path = Path(run_dir) / STATE_NAME
    return read_json(path) if path.is_file() else {"phases": {}}


def write_state(run_dir: Path, state: dict) -> None:
    write_json(Path(run_dir) / STATE_NAME, state)


def find_run_dir(path) -> Path:
    """A run folder from itself or from a checkpoint inside its checkpoints/ folder."""
    path = Path(path)
    if path.is_file() and path.parent.name == "checkpoints":
        path = path.parent.parent
    if not (path / CONFIG_NAME).is_file():
        raise PneumoError(
            f"{path} is not a run folder or a checkpoint inside one (no {CONFIG_NAME})"
        )
    return path
