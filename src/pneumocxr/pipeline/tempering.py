"""Fitting shift tempering (decision/shift.py) for `export --temper-on`: labelled images that
nothing was trained on, answered as they are and altered as `data.alterations.TEMPERING`
names, each file decoded as a user's file would be."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.data.alterations import TEMPERING
from pneumocxr.data.decode import DecodeStream, gray_from_array, read_gray, squash
from pneumocxr.data.index import index_images
from pneumocxr.data.split_file import read_splits
from pneumocxr.decision.band import Band
from pneumocxr.decision.calibration import Calibration
from pneumocxr.decision.shift import Scores, ShiftTempering, fit_tempering
from pneumocxr.errors import PneumoError
from pneumocxr.inference.answers import Settings
from pneumocxr.inference.predict import predict_stream

log = logging.getLogger("pneumocxr")


def tempering_images(source) -> tuple[pd.DataFrame, str]:
    """(path, label) of a labelled folder, or of a run's splits.csv without its train split
    (images a model learnt from say nothing of how sure it should be); and a name for them."""
    source = Path(source)
    if source.is_file() or (source / "splits.csv").is_file():
        try:
            table = read_splits(source)
        except PneumoError as err:
            message = f"--temper-on takes a labelled folder or a run's splits.csv: {err}"
            raise PneumoError(message) from None
        table = table[table["split"] != "train"][["path", "label"]].reset_index(drop=True)
        folder = source.parent if source.is_file() else source
        name = f"{folder.resolve().name}: splits other than train"
    else:
        table, name = index_images(source)[["path", "label"]], source.resolve().name
    table = table[table["label"].isin(["NORMAL", "PNEUMONIA"])].reset_index(drop=True)
    if table["label"].nunique() < 2:
        raise PneumoError(f"--temper-on needs NORMAL and PNEUMONIA images; {source} has not both")
    return table, f"{name} ({len(table)} images)"


def fit_tempering_on(loaded: LoadedModel, source, calibration: Calibration, threshold: float,
                     band: Band | None) -> ShiftTempering:  # fmt: skip
    """Shift tempering for `loaded` with the calibration, threshold and band it will ship."""
    if not loaded.has_scope:
        raise PneumoError("shift tempering works on the scope score: this model has no scope check")
    table, name = tempering_images(source)
    log.info("tempering: %d images, as they are and %d ways altered", len(table), len(TEMPERING))
    untouched, *altered = _scores(loaded, list(table["path"]), calibration)
    altered = dict(zip(TEMPERING, altered))
    truth = (table["label"] == "PNEUMONIA").to_numpy()
    fitted = fit_tempering(truth, untouched, altered, threshold, band, name)
    if not fitted.met:
        log.warning("no gamma up to %g kept altered images from confident wrong answers on %s",
                    fitted.gamma, name)  # fmt: skip
    return fitted


def _scores(loaded: LoadedModel, paths, calibration: Calibration) -> list[Scores]:
    """Calibrated P (untempered) and scope scores of the files as they are, then altered as
    each of TEMPERING: one stream, each file read once for all its versions."""
    size = loaded.preprocessing.image_size
    versions = [None, *TEMPERING.values()]
    items = [(path, version) for path in paths for version in range(len(versions))]

    @lru_cache(maxsize=64)  # the versions of a file follow each other: one read for them all
    def gray_of(path) -> np.ndarray:
        return np.asarray(read_gray(path))

    def decode(item, _size):
        path, version = item
        gray = gray_of(path)
        alteration = versions[version]
        return squash(gray_from_array(alteration(gray) if alteration else gray), size), None

    stream = DecodeStream(items, size, 32, decode=decode, stop_on_error=True)
    found = predict_stream(loaded, stream, Settings(0.5, None, True), [str(p) for p, _ in items])
    probs = calibration.apply([f.logit for f in found]).reshape(len(paths), len(versions))
    scopes = np.array([np.nan if f.scope_score is None else f.scope_score for f in found])
    scopes = scopes.reshape(len(paths), len(versions))
    return [Scores(probs[:, v], scopes[:, v]) for v in range(len(versions))]
