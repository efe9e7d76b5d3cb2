"""Loading an ONNX export (format pneumocxr-onnx/1): its graph's SHA-256 against model.json,
the answer record in the graph's metadata against model.json, its signature, then an
`OnnxPredictor` on an ONNX Runtime session."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pneumocxr.artifact.integrity import check_answer
from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.artifact.schema import onnx_answer_record
from pneumocxr.artifact.validate import check_threshold
from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.errors import PneumoError
from pneumocxr.predictors.onnx import INPUT, INSTALL, OUTPUTS, OnnxPredictor, open_session
from pneumocxr.task import CLASS_NAMES, MAX_INPUT_SIZE

NO_GRADCAM = (
    "Grad-CAM needs the PyTorch model (a model.safetensors folder): an ONNX export holds no "
    "gradients; use the folder it was exported from"
)


def load_onnx(meta_path: Path, meta: dict):
    """A LoadedModel whose predictor runs model.onnx with ONNX Runtime, if the graph is the one
    model.json names (its SHA-256) and was exported with model.json's answer record."""
    try:
        import onnxruntime  # noqa: F401 (the one message, before anything else)
    except ImportError:
        raise PneumoError(INSTALL) from None
    try:
        prep = Preprocessing.from_json(meta["preprocessing"])
        record = meta["weights"]
        name = record["file"]
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise PneumoError(f"{meta_path} is incomplete or damaged (at {err})") from None
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".onnx"):
        raise PneumoError(f"{meta_path} is damaged: invalid graph file name {name!r}")
    path = meta_path.parent / name
    if not path.is_file():
        raise PneumoError(f"graph file missing next to {meta_path}: {name}")
    data = path.read_bytes()  # hashed and loaded from the same bytes
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):  # the bytes loaded below
        raise PneumoError(
            f"{path} does not match {meta_path.name} (SHA-256 differs): the model was changed, "
            "damaged or half-written; export it again"
        )
    session = open_session(data)
    exported = session.get_modelmeta().custom_metadata_map
    try:
        answer = json.loads(exported["answer"])
    except (KeyError, ValueError):
        raise PneumoError(f"{path} has no record of its model.json; re-export it") from None
    check_answer(answer, onnx_answer_record(meta, meta_path), meta_path)
    _check_values(meta, prep, meta_path)
    _check_signature(session, prep.image_size, path)
    predictor = OnnxPredictor(session, prep.image_size, bool(meta.get("scope")))
    predictor.weights_source = record.get("pretrained_from") or predictor.weights_source
    check_threshold(meta, meta_path)
    return LoadedModel(predictor, meta, meta_path.parent)


def _check_values(meta: dict, prep: Preprocessing, where: Path) -> None:
    """Values no export writes are refused (the graph is what was exported; model.json's
    description of its input must be too)."""
    size_ok = isinstance(prep.image_size, int) and 1 <= prep.image_size <= MAX_INPUT_SIZE
    gray = prep.channels == 1 and prep.mean == (0.0,) and prep.std == (1.0,)
    problems = [] if size_ok else [f"image size {prep.image_size!r}"]
    problems += [] if gray else ["preprocessing (the graph takes [0, 1] gray)"]
    if meta.get("class_names", list(CLASS_NAMES)) != list(CLASS_NAMES):
        problems.append("class names")
    if meta.get("scope") is not None and not isinstance(meta.get("scope"), dict):
        problems.append("scope record")
    if problems:
        raise PneumoError(f"{where} is damaged: invalid {', '.join(problems)}")


def _check_signature(session, size: int, where: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = list(inputs[0].shape) if len(inputs) == 1 else []
    if (
        len(inputs) != 1
        or inputs[0].name != INPUT
        or inputs[0].type != "tensor(float)"
        or shape[1:] != [1, size, size]
        or [o.name for o in outputs] != list(OUTPUTS)
    ):
        raise PneumoError(
            f"{where} is not a pneumocxr graph for {size}-pixel images (input {INPUT} "
            f"N x 1 x {size} x {size}, outputs {', '.join(OUTPUTS)})"
        )

