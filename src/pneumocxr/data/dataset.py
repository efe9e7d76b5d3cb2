"""From a data folder to split, decoded, ready-to-train images."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from pneumocxr.data.decode import decode_all
from pneumocxr.data.index import index_images, require_both_classes
from pneumocxr.data.split import SPLITS, make_splits, split_patient_ids
from pneumocxr.errors import PneumoError

log = logging.getLogger("pneumocxr")


@dataclass
class Dataset:
    """The split table and, row for row, the decoded images (uint8, N x 1 x size x size)."""

    table: pd.DataFrame
    pixels: torch.Tensor
    root: Path

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
        path, reason = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise PneumoError(f"unreadable image: {reason}{more}")
    log.warning("skipping %d unreadable file(s):", len(failures))
    for _, reason in failures:
        log.warning("  %s", reason)
    bad = {path for path, _ in failures}
    return table[~table["path"].isin(bad)].reset_index(drop=True)


def load_dataset(
    root,
    image_size: int,
    *,
    split: str = "patient",
    test_size: float = 0.2,
    val_size: float = 0.2,
    seed: int = 42,
    strict: bool = False,
    limit: int | None = None,
    splits: pd.DataFrame | None = None,
) -> Dataset:
    """Index, decode and split a data folder; `splits` reuses an existing split table."""
    root = Path(root).resolve()
    if splits is not None:
        table = splits.reset_index(drop=True)
    else:
        table = index_images(root)
        require_both_classes(table, root)
        if limit:
            table = subset_patients(table, limit, seed)
    decoded = decode_all(table["path"], image_size)
    if decoded.failures:
        table = drop_unreadable(table, decoded.failures, strict)
    require_both_classes(table, root)
    if splits is None:
        table = make_splits(table, split, test_size, val_size, seed)
    _check_splits(table)
    return Dataset(table, decoded.pixels, root)


def _check_splits(table: pd.DataFrame) -> None:
    for name in ("train", "val"):
        part = table[table["split"] == name]
        if part["label"].nunique() < 2:
            raise PneumoError(
                f"the {name} split has {len(part)} image(s) and not both classes; "
                "use more data or a larger fraction"
            )
