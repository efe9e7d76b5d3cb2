"""splits.csv: which image went to which split (and its label and patient), as a run folder
and `pneumocxr split` write it; read back by `train --resume`, `evaluate --split` and
`export --splits-from`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pneumocxr.data.plots import distribution_figure
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import read_csv, save_figure, write_csv

SPLITS_NAME = "splits.csv"


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


def splits_source(model_dir: Path) -> Path:
    """splits.csv of a model's run: beside the model, or one folder up for `run` sub-runs."""
    for folder in (model_dir, model_dir.parent):
        if (folder / SPLITS_NAME).is_file():
            return folder / SPLITS_NAME
    raise PneumoError(f"no splits.csv in {model_dir} or its parent; use --data instead of --split")
