"""An ONNX export run by ONNX Runtime: the graph takes [0, 1] gray images and gives (logit,
scope score), so it is a predictor like any other; it has no gradients (no Grad-CAM)."""

from __future__ import annotations

import numpy as np
import torch

from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.errors import PneumoError, first_line
from pneumocxr.predictors.base import Predictor
from pneumocxr.predictors.checks import check_shape, checked_outputs, tensor_of

INPUT = "image"
OUTPUTS = ("logit", "scope_score")
INSTALL = "install pneumocxr[onnx] (onnxruntime) to use an ONNX model"
GRAY_INPUT = Preprocessing(
    image_size=0,
    channels=1,
    mean=(0.0,),
    std=(1.0,),
    color="grayscale, one channel; the graph makes the network's channels and normalisation",
)


def gray_preprocessing(size: int) -> Preprocessing:
    from dataclasses import replace

    return replace(GRAY_INPUT, image_size=size)


def open_session(data: bytes):
    """An ONNX Runtime session on the CPU, as many threads as PyTorch uses, idle threads
    sleeping (spinning ones took the cores the decoding threads needed: docs/PERFORMANCE.md)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise PneumoError(INSTALL) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own error types
        raise PneumoError(f"ONNX Runtime cannot load the graph: {first_line(err)}") from None


class OnnxPredictor(Predictor):
    def __init__(self, session, image_size: int, scoped: bool):
        self.session, self.image_size, self._scoped = session, image_size, scoped

    @property
    def scoped(self) -> bool:
        return self._scoped

    def preprocessing(self) -> Preprocessing:
        return gray_preprocessing(self.image_size)

    def run(self, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits N, scope scores N) from ONNX Runtime, each checked to be N numbers (the
        scope scores are NaN by design in a graph without a scope check)."""
        image = np.ascontiguousarray(unit.detach().float().cpu().numpy())
        try:
            found = self.session.run(list(OUTPUTS), {INPUT: image})
        except Exception as err:  # onnxruntime's own error types: a graph that fails to run
            raise PneumoError(f"ONNX Runtime could not run the graph: {first_line(err)}") from None
        logit, scope = (tensor_of(value, name) for value, name in zip(found, OUTPUTS))
        checked_outputs(logit, None, len(image))
        check_shape(scope, "scope score", len(image))
        return logit, scope

    def logits(self, unit: torch.Tensor) -> torch.Tensor:
        return self.run(unit)[0]

    def outputs(self, unit: torch.Tensor):
        logits, scope = self.run(unit)
        if not self._scoped:
            return logits, None
        return checked_outputs(logits, scope, len(logits))
