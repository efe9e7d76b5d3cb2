"""ONNX exports (`pneumocxr export --format onnx`): the PyTorch model's answers through predict,
evaluate and serve; the graph on its own as another language would use it; integrity; one-line
refusals."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import EXTERNAL, cli_batch, make_subset, shared_images
from pneumocxr.artifact.load import load_model
from pneumocxr.artifact.onnx_graph import DECISION
from pneumocxr.data.borders import trim_borders
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import sha256_file as sha256

P_TOLERANCE = 1e-4  # calibrated P(pneumonia), ONNX Runtime against PyTorch
SCOPE_TOLERANCE = 1e-3  # scope scores (predict --json rounds them to 4 decimals)
INSTALL = "install pneumocxr[onnx] (onnxruntime) to use an ONNX model"


def parity_images() -> list:
    """32 real images: 16 from the shared training folder, 16 from the external set."""
    external = [sorted((EXTERNAL / label).glob("*.jpeg"))[:8] for label in ("NORMAL", "PNEUMONIA")]
    return shared_images("NORMAL", 8, 200) + shared_images("PNEUMONIA", 8, 200) + sum(external, [])


def ok(results):
    for result in results:
        assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return results


def answers(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, smallnet_run):
    """The shipped model (own-feature scope check, stored float16) and a SmallNet run
    (reference-feature scope check), each exported to ONNX: {name: (source, ONNX folder)}."""
    root = tmp_path_factory.mktemp("onnx")
    sources = {"default": "default", "smallnet": smallnet_run}
    ok(cli_batch([["export", source, "--format", "onnx", "--out", root / name]
                  for name, source in sources.items()], timeout=900))  # fmt: skip
    return {name: (source, root / name) for name, source in sources.items()}


@pytest.mark.parametrize("name", ["default", "smallnet"])
def test_onnx_predicts_what_pytorch_predicts(exported, name):
    source, folder = exported[name]
    images = parity_images()
    # --batch-size 5: batches of 5 and a last one of 2 (the graph's batch is free)
    torch_run, onnx_run = ok(cli_batch([
        ["predict", "--model", source, "--json", *images],
        ["predict", "--model", folder, "--json", "--batch-size", 5, *images],
    ], timeout=600))  # fmt: skip
    expected, found = answers(torch_run), answers(onnx_run)
    assert len(expected) == len(found) == 32
    for want, got in zip(expected, found):
        assert got["path"] == want["path"] and got["label"] == want["label"]
        assert abs(got["p_pneumonia"] - want["p_pneumonia"]) <= P_TOLERANCE
        assert want["scope_score"] is not None and got["in_scope"] == want["in_scope"]
        assert abs(got["scope_score"] - want["scope_score"]) <= SCOPE_TOLERANCE
    assert len({a["label"] for a in expected}) > 1  # not one answer for everything
    meta = json.loads((folder / "model.json").read_text())
    assert meta["format"] == "pneumocxr-onnx/1" and meta["weights"]["file"] == "model.onnx"
    assert meta["preprocessing"]["channels"] == 1 and meta["graph"]["opset"] == 17
    assert meta["decision"] == DECISION  # whole: "pixel / 255" is no path to cut
    features = meta["graph"]["inside"][0]["scope_features"]
    assert features == ("own" if name == "default" else "efficientnet-lite0")
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.onnx"]


def test_the_graph_alone_with_model_json_gives_the_same_answers(exported):
    """What a C# or browser user does: trim uniform borders, resize to S x S gray / 255, run
    the graph, apply model.json's calibration, band, threshold and scope rule as its `decision`
    describes (the trimming is pneumocxr's own function here; another language copies it)."""
    import onnxruntime as ort

    _, folder = exported["default"]
    meta = json.loads((folder / "model.json").read_text())
    images = parity_images()[::4]
    size = meta["preprocessing"]["image_size"]
    assert "borders trimmed" in meta["decision"]["input"] and meta["preprocessing"]["borders"]
    batch = np.stack([
        np.asarray(trim_borders(Image.open(p).convert("L")).resize((size, size),
                                                                   Image.Resampling.BILINEAR))
        for p in images
    ])[:, None].astype(np.float32) / 255  # fmt: skip
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    logit, scope = session.run(["logit", "scope_score"], {"image": batch})
    a, b = meta["calibration"]["a"], meta["calibration"]["b"]
    p = 1 / (1 + np.exp(-(a * logit.astype(np.float64) + b)))
    low, high, threshold = meta["uncertain"]["low"], meta["uncertain"]["high"], meta["threshold"]
    gamma, c = meta["shift_tempering"]["gamma"], np.log(threshold / (1 - threshold))
    assert gamma > 0  # the shipped model's: less sure away from the training X-rays
    p = 1 / (1 + np.exp(-(c + (np.log(p / (1 - p)) - c) / (1 + gamma * np.maximum(0, scope)))))
    labels = [
        "OUT_OF_SCOPE" if s > 1 else "UNCERTAIN" if low <= q < high else
        "PNEUMONIA" if q >= threshold else "NORMAL"
        for q, s in zip(p, scope)
    ]  # fmt: skip
    (run,) = ok(cli_batch([["predict", "--model", folder, "--json", *images]]))
    found = answers(run)
    assert labels == [a["label"] for a in found]
    assert np.allclose(p, [a["p_pneumonia"] for a in found], atol=P_TOLERANCE)
    assert np.allclose(scope, [a["scope_score"] for a in found], atol=SCOPE_TOLERANCE)


# -- integrity ------------------------------------------------------------------------------
def copied(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "m")


def test_an_edited_threshold_is_refused(exported, tmp_path):
    folder = copied(exported["default"][1], tmp_path)
    meta = json.loads((folder / "model.json").read_text())
    meta["threshold"] = 0.1
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(PneumoError, match=r"threshold 0\.1 \(exported: 0\.399.*was edited"):
        load_model(folder)


def test_a_changed_graph_is_refused(exported, tmp_path):
    folder = copied(exported["default"][1], tmp_path)
    graph = folder / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    graph.write_bytes(bytes(data))
    with pytest.raises(PneumoError, match="SHA-256 differs"):
        load_model(folder)
    # another model's graph, with model.json's hash made to agree: its own record tells
    shutil.copy(exported["smallnet"][1] / "model.onnx", graph)
    meta = json.loads((folder / "model.json").read_text())
    meta["weights"]["sha256"] = sha256(graph)
    (folder / "model.json").write_text(json.dumps(meta))
    other = 'architecture "efficientnet-lite0" .exported: "smallnet"'
    with pytest.raises(PneumoError, match=other):
        load_model(folder)


def test_without_onnxruntime_one_line_says_what_to_install(exported, monkeypatch):
    import pneumocxr

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    with pytest.raises(PneumoError) as err:
        pneumocxr.load_model(str(exported["default"][1]))
    assert str(err.value) == INSTALL


# -- evaluate and serve ---------------------------------------------------------------------
def test_evaluate_an_onnx_folder(exported, tmp_path):
    data = make_subset(tmp_path / "data", 12, 12, start=600)
    _, folder = exported["default"]
    ok(cli_batch([["evaluate", "default", "--data", data, "--out", tmp_path / "torch"],
                  ["evaluate", folder, "--data", data, "--out", tmp_path / "onnx"]]))  # fmt: skip
    import pandas as pd

    torch_rows = pd.read_csv(tmp_path / "torch" / "predictions.csv")
    onnx_rows = pd.read_csv(tmp_path / "onnx" / "predictions.csv")
    assert len(onnx_rows) == 24
    assert list(onnx_rows["label"]) == list(torch_rows["label"])
    assert np.allclose(onnx_rows["p_pneumonia"], torch_rows["p_pneumonia"], atol=P_TOLERANCE)
    metrics = json.loads((tmp_path / "onnx" / "metrics.json").read_text())
    expected = json.loads((tmp_path / "torch" / "metrics.json").read_text())
    assert metrics["auc"] == pytest.approx(expected["auc"], abs=1e-3)
    assert "[ONNX]" in (tmp_path / "onnx" / "report.txt").read_text()


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_serve_an_onnx_folder_and_refuse_gradcam(exported):
    from fastapi.testclient import TestClient

    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.inference.predict import predict_paths
    from pneumocxr.serve.app import create_app
    from pneumocxr.serve.service import Service

    _, folder = exported["default"]
    xray = shared_images("PNEUMONIA", 1, 40)[0]
    expected = predict_paths(resolve_model(None), [xray])[0].iloc[0]
    app = create_app(Service.load(folder))  # answers loopback names only: not "testserver"
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        card = client.get("/api/model").json()
        assert card["gradcam"] is False and card["name"].endswith("[ONNX]")
        body = client.post("/api/predict", files={"file": ("x.jpeg", xray.read_bytes())}).json()
        assert body["label"] == expected["label"]
        assert abs(body["p_pneumonia"] - expected["p_pneumonia"]) <= P_TOLERANCE
        refused = client.post(
            "/api/predict", params={"gradcam": "true"}, files={"file": ("x.jpeg", b"")}
        )
        assert refused.status_code == 400 and "\n" not in refused.json()["detail"]
        assert "Grad-CAM needs the PyTorch model" in refused.json()["detail"]
        again = client.post("/api/predict", files={"file": ("x.jpeg", xray.read_bytes())})
        assert again.status_code == 200  # and still serving
        assert client.get("/api/health").json()["status"] == "ok"


# -- ensembles, legacy folders, refusals ----------------------------------------------------
def test_an_ensemble_exports_as_one_graph(exported, tmp_path):
    images = parity_images()[::4]
    small, _ = exported["smallnet"]
    ens, graph = tmp_path / "ensemble", tmp_path / "ensemble-onnx"
    torch_run, onnx_run = ok(cli_batch([
        ["ensemble", "default", small, "--out", ens],
        ["export", ens, "--format", "onnx", "--out", graph],
        ["predict", "--model", ens, "--json", *images],
        ["predict", "--model", graph, "--json", *images],
    ], timeout=900))[2:]  # fmt: skip
    for want, got in zip(answers(torch_run), answers(onnx_run), strict=True):
        assert got["label"] == want["label"]
        assert abs(got["p_pneumonia"] - want["p_pneumonia"]) <= P_TOLERANCE
        assert abs(got["scope_score"] - want["scope_score"]) <= SCOPE_TOLERANCE
    meta = json.loads((graph / "model.json").read_text())
    assert [m["architecture"] for m in meta["members"]] == ["efficientnet-lite0", "smallnet"]
    assert "largest" in meta["scope"]["method"]


def test_a_legacy_folder_exports_to_onnx(tmp_path):
    from pneumocxr.artifact.save import save_model
    from pneumocxr.artifact.schema import LEGACY_MODEL
    from pneumocxr.inference.predict import predict_paths
    from pneumocxr.networks.smallnet import SmallNet
    from pneumocxr.pipeline.export import export_model

    save_model(SmallNet(32), tmp_path / "old")  # no scope check
    meta = json.loads((tmp_path / "old" / "model.json").read_text())
    meta["format"] = LEGACY_MODEL
    (tmp_path / "old" / "model.json").write_text(json.dumps(meta))
    export_model(tmp_path / "old", tmp_path / "new", fmt="onnx")
    images = shared_images("NORMAL", 2) + shared_images("PNEUMONIA", 2)
    before = predict_paths(load_model(tmp_path / "old", legacy=True), images)[0]
    after = predict_paths(load_model(tmp_path / "new"), images)[0]
    assert np.allclose(after["p_pneumonia"], before["p_pneumonia"], atol=P_TOLERANCE)
    assert after["scope_score"].isna().all() and not load_model(tmp_path / "new").has_scope
    with pytest.raises(PneumoError, match="--format must be one of safetensors, onnx"):
        export_model(tmp_path / "old", tmp_path / "other", fmt="tflite")


def test_refusals_are_one_line(exported, tmp_path):
    _, folder = exported["default"]
    image = shared_images("NORMAL", 1)[0]
    results = cli_batch([
        ["export", "default", "--format", "tflite", "--out", tmp_path / "a"],
        ["export", "default", "--format", "onnx", "--half", "--out", tmp_path / "b"],
        ["export", folder, "--out", tmp_path / "c"],
        ["gradcam", folder, image, "--out", tmp_path / "d"],
        ["ensemble", folder, "default", "--out", tmp_path / "e"],
        ["bench", "--model", folder],
    ])  # fmt: skip
    codes = [r.returncode for r in results]
    assert codes == [2, 1, 1, 1, 1, 1], [(r.args, r.stderr) for r in results]
    assert "'tflite' is not one of 'safetensors', 'onnx'" in results[0].stderr
    messages = [r.stderr.strip() for r in results[1:]]
    assert all(m.startswith("error: ") and "\n" not in m for m in messages), messages
    assert "--half applies to model.safetensors" in messages[0]
    assert "already an ONNX export" in messages[1]
    assert "Grad-CAM needs the PyTorch model" in messages[2]
    assert "not ONNX exports" in messages[3]
    assert "bench measures PyTorch models" in messages[4]
    assert list(tmp_path.iterdir()) == []  # nothing written, no empty folder either
