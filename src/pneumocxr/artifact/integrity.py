"""Integrity: a folder is used only if everything in it that shapes an answer is what was
exported. model.json records the weights' SHA-256, and the weights' own header (or an ONNX
graph's metadata) the answer record, compared field by field."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from pneumocxr.artifact.schema import answer_record
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import sha256_file


def verified_weights(meta_path: Path, meta: dict, name: str, recorded: bool) -> Path:
    """The weights file, if its hash is model.json's and its header's record is model.json's."""
    weights_path = meta_path.parent / name
    if not weights_path.is_file():
        raise PneumoError(f"weights file missing next to {meta_path}: {weights_path.name}")
    if sha256_file(weights_path) != meta["weights"].get("sha256"):
        raise PneumoError(
            f"{weights_path} does not match {meta_path.name} (SHA-256 differs): the model was "
            "changed, damaged or half-written; export or train it again"
        )
    if recorded:
        check_record(weights_path, meta, meta_path)
    return weights_path


def check_record(weights_path: Path, meta: dict, meta_path: Path) -> None:
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
