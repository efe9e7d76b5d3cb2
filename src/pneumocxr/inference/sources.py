"""Inputs for bulk scoring, streamed in a fixed order: files as given, folders searched, and the
rows of a CSV listing images (read in chunks, so a million rows take the memory of one chunk),
cut into the batches that every process, run and resumed run agrees on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.inference.inputs import expand_inputs

CSV_CHUNK = 50_000  # rows read at a time from a CSV listing images


@dataclass
class InputSource:
    """`paths` (files and folders) and/or `listing`, a CSV whose `path_column` names images,
    relative to `base` (default: the CSV's folder) or absolute."""

    paths: list = field(default_factory=list)
    listing: Path | None = None
    path_column: str = "path"
    base: Path | None = None
    strict: bool = False

    def __post_init__(self):
        if isinstance(self.paths, (str, Path)):  # one path, not its characters
            self.paths = [self.paths]
        if not self.paths and self.listing is None:
            raise PneumoError("give images, folders or a CSV listing them")
        if self.listing is not None:
            self._check_listing()

    def __iter__(self) -> Iterator[str]:
        for path in expand_inputs(self.paths, self.strict) if self.paths else []:
            yield str(path)
        if self.listing is not None:
            yield from self._listed()

    def batches(self, size: int) -> Iterator[tuple[int, list[str]]]:
        """(batch number, its paths): runs of `size` inputs in input order."""
        batch, number = [], 0
        for path in self:
            batch.append(path)
            if len(batch) == size:
                yield number, batch
                batch, number = [], number + 1
        if batch:
            yield number, batch

    def fingerprint(self) -> str:
        """What the inputs are, as a resumed run must find them again."""
        listing = None
        if self.listing is not None:
            stat = Path(self.listing).stat()
            listing = [str(Path(self.listing).resolve()), stat.st_size, stat.st_mtime_ns]
        spec = {"paths": [str(Path(p).resolve()) for p in self.paths], "listing": listing,
                "column": self.path_column, "base": str(self._base())}  # fmt: skip
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def _base(self) -> Path:
        if self.base is not None:
            return Path(self.base)
        return Path(self.listing).parent if self.listing is not None else Path(".")

    def _check_listing(self) -> None:
        import pandas as pd

        if not Path(self.listing).is_file():
            raise PneumoError(f"no such CSV file: {self.listing}")
        try:
            header = pd.read_csv(self.listing, nrows=0, encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError) as err:
            raise PneumoError(f"{self.listing} is not a readable CSV file ({err})") from None
        columns = [str(c).strip() for c in header.columns]
        if self.path_column not in columns:
            raise PneumoError(
                f"{self.listing} has no column {self.path_column!r} (it has: {', '.join(columns)})"
            )

    def _listed(self) -> Iterator[str]:
        import pandas as pd

        base = self._base()
        chunks = pd.read_csv(self.listing, dtype=str, keep_default_na=False, chunksize=CSV_CHUNK,
                             encoding="utf-8-sig", skipinitialspace=True)  # fmt: skip
        for chunk in chunks:
            chunk.columns = [str(c).strip() for c in chunk.columns]
            for value in chunk[self.path_column]:
                path = Path(value.strip())
                yield str(path if path.is_absolute() else base / path)
