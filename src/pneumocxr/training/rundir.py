"""Run directories: the unit users share (config, splits, logs, curves, checkpoints, model)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from pneumocxr.data.plots import distribution_figure
from pneumocxr.errors import PneumoError
from pneumocxr.fileio import ensure_dir, read_csv, read_json, save_figure, write_csv, write_json

SPLITS_NAME = "splits.csv"
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


def write_splits(run_dir: Path, table: pd.DataFrame) -> None:
    columns = ["path", "label", "patient", "subtype", "source", "split"]
    write_csv(Path(run_dir) / SPLITS_NAME, table[[c for c in columns if c in table]])
    save_figure(distribution_figure(table), Path(run_dir) / "distribution.png")


def read_splits(path) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / SPLITS_NAME
    if not path.is_file():
        raise PneumoError(f"no {SPLITS_NAME} at {path}")
    try:
        table = read_csv(path, keep_default_na=False, dtype=str)
    except ValueError as err:  # empty, binary or ragged (pandas errors are ValueErrors)
        raise PneumoError(f"{path} is not a readable CSV file ({err})") from None
    missing = {"path", "label", "patient", "split"} - set(table.columns)
    if missing:
        raise PneumoError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
    return table


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
