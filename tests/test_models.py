"""Architectures: parameter counts, weight loading, and that pretrained really is pretrained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import cli
from pneumocxr.errors import PneumoError
from pneumocxr.networks.efficientnet_lite import EfficientNetLite0
from pneumocxr.networks.registry import MODELS, build_model
from pneumocxr.networks.smallnet import SmallNet
from pneumocxr.networks.summary import parameter_counts, summary_text
from pneumocxr.networks.vgg16 import VGG16
from pneumocxr.networks.weights import read_state_dict, trust_pickle
from pneumocxr.training.phases import first_trainable_stage


def test_smallnet_layers_match_the_tutorial():
    model = SmallNet(224)
    sizes = [p.numel() for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p.numel() for name, p in model.named_parameters() if name.endswith("bias")]
    per_layer = [w + b for w, b in zip(sizes, biases)]
    assert per_layer == [896, 18_496, 36_928, 11_075_648, 65]
    assert parameter_counts(model)["total_params"] == 11_132_033
    text = summary_text(model)
    for figure in ("896", "18,496", "36,928", "11,075,648", "65", "11,132,033"):
        assert figure in text
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 1)


def test_vgg16_counts_and_layout():
    model = VGG16(224)
    model.freeze_before(first_trainable_stage(model, 0))
    counts = parameter_counts(model)
    assert counts["frozen_params"] == 14_714_688
    assert counts["trainable_params"] == 107_157_601
    keys = [k for k in model.state_dict() if k.startswith("features.")]
    assert keys[0] == "features.0.weight" and keys[-1] == "features.28.bias"
    assert "107,157,601" in summary_text(model)


def test_models_command_lists_every_architecture():
    rows = json.loads(cli("models", "--json").stdout)
    assert [r["name"] for r in rows] == list(MODELS)
    vgg = next(r for r in rows if r["name"] == "vgg16")
    assert (vgg["frozen_params"], vgg["trainable_params"]) == (14_714_688, 107_157_601)
    small = next(r for r in rows if r["name"] == "smallnet")
    assert small == {
        "name": "smallnet",
        "input_size": 224,
        "total_params": 11_132_033,
        "trainable_params": 11_132_033,
        "frozen_params": 0,
    }
    assert "11,132,033" in cli("models").stdout


def _torchvision_style_state(model: VGG16, seed: int = 0) -> dict:
    """What torchvision's vgg16-397923af.pth holds: features.* plus a 1000-class classifier."""
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) for k, v in model.features.state_dict().items()}
    state = {f"features.{k}": v for k, v in state.items()}
    state["classifier.0.weight"] = torch.randn(4096, 25088 // 49)  # ignored by our head
    state["classifier.6.bias"] = torch.randn(1000)
    return state


def test_vgg16_loads_a_torchvision_state_dict(tmp_path):
    state = _torchvision_style_state(VGG16(64))
    torch.save(state, tmp_path / "vgg16-397923af.pth")
    trust_pickle(tmp_path / "vgg16-397923af.pth")  # what --trust-pickle does
    model = VGG16.create(64, weights=str(tmp_path / "vgg16-397923af.pth"))
    assert torch.equal(model.features[0].weight, state["features.0.weight"])
    assert torch.equal(model.features[28].bias, state["features.28.bias"])
    assert "file" in model.weights_source


def test_vgg16_rejects_a_wrong_shape(tmp_path):
    state = _torchvision_style_state(VGG16(64))
    state["features.28.weight"] = torch.zeros(512, 256, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    trust_pickle(tmp_path / "bad.pth")
    with pytest.raises(PneumoError, match=r"features.28.weight has shape \(512, 256, 3, 3\)"):
        VGG16.create(64, weights=str(tmp_path / "bad.pth"))
    result = cli(
        "train",
        "--model",
        "vgg16",
        "--weights",
        tmp_path / "bad.pth",
        "--trust-pickle",
        "--data",
        tmp_path,
        check=False,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_pickled_objects_are_refused(tmp_path):
    import pickle

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"features.0.weight": object()}))
    with pytest.raises(PneumoError, match="pickle-based PyTorch file.*--trust-pickle"):
        read_state_dict(tmp_path / "evil.pth")
    with pytest.raises(PneumoError, match="holds Python objects") as refused:  # weights_only
        read_state_dict(tmp_path / "evil.pth", trusted=True)
    assert "weights_only=False" not in str(refused.value)


