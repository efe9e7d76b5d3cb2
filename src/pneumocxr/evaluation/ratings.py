"""The ratings CSV of `pneumocxr agreement`: an image column and one column per rater, each
cell NORMAL, PNEUMONIA, 0, 1 or blank. One row per image: repeated rows of an image are merged
when they agree and refused, naming the image and the rater, when they do not."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import check_utf8_text
from pneumocxr.fileio.regular import NotRegularFile, open_regular

log = logging.getLogger("pneumocxr")
IMAGE_COLUMNS = ("image", "path", "file", "filename")
CODES = {"normal": 0.0, "0": 0.0, "pneumonia": 1.0, "1": 1.0, "": np.nan}
SHOWN = {0.0: "NORMAL", 1.0: "PNEUMONIA"}


def read_ratings(path) -> tuple[pd.DataFrame, str]:
    """(ratings as 0/1 floats with NaN for blanks, one row per image, name of the image
    column)."""
    raw = _read(path)
    image_col = next((c for c in raw.columns if c.strip().lower() in IMAGE_COLUMNS), raw.columns[0])
    raters = [c for c in raw.columns if c != image_col]
    if not raters:
        raise PneumoError(f"{path} needs an image column and at least one rater column")
    # One frame built at once: a column at a time fragments it (pandas warns past 100 raters).
    codes = pd.DataFrame({rater: _codes(raw[rater], rater, path) for rater in raters})
    ratings = pd.concat([raw[image_col].str.strip().rename("image"), codes], axis=1)
    return _one_row_per_image(ratings, path), image_col


def _read(path) -> pd.DataFrame:
    check_utf8_text(path)
    try:
        with open_regular(path) as handle:  # a named pipe would never end
            return pd.read_csv(handle, dtype=str, keep_default_na=False)
    except NotRegularFile:
        raise
    except FileNotFoundError:
        raise PneumoError(f"ratings file not found: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise PneumoError(f"{path} is not a readable CSV: {err}") from None
    except OSError as err:
        raise PneumoError(f"cannot read {path} ({err.strerror or err})") from None


def _codes(cells: pd.Series, rater: str, path) -> pd.Series:
    text = cells.str.strip().str.lower()
    unknown = ~text.isin(list(CODES))
    if unknown.any():
        row = int(np.argmax(unknown.to_numpy()))
        raise PneumoError(
            f"{path}, line {row + 2}, rater {rater!r}: {cells.iloc[row]!r} is not NORMAL, "
            "PNEUMONIA, 0 or 1"
        )
    return text.map(CODES).astype(float)


def _one_row_per_image(ratings: pd.DataFrame, path) -> pd.DataFrame:
    """Rows of one image merged: a rater's ratings of it must agree (blanks aside)."""
    repeated = ratings["image"].duplicated(keep=False)
    if not repeated.any():
        return ratings
    rows = ratings[repeated]
    disagree = rows.groupby("image", sort=False).nunique() > 1  # nunique leaves out blanks
    if disagree.to_numpy().any():
        image = disagree.index[disagree.any(axis=1).to_numpy()][0]
        rater = disagree.columns[disagree.loc[image].to_numpy()][0]
        _refuse_conflict(rows[rows["image"] == image][rater], image, rater, path)
    merged = ratings.groupby("image", sort=False, as_index=False).first()  # first non-blank
    images = rows["image"].unique()
    log.warning("%d image(s) listed more than once in %s: their rows agree and count once "
                "(e.g. %s)", len(images), path, images[0])  # fmt: skip
    return merged


def _refuse_conflict(values: pd.Series, image: str, rater: str, path) -> None:
    first = values.dropna().drop_duplicates()
    lines = " and ".join(str(i + 2) for i in first.index[:2])
    said = " and ".join(SHOWN[v] for v in first[:2])
    raise PneumoError(
        f"{path}: rater {rater!r} rated image {image!r} both {said} (lines {lines}); give each "
        "image one rating per rater"
    )
