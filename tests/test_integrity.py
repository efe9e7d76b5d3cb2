"""Model integrity: a damaged, edited or half-written model is refused with one line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load, save_file

from conftest import cli, shared_images
from corpus import good_model
from pneumocxr.artifact import save as artifact_save
from pneumocxr.artifact.load import load_model
from pneumocxr.artifact.resolve import DEFAULT_MODEL_DIR
from pneumocxr.artifact.save import save_model
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import sha256_file as sha256
from pneumocxr.networks.smallnet import SmallNet


def edit_weights(folder, change, rehash=False, unlist=False):
    """Change model.safetensors; with `rehash`, model.json is made to agree (as a careless
    tool or a resumed export would), so only the deeper checks can notice."""
    path = folder / "model.safetensors"
    with safe_open(str(path), "pt") as handle:
        header = handle.metadata()  # kept, as a tool that edits tensors would keep it
    state = load(path.read_bytes())
    change(state)
    save_file(state, str(path), metadata=header)
    if rehash or unlist:
        meta = json.loads((folder / "model.json").read_text())
        meta["weights"]["sha256"] = sha256(path)
        if unlist:
            del meta["weights"]["tensors"]  # as older exports wrote it
        (folder / "model.json").write_text(json.dumps(meta))


@pytest.fixture
def shipped(tmp_path):
    return shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "m", ignore=shutil.ignore_patterns("*.md"))


@pytest.fixture
def small(tmp_path):
    return good_model(tmp_path / "small")


def test_the_shipped_model_lists_what_it_stores():
    meta = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())
    stored = load((DEFAULT_MODEL_DIR / "model.safetensors").read_bytes())
    assert sorted(stored) == meta["weights"]["tensors"]
    assert sha256(DEFAULT_MODEL_DIR / "model.safetensors") == meta["weights"]["sha256"]
    load_model(DEFAULT_MODEL_DIR)


def test_a_shipped_model_without_its_head_is_refused(shipped):
    edit_weights(shipped, lambda s: s.pop("head.1.weight"))
    result = cli("predict", "--model", shipped, shared_images("NORMAL", 1)[0], check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "SHA-256 differs" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("key", ["head.1.weight", "_conv_head.weight"])
def test_a_removed_tensor_is_found_even_when_the_hash_was_updated(shipped, key):
    edit_weights(shipped, lambda s: s.pop(key), rehash=True)
    with pytest.raises(PneumoError, match=f"lacks tensor {key}"):
        load_model(shipped)


def test_a_deleted_tensor_list_is_named(shipped):
    edit_weights(shipped, lambda s: s.pop("head.1.weight"), unlist=True)
    with pytest.raises(PneumoError, match="weights.tensors null .exported: "):
        load_model(shipped)


def test_altered_smallnet_weights_are_refused(small):
    edit_weights(small, lambda s: s["head.3.bias"].add_(0.5))
    with pytest.raises(PneumoError, match="does not match model.json"):
        load_model(small)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update({"head.3.bias": s["head.3.bias"].half()}), "is torch.float16"),
        (lambda s: s["head.3.bias"].fill_(float("nan")), "NaN or infinite"),
        (lambda s: s.update({"head.3.bias": torch.zeros(2)}), "has shape"),
        (lambda s: s.update({"extra.weight": torch.zeros(1)}), "unlisted tensor extra"),
    ],
)
def test_dtype_shape_values_and_extra_tensors_are_checked(small, change, message):
    edit_weights(small, change, rehash=True)
    with pytest.raises(PneumoError, match=message):
        load_model(small)


def test_weights_newer_than_their_metadata_are_refused(small, monkeypatch):
    """kill -9 between the two files of an export: new weights beside the old model.json."""
    meta = json.loads((small / "model.json").read_text())
    meta["threshold"] = 0.1234
    (small / "model.json").write_text(json.dumps(meta))

    def killed(*_):
        raise KeyboardInterrupt  # stands for SIGKILL: model.json is never written

    monkeypatch.setattr(artifact_save, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        save_model(SmallNet(32), small)
    result = cli("predict", "--model", small, "--threshold", "model",
                 shared_images("NORMAL", 1)[0], check=False)  # fmt: skip
    assert result.returncode == 1 and "SHA-256 differs" in result.stderr
    assert "0.1234" not in result.stdout


def test_a_changed_packaged_base_is_refused(monkeypatch):
    from pneumocxr.networks.efficientnet_lite import EfficientNetLite0

    monkeypatch.setattr(EfficientNetLite0, "weights_sha256", "0" * 64)
    with pytest.raises(PneumoError, match="not the pinned 000000000000"):
        EfficientNetLite0.create(64)
