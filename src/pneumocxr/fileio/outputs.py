"""Output files that must not take the place of what the user made: inputs and foreign files."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pneumocxr.errors import PneumoError

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
