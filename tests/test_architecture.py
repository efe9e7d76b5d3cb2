"""The layers of docs/ARCHITECTURE.md: the map is current, the import contracts catch what
they forbid, and a new architecture is one class plus one registration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import pneumocxr
from conftest import ROOT, make_subset, shared_images
from pneumocxr.networks.base import PneumoNet, init_like_keras
from pneumocxr.networks.registry import MODELS, register_network

LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]  # fmt: skip


def test_the_documented_layer_table_is_the_code_s():
    result = subprocess.run([sys.executable, "tools/architecture.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run(LINT, cwd=tree, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    """The package and its contracts, copied, to break on purpose."""
    tree = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / "src" / "pneumocxr", tree / "src" / "pneumocxr")
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


@pytest.mark.parametrize(
    ("file", "line", "broken"),
    [
        # a lazy import of the API from the data layer: upward, and a cycle through api.py
        ("data/index.py", "    from pneumocxr.api import load_model  # noqa", "Layers"),
        # two files of one package importing each other
        ("data/limits.py", "    from pneumocxr.data import decode  # noqa", "No import cycles"),
    ],
)
def test_the_import_contracts_fail_on_what_they_forbid(tree_copy, file, line, broken):
    assert _lint(tree_copy).returncode == 0  # the copy as it is keeps every contract
    target = tree_copy / "src" / "pneumocxr" / file
    kept = target.read_text()
    try:
        target.write_text(kept + f"\n\ndef _sneaky():\n{line}\n")
        result = _lint(tree_copy)
    finally:
        target.write_text(kept)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout


class TinyNet(PneumoNet):
    """A network defined outside the package: two stages and a name."""

    name = "tiny-test-net"
    min_image_size = 16

    def __init__(self, image_size: int = 32):
        super().__init__(image_size)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1))
        init_like_keras(self)

    def stages(self):
        return [self.features, self.head]

    def gradcam_layer(self):
        return self.features[1]


def test_a_new_architecture_is_one_class_and_one_registration(tmp_path):
    register_network(TinyNet)
    try:
        data = make_subset(tmp_path / "data", 24, 24)
        result = pneumocxr.train(data, model=TinyNet.name, out=tmp_path / "runs", epochs=1,
                                 image_size=32, batch_size=16)  # fmt: skip
        from pneumocxr.pipeline.export import export_model

        export_model(result.run_dir, tmp_path / "exported")
        model = pneumocxr.load_model(tmp_path / "exported")
        assert model.meta["architecture"] == TinyNet.name and model.image_size == 32
        images = shared_images("NORMAL", 2, 100) + shared_images("PNEUMONIA", 2, 100)
        answers = model.predict(images)
        assert len(answers) == 4 and all(0 <= a.p_pneumonia <= 1 for a in answers)
        assert all(a.label in pneumocxr.task.LABELS for a in answers)
        assert model.predict(np.full((64, 64), 128, np.uint8)).label == "OUT_OF_SCOPE"
        assert torch.is_tensor(next(iter(model.loaded.predictor.state_dict().values())))
    finally:
        MODELS.pop(TinyNet.name, None)
