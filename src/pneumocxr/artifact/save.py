"""Writing model folders: weights first (their header holding the answer record), then model.json
naming their hash, each atomically; ensembles built beside their folder and swapped in whole."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.artifact.schema import (
    ENSEMBLE_FILES,
    ENSEMBLE_FORMAT,
    FORMAT,
    MEMBERS_DIR,
    META_NAME,
    OUTPUT,
    WEIGHTS_NAME,
    answer_record,
    canonical,
    member_digest,
    no_paths,
)
from pneumocxr.fileio.atomic import atomic_path, replace_dir
from pneumocxr.fileio.formats import sha256_file, write_json
from pneumocxr.networks.base import PneumoNet
from pneumocxr.networks.weights import read_packaged
from pneumocxr.predictors.ensemble import NAME as ENSEMBLE_NAME
from pneumocxr.predictors.ensemble import Ensemble
from pneumocxr.predictors.single import as_predictor
from pneumocxr.scope.record import scope_record
from pneumocxr.task import CLASS_NAMES, __version__


def save_model(model, directory, extra: dict | None = None, dtype=torch.float32):
    """Write model.safetensors and model.json into `directory` (atomically, each): the network
    of `model` (a NetworkPredictor, or a bare network) and its scope check's tensors."""
    directory = Path(directory)
    predictor = as_predictor(model)
    model = predictor.network
    state = {k: v.detach().to("cpu").contiguous() for k, v in predictor.state_dict().items()}
    base = packaged_base(model)
    if base is not None:
        state = {k: v for k, v in state.items() if not _same(v, base["tensors"].get(k))}
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    meta = {
        "format": FORMAT,
        "architecture": model.name,
        "preprocessing": model.preprocessing().to_json(),
        "class_names": list(CLASS_NAMES),
        "output": OUTPUT,
        "threshold": 0.5,
        "weights": {
            "file": WEIGHTS_NAME,
            "dtype": str(dtype).replace("torch.", ""),
            "pretrained_from": model.weights_source,
            "base": None if base is None else {"file": base["file"], "sha256": base["sha256"]},
            "tensors": sorted(state),
        },
        "pneumocxr_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    if predictor.scope is not None:
        meta["scope"] = scope_record(predictor.scope, meta.get("scope"))
    return write_folder(directory, state, meta)


def write_folder(directory: Path, state: dict, meta: dict) -> Path:
    """Weights first (their header holding the answer record), then model.json naming their
    hash: a kill between the two is detected. model.json holds no path of the machine that
    wrote it: every absolute path in its texts is cut to its last part."""
    meta = no_paths(meta)
    header = {"format": meta["format"], "answer": canonical(answer_record(meta))}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata=header)
    meta["weights"]["sha256"] = sha256_file(directory / WEIGHTS_NAME)
    write_json(directory / META_NAME, meta)
    return directory / META_NAME


def save_ensemble(members: list[LoadedModel], directory, extra: dict | None = None,
                  overwrite: bool = False, inputs=()) -> Path:  # fmt: skip
    """An ensemble folder: model.json naming the members, each member's own model files copied
    unchanged under members/ (so their hashes and records still hold), and a tensorless
    model.safetensors whose header records the answer-shaping fields. Built beside `directory`
    and then put in its place, so a reader never sees a half-written ensemble."""
    directory = Path(directory)
    ensemble = Ensemble([m.predictor for m in members])
    entries = []
    inputs = [*inputs, *(m.path for m in members)]  # a member is never replaced
    with replace_dir(directory, ENSEMBLE_FILES, overwrite, "ensemble", inputs) as staging:
        for i, member in enumerate(members, start=1):
            folder = Path(MEMBERS_DIR) / f"{i}-{member.meta['architecture']}"
            (staging / folder).mkdir(parents=True)
            for name in (META_NAME, member.meta["weights"]["file"]):
                shutil.copy2(member.path / name, staging / folder / name)
            entries.append({"path": folder.as_posix(), "answer": member_digest(member.meta)})
        meta = {
            "format": ENSEMBLE_FORMAT,
            "architecture": ENSEMBLE_NAME,
            "combine": "mean of the members' logits; out of scope when any member says so",
            "members": entries,
            "preprocessing": ensemble.preprocessing().to_json(),
            "class_names": list(CLASS_NAMES),
            "output": OUTPUT,
            "threshold": 0.5,
            "weights": {"file": WEIGHTS_NAME, "dtype": "float32", "base": None, "tensors": []},
            "pneumocxr_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **(extra or {}),
        }
        write_folder(staging, {}, meta)
    return directory / META_NAME


def packaged_base(model: PneumoNet) -> dict | None:
    """The packaged pretrained weights this model started from, if any."""
    if (
        not getattr(model, "packaged_weights", False)
        or model.weights_source != model.pretrained_source
    ):
        return None
    path = model.packaged_path()
    tensors = read_packaged(path, model.weights_sha256)
    return {"tensors": tensors, "file": Path(path).name, "sha256": sha256_file(path)}


def _same(a: torch.Tensor, b: torch.Tensor | None) -> bool:
    return b is not None and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
