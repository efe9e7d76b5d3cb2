"""The labelled sets `export` and `ensemble` refit a model card on, scored by the model from
their files: the run's validation split, --external, --calibrate-on and --threshold-on, each
set scored once (one folder may be all three)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.data.index import index_images
from pneumocxr.data.split_file import read_splits, splits_source
from pneumocxr.errors import PneumoError
from pneumocxr.inference.predict import predict_paths
from pneumocxr.training.card import Card, Scored

INTERNAL = "val split of the model's run"


def card_sets(loaded: LoadedModel, card: Card) -> dict:
    """`training.card.model_card`'s keyword sets for `loaded` as `card` asks."""
    score = _Scores(loaded)
    val = run_split(loaded, "val", card.splits_from)
    internal = None if val is None else Scored(*score(val), INTERNAL)
    if card.calibrate_on is not None:
        labels, logits = score(card.calibrate_on)
        calibrate_on = Scored(labels, logits, f"{_name(card.calibrate_on)} ({len(labels)} images)")
    elif internal is not None:
        calibrate_on = Scored(internal.labels, internal.logits,
                              f"{INTERNAL} ({len(internal.labels)} images)")  # fmt: skip
    else:
        calibrate_on = None
    external = None
    if card.external is not None:
        fitted = {_name(p) for p in (card.threshold_on, card.calibrate_on) if p is not None}
        name = _name(card.external)
        note = f"{name} (used to fit the threshold or calibration)" if name in fitted else name
        external = Scored(*score(card.external), note)
    threshold_on = None
    if card.threshold == "operating" and card.threshold_on is not None:
        threshold_on = Scored(*score(card.threshold_on), _name(card.threshold_on))
    return {"internal": internal, "external": external, "calibrate_on": calibrate_on,
            "threshold_on": threshold_on}  # fmt: skip


def run_split(loaded: LoadedModel, name: str, splits: Path | None = None) -> pd.DataFrame | None:
    """The `name` split (path, label) of the run the model sits in, or of `splits` (a run
    folder or a splits.csv); None when neither is there."""
    try:
        source = _splits_file(Path(splits)) if splits else splits_source(Path(loaded.path))
        table = read_splits(source)
    except PneumoError:
        if splits:
            raise
        return None
    part = table[table["split"] == name][["path", "label"]].reset_index(drop=True)
    return part if len(part) else None


def _splits_file(path: Path) -> Path:
    return path if path.is_file() else splits_source(path)


def scored(loaded: LoadedModel, images: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 labels, network logits) for the readable images of a (path, label) table."""
    found, _ = predict_paths(loaded, list(images["path"]))
    if found.empty:
        raise PneumoError("none of the images could be read")
    table = images.merge(found[["path", "logit"]], on="path")
    return (table["label"] == "PNEUMONIA").to_numpy(int), table["logit"].to_numpy()


class _Scores:
    """`scored` once per set of images."""

    def __init__(self, loaded: LoadedModel):
        self.loaded, self.done = loaded, {}

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Of a (path, label) table or a labelled folder."""
        key = tuple(images["path"]) if isinstance(images, pd.DataFrame) else Path(images).resolve()
        if key not in self.done:
            table = images if isinstance(images, pd.DataFrame) else index_images(images)
            self.done[key] = scored(self.loaded, table)
        return self.done[key]


def _name(folder) -> str:
    """A data folder by its name: model.json holds no path of the machine that made it."""
    return Path(folder).resolve().name
