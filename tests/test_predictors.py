"""One contract every predictor keeps (scikit-learn's `check_estimator` in spirit): a single
network with its scope check, an ensemble, flip TTA and an ONNX Runtime session."""

from __future__ import annotations

import pytest
import torch

from pneumocxr.artifact.onnx_graph import graph_bytes
from pneumocxr.networks.features import forward_pooled
from pneumocxr.networks.smallnet import SmallNet
from pneumocxr.predictors.ensemble import Ensemble
from pneumocxr.predictors.onnx import OnnxPredictor, open_session
from pneumocxr.predictors.single import NetworkPredictor
from pneumocxr.predictors.tta import FlipTTA
from pneumocxr.scope.check import OWN, ScopeCheck


def _single(size: int, seed: int) -> NetworkPredictor:
    torch.manual_seed(seed)
    network = SmallNet(size).eval()
    probe = network.preprocessing()
    x = torch.zeros(1, probe.channels, size, size)
    dims = [f.shape[1] for f in forward_pooled(network, x)[1]]
    return NetworkPredictor(network, ScopeCheck(dims, OWN, None, network.feature_stages()))


def _predictors():
    single = _single(48, 0)
    ensemble = Ensemble([single, _single(40, 1)])
    onnx = OnnxPredictor(open_session(graph_bytes(single)[0]), 48, scoped=True)
    return {"single": single, "ensemble": ensemble, "tta": FlipTTA(single), "onnx": onnx}


PREDICTORS = _predictors()


@pytest.mark.parametrize("name", list(PREDICTORS))
def test_every_predictor_keeps_the_contract(name):
    predictor = PREDICTORS[name].eval()
    unit = torch.rand(5, 1, predictor.image_size, predictor.image_size,
                      generator=torch.Generator().manual_seed(3))  # fmt: skip
    with torch.no_grad():
        logits = predictor.logits(unit)
        again, scope = predictor.outputs(unit)
        alone = predictor.logits(unit[2:3])
    assert logits.shape == (5,) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits, again, atol=1e-5)  # with or without the scope check
    assert torch.equal(logits, predictor.logits(unit).detach())  # deterministic
    assert torch.allclose(alone, logits[2:3], atol=1e-5)  # its batch does not change it
    assert predictor.scoped and scope.shape == (5,) and torch.isfinite(scope).all()
    assert predictor.preprocessing().image_size == predictor.image_size
    networks = all(isinstance(m, NetworkPredictor) for m in predictor.members())
    assert networks == predictor.explainable  # Grad-CAM reads the members' networks


def test_the_onnx_graph_computes_what_its_predictor_does():
    unit = torch.rand(4, 1, 48, 48, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = PREDICTORS["single"].outputs(unit)
    got = PREDICTORS["onnx"].outputs(unit)
    for a, b in zip(want, got):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
