"""Speed work that must not change results: streamed prediction, the cold `predict` path and
`pneumocxr bench` (the figures themselves live in benchmarks/, not here)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import cli, shared_images
from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.bench.reference import (
    Gemm,
    eager_smallnet,
    forward_flop_per_image,
    train_flop_per_image,
)
from pneumocxr.data.decode import DecodeStream, decode_all
from pneumocxr.inference.batches import predict_pixels
from pneumocxr.inference.predict import predict_paths
from pneumocxr.networks.smallnet import SmallNet

TRAINING_LIBRARIES = {"lightning", "pytorch_lightning", "torchmetrics", "tensorboard", "kornia"}
SLOW_IMPORTS = {"pandas", "sklearn", "matplotlib"}  # not needed to predict; each costs time


@pytest.fixture(scope="module")
def small_model() -> LoadedModel:
    torch.manual_seed(0)
    model = SmallNet(64).eval()
    meta = {"preprocessing": model.preprocessing().to_json(), "architecture": "smallnet"}
    return LoadedModel(model, meta, path=None)


@pytest.fixture(scope="module")
def files_with_failures(tmp_path_factory) -> list:
    bad = tmp_path_factory.mktemp("bad") / "broken.jpeg"
    bad.write_text("not an image")
    images = shared_images("NORMAL", 7) + shared_images("PNEUMONIA", 6)
    return images[:4] + [bad] + images[4:9] + [bad.parent / "missing.png"] + images[9:]


def test_streamed_prediction_is_exactly_decoding_everything_first(small_model, files_with_failures):
    decoded = decode_all(files_with_failures, 64)
    # The same batches: the readable images of each run of 5 inputs (a failure shifts none).
    rank = np.cumsum(decoded.ok) - 1
    windows = [rank[(np.arange(len(decoded.ok)) // 5 == w) & decoded.ok] for w in range(3)]
    expected = np.concatenate(
        [predict_pixels(small_model.predictor, decoded.pixels[w], batch_size=5) for w in windows]
    )
    table, failures = predict_paths(small_model, files_with_failures, batch_size=5)
    assert np.array_equal(table["p_pneumonia"].to_numpy(), expected)  # same batches, same bits
    assert failures == decoded.failures and len(failures) == 2
    readable = [str(p) for p, ok in zip(files_with_failures, decoded.ok) if ok]
    assert table["path"].tolist() == readable
    # Chunks smaller than a batch still give the batches of the inputs' runs of 5.
    stream = DecodeStream(files_with_failures, 64, batch_size=5, chunk=3)
    assert [len(b) for b in stream] == [4, 5, 4]
    assert np.array_equal(stream.ok, decoded.ok)


def test_cold_predict_imports_no_training_library(tmp_path):
    image = shared_images("PNEUMONIA", 1)[0]
    script = (
        "import json, sys\n"
        "from pneumocxr.cli import main\n"
        f"sys.argv = ['pneumocxr', 'predict', {str(image)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(str(image)) and lines[0].split("\t")[1] in ("NORMAL", "PNEUMONIA")
    loaded = set(json.loads(lines[-1]))
    assert "torch" in loaded and not loaded & (TRAINING_LIBRARIES | SLOW_IMPORTS)


def test_eager_reference_is_the_tutorial_smallnet():
    reference, ours = eager_smallnet(224), SmallNet(224)
    assert sum(p.numel() for p in reference.parameters()) == 11_132_033
    assert [p.shape for p in reference.parameters()] == [p.shape for p in ours.parameters()]
    ours.load_state_dict(dict(zip(ours.state_dict(), reference.state_dict().values())))
    x = torch.rand(2, 3, 224, 224)
    # Our SmallNet pools before two of its ReLUs: the same function.
    assert torch.allclose(reference(x), ours(x), atol=1e-5)
    gflop = 3 * forward_flop_per_image(reference, x) / 1e9
    assert 2.1 < gflop < 2.3  # the "about 2.2 GFLOP per image"


def test_bench_quick_gives_every_figure_and_its_ratios(tmp_path):
    result = cli("bench", "--quick", "--json", "--image-size", "64", "--batch-size", "8",
                 "--steps", "2", "--data", shared_images("NORMAL", 1)[0].parent)  # fmt: skip
    figures = json.loads(result.stdout)
    for key in ("smallnet_train_img_s", "eager_reference_img_s", "gemm_gflops",
                "smallnet_train_gflops", "infer_img_s", "latency_p50_ms", "latency_p99_ms",
                "peak_rss_mb", "transfer_head_img_s", "transfer_head_epoch_s",
                "transfer_finetune_img_s"):  # fmt: skip
        assert figures[key] > 0, key
    assert figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    ratio = figures["ratios"]["smallnet_train"]
    assert ratio["x_eager"] == pytest.approx(
        figures["smallnet_train_img_s"] / figures["eager_reference_img_s"]
    )
    assert ratio["gemm_share"] == pytest.approx(
        figures["smallnet_train_gflops"] / figures["gemm_gflops"]
    )
    assert len(figures["eager_reference_step_s"]) == 3  # one after each SmallNet batch
    assert len(figures["gemm_step_s"]) == 3  # the ceiling, measured between the same batches
    assert figures["gemm_best_gflops"] > 0
    for args, message in (
        (("--steps", "1"), "error: --steps must be at least 2"),
        (
            ("--transfer", "smallnet"),
            "error: --transfer must be a pretrained model, not 'smallnet'",
        ),
        (("--model", tmp_path / "none"), f"error: model not found: {tmp_path / 'none'}"),
    ):
        refused = cli("bench", *args, check=False)
        assert refused.returncode == 1 and refused.stderr.strip() == message


def test_training_flop_are_counted_as_the_step_runs():
    """A step's FLOP: forward, the weights' gradients, the inputs' gradients only where they
    are computed (none for the first layer's input), grouped convolutions counted per group."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    first, depthwise = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3, groups=8)
    net = torch.nn.Sequential(first, depthwise)
    forward = [forward_flop_per_image(m, i) for m, i in ((first, x), (depthwise, first(x)))]
    counted = train_flop_per_image(lambda t: net(t).sum(), x)
    # first: forward + weights' gradient; depthwise: forward + weights' + its input's gradient
    assert counted == pytest.approx(2 * forward[0] + 3 * forward[1])
    assert forward[1] == 2 * 8 * 9 * 28 * 28  # one input channel per output channel


def test_gemm_ceiling_is_total_work_over_total_time():
    gemm = Gemm(64)
    for _ in range(4):
        gemm.step()
    assert len(gemm.seconds) == 4
    work = 2 * 64**3
    assert gemm.gflops() == pytest.approx(4 * work / sum(gemm.seconds) / 1e9)
    assert gemm.best_gflops() == pytest.approx(work / min(gemm.seconds) / 1e9)
    assert gemm.best_gflops() >= gemm.gflops()
