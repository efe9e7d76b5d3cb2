"""Exported models: `model.safetensors` (tensors only) + `model.json` (everything else).

Nothing here unpickles. When a model's backbone weights ship with an installed package
(EfficientNet-Lite0), only the tensors that differ from them are stored, and the JSON names
the base file and its SHA-256 so a changed base is detected instead of silently used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from pneumocxr import CLASS_NAMES, __version__
from pneumocxr.errors import PneumoError
from pneumocxr.fileio import atomic_path, read_json, write_json
from pneumocxr.models.base import PneumoNet, Preprocessing
from pneumocxr.models.registry import model_class
from pneumocxr.models.weights import read_state_dict, sha256

FORMAT = "pneumocxr-model/1"
ENSEMBLE_FORMAT = "pneumocxr-ensemble/1"
WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"


@dataclass
class LoadedModel:
    model: PneumoNet
    meta: dict
    path: Path

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_json(self.meta["preprocessing"])

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))


def save_model(model: PneumoNet, directory, extra: dict | None = None, dtype=torch.float32):
    """Write model.safetensors and model.json into `directory` (atomically, each)."""
    directory = Path(directory)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    base = _packaged_base(model)
    if base is not None:
        state = {k: v for k, v in state.items() if not _same(v, base["tensors"].get(k))}
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    meta = {
        "format": FORMAT,
        "architecture": model.name,
        "preprocessing": model.preprocessing().to_json(),
        "class_names": list(CLASS_NAMES),
        "output": "one logit; sigmoid(logit) = P(PNEUMONIA)",
        "threshold": 0.5,
        "weights": {
            "file": WEIGHTS_NAME,
            "dtype": str(dtype).replace("torch.", ""),
            "sha256": sha256(directory / WEIGHTS_NAME),
            "pretrained_from": model.weights_source,
            "base": None if base is None else {"file": base["file"], "sha256": base["sha256"]},
        },
        "pneumocxr_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    write_json(directory / META_NAME, meta)
    return directory / META_NAME


def load_model(path) -> LoadedModel:
    """Load an exported model from its folder, its model.json or its .safetensors file."""
    meta_path = _meta_path(Path(path))
    meta = read_json(meta_path)
    found = meta.get("format") if isinstance(meta, dict) else None
    if found == ENSEMBLE_FORMAT:
        from pneumocxr.models.ensemble import load_ensemble

        return load_ensemble(meta_path, meta)
    if found != FORMAT:
        raise PneumoError(f"{meta_path} is not a pneumocxr model file (format {found!r})")
    try:
        cls = model_class(meta["architecture"])
        prep = Preprocessing.from_json(meta["preprocessing"])
        base = meta["weights"].get("base")
        weights_file = meta["weights"]["file"]
    except (KeyError, TypeError, AttributeError) as err:
        raise PneumoError(f"{meta_path} is incomplete or damaged (at {err})") from None
    if base:
        _check_base(cls, base)  # before loading it, so a changed file fails with this message
    model = cls.create(prep.image_size, weights="default" if base else "none")
    weights_path = meta_path.parent / weights_file
    if not weights_path.is_file():
        raise PneumoError(f"weights file missing next to {meta_path}: {weights_path.name}")
    try:
        state = load_file(str(weights_path))
    except Exception as err:  # safetensors raises its own error types
        raise PneumoError(f"cannot read {weights_path}: {err}") from None
    _load_state(model, state, allow_partial=bool(base), where=weights_path)
    model.weights_source = meta["weights"].get("pretrained_from", model.weights_source)
    model.eval()
    return LoadedModel(model, meta, meta_path.parent)


def _meta_path(path: Path) -> Path:
    if path.is_dir():
        if (path / META_NAME).is_file():
            return path / META_NAME
        raise PneumoError(f"no {META_NAME} in {path}")
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise PneumoError(f"model not found: {path}")
    return path


def _load_state(model: PneumoNet, state: dict, allow_partial: bool, where: Path) -> None:
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if unknown or (missing and not allow_partial):
        key = (unknown or missing)[0]
        raise PneumoError(
            f"{where} does not match {model.name}: tensor {key} unexpected or missing"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise PneumoError(
                f"{where}: {key} has shape {tuple(tensor.shape)}, expected {tuple(own[key].shape)}"
            )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)


def _packaged_base(model: PneumoNet) -> dict | None:
    """The packaged pretrained weights this model started from, if any."""
    if (
        not getattr(model, "packaged_weights", False)
        or model.weights_source != model.pretrained_source
    ):
        return None
    path = model.packaged_path()
    return {"tensors": read_state_dict(path), "file": Path(path).name, "sha256": sha256(path)}


def _check_base(cls: type[PneumoNet], base: dict) -> None:
    if not getattr(cls, "packaged_weights", False):
        raise PneumoError(f"{cls.name} has no packaged weights to start from ({base['file']})")
    path = cls.packaged_path()
    if sha256(path) != base["sha256"]:
        raise PneumoError(
            f"this model was trained from {base['file']} with SHA-256 {base['sha256'][:12]}..., "
            f"but the installed copy ({path}) differs; reinstall the pinned package"
        )


def _same(a: torch.Tensor, b: torch.Tensor | None) -> bool:
    return b is not None and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
