"""A model's outputs are checked after every call, whatever the engine: an ONNX graph giving
fewer logits than images, a column of them, integers or NaN, and PyTorch weights that overflow
to NaN get one line and no answer, from the API, the CLI, Grad-CAM and the web API (issue 22)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

import pneumocxr
from conftest import cli_batch, shared_images
from pneumocxr.errors import PneumoError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

DAMAGED = "the model is damaged or is no pneumocxr model; no answer was given"


@pytest.fixture(scope="module")
def images() -> list[Path]:
    return shared_images("NORMAL", 5, 300) + shared_images("PNEUMONIA", 5, 300)


def nan_weights_model(folder: Path) -> Path:
    """A SmallNet whose weights are all finite, but whose last layer's products overflow to
    +inf and -inf, which add up to NaN: hidden units of 2 times weights of +-3e38."""
    from pneumocxr.artifact.save import save_model
    from pneumocxr.networks.registry import build_model

    network = build_model("smallnet", 64, weights="none")
    hidden, last = network.head[1], network.head[3]
    with torch.no_grad():
        hidden.weight.zero_()
        hidden.bias.fill_(2.0)
        last.weight.copy_(torch.tensor([3e38, -3e38]).repeat(last.weight.shape[1] // 2)[None])
    save_model(network, folder)
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A real ONNX export of a small SmallNet."""
    from pneumocxr.artifact.onnx_save import save_onnx
    from pneumocxr.networks.registry import build_model
    from pneumocxr.predictors.single import NetworkPredictor

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("onnx") / "good"
    save_onnx(NetworkPredictor(build_model("smallnet", 64, weights="none")), folder, {}, "smallnet")
    return folder


def _constant(name: str, values, kind=TensorProto.INT64):
    tensor = helper.make_tensor(name, kind, [len(values)], values)
    return helper.make_node("Constant", [], [name], value=tensor)


# The graph's `logit` output, rewired: what a damaged or hostile export might compute.
REWIRED = {
    "fewer-logits": [_constant("s", [0]), _constant("e", [1]),
                     helper.make_node("Slice", ["raw", "s", "e"], ["logit"])],
    "nan-logits": [_constant("nan", [float("nan")], TensorProto.FLOAT),
                   helper.make_node("Mul", ["raw", "nan"], ["logit"])],
    "column-of-logits": [_constant("axis", [1]),
                         helper.make_node("Unsqueeze", ["raw", "axis"], ["logit"])],
    "integer-logits": [helper.make_node("Cast", ["raw"], ["logit"], to=TensorProto.INT64)],
}  # fmt: skip
SAYS = {
    "fewer-logits": "the model gave logits of shape (1,) for 10 image(s), not one each",
    "nan-logits": "the model gave 10 NaN or infinite logit(s) for 10 image(s)",
    "column-of-logits": "the model gave logits of shape (10, 1) for 10 image(s), not one each",
    "integer-logits": "the graph's output 'logit' is int64, not numbers",
}


def rewired(source: Path, folder: Path, nodes: list) -> Path:
    """A copy of an ONNX export whose `logit` is `nodes` applied to the real one, with
    model.json's hash made to agree (the graph's own answer record is untouched)."""
    shutil.copytree(source, folder)
    proto = onnx.load(folder / "model.onnx")
    for node in proto.graph.node:
        node.output[:] = ["raw" if name == "logit" else name for name in node.output]
        node.input[:] = ["raw" if name == "logit" else name for name in node.input]
    proto.graph.node.extend(nodes)
    if nodes[-1].op_type == "Cast":
        proto.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    (folder / "model.onnx").write_bytes(proto.SerializeToString())
    meta = json.loads((folder / "model.json").read_text())
    meta["weights"]["sha256"] = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def damaged(exported, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("damaged")
    return {case: rewired(exported, root / case, nodes) for case, nodes in REWIRED.items()}


@pytest.mark.parametrize("case", list(REWIRED))
def test_an_onnx_graph_giving_other_outputs_gets_no_answer(damaged, images, case):
    with pytest.raises(PneumoError) as refused:
        pneumocxr.load_model(damaged[case]).predict(images)
    assert str(refused.value) == f"{SAYS[case]}: {DAMAGED}"


def test_predict_says_so_in_one_line(damaged, images):
    results = cli_batch([["predict", "--model", damaged[case], *images] for case in REWIRED])
    for case, result in zip(REWIRED, results):
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.splitlines()[-1] == f"error: {SAYS[case]}: {DAMAGED}"


def test_the_untouched_export_answers_every_image(exported, images):
    assert len(pneumocxr.load_model(exported).predict(images)) == len(images)


def test_weights_that_overflow_to_nan_get_no_label(images, tmp_path):
    from fastapi.testclient import TestClient

    from pneumocxr.serve.app import create_app
    from pneumocxr.serve.service import Service

    folder = nan_weights_model(tmp_path / "nan")
    model = pneumocxr.load_model(folder)
    said = "the model gave 2 NaN or infinite logit(s) for 2 image(s)"
    with pytest.raises(PneumoError, match=re.escape(said)):
        model.predict(images[:2])
    with pytest.raises(PneumoError, match=re.escape("gave 1 NaN or infinite logit(s) for 1")):
        model.gradcam(images[0])
    predict, gradcam = cli_batch(
        [
            ["predict", "--model", folder, *images[:2]],
            ["gradcam", folder, images[0], "--out", tmp_path],
        ]
    )
    for result in (predict, gradcam):
        assert result.returncode == 1 and "NaN or infinite logit" in result.stderr
        assert "NORMAL" not in result.stdout and "PNEUMONIA" not in result.stdout
    app = create_app(Service(model.loaded, "model", 10**6))
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        answer = client.post("/api/predict", files={"file": ("a.jpeg", images[0].read_bytes())})
    assert answer.status_code == 500 and "NaN or infinite logit" in answer.json()["detail"]
