"""What the user gave, as the list of files to predict: files as given, folders searched."""

from __future__ import annotations

import os
from pathlib import Path

from pneumocxr.data.index import IMAGE_KINDS, is_image_name, walk_files
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.folders import link_problem


def expand_inputs(paths, strict: bool = False) -> list[Path]:
    """Files as given, folders searched recursively (through symlinks) for image and DICOM
    files; `strict` makes a folder or link in them that cannot be read an error."""
    if isinstance(paths, (str, os.PathLike)):  # one path, not its characters
        paths = [paths]
    files = []
    for item in map(Path, paths):
        if item.is_dir():
            found = [p for p in walk_files(item, strict) if is_image_name(p)]
            if not found:
                raise PneumoError(f"no image files ({IMAGE_KINDS}) in {item}")
            files += found
        elif item.exists():
            files.append(item)  # a FIFO or device is refused when decoding, like a bad file
        else:
            raise PneumoError(link_problem(item) or f"no such file or folder: {item}")
    return files
