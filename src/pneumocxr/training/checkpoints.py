"""Checkpoints that survive a kill: atomic writes, random-number state, and picking the newest
sound checkpoint to resume from.

Lightning writes local checkpoints through fsspec, which stages them in the system's temp
folder and then *moves* them: across file systems that is a copy, and a kill during it leaves a
truncated file. Here a checkpoint is written beside its final name and renamed into place, so
a reader finds the previous complete file or the new one. The random-number generators' state
rides along in the checkpoint, so a resumed run draws the same augmentations, dropout masks
and mixup pairs as an uninterrupted one.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.atomic import atomic_path
from pneumocxr.fileio.folders import ensure_dir
from pneumocxr.fileio.regular import open_regular


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())


class RandomState(L.Callback):
    """Save every generator's state with each checkpoint; restore it when resuming."""

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["pneumocxr_rng"] = rng_state()

    def on_load_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        if "pneumocxr_rng" in checkpoint:
            set_rng_state(checkpoint["pneumocxr_rng"])


def rng_state() -> dict:
    """Tensors and plain numbers only, so the checkpoint still loads with weights_only=True."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), gauss],
        "python": [version, torch.tensor(internal, dtype=torch.int64), python_gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, python_gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), python_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch a checkpoint file completed, or None when it is missing or damaged."""
    try:  # a named pipe in the folder is never opened
        with open_regular(path) as handle:
            return int(torch.load(handle, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # truncated, empty, not a checkpoint: all mean "not usable"
        return None


def newest_checkpoint(folder: Path, phase: str) -> Path | None:
    """The phase's most advanced sound checkpoint: `-last`, or `-best` when the last one is
    missing or damaged (a kill during the first write of `-last` leaves only `-best`)."""
    found = []
    for kind in ("last", "best"):
        path = Path(folder) / f"{phase}-{kind}.ckpt"
        epoch = checkpoint_epoch(path) if path.is_file() else None
        if epoch is not None:
            found.append((epoch, kind == "last", path))
    return max(found)[2] if found else None


def require_sound(path: Path) -> Path:
    if checkpoint_epoch(path) is None:
        raise PneumoError(f"{path} is not a complete checkpoint (damaged or not one)")
    return path


def damaged_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in `folder` that do not load (not counting hidden temporaries)."""
    found = Path(folder).glob("*.ckpt") if Path(folder).is_dir() else []
    return sorted(p for p in found if not p.name.startswith(".") and checkpoint_epoch(p) is None)


def set_aside(files: list[Path], folder: Path) -> Path:
    """Move `files` into a new `folder/damaged-<time>/`: kept for a look, out of the way."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = Path(folder) / f"damaged-{stamp}"
    for n in range(2, 1000):
        if not aside.exists():
            break
        aside = Path(folder) / f"damaged-{stamp}-{n}"
    ensure_dir(aside)
    for path in files:
        os.replace(path, aside / path.name)
    return aside
