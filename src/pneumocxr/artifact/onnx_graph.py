"""The ONNX graph of a model: one function from the gray image to (logit, scope score).

The graph takes what any language can make: the image with its uniform borders trimmed
(`data.borders`, before the graph as for every model) and resized (squashed, bilinear) to S x S
pixels, gray, pixel / 255, as float32 N x 1 x S x S (N free). Everything after that is inside:

- the network's channels and normalisation (`data.transforms.network_input`);
- the network, BatchNorm folded (`networks.folding`), giving `logit` (N);
- the scope check (`scope/`), giving `scope_score` (N): pooled stage features and the
  ScopeCheck's maths; for a check on reference features, the reference network itself, run on
  the input resized to its size;
- for an ensemble, every member on the input resized to its size: the mean logit and the
  largest scope score (`predictors.ensemble`).

Resizing inside the graph (ensemble members, the reference network) is PyTorch's bilinear
antialiased `interpolate` written as two matrix products with its own weights: the same
numbers to 1e-5, with a MatMul every runtime has (ONNX's Resize antialiases only from opset
18). What turns the two outputs into an answer stays in model.json (`DECISION` spells it out
for other languages).

The exporter is PyTorch's TorchScript-based `torch.onnx.export(dynamo=False)` at opset 17:
with torch 2.13 it needs no further package and exported the shipped model in 1.9 s; the
torch.export-based exporter needs `onnxscript` and took 16 s for the same graph; both gave
PyTorch's outputs within 4e-5 (docs/TRAINING.md, "ONNX exports").
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pneumocxr.data.transforms import network_input, normalise
from pneumocxr.errors import PneumoError
from pneumocxr.networks.features import forward_pooled
from pneumocxr.networks.folding import folded
from pneumocxr.predictors.base import Predictor
from pneumocxr.predictors.onnx import INPUT, OUTPUTS, open_session
from pneumocxr.predictors.single import NetworkPredictor
from pneumocxr.scope.check import OWN
from pneumocxr.scope.reference import reference_network

OPSET = 17


DECISION = {
    "input": "the image, gray, its uniform borders trimmed as preprocessing.borders says "
    "(pneumocxr.data.borders.trim_borders), squashed (aspect not kept, bilinear) to "
    "preprocessing.image_size pixels a side, pixel / 255: float32 N x 1 x S x S, input 'image'",
    "p_pneumonia": "calibration.method platt or temperature: p = 1 / (1 + exp(-(a * logit + b))) "
    "with calibration.a and calibration.b; isotonic: linear interpolation of the logit "
    "between calibration.xs and calibration.ys, the end values outside them; none (or no "
    "calibration record): p = 1 / (1 + exp(-logit)); then, when model.json has "
    "shift_tempering and the scope check runs: p = 1 / (1 + exp(-(c + (ln(p / (1 - p)) - c) / "
    "(1 + shift_tempering.gamma * max(0, scope_score))))), c = ln(threshold / (1 - threshold)) "
    "(pneumocxr.decision.shift)",
    "label": "OUT_OF_SCOPE if the model has a scope record and scope_score > 1; else "
    "UNCERTAIN if uncertain.low <= p < uncertain.high; else PNEUMONIA if p >= threshold; "
    "else NORMAL (pneumocxr.decision.decide.decide)",
    "scope_score": "NaN when model.json has no scope record (the model labels any image)",
}


EXPORT_RTOL = 1e-3  # the export's own check of the graph against PyTorch


# -- the graph ------------------------------------------------------------------------------
def resize_matrix(source: int, target: int) -> torch.Tensor:
    """target x source weights of PyTorch's bilinear antialiased resize along one axis (what
    `F.interpolate(antialias=True)` does to an image, as `matrix @ x @ matrix.T`)."""
    # a basis image per source row (two columns wide: a width of one is a special case there)
    basis = torch.eye(source, dtype=torch.float64).view(source, 1, source, 1).expand(-1, -1, -1, 2)
    rows = F.interpolate(basis, size=(target, 2), mode="bilinear", antialias=True)
    return rows[:, 0, :, 0].T.contiguous().float()


class Resize(nn.Module):
    """[0, 1] gray N x 1 x S x S to N x 1 x T x T, as `Ensemble.member_unit` and
    `scope.reference_features` resize, in two matrix products."""

    def __init__(self, source: int, target: int):
        super().__init__()
        self.same = source == target
        self.register_buffer("matrix", resize_matrix(source, target), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.same else self.matrix @ x @ self.matrix.T


class Single(nn.Module):
    """One member's (logit N, scope score N or None) from the gray input at `source` pixels:
    `NetworkPredictor.outputs` with the resizes above."""

    def __init__(self, member: NetworkPredictor, source: int):
        super().__init__()
        self.resize = Resize(source, member.image_size)
        self.net = folded(member.network.eval())
        self.prep, self.scope = member.preprocessing(), member.scope
        if self.scope is not None and self.scope.source != OWN:
            self.reference = reference_network(self.scope.size)
            self.to_reference = Resize(member.image_size, self.scope.size)

    def forward(self, unit: torch.Tensor):
        net, unit = self.net, self.resize(unit)
        x = network_input(unit, self.prep)
        if self.scope is None:
            return net(x)[:, 0], None
        if self.scope.source == OWN:
            logits, features = forward_pooled(net, x, self.scope.stages)
        else:
            logits = net(x)
            prep = self.reference.preprocessing()
            x = normalise(self.to_reference(unit), prep.mean, prep.std, prep.channels)
            features = forward_pooled(self.reference, x, self.scope.stages)[1]
        return logits[:, 0], self.scope(features)


class Graph(nn.Module):
    """The exported function: gray image N x 1 x S x S -> (logit N, scope score N); an
    ensemble's mean logit and largest scope score (NaN without a scope check)."""

    def __init__(self, predictor: Predictor):
        super().__init__()
        members = predictor.members()
        self.parts = nn.ModuleList(Single(m, predictor.image_size) for m in members)
        self.scoped = predictor.scoped

    def forward(self, image: torch.Tensor):
        outs = [part(image) for part in self.parts]
        logit = torch.stack([out[0] for out in outs]).mean(dim=0)
        if not self.scoped:
            return logit, torch.full_like(logit, float("nan"))
        return logit, torch.stack([out[1] for out in outs]).amax(dim=0)


