"""Turn a folder in the Kaggle `chest_xray` layout into a table of images.

The table has one row per image: `path, label, patient, subtype, source`. Labels come from the
nearest ancestor folder named NORMAL or PNEUMONIA (any case); the patient and the pneumonia
subtype come from the Kaggle file names; `source` is the Kaggle part the image sits in (`train`,
`val` or `test`, the first such folder below the root) or empty.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pneumocxr.data.dicom import is_dicom
from pneumocxr.data.duplicates import drop_copies
from pneumocxr.errors import PneumoError
from pneumocxr.task import CLASS_NAMES

if TYPE_CHECKING:  # pandas is imported where a table is built: `predict` needs none
    import pandas as pd

log = logging.getLogger("pneumocxr")

# Files with these names are read, in folders as when named; the content decides the format.
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")
DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_KINDS = "JPEG, PNG, GIF, BMP, TIFF, WebP, DICOM"
COLUMNS = ["path", "label", "patient", "subtype", "source"]
KAGGLE_PARTS = ("train", "val", "test")
SKIPPED_DIRS = {"__macosx"}

# person12_bacteria_46 -> person12 / bacteria
_PERSON = re.compile(r"^(person\d+)_(bacteria|virus)(?:_.*)?$", re.IGNORECASE)
# IM-0115-0001 -> IM-0115 ; NORMAL2-IM-0381-0001 -> NORMAL2-IM-0381
_SERIES = re.compile(r"^(.+)-\d+$")


def parse_patient(filename: str) -> tuple[str, str]:
    """Return (patient, subtype) for a Kaggle file name; subtype is '' when the name has none."""
    stem = Path(filename).stem
    match = _PERSON.match(stem)
    if match:
        return match.group(1), match.group(2).lower()
    match = _SERIES.match(stem)
    if match and "-" in match.group(1):
        return match.group(1), ""
    return stem, ""


def index_images(root, strict: bool = False) -> pd.DataFrame:
    """Index every image under `root` (searched recursively, through symlinks) that sits in a
    class folder; `strict` makes a folder or link that cannot be read an error."""
    import pandas as pd

    root = Path(root)
    if not root.exists():
        raise PneumoError(f"data folder not found: {root}")
    if not root.is_dir():
        raise PneumoError(f"data path is not a folder: {root}")
    rows = []
    for path in walk_files(root, strict):
        label = folder_label(path.parent, root)
        if label is None or not is_image_name(path):
            continue
        patient, subtype = parse_patient(path.name)
        rows.append((_absolute(path), label, patient, subtype, kaggle_part(path.parent, root)))
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        raise PneumoError(
            f"no images found under {root}: expected NORMAL/ and PNEUMONIA/ folders "
            f"holding image files ({IMAGE_KINDS})"
        )
    return drop_copies(table.sort_values("path", ignore_index=True))


@dataclass
class FolderWalk:
    """What walking a folder found: its files, and what it could not read or left out."""

    files: list[Path] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "permission denied: FOLDER"
    broken: list[str] = field(default_factory=list)  # "broken symbolic link: LINK", or a loop
    loops: list[Path] = field(default_factory=list)  # folder links back into their own path
    hidden: dict[str, int] = field(default_factory=dict)  # hidden folder -> images in it


def walk_files(root, strict: bool = False) -> list[Path]:
    """Every file under the folder `root`, sorted, as paths through `root` (symlinked folders
    and files are followed). Hidden files and folders and `__MACOSX` are left out. What could
    not be read, or was left out, is said in one warning line per kind; with `strict`,
    unreadable folders and broken links are an error instead. Every command that reads a
    folder goes through here."""
    found = scan_folder(root)
    report_walk(found, strict)
    return sorted(found.files)


def scan_folder(root) -> FolderWalk:
    """Walk `root` depth first; a folder link that leads back to a folder being walked, or to
    a folder that holds `root` (a link to `/` would walk the whole machine), is a loop: noted
    and not entered."""
    root = Path(root)
    found = FolderWalk()
    try:
        entries = _entries(root)
        around = _holding(root)
    except OSError as err:
        raise PneumoError(f"cannot read the folder {root} ({_reason(err)})") from None
    stack = [(root, entries, around)]
    while stack:
        folder, entries, above = stack.pop()
        for entry in entries:
            _visit(Path(folder, entry.name), entry, above, found, stack)
    return found


def _visit(path: Path, entry: os.DirEntry, above: frozenset, found: FolderWalk, stack) -> None:
    if entry.name.lower() in SKIPPED_DIRS:
        return
    hidden = entry.name.startswith(".")
    try:
        info = entry.stat()  # through a link: its target
    except OSError as err:
        if entry.is_symlink() and not hidden:
            kind = "symbolic link loop" if err.errno == errno.ELOOP else "broken symbolic link"
            found.broken.append(f"{kind}: {path}")
        elif not hidden:
            found.files.append(path)  # decoding says what is wrong with it
        return
    if not entry.is_dir():
        if not hidden:
            found.files.append(path)
        return
    key = (info.st_dev, info.st_ino)
    if key in above:
        if not hidden:
            found.loops.append(path)
        return
    if hidden:
        found.hidden[str(path)] = _images_inside(path)
        return
    try:
        stack.append((path, _entries(path), above | {key}))
    except OSError as err:
        found.unreadable.append(f"{_reason(err)}: {path}")


def _holding(root: Path) -> frozenset:
    """(device, inode) of `root` and of every folder above it, links resolved."""
    real = Path(os.path.realpath(root))
    keys = set()
    for folder in (real, *real.parents):
        with contextlib.suppress(OSError):  # a folder above that cannot be looked at
            info = os.stat(folder)
            keys.add((info.st_dev, info.st_ino))
    info = os.stat(root)
    return frozenset(keys | {(info.st_dev, info.st_ino)})


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as listing:
        return sorted(listing, key=lambda e: e.name, reverse=True)  # popped in name order


def _images_inside(folder: Path) -> int:
    """Image files (by name) in a hidden folder, for the message saying they are left out."""
    try:
        inner = scan_folder(folder)
    except PneumoError:
        return 0
    named = [p for p in inner.files if p.suffix.lower() in IMAGE_SUFFIXES + DICOM_SUFFIXES]
    return len(named) + sum(inner.hidden.values())


def report_walk(found: FolderWalk, strict: bool = False) -> None:
    """One line per kind of trouble: a warning, or with `strict` an error for lost input."""
    if found.unreadable:
        n = len(found.unreadable)
        text = f"{_count(n, 'folder')} could not be read ({_first(found.unreadable)})"
        if strict:
            raise PneumoError(text)
        log.warning("%s; %s images are not used", text, "its" if n == 1 else "their")
    if found.broken:
        n = len(found.broken)
        text = f"{_count(n, 'link')} cannot be followed ({_first(found.broken)})"
        if strict:
            raise PneumoError(text)
        log.warning("%s; %s skipped", text, "it is" if n == 1 else "they are")
    if found.loops:  # nothing is lost: the folder a loop leads to is read once
        loops = [f"{p} -> {os.path.realpath(p)}" for p in found.loops]
        log.warning(
            "%s not followed (%s: a link to a folder it is inside)",
            _count(len(loops), "symlink loop"),
            _first(loops),
        )
    hidden = {name: n for name, n in found.hidden.items() if n}
    if hidden:
        log.warning(
            "%s in hidden folders left out (%s)",
            _count(sum(hidden.values()), "image file"),
            _first([f"{name}: {n}" for name, n in hidden.items()]),
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _first(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def _reason(err: OSError) -> str:
    return (err.strerror or type(err).__name__).lower()


def is_image_name(path: Path) -> bool:
    """An image or DICOM file by its name; DICOMs from scanners often have no suffix at all.
    Hidden files (editor and half-written temporaries) are never images."""
    if path.name.startswith("."):
        return False
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES + DICOM_SUFFIXES:
        return True
    return suffix == "" and path.is_file() and is_dicom(path)


def _absolute(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a symlink loop: decoding reports it
        return os.path.abspath(path)


def require_both_classes(table: pd.DataFrame, where) -> None:
    """Training and splitting need examples of both classes."""
    present = set(table["label"])
    missing = [c for c in CLASS_NAMES if c not in present]
    if missing:
        found = ", ".join(sorted(present))
        raise PneumoError(
            f"only {found} images found under {where}; both NORMAL and PNEUMONIA are needed"
        )


def class_counts(table: pd.DataFrame) -> dict[str, int]:
    counts = table["label"].value_counts()
    return {c: int(counts.get(c, 0)) for c in CLASS_NAMES}


def folder_label(folder: Path, root: Path | None = None) -> str | None:
    """The class of the nearest ancestor of `folder` (up to `root`) named after a class."""
    names = {c.lower(): c for c in CLASS_NAMES}
    parts = folder.parts if root is None else folder.relative_to(root).parts
    for part in reversed(parts or (folder.name,)):
        if part.lower() in names:
            return names[part.lower()]
    return None


def kaggle_part(folder: Path, root: Path) -> str:
    """`train`, `val` or `test`: the first folder below `root` with such a name, else ''."""
    for part in folder.relative_to(root).parts:
        if part.lower() in KAGGLE_PARTS:
            return part.lower()
    return ""
