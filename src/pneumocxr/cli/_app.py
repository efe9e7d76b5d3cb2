"""The Typer app every command module registers with, and the entry point: logging, and one
clean line for every error."""

from __future__ import annotations

import logging
import os
import sys
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from pneumocxr.display import display_path

        text = record.getMessage()
        # A warning is one line even when it quotes a file name holding a line break.
        return f"warning: {display_path(text)}" if record.levelno >= logging.WARNING else text


def main() -> None:
    from pneumocxr._malloc import tune_malloc

    # Idle OpenMP threads sleep instead of spinning: on two shared cores a spinning thread
    # took the core the Python thread needed (SmallNet training 24 -> 38 img/s, one third
    # less CPU time; docs/PERFORMANCE.md). Must be set before torch loads; overridable.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Figures are only ever saved: no window toolkit (the library itself leaves the backend to
    # its user, so plots still show in a notebook).
    os.environ.setdefault("MPLBACKEND", "Agg")
    tune_malloc()
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


def _fail_if_disk_full(err: BaseException) -> None:
    from pneumocxr.fileio.atomic import disk_full_message, is_disk_full

    if is_disk_full(err):
        _fail(disk_full_message(err))


def _fail(message: str) -> None:
    from pneumocxr.display import one_line

    # Messages may quote a library's multi-line text (pandas, pydicom): keep them on one line.
    typer.echo("error: " + one_line(message), err=True)
    sys.exit(1)