def test_offline_vgg16_download_fails_clearly(tmp_path, small_data):
    env = {
        "TORCH_HOME": str(tmp_path / "torch"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    result = cli(
        "train", "--model", "vgg16", "--data", small_data, "--out", tmp_path, check=False, env=env
    )
    assert result.returncode == 1
    lines = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in lines[0]
    assert "--weights" in lines[0]


LITE = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]


@pytest.mark.parametrize("name", LITE)
def test_efficientnet_loads_the_packaged_weights(name):
    model = build_model(name)
    reference = torch.load(model.packaged_path(), map_location="cpu", weights_only=True)
    own = model.state_dict()
    backbone = [k for k in own if not k.startswith("head.")]
    assert set(backbone) == set(reference) - {"_fc.weight", "_fc.bias"}
    for key in backbone:
        assert torch.equal(own[key], reference[key]), key


@pytest.mark.parametrize("name", LITE)
def test_efficientnet_matches_the_reference_implementation(name):
    efficientnet_lite_pytorch = pytest.importorskip("efficientnet_lite_pytorch")
    ours = build_model(name).eval()
    reference = efficientnet_lite_pytorch.EfficientNet.from_pretrained(
        name, weights_path=ours.packaged_path()
    ).eval()
    size = ours.image_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference.extract_features(x).mean(dim=(2, 3))
        got = ours.run_stages(x, 0, ours.backbone_stages)  # the backbone ends with pooling
    assert torch.allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_stages_compose_to_forward_and_any_size_works(name):
    model = build_model(name, 96, weights="none").eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(model(x), model.run_stages(model.run_stages(x, 0, 2), 2), atol=1e-5)
    assert model.gradcam_layer() in list(model.modules())


def _probe(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """A 5-fold cross-validated logistic-regression probe: its AUC and log loss."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = cross_val_predict(probe, features, labels, cv=folds, method="predict_proba")[:, 1]
    return {"auc": roc_auc_score(labels, scores), "log_loss": log_loss(labels, scores)}


def test_linear_probe_proves_the_weights_are_pretrained(data_root):
    """Frozen ImageNet features must separate the classes far better than random ones.

    Random convolutional features are a strong baseline on this data (probe AUC about 0.97),
    so the margin is judged on the probe's errors: with ImageNet features its ranking error
    (1 - AUC) is less than half and its log loss clearly lower (measured on these 400 images:
    AUC 0.989 vs 0.973, log loss 0.12 vs 0.19).
    """
    from pneumocxr.data.dataset import subset_patients
    from pneumocxr.data.decode import decode_all
    from pneumocxr.data.index import index_images
    from pneumocxr.training.features import run_frozen

    table = subset_patients(index_images(data_root), 400, seed=0)
    pixels = decode_all(table["path"], 224).pixels
    labels = (table["label"] == "PNEUMONIA").to_numpy(int)
    results = {}
    for weights in ("default", "none"):
        torch.manual_seed(0)
        model = EfficientNetLite0.create(224, weights=weights)
        features = run_frozen(model, pixels, 0, model.backbone_stages).numpy()  # N x 1280
        results[weights] = _probe(features, labels)
    pretrained, random = results["default"], results["none"]
    assert pretrained["auc"] > 0.98, results
    assert 1 - random["auc"] > 2 * (1 - pretrained["auc"]), results
    assert random["log_loss"] > 1.3 * pretrained["log_loss"], results


@pytest.mark.parametrize("name", ["smallnet", "efficientnet-lite0"])
def test_first_convolution_reads_the_gray_channel_and_is_the_same_function(name):
    """A gray batch reaches the network as one channel shown three times (a stride-0 view);
    the first convolution then runs on the one channel with its weights summed: a third of its
    multiplications, channels-last output, and the same outputs and gradients as three real
    channels (its first stage in float64, equal up to rounding)."""
    from torch.utils.flop_counter import FlopCounterMode

    from pneumocxr.data.transforms import is_gray_view, network_input, prepare_batch

    torch.manual_seed(0)
    model = build_model(name, 40, weights="none").train()
    pixels = torch.randint(0, 256, (2, 1, 40, 40), dtype=torch.uint8)
    view = prepare_batch(pixels, model.preprocessing())
    copy = view.contiguous(memory_format=torch.channels_last)  # three real channels
    assert is_gray_view(view) and not is_gray_view(copy)
    flop = []
    for x in (view, copy):
        with FlopCounterMode(display=False) as counter:
            out = model.stages()[0](x)
        assert out.is_contiguous(memory_format=torch.channels_last)
        flop.append(counter.get_total_flops())
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    saved = 2 * first.weight[:, 1:].numel() * out.shape[0] * out.shape[2] * out.shape[3]
    # SmallNet's stage pools after the convolution: its output size is not the conv's.
    if name == "efficientnet-lite0":
        assert flop[1] - flop[0] == saved
    assert flop[0] < flop[1]
    stage = model.stages()[0].double()  # the stage the change is in, and its gradients
    view = network_input(pixels.double() / 255, model.preprocessing())
    copy = view.contiguous(memory_format=torch.channels_last)
    results = []
    for x in (view, copy):
        stage.zero_grad()
        out = stage(x)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in stage.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.allclose(out_a, out_b, rtol=1e-9, atol=1e-12)
    for a, b in zip(grads_a, grads_b):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_per_channel_normalisation_gets_three_real_channels():
    """VGG16's ImageNet normalisation differs per channel: no gray view, the 3-channel copy."""
    from pneumocxr.data.transforms import is_gray_view, network_input
    from pneumocxr.task import IMAGENET_NORMALISATION

    unit = torch.rand(2, 1, 32, 32)
    x = network_input(unit, VGG16(32).preprocessing())
    assert not is_gray_view(x) and x.is_contiguous(memory_format=torch.channels_last)
    mean, std = IMAGENET_NORMALISATION
    for c in range(3):
        assert torch.allclose(x[:, c], (unit[:, 0] - mean[c]) / std[c])


def test_smallnet_max_pool_keeps_only_indices_and_gives_torchs_gradients():
    """SmallNet's max-pool saves its argmax indices, not its input, for the backward pass
    (the first convolution's 200 MB output per batch of 32 is freed once pooled); its
    gradients are torch's, ties included."""
    from pneumocxr.networks.maxpool import MaxPool2d

    x = torch.randn(2, 8, 21, 22).contiguous(memory_format=torch.channels_last)
    x[0, 0, :4, :4] = 1.0  # ties: both must send the gradient to the same element
    results = []
    for pool in (MaxPool2d(), torch.nn.MaxPool2d(2)):
        leaf = x.clone().requires_grad_()
        saved: list = []

        def keep(t, saved=saved):
            saved.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            out = pool(leaf * 1.0)  # a non-leaf input, as in the network
        out.backward(torch.arange(out.numel(), dtype=torch.float32).view_as(out))
        results.append((out.detach(), leaf.grad, saved))
    (out_a, grad_a, saved_a), (out_b, grad_b, saved_b) = results
    assert torch.equal(out_a, out_b) and torch.equal(grad_a, grad_b)
    assert [t.dtype for t in saved_a] == [torch.int64]  # torch's keeps the input too
    assert torch.float32 in [t.dtype for t in saved_b]
    assert isinstance(SmallNet(64).features[1], MaxPool2d)
