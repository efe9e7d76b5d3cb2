"""A labels CSV: images anywhere (often a flat folder of DICOMs) and a table giving their class.

Most public chest X-ray sets come this way: RSNA Pneumonia Detection (`patientId`, `Target`, one
row per box), NIH ChestX-ray14 (`Image Index`, `Finding Labels` such as `Pneumonia|Effusion`),
CheXpert (`Path`, a `Pneumonia` column of 1, 0, -1 and blanks). `read_labels` turns any of them
into the table a class-folder index gives (data/index.py's COLUMNS), so that everything
downstream works unchanged; docs/TRAINING.md has the command line for each.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pneumocxr.data.dicom import dicom_patient, is_dicom
from pneumocxr.data.index import (
    COLUMNS,
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    index_images,
    parse_patient,
)
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import check_utf8_text
from pneumocxr.fileio.regular import NotRegularFile, irregular_kind, open_regular

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("pneumocxr")
SPLIT_VALUES = ("train", "val", "test")
SHOWN = 3  # how many offending values or files a message names


@dataclass(frozen=True)
class LabelsSpec:
    """How to read a labels CSV (the --labels options)."""

    csv: str
    path_column: str = "path"
    label_column: str = "label"
    patient_column: str = "patient"  # used when present; else DICOM PatientID or the file name
    patient_pattern: str | None = None  # a regex finding the patient in each listed path
    positive: tuple[str, ...] = ()  # label values meaning PNEUMONIA; () = "PNEUMONIA"
    negative: tuple[str, ...] = ()  # ... meaning NORMAL; () = "NORMAL", or any other with positive
    uncertain: tuple[str, ...] = ()  # values whose rows are left out (empty labels always are)
    separator: str | None = None  # a label holds several findings separated by this

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> LabelsSpec:
        """From config.json (lists where tuples were)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def image_table(data, labels: LabelsSpec | None = None, strict: bool = False) -> pd.DataFrame:
    """The labelled images of `data`: its class folders, or the rows of a labels CSV."""
    if labels is None:
        return index_images(data, strict)
    return read_labels(labels, data)


def read_labels(spec: LabelsSpec, root=None) -> pd.DataFrame:
    """The images a labels CSV lists, as an index table (path, label, patient, subtype, source:
    the CSV's `split` column, if any). Relative paths start at `root` (default: the CSV's
    folder). Rows of one image collapse to one; rows that disagree, missing files and unknown
    labels are errors; rows with an uncertain or empty label are left out with a warning."""
    import pandas as pd

    csv = Path(spec.csv)
    root = Path(root) if root is not None else csv.parent
    required = [spec.path_column, spec.label_column]
    if spec.patient_column != "patient" and not spec.patient_pattern:
        required.append(spec.patient_column)  # named by the user: it must be there
    table = read_table(csv, required)
    listed = table[spec.path_column].str.strip()
    if (listed == "").any():
        raise PneumoError(
            f"{(listed == '').sum()} row(s) of {csv} have an empty {spec.path_column!r} column"
        )
    labels = map_labels(table[spec.label_column], spec, csv)
    kept = labels.notna()
    _say_left_out(table.loc[~kept, spec.label_column], spec, csv)
    if not kept.any():
        raise PneumoError(f"{csv} has no row with a usable label")
    found = find_files(listed[kept], root, csv)
    rows = pd.DataFrame(
        {
            "path": [os.path.realpath(p) for p in found],  # as class folders give it
            "label": labels[kept],
            "patient": _patients(table[kept], listed[kept], spec, csv),
            "source": _splits(table[kept], csv),
            "name": [os.path.basename(p) for p in found],  # as listed: Kaggle rules apply
        }
    )
    rows = _collapse(rows, csv)
    rows["patient"] = [
        p or _patient_of_file(path, name)
        for p, path, name in zip(rows["patient"], rows["path"], rows["name"])
    ]
    rows["subtype"] = [parse_patient(name)[1] for name in rows["name"]]
    return rows[COLUMNS].sort_values("path", ignore_index=True)


