"""Prediction on files: the same decode and preprocessing as training, from model.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pneumocxr.data.decode import DecodeStream
from pneumocxr.data.index import IMAGE_KINDS, is_image_name
from pneumocxr.errors import PneumoError
from pneumocxr.fileio import link_problem
from pneumocxr.models.io import LoadedModel, load_model
from pneumocxr.models.predict import batch_logits, predict_pixels, sigmoid

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "weights"


def resolve_model(spec=None) -> LoadedModel:
    """`None`/"default" (the shipped model), a run folder, a model folder or its model.json
    (or a model already loaded)."""
    if isinstance(spec, LoadedModel):
        return spec
    if spec in (None, "", "default"):
        if not (DEFAULT_MODEL_DIR / "model.json").is_file():
            raise PneumoError(f"the default model is missing from {DEFAULT_MODEL_DIR}")
        return load_model(DEFAULT_MODEL_DIR)
    path = Path(spec)
    if path.is_dir() and not (path / "model.json").is_file():
        inner = sorted(p.parent for p in path.glob("*/model.json"))
        if len(inner) == 1:
            return load_model(inner[0])
        if inner:
            names = ", ".join(p.name for p in inner)
            raise PneumoError(f"{path} holds several models ({names}); name one of them")
    return load_model(path)


def expand_inputs(paths) -> list[Path]:
    """Files as given, folders searched recursively for image and DICOM files."""
    files = []
    for item in map(Path, paths):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if is_image_name(p) and not p.is_dir())
            if not found:
                raise PneumoError(f"no image files ({IMAGE_KINDS}) in {item}")
            files += found
        elif item.exists():
            files.append(item)  # a FIFO or device is refused when decoding, like a bad file
        else:
            raise PneumoError(link_problem(item) or f"no such file or folder: {item}")
    return files


def predict_paths(loaded: LoadedModel, paths, batch_size: int = 32):
    """(table of path and p_pneumonia for readable files, list of (path, reason) failures)."""
    import pandas as pd

    kept, probs, failures = predict_probabilities(loaded, paths, batch_size)
    return pd.DataFrame({"path": kept, "p_pneumonia": probs}), failures


def predict_probabilities(loaded: LoadedModel, paths, batch_size: int = 32):
    """(readable paths, their P(pneumonia), list of (path, reason) failures).

    Files are decoded in chunks while the model runs on the previous one (`DecodeStream`), so
    memory does not grow with the number of files; the batches are those of `predict_pixels`.
    """
    paths = list(paths)
    stream = DecodeStream(paths, loaded.preprocessing.image_size, batch_size)
    logits = batch_logits(loaded.model, stream)
    kept = [str(p) for p, ok in zip(paths, stream.ok) if ok]
    return kept, sigmoid(logits).astype(np.float64), stream.failures


def predict_images(loaded: LoadedModel, pixels, batch_size: int = 64) -> np.ndarray:
    """P(pneumonia) for images already decoded at the model's size (N x 1 x S x S uint8)."""
    return predict_pixels(loaded.model, pixels, batch_size)


def model_name(loaded: LoadedModel) -> str:
    """A readable model name: the architecture, and the run it came from."""
    arch = loaded.meta["architecture"]
    if loaded.path.resolve() == DEFAULT_MODEL_DIR.resolve():
        return f"default ({arch})"
    run = loaded.meta.get("training", {}).get("run")
    return f"{arch} ({run})" if run and run != arch else arch


def choose_threshold(value: str | float | None, loaded: LoadedModel) -> float:
    """The model's operating threshold (model.json's `threshold`, 0.5 unless the model was given
    another) by default or with "model"; or a number."""
    if value in (None, "", "model"):
        return loaded.threshold
    try:
        threshold = float(value)
    except ValueError:
        raise PneumoError(f"--threshold must be a number or 'model', got {value!r}") from None
    if not 0.0 <= threshold <= 1.0:
        raise PneumoError(f"--threshold must be between 0 and 1, got {threshold}")
    return threshold


def label_for(prob: float, threshold: float) -> str:
    return "PNEUMONIA" if prob >= threshold else "NORMAL"
