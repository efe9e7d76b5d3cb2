"""Atomic output: a reader never sees half a file or half a folder, and a failure leaves the old
one; a full disk is said in one line."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.folders import (
    check_can_create,
    ensure_dir,
    make_dirs,
    process_alive,
    remove_empty_dirs,
    umask,
)


class DiskFull(PneumoError):
    """A write failed for want of space."""

    def __init__(self, folder):
        super().__init__(f"no space left on {folder}")


# How libraries that do their own writing report ENOSPC: safetensors ("os error 28"),
# Rust's io::ErrorKind ("StorageFull"), C's strerror. PyTorch's own writer says only that a
# write failed ("enforce fail ... unexpected pos"), hence the look at the free space.
_NO_SPACE = re.compile(r"os error 28|No space left|StorageFull|ENOSPC", re.IGNORECASE)
_WRITE_FAILED = re.compile(r"write failed|failed writing|unexpected pos", re.IGNORECASE)


def is_disk_full(err: BaseException, folder=None) -> bool:
    """Whether `err` (or an error it wraps) says that a disk is full; `folder`, when given,
    is where the write went: a bare write failure counts when that disk has no room left."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFull):
            return True
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(err)
        if _NO_SPACE.search(text) or (folder and _WRITE_FAILED.search(text) and _no_room(folder)):
            return True
        err = err.__cause__ or err.__context__
    return False


def _no_room(folder) -> bool:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bfree * stats.f_frsize < 2**20


def disk_full_message(err: BaseException) -> str:
    """One line for a full disk, naming the folder where the failed write went if known."""
    if isinstance(err, DiskFull):
        return str(err)
    name = getattr(err, "filename", None)
    return f"no space left on {os.path.dirname(os.path.abspath(name)) if name else 'the disk'}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it over `path` only on success.

    Temporary names carry the writer's process id (`.NAME.PID.xxxx`): a successful write
    removes those left by processes that no longer run (killed halfway through a write)."""
    path = Path(path)
    if path.is_dir():
        raise PneumoError(f"{path} is a folder; give a file name")
    created = make_dirs(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=path.suffix, dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the usual permissions
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except BaseException as err:
        remove_empty_dirs(created)  # a failed first write leaves no empty folder behind
        if is_disk_full(err, path.parent):
            raise DiskFull(path.parent) from err
        raise
    remove_stale_temps(path)


@contextlib.contextmanager
def replace_dir(path, owned: set[str], overwrite: bool = False, command: str = "this command",
                inputs=()):  # fmt: skip
    """Yield an empty folder beside `path` to write into; on success it takes the place of
    `path` whole, so `path` always holds one complete set of outputs, old or new.

    An existing non-empty `path` is replaced only with `overwrite`, and never when it holds
    files other than `owned` (it might be a folder of other things given by mistake) or is,
    or holds, one of the command's `inputs`."""
    path = Path(path).resolve()  # through links; "." gets a name and a parent
    _recover_dir(path)
    check_replaceable(path, owned, overwrite, command, inputs)
    ensure_dir(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~umask())
        _swap_in(tmp, path)
    except BaseException as err:
        if is_disk_full(err, path.parent):  # name the user's folder, not the temporary one
            raise DiskFull(path) from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after the swap it holds the old folder


def check_replaceable(path, owned: set[str], overwrite: bool, command: str, inputs=()) -> None:
    """Fail unless `replace_dir` may replace `path` (see there)."""
    path = Path(path).resolve()
    if path == Path.cwd() or path in Path.cwd().parents:
        raise PneumoError(f"{path} is the current folder or holds it; give a folder inside it")
    for item in inputs:  # even with --overwrite: `export M --out M` would replace M
        given = Path(os.path.realpath(item))
        if given == path or path in given.parents:
            raise PneumoError(f"{path} is, or holds, {item}, an input of {command}; give "
                              "another folder (nothing was written)")  # fmt: skip
    if not path.exists():
        check_can_create(path)
        return
    check_can_create(path.parent)  # the new folder is made beside `path`
    if not path.is_dir():
        raise PneumoError(f"{path} is a file, not a folder")
    names = sorted(p.name for p in path.iterdir())
    foreign = [n for n in names if n not in owned and not _is_temp_of(n, owned)]
    if foreign:
        raise PneumoError(
            f"{path} holds files that {command} does not write (e.g. {foreign[0]}); "
            "give a new or empty folder"
        )
    if names and not overwrite:
        raise PneumoError(f"{path} already holds results; pass --overwrite to replace them")


def _swap_in(new: Path, path: Path) -> None:
    """Put folder `new` at `path`; afterwards `new` holds what was at `path`, if anything."""
    if not path.exists():
        os.rename(new, path)
        return
    if _exchange(new, path):  # one atomic step on Linux
        return
    old = path.with_name(_temp_prefix(path) + "old")  # elsewhere: two renames
    os.rename(path, old)
    os.rename(new, path)
    os.rename(old, new)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _recover_dir(path: Path) -> None:
    """Clean up after a killed `replace_dir`: put back a folder moved aside by the two-rename
    fallback, and remove the temporary folders of processes that no longer run."""
    for item in _stale(path):
        if item.name.endswith(".old") and not path.exists():
            os.rename(item, path)
        elif item.is_dir():
            shutil.rmtree(item, ignore_errors=True)


def remove_stale_temps(path) -> None:
    """Remove temporary files of `path` left by writers that were killed."""
    for item in _stale(Path(path)):
        with contextlib.suppress(OSError):
            if item.is_file():
                item.unlink()


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _stale(path: Path) -> list[Path]:
    """Temporaries of `path` (`.NAME.PID.*`) whose process is gone."""
    found = []
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for item in path.parent.iterdir():
            if not item.name.startswith(prefix):
                continue
            pid = item.name[len(prefix) :].split(".", 1)[0]
            if pid.isdigit() and not process_alive(int(pid)):
                found.append(item)
    return found


def _is_temp_of(name: str, owned: set[str]) -> bool:
    return any(name.startswith(f".{o}.") for o in owned)
