"""The Python API: what notebooks, the CLI and the web app call (docs/API.md).

    import pneumocxr
    model = pneumocxr.load_model("default")
    result = model.predict("chest.jpeg")      # or a PIL image, a numpy array, or a list
    result.label, result.p_pneumonia, result.in_scope, result.scope_score

Every answer comes from one path: decode (the same for a file, a PIL image or an array) ->
the model's forward pass with its scope check -> calibration -> the decision
(`decision.decide.decide`); docs/ARCHITECTURE.md follows it through the layers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.artifact.resolve import model_name, resolve_model
from pneumocxr.data.decode import (
    DecodeStream,
    gray_from_array,
    gray_from_image,
    load_image_noted,
    squash,
    unreadable_error,
)
from pneumocxr.errors import PneumoError, whole_number
from pneumocxr.inference.answers import Prediction, Settings
from pneumocxr.inference.inputs import expand_inputs
from pneumocxr.inference.predict import predict_files, predict_stream

__all__ = ["Model", "Prediction", "load_model", "train", "evaluate"]


@dataclass
class Model:
    """A loaded model: weights, preprocessing, calibration, threshold, UNCERTAIN band and scope
    check, as its folder records them."""

    loaded: LoadedModel

    @property
    def name(self) -> str:
        return model_name(self.loaded)

    @property
    def threshold(self) -> float:
        """The operating threshold, on the calibrated scale of `p_pneumonia`."""
        return self.loaded.threshold

    @property
    def uncertain_band(self) -> tuple[float, float] | None:
        """(low, high): UNCERTAIN when low <= p_pneumonia < high; None without a band."""
        band = self.loaded.band
        return None if band is None else (band.low, band.high)

    @property
    def image_size(self) -> int:
        return self.loaded.preprocessing.image_size

    @property
    def meta(self) -> dict:
        """model.json, as loaded."""
        return self.loaded.meta

    def settings(self, threshold=None, scope_check: bool = True) -> Settings:
        return Settings.of(self.loaded, threshold, scope_check)

    def predict(self, x, *, threshold=None, scope_check: bool = True, batch_size: int = 32):
        """A Prediction for `x` (a path, a PIL image or a numpy array H x W or H x W x C,
        uint8 or float), or a list of them for a list. Bad input raises PneumoError."""
        batch_size = whole_number(batch_size, "batch_size")  # before an empty list returns
        settings = self.settings(threshold, scope_check)
        items = list(x) if isinstance(x, (list, tuple)) else [x]
        if not items:
            return []
        # Decoded a chunk at a time while the model runs, in the batches a decoded stack would
        # give: memory stays flat however long the list, and the answers are the same.
        stream = DecodeStream(items, self.image_size, batch_size, decode=self._decode_at,
                              stop_on_error=True)  # fmt: skip
        names = [_name(item) for item in items]
        found = predict_stream(self.loaded, stream, settings, names)
        return found if isinstance(x, (list, tuple)) else found[0]

    def predict_paths(self, paths, *, threshold=None, scope_check: bool = True,
                      batch_size: int = 32, strict: bool = False):  # fmt: skip
        """(Predictions, [(path, reason)] unreadable files) for files and folders (searched
        recursively), decoded in parallel while the model runs: what `pneumocxr predict`
        prints. With `strict`, an unreadable file or folder is an error."""
        settings = self.settings(threshold, scope_check)
        files = expand_inputs(_paths(paths), strict)
        found, failures = predict_files(self.loaded, files, settings, batch_size)
        if failures and strict:
            raise unreadable_error(failures)
        return found, failures

    def decode(self, item) -> tuple[np.ndarray, str | None]:
        """(uint8 S x S pixels at the model's size, why the header puts it out of scope)."""
        size = self.image_size
        if isinstance(item, (str, os.PathLike)):
            return load_image_noted(item, size)
        if isinstance(item, Image.Image):
            return squash(gray_from_image(item), size), None
        if isinstance(item, np.ndarray):
            return squash(gray_from_array(item), size), None
        raise PneumoError(
            f"cannot predict a {type(item).__name__}: give a path, a PIL image or a numpy array"
        )

    def _decode_at(self, item, _size: int) -> tuple[np.ndarray, str | None]:
        return self.decode(item)  # always at the model's own size

    def gradcam(self, x, *, threshold=None):
        """Grad-CAM heat map(s) of `x` (as `predict` takes it): float arrays in [0, 1] at the
        model's input size, for the class the model chose."""
        from pneumocxr.explain.gradcam import explain_pixels

        items = list(x) if isinstance(x, (list, tuple)) else [x]
        if not items:
            return []
        images = np.stack([self.decode(item)[0] for item in items])
        cut = self.settings(threshold).threshold
        maps = [e.heatmap for e in explain_pixels(self.loaded, images, cut)]
        return maps if isinstance(x, (list, tuple)) else maps[0]

    # -- DICOM results (docs/PACS.md): what the DICOM node and `dicom score` send back ------
    def dicom_results(self, x, *, heatmap: bool = True):
        """A DicomResult for `x` (a pydicom Dataset with pixel data, or a DICOM file's path),
        or a list of them for a list: `.prediction` (as `predict` answers for the file),
        `.datasets` (a TID 1500 SR, then a Grad-CAM Secondary Capture for an image in scope
        when `heatmap`), `.report`, `.capture`. Their UIDs derive from the input's SOP
        Instance UID and the weights, so the same input always gets the same result UIDs."""
        from pneumocxr.dicom_results.scoring import instance_of, score

        items = list(x) if isinstance(x, (list, tuple)) else [x]
        found = score(self, [instance_of(item) for item in items], heatmap) if items else []
        return found if isinstance(x, (list, tuple)) else found[0]


def _paths(paths) -> list:
    """One path or a list of them (a lone string is no list of one-letter names)."""
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    items = list(paths) if hasattr(paths, "__iter__") and not isinstance(paths, bytes) else None
    if items is None or not all(isinstance(p, (str, os.PathLike)) for p in items):
        raise PneumoError("predict_paths takes a path or a list of paths (files or folders)")
    return items


def _name(item) -> str | None:
    return str(item) if isinstance(item, (str, os.PathLike)) else None


def load_model(spec="default") -> Model:
    """ "default" (the shipped model), a model folder, a run folder or a model.json."""
    return Model(resolve_model(None if spec == "default" else spec))


def train(data=None, model: str = "smallnet", out="runs", **options):
    """Train one model into a new run folder, as `pneumocxr train` does; `options` are its
    options with underscores (epochs=3, image_size=128, quick=True, ...). Returns the
    TrainResult (run_dir, threshold, val_metrics, external_metrics)."""
    from pneumocxr.training.config import TrainConfig

    unknown = set(options) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise PneumoError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    config = TrainConfig(out=out, model=model, **options).typed()  # before any slow import
    from pneumocxr.data.download import resolve_data
    from pneumocxr.training.fit import train as run_training

    config.data = str(resolve_data(data))
    return run_training(config)


def evaluate(model, data=None, *, split=None, out=None, threshold=None,
             scope_check: bool = True, overwrite: bool = False, labels=None) -> dict:  # fmt: skip
    """Metrics with 95% CIs of `model` (a Model, or what load_model takes) on a labelled
    folder or a split of its run, as `pneumocxr evaluate` computes them; with `out`, also the
    folder it writes (predictions.csv, metrics.json, report.txt and the figures)."""
    from pneumocxr.pipeline.assess import evaluate_only, evaluate_to_folder

    loaded = model.loaded if isinstance(model, Model) else model
    for name, value in (("data", data), ("out", out)):
        if not isinstance(value, (str, os.PathLike, type(None))):
            raise PneumoError(f"{name} must be a folder's path, not a {type(value).__name__}")
    if not isinstance(overwrite, bool):
        raise PneumoError(f"overwrite must be True or False, got {overwrite!r:.60}")
    if out is None:
        return evaluate_only(loaded, data, split, threshold, scope_check, labels=labels)
    return evaluate_to_folder(loaded, Path(out), data, split, threshold, overwrite,
                              scope_check=scope_check, labels=labels)  # fmt: skip
