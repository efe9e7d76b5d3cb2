"""ONNX exports: one graph from the gray image to (logit, scope score), and the model object
that runs it with ONNX Runtime behind the interface the prediction path uses.

`pneumocxr export M --format onnx --out DIR` writes DIR/model.onnx and DIR/model.json. The graph
takes what any language can make: the image resized (squashed, bilinear) to S x S pixels, gray,
pixel / 255, as float32 N x 1 x S x S (N free). Everything after that is inside the graph:

- the network's channels and normalisation (`PneumoNet.model_input`);
- the network, BatchNorm folded (`models.predict.folded`), giving `logit` (N);
- the scope check (`models.scope`), giving `scope_score` (N): pooled stage features and the
  ScopeCheck's maths; for a check on reference features, the reference network itself, run on
  the input resized to its size;
- for an ensemble, every member on the input resized to its size: the mean logit and the
  largest scope score (`models.ensemble`).

Resizing inside the graph (ensemble members, the reference network) is PyTorch's bilinear
antialiased `interpolate` written as two matrix products with its own weights: the same
numbers to 1e-5, with a MatMul every runtime has (ONNX's Resize antialiases only from opset
18).

What turns the two outputs into an answer stays in model.json (threshold, calibration,
UNCERTAIN band), applied by the same Python code as for every model
(`evaluation.inference.answers`); model.json's `decision` spells the formulas out for other
languages. Integrity as for the safetensors folders (`models.io`): model.json records the
graph's SHA-256, and the graph's own `metadata_props` hold the answer record, compared field
by field on loading. The graph is a protobuf: nothing is unpickled.

The exporter is PyTorch's TorchScript-based `torch.onnx.export(dynamo=False)` at opset 17:
with torch 2.13 it needs no further package and exported the shipped model in 1.9 s; the
torch.export-based exporter needs `onnxscript` and took 16 s for the same graph; both gave
PyTorch's outputs within 4e-5 (docs/TRAINING.md, "ONNX exports").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pneumocxr import CLASS_NAMES, __version__
from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.data.transforms import normalise
from pneumocxr.errors import PneumoError
from pneumocxr.models.base import PneumoNet
from pneumocxr.models.ensemble import Ensemble
from pneumocxr.models.io import (
    MAX_INPUT_SIZE,
    META_NAME,
    LoadedModel,
    _canonical,
    _check_threshold,
    check_answer,
    no_paths,
    scope_record,
)
from pneumocxr.models.io import ONNX_FORMAT as FORMAT
from pneumocxr.models.io import ONNX_NAME as FILE
from pneumocxr.models.io import answer_record as common_record
from pneumocxr.models.scope import OWN, forward_pooled, reference_network

INPUT = "image"
OUTPUTS = ("logit", "scope_score")
OPSET = 17
INSTALL = "install pneumocxr[onnx] (onnxruntime) to use an ONNX model"
INSTALL_EXPORT = "install pneumocxr[onnx] (onnx, onnxruntime) to export a model to ONNX"
NO_GRADCAM = (
    "Grad-CAM needs the PyTorch model (a model.safetensors folder): an ONNX export holds no "
    "gradients; use the folder it was exported from"
)
GRAY_INPUT = Preprocessing(
    image_size=0,
    channels=1,
    mean=(0.0,),
    std=(1.0,),
    color="grayscale, one channel; the graph makes the network's channels and normalisation",
)
DECISION = {
    "input": "the image squashed (aspect not kept, bilinear) to preprocessing.image_size "
    "pixels a side, gray, pixel / 255: float32 N x 1 x S x S, input 'image'",
    "p_pneumonia": "calibration.method platt or temperature: p = 1 / (1 + exp(-(a * logit + b))) "
    "with calibration.a and calibration.b; isotonic: linear interpolation of the logit "
    "between calibration.xs and calibration.ys, the end values outside them; none (or no "
    "calibration record): p = 1 / (1 + exp(-logit))",
    "label": "OUT_OF_SCOPE if the model has a scope record and scope_score > 1; else "
    "UNCERTAIN if uncertain.low <= p < uncertain.high; else PNEUMONIA if p >= threshold; "
    "else NORMAL (pneumocxr.models.calibration.decide)",
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
    """One model's (logit N, scope score N or None) from the gray input at `source` pixels:
    `PneumoNet.logits_and_scope` with the resizes above."""

    def __init__(self, model: PneumoNet, source: int):
        super().__init__()
        from pneumocxr.models.predict import folded

        self.resize = Resize(source, model.image_size)
        self.net = folded(model.eval())
        check = self.net.scope
        if check is not None and check.source != OWN:
            self.reference = reference_network(check.size)
            self.to_reference = Resize(model.image_size, check.size)

    def forward(self, unit: torch.Tensor):
        net, unit = self.net, self.resize(unit)
        if net.scope is None:
            return net(net.model_input(unit))[:, 0], None
        if net.scope.source == OWN:
            logits, features = forward_pooled(net, net.model_input(unit), net.scope.stages)
        else:
            logits = net(net.model_input(unit))
            prep = self.reference.preprocessing()
            x = normalise(self.to_reference(unit), prep.mean, prep.std, prep.channels)
            features = forward_pooled(self.reference, x, net.scope.stages)[1]
        return logits[:, 0], net.scope(features)


class Graph(nn.Module):
    """The exported function: gray image N x 1 x S x S -> (logit N, scope score N); an
    ensemble's mean logit and largest scope score (NaN without a scope check)."""

    def __init__(self, model: PneumoNet):
        super().__init__()
        members = list(model.members) if isinstance(model, Ensemble) else [model]
        self.parts = nn.ModuleList(Single(m, model.image_size) for m in members)
        self.scoped = model.scope_ready()

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


