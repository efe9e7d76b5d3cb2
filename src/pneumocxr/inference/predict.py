"""Prediction on files and on decoded images: the same decode and preprocessing as training,
from model.json; files decoded in chunks while the model runs on the previous one."""

from __future__ import annotations

import numpy as np

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.data.decode import DecodeStream
from pneumocxr.errors import whole_number
from pneumocxr.inference.answers import Prediction, Settings, answers, answers_table
from pneumocxr.inference.batches import batch_logits, batch_outputs, predict_logits
from pneumocxr.scope.differences import refused_differences


def predict_files(loaded: LoadedModel, paths, settings: Settings, batch_size: int = 32):
    """(answers for the readable files in input order, [(path, reason)] failures).

    Files are decoded in chunks while the model runs on the previous one (`DecodeStream`), so
    memory does not grow with the number of files; the batches are those of `predict_pixels`.
    """
    batch_size = whole_number(batch_size, "batch_size")
    paths = list(paths)
    stream = DecodeStream(paths, loaded.preprocessing.image_size, batch_size)
    logits, scopes, differs = _outputs(loaded, stream, settings)
    kept = [i for i, ok in enumerate(stream.ok) if ok]
    notes = [stream.notes.get(i) for i in kept]
    names = [str(paths[i]) for i in kept]
    found = answers(loaded, names, logits, scopes, notes, settings, differs)
    return found, stream.failures


def predict_stream(loaded: LoadedModel, stream: DecodeStream, settings: Settings,
                   names) -> list[Prediction]:  # fmt: skip
    """Answers for every input of a `DecodeStream` that stops on the first unreadable one."""
    logits, scopes, differs = _outputs(loaded, stream, settings)
    notes = [stream.notes.get(i) for i in range(len(names))]
    return answers(loaded, names, logits, scopes, notes, settings, differs)


def predict_arrays(loaded: LoadedModel, pixels, settings: Settings, names=None, notes=None,
                   batch_size: int = 64) -> list[Prediction]:  # fmt: skip
    """Answers for images already decoded at the model's size (N x 1 x S x S uint8)."""
    starts = range(0, len(pixels), whole_number(batch_size, "batch_size"))
    batches = (pixels[s : s + batch_size] for s in starts)
    logits, scopes, differs = _outputs(loaded, batches, settings)
    names = names or [""] * len(logits)
    notes = notes or [None] * len(logits)
    return answers(loaded, names, logits, scopes, notes, settings, differs)


def _outputs(loaded: LoadedModel, batches, settings: Settings):
    """(logits, scope scores or None, what differs in each refused image: index -> phrase).
    The phrases are worked out batch by batch, while the refused pixels are at hand."""
    if not (settings.scope_check and loaded.has_scope):
        return batch_logits(loaded.predictor, batches), None, {}
    logits, scopes, differs, seen = [], [], {}, 0
    for batch in batches:
        found, scope = batch_outputs(loaded.predictor, [batch])
        differs.update({seen + i: why for i, why in refused_differences(batch, scope).items()})
        logits.append(found)
        scopes.append(scope)
        seen += len(found)
    if not logits:
        return np.zeros(0), np.zeros(0), {}
    return np.concatenate(logits), np.concatenate(scopes), differs


def predict_paths(loaded: LoadedModel, paths, batch_size: int = 32, settings=None):
    """(table of answers for readable files, list of (path, reason) failures); `p_pneumonia`
    is calibrated. The table has `ANSWER_COLUMNS`, `predicted` and `p_raw`."""
    settings = settings or Settings.of(loaded)
    found, failures = predict_files(loaded, paths, settings, batch_size)
    return answers_table(found), failures


def predict_images(loaded: LoadedModel, pixels, batch_size: int = 64) -> np.ndarray:
    """Calibrated P(pneumonia) for images already decoded at the model's size."""
    return loaded.calibration.apply(predict_logits(loaded.predictor, pixels, batch_size))
