"""From a data folder to split, decoded, ready-to-train images."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from pneumocxr.data.decode import decode_all, unreadable_error
from pneumocxr.data.index import index_images, require_both_classes
from pneumocxr.data.labels import LabelsSpec, image_table
from pneumocxr.data.split import (
    SPLITS,
    make_splits,
    resolve_split,
    split_patient_ids,
)
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.regular import open_regular

log = logging.getLogger("pneumocxr")


@dataclass
class Dataset:
    """The split table and, row for row, the decoded images (uint8, N x 1 x size x size)."""

    table: pd.DataFrame
    pixels: torch.Tensor
    root: Path
    protocol: str = ""  # the split protocol used (data/split.py's PROTOCOLS)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor((self.table["label"] == "PNEUMONIA").values, dtype=torch.float32)

    def split_index(self) -> dict[str, torch.Tensor]:
        return {s: torch.from_numpy((self.table["split"] == s).values.nonzero()[0]) for s in SPLITS}


def subset_patients(table: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """About `limit` images, whole patients only, stratified by label (for quick runs)."""
    if limit >= len(table):
        return table
    keep, _ = split_patient_ids(table, seed, train_size=limit / len(table))
    return table[table["patient"].isin(set(keep))].reset_index(drop=True)


def drop_unreadable(table: pd.DataFrame, failures, strict: bool) -> pd.DataFrame:
    """Skip unreadable files with a warning listing them, or fail with --strict."""
    if not failures:
        return table
    if strict:
        raise unreadable_error(failures)
    log.warning("skipping %d unreadable file(s):", len(failures))
    for _, reason in failures:
        log.warning("  %s", reason)
    bad = {path for path, _ in failures}
    return table[~table["path"].isin(bad)].reset_index(drop=True)


def load_dataset(
    root,
    image_size: int,
    *,
    split: str = "auto",
    test_size: float = 0.2,
    val_size: float = 0.2,
    seed: int = 42,
    strict: bool = False,
    limit: int | None = None,
    splits: pd.DataFrame | None = None,
    labels: LabelsSpec | None = None,
) -> Dataset:
    """Index (or read `labels`), decode and split a data folder; `splits` reuses an existing
    split table."""
    root = Path(root).resolve()
    if splits is not None:
        table = splits.reset_index(drop=True)
    else:
        table = image_table(root, labels, strict)
        require_both_classes(table, labels.csv if labels else root)
        if split == "auto" and labels is not None and (table["source"] != "").any():
            split = "column"  # the CSV's own split, as a Kaggle test/ folder is used
        if limit:
            table = subset_patients(table, limit, seed)
    decoded = decode_all(table["path"], image_size)
    if decoded.failures:
        table = drop_unreadable(table, decoded.failures, strict)
    require_both_classes(table, root)
    if splits is None:
        protocol = resolve_split(split, table)
        table = make_splits(table, protocol, test_size, val_size, seed)
    _check_splits(table)
    return Dataset(table, decoded.pixels, root, protocol if splits is None else "as saved")


def _check_splits(table: pd.DataFrame) -> None:
    for name in ("train", "val"):
        part = table[table["split"] == name]
        if part["label"].nunique() < 2:
            raise PneumoError(
                f"the {name} split has {len(part)} image(s) and not both classes; "
                "use more data or a larger fraction"
            )


def load_external(
    root, image_size: int, training: pd.DataFrame | None = None, strict: bool = False
) -> Dataset:
    """An external validation set: every image under `root`, labelled by its class folder.

    It must share no file with `training` (by location or by content): an external set that
    overlaps the training pool measures nothing.
    """
    root = Path(root).resolve()
    table = index_images(root, strict)
    require_both_classes(table, root)
    if training is not None:
        _refuse_overlap(table, training, root)
    decoded = decode_all(table["path"], image_size)
    table = drop_unreadable(table, decoded.failures, strict).assign(split="external")
    require_both_classes(table, root)
    return Dataset(table, decoded.pixels, root)


def _refuse_overlap(external: pd.DataFrame, training: pd.DataFrame, root: Path) -> None:
    same = set(external["path"]) & set(training["path"])
    if not same:
        digests = {_digest(p) for p in external["path"]} - {None}
        same = {p for p in training["path"] if _digest(p) in digests}
    if same:
        raise PneumoError(
            f"the external set {root} shares {len(same)} image(s) with the training data "
            f"(e.g. {Path(sorted(same)[0]).name}); it must come from outside the training pool"
        )


def _digest(path) -> str | None:
    try:
        with open_regular(path) as handle:  # a named pipe is never read
            return hashlib.sha1(handle.read()).hexdigest()
    except OSError:
        return None
