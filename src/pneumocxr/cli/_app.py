"""The Typer app every command module registers with, and the entry point: logging, and one
clean line for every error."""

from __future__ import annotations

import atexit
import errno
import io
import logging
import os
import shutil
import sys
import tempfile
import warnings

import typer

from pneumocxr.errors import PneumoError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Train, evaluate and explain chest X-ray classifiers (NORMAL vs PNEUMONIA).",
)
log = logging.getLogger("pneumocxr")


# -- entry point ----------------------------------------------------------------------------
def _setup_logging() -> None:
    # One handler however often main() runs in a process (a notebook, a test), writing to
    # the stderr of the moment: a handler bound to an earlier, since closed stream printed
    # "--- Logging error ---" into later commands' output.
    for old in [h for h in log.handlers if isinstance(h, _CurrentStderr)]:
        log.removeHandler(old)
    handler = _CurrentStderr()
    handler.setFormatter(_Formatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


class _CurrentStderr(logging.StreamHandler):
    """A stream handler for whatever `sys.stderr` is when a line is logged."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ sets it; always sys.stderr
        pass


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from pneumocxr.display import display_path, short_words

        text = record.getMessage()
        # A warning is one line even when it quotes a file name holding a line break, and
        # a very long path in it is cut in the middle.
        if record.levelno >= logging.WARNING:
            return f"warning: {short_words(display_path(text))}"
        return text


def main() -> None:
    from pneumocxr._malloc import tune_malloc

    # Idle OpenMP threads sleep instead of spinning: on two shared cores a spinning thread
    # took the core the Python thread needed (SmallNet training 24 -> 38 img/s, one third
    # less CPU time; docs/PERFORMANCE.md). Must be set before torch loads; overridable.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Figures are only ever saved: no window toolkit (the library itself leaves the backend to
    # its user, so plots still show in a notebook).
    os.environ.setdefault("MPLBACKEND", "Agg")
    _matplotlib_folder()
    tune_malloc()
    _prepare_streams()
    _setup_logging()
    try:
        app()
    except PneumoError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as err:
        _fail_if_disk_full(err)
        where = f": {err.filename}" if getattr(err, "filename", None) else ""
        _fail(f"{err.strerror or err}{where}")
    except Exception as err:  # a bug: one line by default, the traceback on request
        _fail_if_disk_full(err)  # libraries wrap ENOSPC in their own errors (safetensors)
        if os.environ.get("PNEUMOCXR_DEBUG"):
            raise
        _fail(
            f"internal error ({type(err).__name__}: {err}); "
            "set PNEUMOCXR_DEBUG=1 to see the traceback"
        )


def _matplotlib_folder() -> None:
    """A private MPLCONFIGDIR when matplotlib could not write its own (HOME not writable):
    matplotlib would otherwise print its own warnings about it on stderr."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = os.path.expanduser("~")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    if all(_writable_folder(os.path.join(base, "matplotlib")) for base in (config, cache)):
        return
    folder = tempfile.mkdtemp(prefix="pneumocxr-matplotlib-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["MPLCONFIGDIR"] = folder


def _writable_folder(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def _prepare_streams() -> None:
    """Answers are never lost to the terminal: a character the output's encoding lacks (a
    Cyrillic file name under PYTHONIOENCODING=latin-1) is written escaped, and a closed
    standard output (`>&-`, which Python turns into None and click then skips silently) fails
    the command at its first answer, in one line on stderr."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    if sys.stdout is None:
        sys.stdout = _Closed()


class _Closed(io.TextIOBase):
    """Standard output that is not there: writing to it is an error."""

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed: the answers could not be printed")


def _fail_if_disk_full(err: BaseException) -> None:
    from pneumocxr.fileio.atomic import disk_full_message, is_disk_full

    if is_disk_full(err):
        _fail(disk_full_message(err))


def _fail(message: str) -> None:
    from pneumocxr.display import one_line

    # Messages may quote a library's multi-line text (pandas, pydicom): keep them on one line.
    typer.echo("error: " + one_line(message), err=True)
    sys.exit(1)