def example_images(size: int, n: int = 3) -> torch.Tensor:
    """Smooth gray test images (gradients and a disc with some noise) to trace and check by."""
    axis = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    disc = (((xx - 0.5) ** 2 + (yy - 0.5) ** 2) < 0.1).float()
    noise = torch.rand((size, size), generator=torch.Generator().manual_seed(0))
    kinds = [0.2 + 0.6 * yy, 0.3 + 0.4 * disc + 0.1 * noise, 0.5 * xx + 0.4 * disc * yy]
    return torch.stack([kinds[i % len(kinds)] for i in range(n)])[:, None].clamp(0, 1)


def graph_bytes(model: Predictor) -> tuple[bytes, Graph]:
    """The serialised ONNX graph of a predictor (float32, dynamic batch)."""
    graph = Graph(model).eval().float()
    example = example_images(model.image_size, 2)
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in (INPUT, *OUTPUTS)}
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter is deprecated (see the module's docstring); tracer notes
        # on the size-dependent padding of EfficientNet-Lite
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example,), buffer, input_names=[INPUT],
                          output_names=list(OUTPUTS), dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)  # fmt: skip
    return buffer.getvalue(), graph


def check_graph(data: bytes, graph: Graph, size: int) -> None:
    """Refuse to write a graph that does not give PyTorch's outputs on a few test images."""
    session = open_session(data)
    images = example_images(size)
    with torch.no_grad():
        expected = [t.numpy() for t in graph(images)]
    found = session.run(list(OUTPUTS), {INPUT: images.numpy()})
    for name, want, got in zip(OUTPUTS, expected, found):
        both_nan = np.isnan(want) & np.isnan(got)
        error = np.where(both_nan, 0, np.abs(got - want) / np.maximum(1, np.abs(want)))
        if not np.all(np.isfinite(error)) or error.max() > EXPORT_RTOL:
            raise PneumoError(
                f"the ONNX graph does not reproduce the PyTorch model ({name} differs by up to "
                f"{np.nanmax(np.abs(got - want)):.3g}); nothing was written"
            )

