"""splits.csv: which image went to which split (and its label and patient), as a run folder
and `pneumocxr split` write it; read back by `train --resume`, `evaluate --split` and
`export --splits-from`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pneumocxr.data.plots import distribution_figure
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.folders import check_can_create
from pneumocxr.fileio.formats import read_csv, save_figure, write_csv
from pneumocxr.fileio.outputs import (
    check_output_files,
    check_outside,
    csv_header,
    made_by_pneumocxr_png,
)

SPLITS_NAME = "splits.csv"
SPLITS_COLUMNS = ["path", "label", "patient", "subtype", "source", "split"]
# What `pneumocxr split` writes, and how it knows a file there as its own.
SPLIT_OUTPUTS = {SPLITS_NAME: csv_header(SPLITS_COLUMNS), "distribution.png": made_by_pneumocxr_png}


def check_splits_out(out, data_root=None, overwrite: bool = False, inputs=()) -> None:
    """Before any work: `out` can be made, lies outside the data folder that is walked for
    images, and holds no splits.csv or distribution.png that pneumocxr did not write (unless
    `overwrite`) and no input (a labels CSV named splits.csv) in their place."""
    check_can_create(out)  # the folder itself is made when its files are written
    check_outside(out, [data_root])
    check_output_files(out, SPLIT_OUTPUTS, "--out", inputs, overwrite)


def write_splits(run_dir: Path, table: pd.DataFrame) -> None:
    columns = SPLITS_COLUMNS
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
