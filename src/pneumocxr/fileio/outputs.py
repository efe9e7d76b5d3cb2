"""Output files that must not take the place of what the user made: inputs and foreign files.

A file counts as pneumocxr's only when it carries pneumocxr's own mark: a PNG's `Software:
pneumocxr` text chunk (what `save_figure` writes), the exact header line of the CSV that the
command writes, the title of pneumocxr's HTML report. Anything else is written over only with
--overwrite, and an input never, not even then. Outputs never go inside a data folder, where
the next command reading it would take them for X-rays."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.regular import open_regular

# Suffixes of the files pneumocxr reads as images: an output never takes such a name.
INPUT_SUFFIXES = (".jpeg", ".jpg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".dcm",
                  ".dicom")  # fmt: skip
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SOFTWARE = b"pneumocxr"  # the PNG text chunk `save_figure` writes: Software = pneumocxr


def check_output_file(path, option: str, inputs=(), made_here=None, suffixes=(),
                      overwrite: bool = False) -> Path:  # fmt: skip
    """Refuse before any work to write `path` over a file the command was given as input, or,
    without `overwrite`, over an existing file it did not make (`made_here(path)` says whether
    it did).

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
    if is_input(path, inputs):
        raise PneumoError(f"{option} {path} is one of the inputs; it would be overwritten")
    if not overwrite and (made_here is None or not path.is_file() or not made_here(path)):
        raise PneumoError(
            f"{option} {path} exists and was not written by pneumocxr; give a new file name, "
            "or pass --overwrite to replace it (nothing was overwritten)"
        )
    return path


def check_output_files(folder, names: dict, option: str, inputs=(), overwrite=False) -> None:
    """`check_output_file` for each file a command writes into `folder`: {name: made_here}."""
    keys = input_keys(inputs)
    for name, made_here in names.items():
        check_output_file(Path(folder) / name, option, keys, made_here, overwrite=overwrite)


class _Keys(frozenset):
    """Inputs as (device, inode): compared once, however many outputs are checked."""


def input_keys(inputs) -> _Keys:
    if isinstance(inputs, _Keys):
        return inputs
    return _Keys(key for key in map(_key, inputs) if key is not None)


def is_input(path, inputs) -> bool:
    """Whether `path` is (through links) one of `inputs`."""
    key = _key(path)
    return key is not None and key in input_keys(inputs)


def _key(path):
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def check_outside(out, folders, option: str = "--out") -> None:
    """Refuse an output folder or file inside one of `folders` (data folders read by walking
    them): figures written there would be read as X-rays by the next command."""
    target = Path(os.path.realpath(out))
    for folder in folders:
        if folder is None:
            continue
        base = Path(os.path.realpath(folder))
        if target == base or base in target.parents:
            raise PneumoError(
                f"{option} {out} is inside the data folder {folder}: what is written there "
                "would be read as X-rays next time; give a place outside it"
            )


def csv_header(columns):
    """A `made_here` test: the file's first line is exactly this CSV header."""
    line = ",".join(columns).encode()

    def test(path: Path) -> bool:
        try:
            with open_regular(path) as handle:
                first = handle.readline(len(line) + 3)
        except OSError:
            return False
        return first in (line + b"\r\n", line + b"\n")

    return test


def html_report(path: Path) -> bool:
    """A `made_here` test: pneumocxr's report.html (its title says so near the top)."""
    try:
        with open_regular(path) as handle:
            return b"<title>pneumocxr report: " in handle.read(2048)
    except OSError:
        return False


def made_by_pneumocxr_png(path: Path) -> bool:
    """A PNG whose text chunks before its pixels say `Software: pneumocxr` (`save_figure`'s
    mark; Matplotlib's own mark, or any other program's, does not count)."""
    try:
        with open_regular(path) as handle:
            return read_png_mark(handle)
    except (OSError, struct.error):
        return False


def read_png_mark(handle) -> bool:
    if handle.read(8) != PNG_SIGNATURE:
        return False
    while True:
        head = handle.read(8)
        if len(head) < 8:
            return False
        length, kind = struct.unpack(">I4s", head)
        if kind in (b"IDAT", b"IEND") or length > 1 << 20:
            return False  # text after the pixels is not where a figure's mark goes
        data = handle.read(length)
        handle.read(4)  # the chunk's CRC
        if kind in (b"tEXt", b"iTXt") and _software(kind, data) == SOFTWARE:
            return True


def _software(kind: bytes, data: bytes) -> bytes | None:
    keyword, _, text = data.partition(b"\0")
    if keyword != b"Software":
        return None
    if kind == b"iTXt":  # compression flag and method, language tag, translated keyword
        if text[:1] != b"\0":
            return None  # compressed: never how a figure's short mark is stored
        text = text[2:].split(b"\0", 2)[-1]
    return text
