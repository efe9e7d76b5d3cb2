"""What model.json says of a scope check, and the empty check of a recorded shape that a
model file's tensors are loaded into."""

from __future__ import annotations

from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.scope.check import METHOD, ScopeCheck


def scope_record(check: ScopeCheck, given: dict | None = None) -> dict:
    """How it scores, whose features, what it was fitted on (`given` carries the last)."""
    record = {"method": METHOD, "features": check.source, "size": check.size, "dims": check.dims,
              "stages": check.stages}  # fmt: skip
    return {**record, **{k: v for k, v in (given or {}).items() if k not in record}}


def check_from_record(record, where: Path) -> ScopeCheck:
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
