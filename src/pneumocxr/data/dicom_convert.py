"""`pneumocxr dicom2png`: DICOM files or folder trees to 8-bit PNGs, never over existing files
unless asked. Apart from `data.dicom` (reading) so that the folder walk and the DICOM reader
do not import each other."""

from __future__ import annotations

import os
from pathlib import Path

from pneumocxr.data.dicom import is_dicom, read_dicom_gray
from pneumocxr.data.index import walk_files
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.atomic import atomic_path
from pneumocxr.fileio.folders import link_problem
from pneumocxr.fileio.outputs import is_input


def dicom_to_png(source, target, overwrite: bool = False):
    """Convert a DICOM file, or every DICOM in a folder tree, to 8-bit 3-channel PNGs.

    A file goes to TARGET when that ends in .png, else into the folder TARGET. A folder keeps
    its layout under `target`. Existing PNGs are replaced only with `overwrite`. Returns the
    PNGs written and (path, reason) for files that failed; fails if none could be converted.
    """
    from PIL import Image

    source, target = Path(source), Path(target)
    if not source.exists():
        raise PneumoError(link_problem(source) or f"no such file or folder: {source}")
    if source.is_file():
        single = target.suffix.lower() == ".png" and not target.is_dir()
        jobs = [(source, target if single else target / f"{source.stem}.png")]
        if is_input(jobs[0][1], [source]):
            raise PneumoError(f"{jobs[0][1]} is the DICOM file to convert; give another name "
                              "for the PNG (nothing was written)")  # fmt: skip
    else:
        files = [p for p in walk_files(source) if p.is_file() and is_dicom(p)]
        if not files:
            raise PneumoError(f"no DICOM files under {source}")
        jobs = list(zip(files, _png_names(files, source, target)))
    if not overwrite:
        _refuse_existing([dst for _, dst in jobs])
    written, failures = [], []
    for src, dst in jobs:
        try:
            gray = read_dicom_gray(src)
        except PneumoError as err:
            if source.is_file():
                raise
            failures.append((str(src), str(err)))
            continue
        with atomic_path(dst) as tmp:
            Image.fromarray(gray).convert("RGB").save(tmp, format="PNG")
        written.append(dst)
    return written, failures


def _refuse_existing(targets: list[Path]) -> None:
    """Before converting anything: a second run must not silently replace the first's PNGs."""
    found = [t for t in targets if os.path.lexists(t)]
    if found:
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        raise PneumoError(
            f"{found[0]}{more} already exist; pass --overwrite to replace them (nothing was "
            "written)"
        )


def _png_names(files: list[Path], source: Path, target: Path) -> list[Path]:
    """One PNG per DICOM: `scan.dcm` -> `scan.png`, unless another file (`scan`, `scan.dicom`)
    would get that name too; then each of them keeps its full name (`scan.dcm.png`)."""
    rel = [f.relative_to(source) for f in files]
    names = [target / r.with_suffix(".png") for r in rel]
    taken = {f.resolve() for f in files}  # never write over a DICOM (target may be source)
    clashes = {n for n in names if names.count(n) > 1 or n.resolve() in taken}
    names = [target / r.parent / f"{r.name}.png" if n in clashes else n for n, r in zip(names, rel)]
    if len(set(names)) < len(names) or any(n.resolve() in taken for n in names):
        clash = next(n for n in names if names.count(n) > 1 or n.resolve() in taken)
        raise PneumoError(f"two DICOM files would both be written to {clash}; rename one")
    return names
