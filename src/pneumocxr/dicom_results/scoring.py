"""Score DICOM instances: their header rules, the model, Grad-CAM, and the result datasets.

The building block under the DICOM node, `pneumocxr dicom score` and `Model.dicom_results`:
an instance whose header says it is no frontal chest radiograph gets its SR without the
network running; the others are decoded as `pneumocxr predict` decodes a file (so they get
the same label and P), predicted in one batch, and, when in scope, explained by Grad-CAM in
another.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset

from pneumocxr.data.borders import trim_borders
from pneumocxr.data.dicom import header_scope_of, read_dicom_gray_scoped
from pneumocxr.dicom_results.capture import build_capture, overlay_picture, picture_base
from pneumocxr.dicom_results.evidence import evidence_of, uid_problem
from pneumocxr.dicom_results.model_info import ModelInfo
from pneumocxr.dicom_results.report_cache import reports_for
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.regular import NotRegularFile, open_regular
from pneumocxr.inference.answers import Prediction

MAX_PIXELS = 64_000_000  # per frame, as `pneumocxr predict` allows (data/limits.py)
GRADCAM_BATCH = 4  # images per Grad-CAM pass: 16 at once took 1.9 GB of memory, 4 much less
# highdicom logs every attribute it copies into a result, naming the input; pydicom's log and
# warnings quote element values (names, dates): neither belongs in the node's log. Values are
# not validated on reading, as `pneumocxr predict` reads them (data/dicom.py).
logging.getLogger("highdicom").setLevel(logging.ERROR)
logging.getLogger("pydicom").setLevel(logging.CRITICAL + 1)
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


@dataclass
class Instance:
    """One DICOM instance to score: its attributes, and its pixels' source (a path, the
    file's bytes, or a pydicom Dataset with pixel data)."""

    header: Dataset
    source: object


@dataclass
class DicomResult:
    """What one input gets back: its answer and the result datasets (the SR, then the Secondary
    Capture when the image was in scope and heat maps were asked for)."""

    source_uid: str
    study_uid: str
    prediction: Prediction
    datasets: list[Dataset]

    @property
    def report(self) -> Dataset:
        return self.datasets[0]

    @property
    def capture(self) -> Dataset | None:
        return self.datasets[1] if len(self.datasets) > 1 else None


@dataclass
class Assessed:
    """An instance after the model: its answer and, for a heat map, the picture to draw on
    (at most SIDE pixels a side) and the Grad-CAM map."""

    instance: Instance
    answer: Prediction
    base: np.ndarray | None = None
    heatmap: np.ndarray | None = None


def score(
    model, instances: list[Instance], heatmap: bool = True, info: ModelInfo | None = None
) -> list[DicomResult]:
    """Results for `instances`, in order (`model`: an api.Model)."""
    info = info or ModelInfo.of(model)
    return [build(found, info) for found in assess(model, instances, heatmap, info)]


def assess(
    model, instances: list[Instance], heatmap: bool = True, info: ModelInfo | None = None
) -> list[Assessed]:
    """The model's part of `score`: header rules, decoding, one batch, Grad-CAM."""
    info = info or ModelInfo.of(model)
    answers: list[Prediction | None] = [None] * len(instances)
    grays = {}
    for i, item in enumerate(instances):
        reason = header_scope_of(item.header)
        if reason is None:
            try:
                grays[i] = decode(item.source)
            except PneumoError as err:
                reason = f"cannot decode the image ({err})"
        if reason is not None:
            answers[i] = _not_assessed(reason, info)
    order = sorted(grays)
    for i, found in zip(order, model.predict([grays[i] for i in order]) if order else []):
        answers[i] = found
    assessed = [Assessed(item, answers[i]) for i, item in enumerate(instances)]
    if heatmap:
        _add_heatmaps(model, grays, assessed)
    return assessed


def build(found: Assessed, info: ModelInfo) -> DicomResult:
    """The result datasets of one assessed instance (no model needed: another thread may)."""
    evidence = evidence_of(found.instance.header)
    datasets = [reports_for(info).build(evidence, found.answer)]
    if found.heatmap is not None:
        picture = overlay_picture(found.base, found.heatmap)
        datasets.append(build_capture(evidence, picture, found.answer, info))
    return DicomResult(evidence.SOPInstanceUID, evidence.StudyInstanceUID, found.answer, datasets)


def check_heatmaps(model) -> None:
    """Refuse, before any image arrives, heat maps from a model that cannot draw them (an ONNX
    export has no gradients); drawing one on a blank picture also warms the model up."""
    try:
        model.gradcam(np.zeros((64, 64), dtype=np.uint8))
    except PneumoError as err:
        raise PneumoError(f"{err}; without heat maps: --no-heatmap") from None


def decode(source):
    """8-bit gray pixels at full size less their uniform borders, decoded as `pneumocxr
    predict` decodes the file (the Secondary Capture's picture is then what the model saw)."""
    if isinstance(source, Dataset):
        source = to_bytes(source)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    where = "" if not isinstance(source, (str, os.PathLike)) else None
    gray = read_dicom_gray_scoped(source, where, MAX_PIXELS)[0]
    image = Image.fromarray(gray)
    trimmed = trim_borders(image)
    return gray if trimmed is image else np.asarray(trimmed)


def to_bytes(ds: Dataset) -> bytes:
    """A dataset as a DICOM file's bytes (a retrieved dataset keeps its transfer syntax)."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _add_heatmaps(model, grays: dict, assessed: list[Assessed]) -> None:
    """Grad-CAM for the images in scope (as the web app draws them), a few at a time: its
    gradients make memory grow with the batch."""
    shown = [i for i in sorted(grays) if assessed[i].answer.in_scope]
    for start in range(0, len(shown), GRADCAM_BATCH):
        chunk = shown[start : start + GRADCAM_BATCH]
        for i, heat in zip(chunk, model.gradcam([grays[i] for i in chunk])):
            assessed[i].base, assessed[i].heatmap = picture_base(grays[i]), heat


def _not_assessed(reason: str, info: ModelInfo) -> Prediction:
    """OUT_OF_SCOPE decided before the network: there is no probability."""
    nan = math.nan
    return Prediction(None, "OUT_OF_SCOPE", nan, False, None, reason, nan, info.threshold)


def instance_of(item) -> Instance:
    """A pydicom Dataset or a DICOM file's path as an Instance; refused (PneumoError) when its
    UIDs would not let results join its study."""
    if isinstance(item, Dataset):
        header = item
    elif isinstance(item, (str, os.PathLike)):
        header = read_header(item)
    else:
        raise PneumoError(f"cannot score a {type(item).__name__}: give a pydicom Dataset or a path")
    problem = uid_problem(header)
    if problem:
        raise PneumoError(f"{_where(item)}{problem}: its results could not join its study")
    return Instance(header, item)


def read_header(source) -> Dataset:
    """The attributes of a DICOM file (path or file object), without its pixel data."""
    try:
        if isinstance(source, (str, os.PathLike)):  # never a named pipe: it would never end
            with open_regular(source) as handle:
                return pydicom.dcmread(handle, stop_before_pixels=True)
        return pydicom.dcmread(source, stop_before_pixels=True)
    except NotRegularFile as err:
        raise PneumoError(f"{_where(source)}{err.reason}") from None
    except Exception as err:  # pydicom raises many types for a broken file
        raise PneumoError(
            f"{_where(source)}not a readable DICOM file ({type(err).__name__})"
        ) from None


def _where(item) -> str:
    return f"{item}: " if isinstance(item, (str, os.PathLike)) else ""
