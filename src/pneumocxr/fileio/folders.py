"""Folders: made (or refused in one line) before slow work, links that cannot be followed, whether
a writer process still runs."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from pneumocxr.errors import PneumoError


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (someone else's counts: it may not be ours to clean up)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def link_problem(path) -> str | None:
    """Why `path` cannot be opened when a symbolic link is to blame, naming the path as given
    (not where the link points); None otherwise."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f"symbolic link loop: {path}"
        if err.errno == errno.ENOENT and os.path.islink(path):
            return f"broken symbolic link: {path}"
    return None


def make_dirs(path) -> list[Path]:
    """`ensure_dir`, returning the folders it created, innermost first."""
    path = Path(path)
    created = []
    for folder in [path, *path.parents]:
        if os.path.lexists(folder):
            break
        created.append(folder)
    ensure_dir(path)
    return created


def remove_empty_dirs(folders) -> None:
    """Remove these folders (innermost first) while they are empty."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def check_can_create(path) -> None:
    """Fail before any slow work when folder `path` could not be made or written into: a file
    in the way, or a folder above it that is not writable."""
    path = Path(path).absolute()
    existing = next(p for p in [path, *path.parents] if os.path.lexists(p))
    if not existing.is_dir():
        raise PneumoError(f"cannot create folder {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PneumoError(f"output folder is not writable: {existing}")


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
