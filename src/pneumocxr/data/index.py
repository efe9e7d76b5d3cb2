"""Turn a folder in the Kaggle `chest_xray` layout into a table of images.

The table has one row per image: `path, label, patient, subtype, source`. Labels come from the
nearest ancestor folder named NORMAL or PNEUMONIA (any case); the patient and the pneumonia
subtype come from the Kaggle file names; `source` is the Kaggle part the image sits in (`train`,
`val` or `test`, the first such folder below the root) or empty.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pneumocxr import CLASS_NAMES
from pneumocxr.data.dicom import is_dicom
from pneumocxr.data.duplicates import drop_copies
from pneumocxr.errors import PneumoError

if TYPE_CHECKING:  # pandas is imported where a table is built: `predict` needs none
    import pandas as pd

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


def index_images(root) -> pd.DataFrame:
    """Index every image under `root` (searched recursively) that sits in a class folder."""
    import pandas as pd

    root = Path(root)
    if not root.exists():
        raise PneumoError(f"data folder not found: {root}")
    if not root.is_dir():
        raise PneumoError(f"data path is not a folder: {root}")
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d.lower() not in SKIPPED_DIRS)
        label = folder_label(Path(dirpath), root)
        if label is None:
            continue
        source = kaggle_part(Path(dirpath), root)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not is_image_name(path):
                continue
            patient, subtype = parse_patient(name)
            rows.append((_absolute(path), label, patient, subtype, source))
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        raise PneumoError(
            f"no images found under {root}: expected NORMAL/ and PNEUMONIA/ folders "
            f"holding image files ({IMAGE_KINDS})"
        )
    return drop_copies(table.sort_values("path", ignore_index=True))


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


def has_test_folder(root) -> bool:
    """A Kaggle-layout download: a `test` folder (any case) right below the root."""
    root = Path(root)
    return root.is_dir() and any(p.is_dir() and p.name.lower() == "test" for p in root.iterdir())
