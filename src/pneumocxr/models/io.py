"""Exported models: `model.safetensors` (tensors only) + `model.json` (everything else).

Nothing here unpickles. When a model's backbone weights ship with an installed package
(EfficientNet-Lite0), only the tensors that differ from them are stored, and the JSON names
the base file and its SHA-256 so a changed base is detected instead of silently used.

Loading checks integrity before a model may answer: model.json is written after the weights
and records their SHA-256 and the names of the stored tensors, so damaged, edited or
half-written weights (a kill between the two files) fail with one line; every tensor the
architecture needs must come from the file or the verified base, with its shape and dtype.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from pneumocxr import CLASS_NAMES, __version__
from pneumocxr.errors import PneumoError
from pneumocxr.fileio import atomic_path, link_problem, read_json, write_json
from pneumocxr.models.base import PneumoNet, Preprocessing
from pneumocxr.models.registry import model_class
from pneumocxr.models.weights import read_packaged, sha256

FORMAT = "pneumocxr-model/1"
ENSEMBLE_FORMAT = "pneumocxr-ensemble/1"
WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"
MODEL_FILES = {WEIGHTS_NAME, META_NAME}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
MAX_INPUT_SIZE = 2048  # pixels a side; larger inputs would take minutes and gigabytes


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
    # Written second, naming the weights' hash: a kill between the two files is detected.
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
            "tensors": sorted(state),
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
        record = meta["weights"]
        base, weights_file = record.get("base"), record["file"]
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise PneumoError(f"{meta_path} is incomplete or damaged (at {err})") from None
    check_meta(meta, cls, prep, meta_path)
    weights_path = meta_path.parent / weights_file
    if not weights_path.is_file():
        raise PneumoError(f"weights file missing next to {meta_path}: {weights_path.name}")
    if sha256(weights_path) != record.get("sha256"):
        raise PneumoError(
            f"{weights_path} does not match {meta_path.name} (SHA-256 differs): the model was "
            "changed, damaged or half-written; export or train it again"
        )
    if base:
        _check_base(cls, base)  # before loading it, so a changed file fails with this message
    model = cls.create(prep.image_size, weights="default" if base else "none")
    try:
        state = load_file(str(weights_path))
    except Exception as err:  # safetensors raises its own error types
        raise PneumoError(f"cannot read {weights_path}: {_first_line(err)}") from None
    _check_stored(state, record, weights_path)
    _load_state(model, state, record, _base_keys(model) if base else set(), where=weights_path)
    model.weights_source = record.get("pretrained_from", model.weights_source)
    model.eval()
    return LoadedModel(model, meta, meta_path.parent)


def check_meta(meta: dict, cls: type[PneumoNet], prep: Preprocessing, where: Path) -> None:
    """Refuse a model.json whose values no export writes (they would be used blindly)."""
    problems = []
    if not isinstance(prep.image_size, int) or not (
        cls.min_image_size <= prep.image_size <= MAX_INPUT_SIZE
    ):
        problems.append(f"image size {prep.image_size!r}")
    if not _valid_normalisation(prep):
        problems.append("normalisation")
    threshold = meta.get("threshold", 0.5)
    if not _finite([threshold]) or not 0 <= threshold <= 1:
        problems.append(f"threshold {threshold!r}")
    if meta.get("class_names", list(CLASS_NAMES)) != list(CLASS_NAMES):
        problems.append("class names")
    record = meta["weights"]
    if record.get("dtype") not in FLOAT_DTYPES:
        problems.append(f"weights dtype {record.get('dtype')!r}")
    name = record.get("file")
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
        problems.append(f"weights file name {name!r}")
    base = record.get("base")
    if base is not None and not (
        isinstance(base, dict) and isinstance(base.get("file"), str) and base.get("sha256")
    ):
        problems.append("base weights record")
    if not isinstance(meta.get("training", {}), dict):
        problems.append("training summary")
    if problems:
        raise PneumoError(f"{where} is damaged: invalid {', '.join(problems)}")


def _valid_normalisation(prep: Preprocessing) -> bool:
    numbers = [*prep.mean, *prep.std]
    shapes = prep.channels == 3 and len(prep.mean) == 3 and len(prep.std) == 3
    return shapes and _finite(numbers) and min(prep.std) > 0


def _check_stored(state: dict, record: dict, where: Path) -> None:
    """The stored tensors are those model.json lists (older exports list none)."""
    listed = record.get("tensors")
    if listed is None:
        return
    missing = sorted(set(listed) - set(state))
    unexpected = sorted(set(state) - set(listed))
    if missing or unexpected:
        what = f"lacks tensor {missing[0]}" if missing else f"has unlisted tensor {unexpected[0]}"
        raise PneumoError(f"{where} {what} (model.json lists {len(listed)} tensors)")


def _meta_path(path: Path) -> Path:
    if path.is_dir():
        if (path / META_NAME).is_file():
            return path / META_NAME
        raise PneumoError(link_problem(path / META_NAME) or f"no {META_NAME} in {path}")
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise PneumoError(link_problem(path) or f"model not found: {path}")
    _refuse_checkpoint(path)
    return path


def _refuse_checkpoint(path: Path) -> None:
    """A training checkpoint given as a model: say what to give instead."""
    with open(path, "rb") as handle:
        zipped = handle.read(4) == b"PK\x03\x04"  # how torch.save writes
    if path.suffix != ".ckpt" and not zipped:
        return
    run = path.parent.parent if path.parent.name == "checkpoints" else None
    if run is None:
        raise PneumoError(f"{path} is a PyTorch file, not a model; give a run or model folder")
    if not (run / META_NAME).is_file():
        raise PneumoError(
            f"{path} is a training checkpoint and its run has no model yet; finish the run "
            f"with: pneumocxr train --resume {run}"
        )
    raise PneumoError(
        f"{path} is a training checkpoint, not a model; give the run folder {run} instead "
        f"(or copy its model with: pneumocxr export {run} --out DIR)"
    )


def _load_state(model: PneumoNet, state: dict, record: dict, base: set, where: Path) -> None:
    """Every tensor of the architecture from the file, or else from the verified base, each
    with its shape, the recorded dtype and finite values."""
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        raise PneumoError(f"{where} does not match {model.name}: unexpected tensor {unknown[0]}")
    missing = [k for k in own if k not in state and k not in base]
    if missing:
        raise PneumoError(f"{where} lacks tensor {missing[0]}, which {model.name} needs")
    dtype = getattr(torch, record["dtype"])
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise PneumoError(
                f"{where}: {key} has shape {tuple(tensor.shape)}, expected {tuple(own[key].shape)}"
            )
        expected = dtype if own[key].is_floating_point() else own[key].dtype
        if tensor.dtype != expected:
            raise PneumoError(f"{where}: {key} is {tensor.dtype}, expected {expected}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise PneumoError(f"{where}: {key} holds NaN or infinite values")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)


def _base_keys(model: PneumoNet) -> set[str]:
    """The tensors a packaged base provides: all but the new head (see `load_pretrained`)."""
    return {k for k in model.state_dict() if not k.startswith("head.")}


def _finite(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and all(
        math.isfinite(v) for v in values
    )


def _first_line(err: Exception) -> str:
    return (str(err) or type(err).__name__).strip().splitlines()[0][:300]


def _packaged_base(model: PneumoNet) -> dict | None:
    """The packaged pretrained weights this model started from, if any."""
    if (
        not getattr(model, "packaged_weights", False)
        or model.weights_source != model.pretrained_source
    ):
        return None
    path = model.packaged_path()
    tensors = read_packaged(path, model.weights_sha256)
    return {"tensors": tensors, "file": Path(path).name, "sha256": sha256(path)}


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
