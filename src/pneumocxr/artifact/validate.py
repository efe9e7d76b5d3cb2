"""Values of model.json that no export writes are refused before they are used blindly; so are
weight files whose tensors are not the listed ones, and a changed packaged base."""

from __future__ import annotations

import math
from pathlib import Path

from pneumocxr.artifact.schema import FLOAT_DTYPES
from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.decision.band import Band
from pneumocxr.decision.calibration import Calibration
from pneumocxr.decision.shift import ShiftTempering
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import sha256_file
from pneumocxr.networks.base import PneumoNet
from pneumocxr.task import CLASS_NAMES, MAX_INPUT_SIZE


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
    check_threshold(meta, where)


def check_threshold(meta: dict, where: Path) -> None:
    """Threshold in [0, 1]; calibration and band records that parse and fit around it."""
    threshold = meta.get("threshold", 0.5)
    if not finite([threshold]) or not 0 <= threshold <= 1:
        raise PneumoError(f"{where} is damaged: invalid threshold {threshold!r}")
    try:
        Calibration.from_json(meta.get("calibration"))
        Band.from_json(meta.get("uncertain"), threshold)
        ShiftTempering.from_json(meta.get("shift_tempering"))
    except PneumoError as err:
        raise PneumoError(f"{where} is damaged: invalid {err}") from None


def _valid_normalisation(prep: Preprocessing) -> bool:
    numbers = [*prep.mean, *prep.std]
    shapes = prep.channels == 3 and len(prep.mean) == 3 and len(prep.std) == 3
    return shapes and finite(numbers) and min(prep.std) > 0


def check_stored(state: dict, record: dict, where: Path) -> None:
    """The stored tensors are those model.json lists (older exports list none)."""
    listed = record.get("tensors")
    if listed is None:
        return
    missing = sorted(set(listed) - set(state))
    unexpected = sorted(set(state) - set(listed))
    if missing or unexpected:
        what = f"lacks tensor {missing[0]}" if missing else f"has unlisted tensor {unexpected[0]}"
        raise PneumoError(f"{where} {what} (model.json lists {len(listed)} tensors)")


def finite(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and all(
        math.isfinite(v) for v in values
    )


def check_base(cls: type[PneumoNet], base: dict) -> None:
    if not getattr(cls, "packaged_weights", False):
        raise PneumoError(f"{cls.name} has no packaged weights to start from ({base['file']})")
    path = cls.packaged_path()
    if sha256_file(path) != base["sha256"]:
        raise PneumoError(
            f"this model was trained from {base['file']} with SHA-256 {base['sha256'][:12]}..., "
            f"but the installed copy ({path}) differs; reinstall the pinned package"
        )
