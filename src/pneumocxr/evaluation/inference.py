"""Prediction on files: the same decode and preprocessing as training, from model.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pneumocxr.data.decode import DecodeStream
from pneumocxr.data.index import IMAGE_KINDS, is_image_name, walk_files
from pneumocxr.errors import PneumoError
from pneumocxr.fileio import link_problem
from pneumocxr.models.calibration import Band, decide, sigmoid
from pneumocxr.models.io import ONNX_FORMAT, LoadedModel, load_model
from pneumocxr.models.predict import batch_logits, batch_outputs, predict_logits

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "weights"


def resolve_model(spec=None, legacy: bool = False) -> LoadedModel:
    """`None`/"default" (the shipped model), a run folder, a model folder or its model.json
    (or a model already loaded); `legacy` admits folders of earlier versions (for export)."""
    if isinstance(spec, LoadedModel):
        return spec
    if hasattr(spec, "loaded") and isinstance(spec.loaded, LoadedModel):  # an api.Model
        return spec.loaded
    if spec in (None, "", "default"):
        if not (DEFAULT_MODEL_DIR / "model.json").is_file():
            raise PneumoError(f"the default model is missing from {DEFAULT_MODEL_DIR}")
        return load_model(DEFAULT_MODEL_DIR, legacy)
    path = Path(spec)
    if path.is_dir() and not (path / "model.json").is_file():
        inner = sorted(p.parent for p in path.glob("*/model.json"))
        if len(inner) == 1:
            return load_model(inner[0], legacy)
        if inner:
            names = ", ".join(p.name for p in inner)
            raise PneumoError(f"{path} holds several models ({names}); name one of them")
    return load_model(path, legacy)


def expand_inputs(paths, strict: bool = False) -> list[Path]:
    """Files as given, folders searched recursively (through symlinks) for image and DICOM
    files; `strict` makes a folder or link in them that cannot be read an error."""
    files = []
    for item in map(Path, paths):
        if item.is_dir():
            found = [p for p in walk_files(item, strict) if is_image_name(p)]
            if not found:
                raise PneumoError(f"no image files ({IMAGE_KINDS}) in {item}")
            files += found
        elif item.exists():
            files.append(item)  # a FIFO or device is refused when decoding, like a bad file
        else:
            raise PneumoError(link_problem(item) or f"no such file or folder: {item}")
    return files


@dataclass
class Prediction:
    """One image's answer: the contract of `predict --json`, `/api/predict` and the API.

    `label` is NORMAL, PNEUMONIA, UNCERTAIN (refer to a person) or OUT_OF_SCOPE (not an image
    the model knows; `reason` says why); `p_pneumonia` is calibrated; `scope_score` is above 1
    for images unlike the model's training X-rays (None with the scope check off)."""

    path: str | None  # None for an image given in memory (a PIL image, an array)
    label: str
    p_pneumonia: float
    in_scope: bool
    scope_score: float | None
    reason: str = ""
    logit: float = float("nan")  # the network's own output, before calibration
    threshold_used: float = 0.5

    @property
    def p_raw(self) -> float:
        """The network's own sigmoid, before calibration."""
        return float(sigmoid(self.logit))

    @property
    def predicted(self) -> str:
        """The plain thresholded label, whatever the scope check and the band say."""
        return "PNEUMONIA" if self.p_pneumonia >= self.threshold_used else "NORMAL"


ANSWER_COLUMNS = ["path", "label", "p_pneumonia", "in_scope", "scope_score", "reason"]


@dataclass
class Settings:
    """How answers are decided: the threshold (calibrated scale), the UNCERTAIN band, and
    whether the scope check runs."""

    threshold: float
    band: Band | None
    scope_check: bool = True

    @classmethod
    def of(cls, loaded: LoadedModel, threshold=None, scope_check: bool = True) -> Settings:
        cut = choose_threshold(threshold, loaded)
        band = loaded.band
        if band is not None and not band.low <= cut <= band.high:
            band = None  # a threshold of the user's own: no band fitted around it
        return cls(cut, band, scope_check)