def read_table(csv: Path, columns: list[str]) -> pd.DataFrame:
    """The CSV as text cells, or one line saying why it cannot be read."""
    import pandas as pd

    if not os.path.exists(csv):
        raise PneumoError(f"labels file not found: {csv}")
    check_utf8_text(csv)
    try:
        with open_regular(csv) as handle:  # a named pipe would never end
            table = pd.read_csv(handle, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except NotRegularFile:
        raise
    except UnicodeDecodeError as err:
        raise PneumoError(
            f"{csv} is not UTF-8 text (byte {err.start}); save the labels as a UTF-8 CSV file"
        ) from None
    except pd.errors.EmptyDataError:
        raise PneumoError(f"{csv} is empty: a labels CSV needs a header row") from None
    except (ValueError, pd.errors.ParserError) as err:  # ragged rows, binary data
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise PneumoError(f"{csv} is not a readable CSV file ({reason})") from None
    except OSError as err:
        raise PneumoError(f"cannot read {csv} ({err.strerror or err})") from None
    table.columns = [str(c).strip() for c in table.columns]
    twice = table.columns[table.columns.duplicated()].unique().tolist()
    if twice:  # `path,label, path`: one name for two columns once trimmed
        raise PneumoError(
            f"{csv} has the column {twice[0]!r} twice (spaces around names are ignored); "
            "give each column its own name"
        )
    missing = [c for c in columns if c not in table.columns]
    if missing:
        have = ", ".join(map(repr, table.columns[:12]))
        raise PneumoError(f"{csv} has no column {missing[0]!r} (its columns: {have})")
    if table.empty:
        raise PneumoError(f"{csv} has a header but no rows")
    return table


# -- labels -----------------------------------------------------------------------------------
def canonical(value) -> str:
    """Label values compared as the CSV and the command line may write them: case and spaces
    aside, and numbers by value (CheXpert writes 1.0 and -1.0)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text.casefold()
    if math.isfinite(number) and number == int(number):
        return str(int(number))
    return repr(number)


UNKNOWN = "?"  # a label no option covers


def map_labels(cells: pd.Series, spec: LabelsSpec, csv: Path) -> pd.Series:
    """NORMAL, PNEUMONIA or None (left out: uncertain or empty) for each label cell; values
    that no option covers are an error naming them."""
    rule = label_rule(spec)
    values = {cell: rule(cell) for cell in cells.unique()}
    unknown = [cell for cell, value in values.items() if value == UNKNOWN]
    if unknown:
        counts = cells[cells.isin(unknown)].value_counts()
        shown = ", ".join(
            f"{v!r} ({n} row{'s' if n > 1 else ''})" for v, n in counts[:SHOWN].items()
        )
        more = f" and {len(counts) - SHOWN} more" if len(counts) > SHOWN else ""
        raise PneumoError(
            f"unknown label value(s) in column {spec.label_column!r} of {csv}: {shown}{more}; "
            f"expected {_expected(spec)}"
        )
    return cells.map(values)


def label_rule(spec: LabelsSpec):
    """A function from one label cell to NORMAL, PNEUMONIA, None (left out) or UNKNOWN. With a
    separator, a cell is PNEUMONIA when any of its findings is positive."""
    positive = {canonical(v) for v in spec.positive or ("PNEUMONIA",)}
    negative = {canonical(v) for v in spec.negative or (() if spec.positive else ("NORMAL",))}
    uncertain = {canonical(v) for v in spec.uncertain}

    def rule(cell: str) -> str | None:
        parts = cell.split(spec.separator) if spec.separator else [cell]
        names = {canonical(p) for p in parts} - {""}
        if not names:
            return None
        if names & positive:
            return "PNEUMONIA"
        if names & uncertain:
            return None
        if not negative or names <= negative:  # no --negative: any other value is NORMAL
            return "NORMAL"
        return UNKNOWN

    return rule


def _expected(spec: LabelsSpec) -> str:
    if not (spec.positive or spec.negative or spec.uncertain):
        return "NORMAL or PNEUMONIA (other conventions: --positive, --negative, --uncertain)"
    positive = ", ".join(spec.positive or ("PNEUMONIA",))
    negative = ", ".join(spec.negative or ("NORMAL",))
    left = f" or {', '.join(spec.uncertain)} (left out)" if spec.uncertain else ""
    return f"{positive} (PNEUMONIA), {negative} (NORMAL){left}"


def _say_left_out(cells: pd.Series, spec: LabelsSpec, csv: Path) -> None:
    if cells.empty:
        return
    counts = cells.map(lambda c: canonical(c) or "empty").value_counts()
    shown = ", ".join(f"{value}: {n}" for value, n in counts.items())
    log.warning(
        "%d row(s) of %s left out: uncertain or empty label in column %r (%s)",
        len(cells),
        csv,
        spec.label_column,
        shown,
    )


# -- files, patients, splits ------------------------------------------------------------------
def find_files(listed: pd.Series, root: Path, csv: Path) -> list[str]:
    """Each listed image: as written, relative to `root` unless absolute, or else with an
    image suffix added (RSNA lists `patientId`, its files
    are `<patientId>.dcm`); the first that exists, in the order of DICOM_SUFFIXES and
    IMAGE_SUFFIXES."""
    found = {value: _find(value, root) for value in listed.unique()}
    missing = [value for value, path in found.items() if path is None]
    if missing:
        raise PneumoError(
            f"{len(missing)} image(s) listed in {csv} not found under {root}: {_few(missing)}"
        )
    odd = {value: irregular_kind(path) for value, path in found.items()}
    odd = [f"{value} ({kind})" for value, kind in odd.items() if kind]
    if odd:  # a named pipe would never be read to its end: refused, never opened
        raise PneumoError(f"{len(odd)} file(s) listed in {csv} are not regular files: {_few(odd)}")
    return [found[value] for value in listed]


def _find(value: str, root: Path) -> str | None:
    path = os.path.join(root, value)  # an absolute value replaces root; strings: 100k rows
    for suffix in ("", *DICOM_SUFFIXES, *IMAGE_SUFFIXES):
        if os.path.exists(path + suffix) and not os.path.isdir(path + suffix):
            return path + suffix
    return None


def _patients(table: pd.DataFrame, listed: pd.Series, spec: LabelsSpec, csv: Path) -> list:
    """The patient of each row where the CSV says it ('' where it does not)."""
    if spec.patient_pattern:
        return _patients_by_pattern(listed, spec.patient_pattern, csv)
    if spec.patient_column in table.columns:
        return table[spec.patient_column].str.strip().tolist()
    return [""] * len(table)


def _patients_by_pattern(listed: pd.Series, pattern: str, csv: Path) -> list:
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise PneumoError(
            f"--patient-pattern {pattern!r} is not a regular expression ({err})"
        ) from None

    def patient(value: str) -> str | None:
        match = regex.search(value)
        return None if match is None else match.group(1 if regex.groups else 0)

    found = {value: patient(value) for value in listed.unique()}
    missing = [value for value, p in found.items() if not p]
    if missing:
        raise PneumoError(
            f"--patient-pattern {pattern!r} finds no patient in {len(missing)} path(s) of "
            f"{csv}: {_few(missing)}"
        )
    return [found[value] for value in listed]


def _patient_of_file(path: str, name: str) -> str:
    """No patient in the CSV: the DICOM header's PatientID (as a pseudonym), else the Kaggle
    file-name rule (data/index.py's parse_patient) on the name as listed."""
    return (is_dicom(path) and dicom_patient(path)) or parse_patient(name)[0]


def _splits(table: pd.DataFrame, csv: Path) -> list:
    """The CSV's `split` column (train, val, test; '' where empty), for --split column."""
    if "split" not in table.columns:
        return [""] * len(table)
    values = table["split"].str.strip().str.lower()
    bad = values[~values.isin([*SPLIT_VALUES, ""])].unique().tolist()
    if bad:
        raise PneumoError(
            f"unknown split value(s) in {csv}: {_few(list(map(repr, bad)))}; "
            "expected train, val or test"
        )
    return values.tolist()


def _collapse(rows: pd.DataFrame, csv: Path) -> pd.DataFrame:
    """One row per image: repeated rows (RSNA has one per box) are one; rows of one image that
    disagree are an error naming a few."""
    rows = rows.drop_duplicates(["path", "label", "patient", "source"], ignore_index=True)
    clash = rows[rows["path"].duplicated(keep=False)]
    if clash.empty:
        return rows
    examples = []
    for _, group in list(clash.groupby("path", sort=True))[:SHOWN]:
        differ = [
            f"{name}: {', '.join(sorted(group[column].unique()))}"
            for column, name in (("label", "label"), ("patient", "patient"), ("source", "split"))
            if group[column].nunique() > 1
        ]
        examples.append(f"{group['name'].iloc[0]} ({'; '.join(differ)})")
    count = clash["path"].nunique()
    more = f" and {count - SHOWN} more" if count > SHOWN else ""
    raise PneumoError(
        f"{count} image(s) have rows that disagree in {csv}: {', '.join(examples)}{more}; "
        "each image needs one label"
    )


def _few(values: list) -> str:
    more = f" and {len(values) - SHOWN} more" if len(values) > SHOWN else ""
    return ", ".join(map(str, values[:SHOWN])) + more
