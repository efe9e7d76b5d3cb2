"""Train / validation / test splits.

`patient` (default): whole patients go to one split, so no X-ray of a test patient was seen in
training; patients are stratified by their label, which keeps class balance within a few points.
`image`: the tutorial's protocol, `train_test_split(test_size=0.2, random_state=42)` on images,
then the same again on the training part for validation. It leaks patients across splits and
is kept to reproduce the tutorial's numbers.
`official`: the dataset's own protocol for a Kaggle-layout download (`train/`, `val/`, `test/`):
the test split is the `test` folder, validation is carved by patient from `train` together
with the 16-image `val` folder, and no patient crosses between train and validation. Results
are then comparable to the literature, which reports on the 624 images of `test`.
`column`: the split a labels CSV gives each image in its `split` column (train, val, test), as
it is (for a Kaggle-layout folder: its train/, val/ and test/ folders).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pneumocxr.data.index import class_counts
from pneumocxr.errors import PneumoError

log = logging.getLogger("pneumocxr")
SPLITS = ("train", "val", "test")
METHODS = ("patient", "image", "official", "column")
PROTOCOLS = {
    "official": "official (test = the test/ folder; validation carved by patient from train/)",
    "patient": "patient (all images pooled, split by patient)",
    "image": "image (the tutorial's: images split at random, patients may cross splits)",
    "column": "column (the split column of the labels CSV, as it is)",
}


def resolve_split(method: str, table: pd.DataFrame) -> str:
    """`auto`: the official protocol when the data has a Kaggle test/ folder, else patient."""
    if method != "auto":
        return method
    has_test = "source" in table and (table["source"] == "test").any()
    return "official" if has_test else "patient"


def make_splits(
    table: pd.DataFrame,
    method: str = "patient",
    test_size: float = 0.2,
    val_size: float = 0.2,
    seed: int = 42,
) -> pd.DataFrame:
    """Return a copy of `table` with a `split` column (train/val/test).

    `test_size` is a fraction of all data; `val_size` a fraction of what remains after the test
    split (the tutorial's "20% of train as validation").
    """
    for name, value in (("test fraction", test_size), ("validation fraction", val_size)):
        if not 0 < value < 1:
            raise PneumoError(f"{name} must be between 0 and 1, got {value}")
    method = resolve_split(method, table)
    if method not in METHODS:
        raise PneumoError(f"unknown split method {method!r}; choose from {', '.join(METHODS)}")
    table = table.reset_index(drop=True).copy()
    if method == "column":
        return _given_splits(table)
    splitter = _split_images if method == "image" else _split_patients
    if method == "official":
        rest, test = _official_test(table)
    else:
        rest, test = splitter(table, test_size, seed)
    train, val = splitter(table.loc[rest], val_size, seed)
    table["split"] = "train"
    table.loc[val, "split"] = "val"
    table.loc[test, "split"] = "test"
    return table


def _official_test(table: pd.DataFrame):
    """(rows of train/ and val/, rows of test/) of a Kaggle-layout folder."""
    source = table["source"] if "source" in table else pd.Series("", index=table.index)
    test = table.index[source == "test"]
    if test.empty:
        raise PneumoError(
            "--split official needs the Kaggle layout: a test/ folder (with NORMAL/ and "
            "PNEUMONIA/) beside train/ in the data folder; use --split patient otherwise"
        )
    return table.index[source != "test"], test


def _given_splits(table: pd.DataFrame) -> pd.DataFrame:
    """--split column: each image's `source` (a labels CSV's split column) is its split."""
    source = table["source"] if "source" in table else pd.Series("", index=table.index)
    missing = table.loc[~source.isin(SPLITS), "path"]
    if len(missing):
        raise PneumoError(
            f"--split column needs a split (train, val or test) for every image; "
            f"{len(missing)} have none, e.g. {missing.iloc[0]} (or give --split patient)"
        )
    empty = [s for s in SPLITS if not (source == s).any()]
    if empty:
        raise PneumoError(
            f"the split column names no {empty[0]} image; give train, val and test images, "
            "or use --split patient"
        )
    crossing = table.groupby("patient")["source"].nunique() > 1
    if crossing.any():
        log.warning(
            "%d patient(s) have images in two splits of the split column (e.g. %s): "
            "test figures may be optimistic",
            int(crossing.sum()),
            crossing[crossing].index[0],
        )
    return table.assign(split=source.to_numpy())


def _split_images(table: pd.DataFrame, size: float, seed: int):
    if len(table) < 3:
        raise PneumoError(f"too few images to split ({len(table)})")
    return train_test_split(table.index, test_size=size, random_state=seed)


def _split_patients(table: pd.DataFrame, size: float, seed: int):
    keep, held = split_patient_ids(table, seed, test_size=size)
    held_rows = table.index[table["patient"].isin(set(held))]
    keep_rows = table.index[table["patient"].isin(set(keep))]
    return keep_rows, held_rows


def split_patient_ids(table: pd.DataFrame, seed: int, **size):
    """(kept, held-out) patient ids; `size` is train_test_split's test_size or train_size.

    Stratified by each patient's label when every class has patients enough for both sides.
    """
    # A patient's label is its most frequent image label (in Kaggle data they never mix).
    labels = table.groupby("patient")["label"].agg(lambda s: s.value_counts().index[0])
    if len(labels) < 3:
        raise PneumoError(f"too few patients to split ({len(labels)})")
    # Plain object arrays: pandas' Arrow-backed strings cannot be indexed by scikit-learn.
    ids = np.asarray(labels.index, dtype=object)
    try:
        if labels.value_counts().min() >= 2:
            try:
                return train_test_split(
                    ids, random_state=seed, stratify=np.asarray(labels, dtype=object), **size
                )
            except ValueError:
                pass  # a side too small to hold every class: split without stratifying
        return train_test_split(ids, random_state=seed, **size)
    except ValueError as err:
        raise PneumoError(f"cannot split {len(ids)} patients that way: {err}") from None


def split_summary(table: pd.DataFrame) -> dict:
    """Counts per split and class, and the pneumonia share, for configs and reports."""
    summary = {}
    for split in SPLITS:
        part = table[table["split"] == split]
        summary[split] = {
            "images": int(len(part)),
            "patients": int(part["patient"].nunique()),
            **class_counts(part),
        }
    return summary
