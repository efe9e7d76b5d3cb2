"""What a user names as a model ("default", a run folder, a model folder, its model.json),
resolved to a loaded model; and the name it is shown by."""

from __future__ import annotations

import os
from pathlib import Path

from pneumocxr.artifact.load import load_model
from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.artifact.schema import ONNX_FORMAT
from pneumocxr.errors import PneumoError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "weights"


def resolve_model(spec=None, legacy: bool = False) -> LoadedModel:
    """`None`/"default" (the shipped model), a run folder, a model folder or its model.json
    (or a model already loaded); `legacy` admits folders of earlier versions (for export)."""
    if isinstance(spec, LoadedModel):
        return spec
    if hasattr(spec, "loaded") and isinstance(spec.loaded, LoadedModel):  # an api.Model
        return spec.loaded
    if spec in (None, "", "default"):
        if not (DEFAULT_MODEL_DIR / "model.json").is_file():
            raise PneumoError(f"the default model is missing from {DEFAULT_MODEL_DIR}")
        return load_model(DEFAULT_MODEL_DIR, legacy)
    if not isinstance(spec, (str, os.PathLike)):
        raise PneumoError(
            f'a model is "default", a folder or a model.json path, not a {type(spec).__name__}'
        )
    path = Path(spec)
    if path.is_dir() and not (path / "model.json").is_file():
        inner = sorted(p.parent for p in path.glob("*/model.json"))
        if len(inner) == 1:
            return load_model(inner[0], legacy)
        if inner:
            names = ", ".join(p.name for p in inner)
            raise PneumoError(f"{path} holds several models ({names}); name one of them")
    return load_model(path, legacy)


def model_name(loaded: LoadedModel) -> str:
    """A readable model name: the architecture, and the run it came from (an ONNX export
    says so)."""
    arch = loaded.meta["architecture"]
    if loaded.path.resolve() == DEFAULT_MODEL_DIR.resolve():
        return f"default ({arch})"
    run = loaded.meta.get("training", {}).get("run")
    name = f"{arch} ({run})" if run and run != arch else arch
    return f"{name} [ONNX]" if loaded.meta.get("format") == ONNX_FORMAT else name
