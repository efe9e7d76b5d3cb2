"""Atomic file output: a reader never sees half a file, and a failure leaves the old one."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from pneumocxr.errors import PneumoError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it over `path` only on success."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def replace_folder(path: str | os.PathLike):
    """Yield an empty staging folder beside `path`; on success it takes `path`'s place as a
    whole, so a reader sees the old folder or the new one, never a mix. On failure the staging
    folder is removed and `path` is untouched."""
    path = Path(path)
    ensure_dir(path.parent)
    if path.exists() and not path.is_dir():
        raise PneumoError(f"cannot write the folder {path}: a file has that name")
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700
        if not path.exists():
            os.rename(staging, path)
        elif _exchange(staging, path):  # atomic swap: old folder now at `staging`
            shutil.rmtree(staging)
        else:  # no renameat2: a short window where only the hidden old copy exists
            old = staging.with_name(staging.name.replace(".new-", ".old-"))
            os.rename(path, old)
            os.rename(staging, path)
            shutil.rmtree(old)
    finally:
        if staging.exists() and staging.resolve() != path.resolve():
            shutil.rmtree(staging, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Linux renameat2(RENAME_EXCHANGE): swap two paths atomically. False where unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange) == 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path, obj) -> Path:
    """Strict JSON: NaN and infinities (e.g. an AUC with one class) become null."""
    text = json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False)
    return write_text(path, text + "\n")


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _finite(obj.item())
    return obj


def read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PneumoError(f"file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PneumoError(f"{path} is not valid JSON: {err}") from None


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(
                tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png"
            )
    finally:
        plt.close(fig)  # also when saving fails: figures otherwise pile up in pyplot
    return Path(path)


def ensure_dir(path) -> Path:
    """Create a folder (and parents) or fail with one line if that is impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PneumoError(f"cannot create folder {path}: a file has that name") from None
    except OSError as err:
        raise PneumoError(f"cannot create folder {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PneumoError(f"output folder is not writable: {path}")
    return path


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
