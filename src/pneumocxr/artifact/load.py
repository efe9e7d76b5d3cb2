"""Loading model folders (single models, ensembles, ONNX exports) after their integrity checks."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from pneumocxr.artifact.integrity import verified_weights
from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.artifact.schema import (
    ENSEMBLE_FORMAT,
    FORMAT,
    LEGACY,
    LEGACY_ENSEMBLE,
    LEGACY_MODEL,
    META_NAME,
    ONNX_FORMAT,
    WEIGHTS_NAME,
    member_digest,
)
from pneumocxr.artifact.validate import check_base, check_meta, check_stored, check_threshold
from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.errors import PneumoError, first_line
from pneumocxr.fileio.folders import link_problem
from pneumocxr.fileio.formats import read_json
from pneumocxr.networks.base import PneumoNet
from pneumocxr.networks.registry import model_class
from pneumocxr.predictors.ensemble import Ensemble
from pneumocxr.predictors.single import NetworkPredictor
from pneumocxr.scope.check import PREFIX
from pneumocxr.scope.record import check_from_record


def load_model(path, legacy: bool = False) -> LoadedModel:
    """Load a model folder, its model.json or its .safetensors file (an ensemble too).

    `legacy` lets `export` read folders written before model.json's record existed."""
    meta_path = meta_path_of(Path(path))
    meta = read_json(meta_path)
    found = meta.get("format") if isinstance(meta, dict) else None
    if found in LEGACY and not legacy:
        raise PneumoError(
            f"{meta_path.parent} was exported by an earlier pneumocxr, without a record of what "
            f"shapes its answers; re-export it: pneumocxr export {meta_path.parent} --out NEW"
        )
    if found in (ENSEMBLE_FORMAT, LEGACY_ENSEMBLE):
        return load_ensemble(meta_path, meta, legacy)
    if found == ONNX_FORMAT:
        from pneumocxr.artifact.onnx_load import load_onnx

        return load_onnx(meta_path, meta)
    if found not in (FORMAT, LEGACY_MODEL):
        raise PneumoError(f"{meta_path} is not a pneumocxr model file (format {found!r})")
    try:
        cls = model_class(meta["architecture"])
        prep = Preprocessing.from_json(meta["preprocessing"])
        record = meta["weights"]
        base, weights_file = record.get("base"), record["file"]
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise PneumoError(f"{meta_path} is incomplete or damaged (at {err})") from None
    # An edit is named as an edit before any value is judged on its own.
    weights_path = verified_weights(meta_path, meta, weights_file, found == FORMAT)
    check_meta(meta, cls, prep, meta_path)
    if base:
        check_base(cls, base)  # before loading it, so a changed file fails with this message
    network = cls.create(prep.image_size, weights="default" if base else "none")
    scope = check_from_record(meta["scope"], meta_path) if meta.get("scope") else None
    predictor = NetworkPredictor(network, scope)
    try:
        state = load_file(str(weights_path))
    except Exception as err:  # safetensors raises its own error types
        raise PneumoError(f"cannot read {weights_path}: {first_line(err)}") from None
    check_stored(state, record, weights_path)
    load_state(predictor, state, record, base_keys(network) if base else set(), weights_path)
    network.weights_source = record.get("pretrained_from", network.weights_source)
    predictor.eval()
    return LoadedModel(predictor, meta, meta_path.parent)


def load_ensemble(meta_path: Path, meta: dict, legacy: bool) -> LoadedModel:
    try:
        entries = list(meta["members"])
        paths = [entry["path"] for entry in entries]
    except (KeyError, TypeError) as err:
        raise PneumoError(f"{meta_path} is incomplete or damaged (at {err})") from None
    if meta.get("format") == ENSEMBLE_FORMAT:
        verified_weights(meta_path, meta, WEIGHTS_NAME, True)
    check_threshold(meta, meta_path)
    root = meta_path.parent.resolve()
    members = []
    for entry, path in zip(entries, paths):
        folder = (root / path).resolve()
        if root not in folder.parents:  # members live inside the ensemble's folder
            raise PneumoError(f"{meta_path}: member {path!r} lies outside the ensemble folder")
        member = load_model(folder, legacy)
        if meta.get("format") == ENSEMBLE_FORMAT and member_digest(member.meta) != entry.get(
            "answer"
        ):
            raise PneumoError(f"{meta_path}: member {path} is not the one the ensemble was made of")
        members.append(member.predictor)
    return LoadedModel(Ensemble(members).eval(), meta, meta_path.parent)


def meta_path_of(path: Path) -> Path:
    if path.is_dir():
        if (path / META_NAME).is_file():
            return path / META_NAME
        raise PneumoError(link_problem(path / META_NAME) or f"no {META_NAME} in {path}")
    if path.suffix in (".safetensors", ".onnx"):
        path = path.with_suffix(".json")
    if not path.is_file():
        raise PneumoError(link_problem(path) or f"model not found: {path}")
    refuse_checkpoint(path)
    return path


def refuse_checkpoint(path: Path) -> None:
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


def load_state(predictor: NetworkPredictor, state: dict, record: dict, base: set,
               where: Path) -> None:  # fmt: skip
    """Every tensor of the architecture (and of its scope check) from the file, or else from
    the verified base, each with its shape, the recorded dtype and finite values."""
    own, model = predictor.state_dict(), predictor.network
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
    predictor.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def base_keys(model: PneumoNet) -> set[str]:
    """The tensors a packaged base provides: all but the new head and the scope check."""
    return {k for k in model.state_dict() if not k.startswith(("head.", PREFIX))}