def predict_files(loaded: LoadedModel, paths, settings: Settings, batch_size: int = 32):
    """(answers for the readable files in input order, [(path, reason)] failures).

    Files are decoded in chunks while the model runs on the previous one (`DecodeStream`), so
    memory does not grow with the number of files; the batches are those of `predict_pixels`.
    """
    paths = list(paths)
    stream = DecodeStream(paths, loaded.preprocessing.image_size, batch_size)
    logits, scopes = _outputs(loaded, stream, settings)
    kept = [i for i, ok in enumerate(stream.ok) if ok]
    notes = [stream.notes.get(i) for i in kept]
    names = [str(paths[i]) for i in kept]
    return answers(loaded, names, logits, scopes, notes, settings), stream.failures


def predict_arrays(loaded: LoadedModel, pixels, settings: Settings, names=None, notes=None,
                   batch_size: int = 64) -> list[Prediction]:  # fmt: skip
    """Answers for images already decoded at the model's size (N x 1 x S x S uint8)."""
    starts = range(0, len(pixels), batch_size)
    logits, scopes = _outputs(loaded, (pixels[s : s + batch_size] for s in starts), settings)
    names = names or [""] * len(logits)
    return answers(loaded, names, logits, scopes, notes or [None] * len(logits), settings)


def _outputs(loaded: LoadedModel, batches, settings: Settings):
    if settings.scope_check and loaded.has_scope:
        return batch_outputs(loaded.model, batches)
    return batch_logits(loaded.model, batches), None


def answers(
    loaded: LoadedModel, names, logits, scopes, notes, settings: Settings
) -> list[Prediction]:
    """Calibrate, check scope, decide: the one path from logits to labels."""
    probs = loaded.calibration.apply(logits)
    made = []
    for i, (name, p) in enumerate(zip(names, probs)):
        note = notes[i] if settings.scope_check else None
        score = None if scopes is None else float(scopes[i])
        in_scope = note is None and (score is None or score <= 1.0)
        label = decide(float(p), in_scope, settings.threshold, settings.band)
        made.append(Prediction(name, label, float(p), in_scope, score, _reason(label, note, score),
                           float(logits[i]), settings.threshold))  # fmt: skip
    return made


def _reason(label: str, note: str | None, score: float | None) -> str:
    if label == "OUT_OF_SCOPE":
        return note or (
            f"unlike the chest X-rays this model was trained on (scope score {score:.2f}, "
            "refused above 1)"
        )
    if label == "UNCERTAIN":
        return "uncertain: have a person look (between the model's referral limits)"
    return ""


def predict_paths(loaded: LoadedModel, paths, batch_size: int = 32, settings=None):
    """(table of answers for readable files, list of (path, reason) failures); `p_pneumonia`
    is calibrated. The table has `ANSWER_COLUMNS`, `predicted` and `p_raw`."""
    settings = settings or Settings.of(loaded)
    found, failures = predict_files(loaded, paths, settings, batch_size)
    return answers_table(found), failures


def answers_table(found: list[Prediction]):
    import pandas as pd

    rows = [{**{c: getattr(a, c) for c in ANSWER_COLUMNS}, "predicted": a.predicted,
             "p_raw": a.p_raw, "logit": a.logit} for a in found]  # fmt: skip
    return pd.DataFrame(rows, columns=[*ANSWER_COLUMNS, "predicted", "p_raw", "logit"])


def predict_images(loaded: LoadedModel, pixels, batch_size: int = 64) -> np.ndarray:
    """Calibrated P(pneumonia) for images already decoded at the model's size."""
    return loaded.calibration.apply(predict_logits(loaded.model, pixels, batch_size))


def model_name(loaded: LoadedModel) -> str:
    """A readable model name: the architecture, and the run it came from (an ONNX export
    says so)."""
    arch = loaded.meta["architecture"]
    if loaded.path.resolve() == DEFAULT_MODEL_DIR.resolve():
        return f"default ({arch})"
    run = loaded.meta.get("training", {}).get("run")
    name = f"{arch} ({run})" if run and run != arch else arch
    return f"{name} [ONNX]" if loaded.meta.get("format") == ONNX_FORMAT else name


def choose_threshold(value: str | float | None, loaded: LoadedModel) -> float:
    """The model's operating threshold on the calibrated scale (model.json's `threshold`) by
    default or with "model"; or a number (also on the calibrated scale)."""
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
