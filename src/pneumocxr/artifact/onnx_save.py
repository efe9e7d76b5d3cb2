"""`pneumocxr export M --format onnx --out DIR`: DIR/model.onnx (the graph of `onnx_graph.py`,
its `metadata_props` holding the answer record) and DIR/model.json (preprocessing, threshold,
calibration, band, scope rule, the graph's record, and `decision`: the formulas that turn the
two outputs into an answer, for other languages). Integrity as for the safetensors folders:
model.json records the graph's SHA-256. The graph is a protobuf: nothing is unpickled."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import torch

from pneumocxr.artifact.onnx_graph import DECISION, OPSET, check_graph, graph_bytes
from pneumocxr.artifact.schema import META_NAME, canonical, no_paths, onnx_answer_record
from pneumocxr.artifact.schema import ONNX_FORMAT as FORMAT
from pneumocxr.artifact.schema import ONNX_NAME as FILE
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.atomic import atomic_path
from pneumocxr.fileio.formats import sha256_file, write_json
from pneumocxr.predictors.base import Predictor
from pneumocxr.predictors.onnx import INPUT, OUTPUTS, gray_preprocessing
from pneumocxr.predictors.single import NetworkPredictor
from pneumocxr.scope.record import scope_record
from pneumocxr.task import CLASS_NAMES, __version__

INSTALL_EXPORT = "install pneumocxr[onnx] (onnx, onnxruntime) to export a model to ONNX"


# -- saving ---------------------------------------------------------------------------------
def save_onnx(model: Predictor, directory, extra: dict, architecture: str) -> Path:
    """model.onnx (its metadata holding the answer record), then model.json naming its hash.
    `extra` carries the threshold, calibration, band, scope record and figures."""
    try:
        import onnx
        import onnxruntime  # noqa: F401 (the export checks its graph with it)
    except ImportError:
        raise PneumoError(INSTALL_EXPORT) from None
    directory = Path(directory)
    data, graph = graph_bytes(model)
    check_graph(data, graph, model.image_size)
    meta = {
        "format": FORMAT,
        "architecture": architecture,
        "preprocessing": gray_preprocessing(model.image_size).to_json(),
        "class_names": list(CLASS_NAMES),
        "output": "logit (N) and scope_score (N); calibrated sigmoid of the logit = P(PNEUMONIA)",
        "threshold": 0.5,
        **extra,
        "weights": {
            "file": FILE,
            "dtype": "float32",
            "pretrained_from": model.weights_source,
            "base": None,
            "tensors": None,
        },  # fmt: skip
        "graph": graph_record(model),
        "decision": DECISION,
        "pneumocxr_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    members = model.members()
    if len(members) > 1 or members[0] is not model:  # an ensemble
        meta["members"] = [member_record(m) for m in members]
        meta["scope"] = ensemble_scope(model)
    elif model.scope is not None:
        meta["scope"] = scope_record(model.scope, extra.get("scope"))
    if meta.get("scope") is None:
        meta.pop("scope", None)
    meta = no_paths(meta)
    proto = onnx.load_from_string(data)
    proto.producer_name, proto.producer_version = "pneumocxr", __version__
    proto.doc_string = f"pneumocxr {architecture}: gray image N x 1 x S x S -> logit, scope_score"
    del proto.metadata_props[:]
    for key, value in (("format", FORMAT), ("answer", canonical(onnx_answer_record(meta)))):
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    with atomic_path(directory / FILE) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    meta["weights"]["sha256"] = sha256_file(directory / FILE)
    write_json(directory / META_NAME, meta)
    return directory / META_NAME


def graph_record(model: Predictor) -> dict:
    """What the graph is: its input, outputs, opset, and what it does inside."""
    members, size = model.members(), model.image_size
    return {
        "input": {
            "name": INPUT,
            "dtype": "float32",
            "shape": ["N", 1, size, size],
            "values": "[0, 1] gray",
        },  # fmt: skip
        "outputs": {OUTPUTS[0]: ["N"], OUTPUTS[1]: ["N"]},
        "opset": OPSET,
        "inside": [
            {
                "architecture": m.network.name,
                "image_size": m.image_size,
                "preprocessing": m.preprocessing().to_json(),
                "scope_features": None if m.scope is None else m.scope.source,
            }  # fmt: skip
            for m in members
        ],
        "exporter": f"torch.onnx.export (TorchScript-based), torch {torch.__version__}",
    }


def member_record(member: NetworkPredictor) -> dict:
    return {"architecture": member.network.name, "image_size": member.image_size,
            "pretrained_from": member.weights_source}  # fmt: skip


def ensemble_scope(model: Predictor) -> dict | None:
    """An ensemble's scope record: its members' checks, combined by the largest score."""
    if not model.scoped:
        return None
    return {
        "method": "the largest of the members' scope scores",
        "features": "the members'",
        "fit_on": "members' training splits",
        "members": [scope_record(m.scope) for m in model.members()],
    }

