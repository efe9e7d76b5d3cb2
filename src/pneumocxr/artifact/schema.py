"""The model folder's format: `model.safetensors` (tensors) + `model.json` (everything else), or
`model.onnx` + `model.json`; file names, format versions, which fields of model.json shape an
answer (the weights' header keeps a copy of them: `integrity.py`), and model.json's texts
without paths.

When a model's backbone weights ship with an installed package (EfficientNet-Lite0), only the
tensors that differ from them are stored, and model.json names the base file and its SHA-256
so a changed base is detected instead of silently used."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pneumocxr.display import without_paths
from pneumocxr.errors import PneumoError

FORMAT = "pneumocxr-model/2"
ENSEMBLE_FORMAT = "pneumocxr-ensemble/2"
LEGACY_MODEL, LEGACY_ENSEMBLE = "pneumocxr-model/1", "pneumocxr-ensemble/1"  # `export` reads them
LEGACY = (LEGACY_MODEL, LEGACY_ENSEMBLE)
ONNX_FORMAT = "pneumocxr-onnx/1"  # model.onnx + model.json (artifact/onnx_*.py)
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "model.onnx"
META_NAME = "model.json"
MEMBERS_DIR = "members"
MODEL_FILES = {WEIGHTS_NAME, META_NAME}
EXPORT_FILES = {WEIGHTS_NAME, ONNX_NAME, META_NAME}  # either format replaces the other
ENSEMBLE_FILES = {WEIGHTS_NAME, META_NAME, MEMBERS_DIR}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
OUTPUT = "one logit; calibrated sigmoid = P(PNEUMONIA)"
# The fields of model.json that decide an answer; the weights file's header holds a copy.
ANSWER_FIELDS = ("format", "architecture", "preprocessing", "class_names", "threshold",
                 "calibration", "uncertain", "scope", "members", "shift_tempering")  # fmt: skip
WEIGHT_FIELDS = ("file", "dtype", "base", "tensors")


def no_paths(value):
    if isinstance(value, dict):
        return {k: no_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_paths(v) for v in value]
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return without_paths(value, absolute_only=True, limit=None) or value
    return value


def answer_record(meta: dict, where: Path | None = None) -> dict:
    """The fields of model.json that shape an answer (the weights' own hash aside)."""
    record = {k: meta.get(k) for k in ANSWER_FIELDS}
    weights = meta.get("weights") if isinstance(meta.get("weights"), dict) else {}
    record["weights"] = {k: weights.get(k) for k in WEIGHT_FIELDS}
    try:
        return json.loads(canonical(record))  # numbers as JSON has them
    except ValueError:  # NaN or infinity, which no export writes
        raise PneumoError(f"{where or 'model.json'} is damaged: a value is not a number") from None


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def member_digest(meta: dict) -> str:
    """A member's answer record and weights, in one SHA-256."""
    record = {**answer_record(meta), "sha256": meta["weights"].get("sha256")}
    return hashlib.sha256(canonical(record).encode()).hexdigest()


def onnx_answer_record(meta: dict, where: Path | None = None) -> dict:
    """`answer_record` and an ONNX graph's own record."""
    return json.loads(canonical({**answer_record(meta, where), "graph": meta.get("graph")}))
