"""The corpus cases of the third hostile round (tests/corpus.py's `write_corpus` adds them):
an image small on disk and huge in memory, a figure pneumocxr drew, a labels CSV naming a
named pipe, a data folder holding a link to `/`."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from corpus import Case, _data_folder, _pictures, _png_chunk, picture


def rgba16_png(width: int, height: int, rows_per_block: int = 250) -> bytes:
    """A valid, fully transparent 16-bit RGBA PNG of any size, a few hundred kB however large:
    one compressed block of rows, repeated (a full flush makes each block stand alone)."""
    row = bytes(1 + 8 * width)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(row * rows_per_block) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks, rest = divmod(height, rows_per_block)
    tail = compressor.compress(row * rest) + compressor.flush(zlib.Z_FINISH)
    check = 1
    for _ in range(height):
        check = zlib.adler32(row, check)
    data = b"\x78\xda" + block * blocks + tail + struct.pack(">I", check)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def own_figure(path: Path) -> Path:
    """A figure as pneumocxr saves its plots (a PNG marked Software: pneumocxr)."""
    import matplotlib.pyplot as plt

    from pneumocxr.fileio.formats import save_figure

    figure = plt.figure(figsize=(3, 3))
    figure.gca().imshow(picture(64, 64), cmap="gray")
    return save_figure(figure, path)


def hostile_cases(folder: Path) -> list[Case]:
    images = folder / "images"
    bomb = images / "rgba16.png"
    bomb.write_bytes(rgba16_png(8000, 5000))
    cases = [
        Case("png_rgba16_40mp", bomb, "image", "refuse",
             what="40 megapixels of 16-bit RGBA in 311 kB: 153 MB decoded"),
        Case("figure_by_pneumocxr", own_figure(images / "figure.png"), "image", "refuse",
             what="a plot pneumocxr saved, left in a data folder"),
    ]  # fmt: skip
    data = _data_folder(folder / "folders" / "root_link")
    (data / "PNEUMONIA" / "everything").symlink_to("/")
    cases.append(Case("folder_link_to_root", data, "folder", "ok", what="a link to /",
                      said="everything -> /: a link to a folder it is inside"))  # fmt: skip
    labels = folder / "labels" / "labels_named_pipe"
    _pictures(labels / "images", 12)
    os.mkfifo(labels / "images" / "pipe")
    rows = [f"images/{i:04d}.jpeg,{'NORMAL' if i <= 6 else 'PNEUMONIA'}" for i in range(1, 13)]
    (labels / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\nimages/pipe,NORMAL\n")
    cases.append(Case("labels_named_pipe", labels / "labels.csv", "labels", "refuse",
                      what="a row naming a named pipe",
                      said="are not regular files: images/pipe (a named pipe)"))  # fmt: skip
    return cases
