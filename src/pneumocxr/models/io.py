"""Model folders: `model.safetensors` (tensors) + `model.json` (everything else); the one place
models are saved and loaded, single models and ensembles alike.

Nothing here unpickles. When a model's backbone weights ship with an installed package
(EfficientNet-Lite0), only the tensors that differ from them are stored, and the JSON names
the base file and its SHA-256 so a changed base is detected instead of silently used.

A folder is used only if everything in it that shapes an answer is what was exported:
model.json records the weights' SHA-256 (written second, so a kill between the two files is
detected), and the weights file's own header carries a copy of every answer-shaping field of
model.json (architecture, preprocessing, threshold, calibration, UNCERTAIN band, scope check,
the stored tensors, an ensemble's members). Editing one of them in model.json, or the weights
file, is refused with a message that names the field; `pneumocxr export` is the way to change
a threshold. Every tensor the architecture needs must come from the file or the verified base,
with its shape and dtype.

A folder may instead hold `model.onnx` (format pneumocxr-onnx/1, `pneumocxr export --format
onnx`): the whole forward pass with the scope check as one ONNX graph, run by ONNX Runtime
(models/onnx_model.py), checked the same way (its SHA-256 here, the answer record in its own
metadata).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pneumocxr import CLASS_NAMES, __version__
from pneumocxr.display import without_paths
from pneumocxr.errors import PneumoError
from pneumocxr.fileio import atomic_path, link_problem, read_json, replace_dir, write_json
from pneumocxr.models.base import PneumoNet, Preprocessing
from pneumocxr.models.calibration import Band, Calibration
from pneumocxr.models.ensemble import Ensemble
from pneumocxr.models.registry import model_class
from pneumocxr.models.scope import METHOD, PREFIX, ScopeCheck
from pneumocxr.models.weights import read_packaged, sha256

FORMAT = "pneumocxr-model/2"
ENSEMBLE_FORMAT = "pneumocxr-ensemble/2"
LEGACY_MODEL, LEGACY_ENSEMBLE = "pneumocxr-model/1", "pneumocxr-ensemble/1"  # `export` reads them
LEGACY = (LEGACY_MODEL, LEGACY_ENSEMBLE)
ONNX_FORMAT = "pneumocxr-onnx/1"  # model.onnx + model.json (models/onnx_model.py)
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "model.onnx"
META_NAME = "model.json"
MEMBERS_DIR = "members"
MODEL_FILES = {WEIGHTS_NAME, META_NAME}
EXPORT_FILES = {WEIGHTS_NAME, ONNX_NAME, META_NAME}  # either format replaces the other
ENSEMBLE_FILES = {WEIGHTS_NAME, META_NAME, MEMBERS_DIR}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
MAX_INPUT_SIZE = 2048  # pixels a side; larger inputs would take minutes and gigabytes
OUTPUT = "one logit; calibrated sigmoid = P(PNEUMONIA)"
# The fields of model.json that decide an answer; the weights file's header holds a copy.
ANSWER_FIELDS = ("format", "architecture", "preprocessing", "class_names", "threshold",
                 "calibration", "uncertain", "scope", "members")  # fmt: skip
WEIGHT_FIELDS = ("file", "dtype", "base", "tensors")


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
        """The operating threshold, on the calibrated scale."""
        return float(self.meta.get("threshold", 0.5))

    @cached_property
    def calibration(self) -> Calibration:
        return Calibration.from_json(self.meta.get("calibration"))

    @cached_property
    def band(self) -> Band | None:
        return Band.from_json(self.meta.get("uncertain"), self.threshold)

    @property
    def has_scope(self) -> bool:
        return self.model.scope_ready()


# -- saving ---------------------------------------------------------------------------------
def save_model(model: PneumoNet, directory, extra: dict | None = None, dtype=torch.float32):
    """Write model.safetensors and model.json into `directory` (atomically, each)."""
    directory = Path(directory)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    base = _packaged_base(model)
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
    if model.scope is not None:
        meta["scope"] = scope_record(model.scope, meta.get("scope"))
    return _write(directory, state, meta)


def scope_record(check: ScopeCheck, given: dict | None = None) -> dict:
    """What model.json says of a scope check: how it scores, whose features, what it was fitted
    on (`given` carries the last)."""
    record = {"method": METHOD, "features": check.source, "size": check.size, "dims": check.dims,
              "stages": check.stages}  # fmt: skip
    return {**record, **{k: v for k, v in (given or {}).items() if k not in record}}


def _write(directory: Path, state: dict, meta: dict) -> Path:
    """Weights first (their header holding the answer record), then model.json naming their
    hash: a kill between the two is detected. model.json holds no path of the machine that
    wrote it: every absolute path in its texts is cut to its last part."""
    meta = no_paths(meta)
    header = {"format": meta["format"], "answer": _canonical(answer_record(meta))}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata=header)
    meta["weights"]["sha256"] = sha256(directory / WEIGHTS_NAME)
    write_json(directory / META_NAME, meta)
    return directory / META_NAME


def no_paths(value):
    if isinstance(value, dict):
        return {k: no_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_paths(v) for v in value]
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return without_paths(value, absolute_only=True, limit=None) or value
    return value


def answer_record(meta: dict, where: Path | None = None) -> dict:
    """The fields of model.json that shape an answer (the weights' own hash aside)."""
    record = {k: meta.get(k) for k in ANSWER_FIELDS}
    weights = meta.get("weights") if isinstance(meta.get("weights"), dict) else {}
    record["weights"] = {k: weights.get(k) for k in WEIGHT_FIELDS}
    try:
        return json.loads(_canonical(record))  # numbers as JSON has them
    except ValueError:  # NaN or infinity, which no export writes
        raise PneumoError(f"{where or 'model.json'} is damaged: a value is not a number") from None


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def save_ensemble(members: list[LoadedModel], directory, extra: dict | None = None,
                  overwrite: bool = False) -> Path:  # fmt: skip
    """An ensemble folder: model.json naming the members, each member's own model files copied
    unchanged under members/ (so their hashes and records still hold), and a tensorless
    model.safetensors whose header records the answer-shaping fields. Built beside `directory`
    and then put in its place, so a reader never sees a half-written ensemble."""
    directory = Path(directory)
    ensemble = Ensemble([m.model for m in members])
    entries = []
    with replace_dir(directory, ENSEMBLE_FILES, overwrite, "ensemble") as staging:
        for i, member in enumerate(members, start=1):
            folder = Path(MEMBERS_DIR) / f"{i}-{member.meta['architecture']}"
            (staging / folder).mkdir(parents=True)
            for name in (META_NAME, member.meta["weights"]["file"]):
                shutil.copy2(member.path / name, staging / folder / name)
            entries.append({"path": folder.as_posix(), "answer": _digest(member.meta)})
        meta = {
            "format": ENSEMBLE_FORMAT,
            "architecture": Ensemble.name,
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
        _write(staging, {}, meta)
    return directory / META_NAME


def _digest(meta: dict) -> str:
    """A member's answer record and weights, in one SHA-256."""
    record = {**answer_record(meta), "sha256": meta["weights"].get("sha256")}
    return hashlib.sha256(_canonical(record).encode()).hexdigest()


# -- loading --------------------------------------------------------------------------------
def load_model(path, legacy: bool = False) -> LoadedModel:
    """Load a model folder, its model.json or its .safetensors file (an ensemble too).

    `legacy` lets `export` read folders written before model.json's record existed."""
    meta_path = _meta_path(Path(path))
    meta = read_json(meta_path)
    found = meta.get("format") if isinstance(meta, dict) else None
    if found in LEGACY and not legacy:
        raise PneumoError(
            f"{meta_path.parent} was exported by an earlier pneumocxr, without a record of what "
            f"shapes its answers; re-export it: pneumocxr export {meta_path.parent} --out NEW"
        )
    if found in (ENSEMBLE_FORMAT, LEGACY_ENSEMBLE):
        return _load_ensemble(meta_path, meta, legacy)
    if found == ONNX_FORMAT:
        from pneumocxr.models.onnx_model import load_onnx

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
    weights_path = _verified_weights(meta_path, meta, weights_file, found == FORMAT)
    check_meta(meta, cls, prep, meta_path)
    if base:
        _check_base(cls, base)  # before loading it, so a changed file fails with this message
    model = cls.create(prep.image_size, weights="default" if base else "none")
    if meta.get("scope"):
        model.scope = _scope_shell(meta["scope"], meta_path)
    try:
        state = load_file(str(weights_path))
    except Exception as err:  # safetensors raises its own error types
        raise PneumoError(f"cannot read {weights_path}: {_first_line(err)}") from None
    _check_stored(state, record, weights_path)
    _load_state(model, state, record, _base_keys(model) if base else set(), where=weights_path)
    model.weights_source = record.get("pretrained_from", model.weights_source)
    model.eval()
    return LoadedModel(model, meta, meta_path.parent)


def _verified_weights(meta_path: Path, meta: dict, name: str, recorded: bool) -> Path:
    """The weights file, if its hash is model.json's and its header's record is model.json's."""
    weights_path = meta_path.parent / name
    if not weights_path.is_file():
        raise PneumoError(f"weights file missing next to {meta_path}: {weights_path.name}")
    if sha256(weights_path) != meta["weights"].get("sha256"):
        raise PneumoError(
            f"{weights_path} does not match {meta_path.name} (SHA-256 differs): the model was "
            "changed, damaged or half-written; export or train it again"
        )
    if recorded:
        _check_record(weights_path, meta, meta_path)
    return weights_path


def _check_record(weights_path: Path, meta: dict, meta_path: Path) -> None:
    try:
        with safe_open(str(weights_path), "pt") as handle:
            exported = json.loads((handle.metadata() or {})["answer"])
    except Exception:  # no header record, or not readable
        raise PneumoError(f"{weights_path} has no record of its model.json; re-export it") from None
    check_answer(exported, answer_record(meta, meta_path), meta_path)


def check_answer(exported: dict, current: dict, meta_path: Path) -> None:
    """Refuse a model.json whose answer record is not the one its weights were exported with,
    naming the first field that differs."""
    if not isinstance(exported, dict):
        raise PneumoError(f"{meta_path.parent} has no readable record of its model.json")
    for key in sorted(set(exported) | set(current)):
        if exported.get(key) != current.get(key):
            raise PneumoError(
                f"{meta_path}: {_what_differs(key, current.get(key), exported.get(key))} is "
                "not what was exported with these weights (model.json was edited or damaged); "
                "export the model again to change it (pneumocxr export M --out DIR --threshold ...)"
            )


def _what_differs(key: str, now, then) -> str:
    """'threshold 0 (exported: 0.856)', or the first differing entry of a record."""
    if isinstance(now, dict) and isinstance(then, dict):
        for sub in sorted(set(now) | set(then)):
            if now.get(sub) != then.get(sub):
                return _what_differs(f"{key}.{sub}", now.get(sub), then.get(sub))
    if isinstance(now, list) and isinstance(then, list) and len(now) != len(then):
        return f"{key} ({len(now)} entries; exported: {len(then)})"
    return f"{key} {_short(now)} (exported: {_short(then)})"


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _scope_shell(record, where: Path) -> ScopeCheck:
    """An empty scope check of the recorded shape, to load the stored tensors into."""
    try:
        dims = [int(d) for d in record["dims"]]
        source, size = record["features"], record.get("size")
        stages = [int(i) for i in record.get("stages", range(len(dims)))]
        if not dims or min(dims) < 1 or (size is not None and not 16 <= int(size) <= 1024):
            raise ValueError(record)
        if len(stages) != len(dims) or min(stages) < 0:
            raise ValueError(record)
    except (KeyError, TypeError, ValueError):
        raise PneumoError(f"{where} is damaged: invalid scope record") from None
    return ScopeCheck(dims, source, None if size is None else int(size), stages)


def _load_ensemble(meta_path: Path, meta: dict, legacy: bool) -> LoadedModel:
    try:
        entries = list(meta["members"])
        paths = [entry["path"] for entry in entries]
    except (KeyError, TypeError) as err:
        raise PneumoError(f"{meta_path} is incomplete or damaged (at {err})") from None
    if meta.get("format") == ENSEMBLE_FORMAT:
        _verified_weights(meta_path, meta, WEIGHTS_NAME, True)
    _check_threshold(meta, meta_path)
    root = meta_path.parent.resolve()
    members = []
    for entry, path in zip(entries, paths):
        folder = (root / path).resolve()
        if root not in folder.parents:  # members live inside the ensemble's folder
            raise PneumoError(f"{meta_path}: member {path!r} lies outside the ensemble folder")
        member = load_model(folder, legacy)
        if meta.get("format") == ENSEMBLE_FORMAT and _digest(member.meta) != entry.get("answer"):
            raise PneumoError(f"{meta_path}: member {path} is not the one the ensemble was made of")
        members.append(member.model)
    return LoadedModel(Ensemble(members).eval(), meta, meta_path.parent)


def check_meta(meta: dict, cls: type[PneumoNet], prep: Preprocessing, where: Path) -> None:
    """Refuse a model.json whose values no export writes (they would be used blindly)."""
    problems = []
    if not isinstance(prep.image_size, int) or not (
        cls.min_image_size <= prep.image_size <= MAX_INPUT_SIZE
    ):
        problems.append(f"image size {prep.image_size!r}")
    if not _valid_normalisation(prep):
        problems.append("normalisation")
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
    _check_threshold(meta, where)


def _check_threshold(meta: dict, where: Path) -> None:
    """Threshold in [0, 1]; calibration and band records that parse and fit around it."""
    threshold = meta.get("threshold", 0.5)
    if not _finite([threshold]) or not 0 <= threshold <= 1:
        raise PneumoError(f"{where} is damaged: invalid threshold {threshold!r}")
    try:
        Calibration.from_json(meta.get("calibration"))
        Band.from_json(meta.get("uncertain"), threshold)
    except PneumoError as err:
        raise PneumoError(f"{where} is damaged: invalid {err}") from None


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
    if path.suffix in (".safetensors", ".onnx"):
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
    """The tensors a packaged base provides: all but the new head and the scope check."""
    return {k for k in model.state_dict() if not k.startswith(("head.", PREFIX))}


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
