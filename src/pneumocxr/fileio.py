"""Atomic file output: a reader never sees half a file, and a failure leaves the old one."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

from pneumocxr.errors import PneumoError


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
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
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
def replace_dir(path, owned: set[str], overwrite: bool = False, command: str = "this command"):
    """Yield an empty folder beside `path` to write into; on success it takes the place of
    `path` whole, so `path` always holds one complete set of outputs, old or new.

    An existing non-empty `path` is replaced only with `overwrite`, and never when it holds
    files other than `owned` (it might be a folder of other things given by mistake)."""
    path = Path(path).resolve()  # through links; "." gets a name and a parent
    _recover_dir(path)
    check_replaceable(path, owned, overwrite, command)
    ensure_dir(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        _swap_in(tmp, path)
    except BaseException as err:
        if is_disk_full(err, path.parent):  # name the user's folder, not the temporary one
            raise DiskFull(path) from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after the swap it holds the old folder


def check_replaceable(path, owned: set[str], overwrite: bool, command: str) -> None:
    """Fail unless `replace_dir` may replace `path` (see there)."""
    path = Path(path).resolve()
    if path == Path.cwd() or path in Path.cwd().parents:
        raise PneumoError(f"{path} is the current folder or holds it; give a folder inside it")
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Suffixes of the files pneumocxr reads as images: an output never takes such a name.
INPUT_SUFFIXES = (".jpeg", ".jpg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".dcm",
                  ".dicom")  # fmt: skip


def check_output_file(path, option: str, inputs=(), made_here=None, suffixes=()) -> Path:
    """Refuse before any work to write `path` over a file the command was given as input, or
    over an existing file it did not make (`made_here(path)` says whether it did).

    `predict --csv scan1.jpeg scan2.jpeg` must not turn the X-ray scan1.jpeg into CSV text;
    `suffixes` are names the output must not take (an image's name for a CSV)."""
    path = Path(path)
    if path.is_dir():
        raise PneumoError(f"{option} {path} is a folder; give a file name")
    if path.suffix.lower() in suffixes:
        raise PneumoError(
            f"{option} {path} names an image file; give a new file name for the output "
            f"(did {option} take the first image as its value?)"
        )
    if not os.path.lexists(path):
        return path
    for item in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, item):
                raise PneumoError(f"{option} {path} is one of the inputs; it would be overwritten")
    if made_here is None or not path.is_file() or not made_here(path):
        raise PneumoError(
            f"{option} {path} exists and was not written by pneumocxr; give a new file name "
            "(nothing was overwritten)"
        )
    return path


def starts_with(prefix: bytes):
    """A `made_here` test: the file begins with `prefix` (a CSV header we write, say)."""

    def test(path: Path) -> bool:
        try:
            with open(path, "rb") as handle:
                return handle.read(len(prefix)) == prefix
        except OSError:
            return False

    return test


def made_by_pneumocxr_png(path: Path) -> bool:
    """A PNG that `save_figure` wrote (it records pneumocxr or Matplotlib as its software)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and (b"pneumocxr" in head or b"Matplotlib" in head)


def write_text(path, text: str) -> Path:
    # File names may hold bytes that are not UTF-8: shown escaped rather than failing.
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
    return Path(path)


def write_csv(path, table) -> Path:
    """A table as UTF-8 CSV; paths that are not UTF-8 keep their exact bytes, and text a
    spreadsheet would run as a formula is quoted (`escape_cell`): read them back with
    `read_csv`, so a listed file can always be found again."""
    table = table.apply(lambda column: column.map(escape_cell))
    with atomic_path(path) as tmp:
        # RFC 4180's CRLF: Python's csv quotes a cell holding CR only when CR ends lines, and
        # an unquoted CR in a file name would split its row when read back.
        table.to_csv(tmp, index=False, encoding="utf-8", errors="surrogateescape",
                     lineterminator="\r\n")  # fmt: skip
    return Path(path)


def read_csv(path, **options):
    """A CSV that `write_csv` wrote, with its text cells as they were before quoting."""
    import pandas as pd

    table = pd.read_csv(path, encoding="utf-8", encoding_errors="surrogateescape", **options)
    return table.apply(lambda column: column.map(unescape_cell))


# OWASP's advice against CSV injection: a cell starting with = + - @ tab or CR is a formula to
# spreadsheets (`=cmd|' /C calc'!A0` as a file name), so it gets a leading single quote.
# Quotes before such a character get one more, so `unescape_cell` restores any text exactly.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def escape_cell(value):
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


def unescape_cell(value):
    if isinstance(value, str) and value.startswith("'") and _FORMULA.match(value, 1):
        return value[1:]
    return value


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
    try:  # utf-8-sig: editors on Windows may start the file with a byte-order mark
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise PneumoError(link_problem(path) or f"file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PneumoError(f"{path} is not valid JSON: {err}") from None


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


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            kind = Path(path).suffix.lstrip(".").lower() or "png"
            # PNGs say who made them, so a later run knows it may replace them.
            mark = {"metadata": {"Software": "pneumocxr"}} if kind == "png" else {}
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=kind, **mark)
    finally:
        plt.close(fig)  # also when saving fails: figures otherwise pile up in pyplot
    return Path(path)


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


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
