"""A model's outputs are checked after every call, whatever the engine: an ONNX graph giving
fewer logits than images, a column of them, integers or NaN, and PyTorch weights that overflow
to NaN get one line and no answer, from the API, the CLI, Grad-CAM and the web API (issue 22)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pneumocxr
from conftest import cli_batch, shared_images
from corpus_more import REWIRINGS, nan_weights_model, onnx_export, rewired
from pneumocxr.errors import PneumoError

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

DAMAGED = "the model is damaged or is no pneumocxr model; no answer was given"
SAYS = {  # what each rewired graph (tests/corpus_more.py) gets said about it
    "fewer-logits": "the model gave logits of shape (1,) for 10 image(s), not one each",
    "nan-logits": "the model gave 10 NaN or infinite logit(s) for 10 image(s)",
    "column-of-logits": "the model gave logits of shape (10, 1) for 10 image(s), not one each",
    "integer-logits": "the graph's output 'logit' is int64, not numbers",
}


@pytest.fixture(scope="module")
def images() -> list[Path]:
    return shared_images("NORMAL", 5, 300) + shared_images("PNEUMONIA", 5, 300)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return onnx_export(tmp_path_factory.mktemp("onnx") / "good")


@pytest.fixture(scope="module")
def damaged(exported, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("damaged")
    return {case: rewired(exported, root / case, case) for case in REWIRINGS}


@pytest.mark.parametrize("case", REWIRINGS)
def test_an_onnx_graph_giving_other_outputs_gets_no_answer(damaged, images, case):
    with pytest.raises(PneumoError) as refused:
        pneumocxr.load_model(damaged[case]).predict(images)
    assert str(refused.value) == f"{SAYS[case]}: {DAMAGED}"


def test_predict_says_so_in_one_line(damaged, images):
    results = cli_batch([["predict", "--model", damaged[case], *images] for case in REWIRINGS])
    for case, result in zip(REWIRINGS, results):
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
