"""Copies of one file inside a data folder: Kaggle's archive holds the whole set twice
(`chest_xray/chest_xray/...`), and folders get copied. Each image must count once, and with
`--split image` it must never sit in two splits.

A copy is a file with the same name and the same bytes as another. Files with the same bytes
under different names are kept: Kaggle itself has a few such pairs within one patient.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from typing import TYPE_CHECKING

from pneumocxr.fileio.regular import open_regular

if TYPE_CHECKING:  # imported where a table is handled: `predict` needs no pandas
    import pandas as pd

log = logging.getLogger("pneumocxr")


def drop_copies(table: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per copied file (the shallowest path), with one warning for all of them;
    copies filed under different labels are all left out."""
    import pandas as pd

    table = table.drop_duplicates(["path", "label"])  # two links to one file, one label
    keys = pd.Series([_cheap_key(p) for p in table["path"]], index=table.index)
    suspects = keys[keys.duplicated(keep=False) & keys.notna()].index
    digests = pd.Series(None, index=table.index, dtype=object)
    digests[suspects] = [_digest(p) for p in table.loc[suspects, "path"]]
    group = keys.astype(str) + "/" + digests.astype(str)
    group[digests.isna()] = table.loc[digests.isna(), "path"]  # unique: its own group
    depth = table["path"].str.count("/")
    ordered = table.assign(_group=group, _depth=depth).sort_values(["_depth", "path"])
    conflicts = ordered.groupby("_group")["label"].transform("nunique") > 1
    kept = ordered[~conflicts].drop_duplicates("_group")
    _warn(ordered, kept, conflicts)
    return table.loc[sorted(kept.index)].reset_index(drop=True)


def _warn(ordered: pd.DataFrame, kept: pd.DataFrame, conflicts: pd.Series) -> None:
    copies = ordered[~conflicts & ~ordered.index.isin(kept.index)]
    if len(copies):
        first = copies.iloc[0]
        original = kept[kept["_group"] == first["_group"]]["path"].iloc[0]
        log.warning(
            "%d duplicate file(s) ignored (same name and content as another), e.g. %s "
            "(a copy of %s)",
            len(copies),
            first["path"],
            original,
        )
    if conflicts.any():
        bad = ordered[conflicts]
        log.warning(
            "%d file(s) left out: the same file is filed as both NORMAL and PNEUMONIA, e.g. %s",
            len(bad),
            bad["path"].iloc[0],
        )


def _cheap_key(path: str) -> str | None:
    """File name and size: only files sharing both are hashed."""
    try:
        info = os.stat(path)
    except OSError:
        return None  # unreadable: decoding reports it
    if not stat.S_ISREG(info.st_mode):
        return None  # a FIFO would block on reading: decoding refuses it
    return f"{os.path.basename(path)}:{info.st_size}"


def _digest(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open_regular(path) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()