def graph_bytes(model: PneumoNet) -> tuple[bytes, Graph]:
    """The serialised ONNX graph of `model` (float32, dynamic batch)."""
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


# -- saving ---------------------------------------------------------------------------------
def save_onnx(model: PneumoNet, directory, extra: dict, architecture: str) -> Path:
    """model.onnx (its metadata holding the answer record), then model.json naming its hash.
    `extra` carries the threshold, calibration, band, scope record and figures."""
    from pneumocxr.fileio import atomic_path, write_json

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
    if isinstance(model, Ensemble):
        meta["members"] = [member_record(m) for m in model.members]
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
    for key, value in (("format", FORMAT), ("answer", _canonical(answer_record(meta)))):
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    with atomic_path(directory / FILE) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    meta["weights"]["sha256"] = hashlib.sha256((directory / FILE).read_bytes()).hexdigest()
    write_json(directory / META_NAME, meta)
    return directory / META_NAME


def gray_preprocessing(size: int) -> Preprocessing:
    from dataclasses import replace

    return replace(GRAY_INPUT, image_size=size)


def graph_record(model: PneumoNet) -> dict:
    """What the graph is: its input, outputs, opset, and what it does inside."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    size = model.image_size
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
                "architecture": m.name,
                "image_size": m.image_size,
                "preprocessing": m.preprocessing().to_json(),
                "scope_features": None if m.scope is None else m.scope.source,
            }  # fmt: skip
            for m in members
        ],
        "exporter": f"torch.onnx.export (TorchScript-based), torch {torch.__version__}",
    }


def member_record(member: PneumoNet) -> dict:
    return {"architecture": member.name, "image_size": member.image_size,
            "pretrained_from": member.weights_source}  # fmt: skip


def ensemble_scope(model: Ensemble) -> dict | None:
    """An ensemble's scope record: its members' checks, combined by the largest score."""
    if not model.scope_ready():
        return None
    return {
        "method": "the largest of the members' scope scores",
        "features": "the members'",
        "fit_on": "members' training splits",
        "members": [scope_record(m.scope) for m in model.members],
    }


def answer_record(meta: dict, where: Path | None = None) -> dict:
    """`io.answer_record` and the graph's own record."""
    return json.loads(_canonical({**common_record(meta, where), "graph": meta.get("graph")}))


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


# -- loading --------------------------------------------------------------------------------
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
        text = (str(err) or type(err).__name__).strip().splitlines()[0][:300]
        raise PneumoError(f"ONNX Runtime cannot load the graph: {text}") from None


def load_onnx(meta_path: Path, meta: dict):
    """A LoadedModel whose `.model` runs model.onnx with ONNX Runtime, if the graph is the one
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
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
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
    check_answer(answer, answer_record(meta, meta_path), meta_path)
    _check_values(meta, prep, meta_path)
    _check_signature(session, prep.image_size, path)
    net = OnnxNet(session, prep.image_size, bool(meta.get("scope")))
    net.weights_source = record.get("pretrained_from") or net.weights_source
    _check_threshold(meta, meta_path)
    return LoadedModel(net, meta, meta_path.parent)


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


class OnnxNet(PneumoNet):
    """An exported graph behind the interface `models.predict` uses: `logits_and_scope` on
    [0, 1] gray images, `forward` on the same (its preprocessing is the identity), eval and
    BatchNorm folding no-ops. Grad-CAM is refused (no gradients)."""

    name = "onnx"
    min_image_size = 1
    explainable = False

    def __init__(self, session, image_size: int, scoped: bool):
        super().__init__(image_size)
        self.session, self.scoped = session, scoped

    def preprocessing(self) -> Preprocessing:
        return gray_preprocessing(self.image_size)

    def model_input(self, unit: torch.Tensor) -> torch.Tensor:
        return unit

    def outputs(self, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits N x 1, scope scores N) from ONNX Runtime."""
        image = np.ascontiguousarray(unit.detach().float().cpu().numpy())
        logit, scope = self.session.run(list(OUTPUTS), {INPUT: image})
        return torch.from_numpy(logit)[:, None], torch.from_numpy(scope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]

    def logits_and_scope(self, unit: torch.Tensor):
        logits, scope = self.outputs(unit)
        return logits, scope if self.scoped else None

    def scope_ready(self) -> bool:
        return self.scoped

    def stages(self) -> list[nn.Module]:
        return [self]

    def run_stages(self, x, start: int = 0, stop=None):
        return self(x)

    def gradcam_layer(self) -> nn.Module:
        raise PneumoError(NO_GRADCAM)
