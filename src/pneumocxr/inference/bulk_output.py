"""Where bulk answers go: a CSV or JSON-lines file that grows a batch at a time, each batch
appended whole (written, synced, then recorded in a progress file beside it), so a run killed
at any moment resumes from its last recorded batch and never writes a row twice. The progress
file goes when the run is complete.

With several processes each writes its own part file (the same way) and rank 0 merges the
parts in input order at the end, into the file asked for, atomically.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

from pneumocxr.errors import PneumoError
from pneumocxr.fileio.atomic import atomic_path
from pneumocxr.fileio.formats import escape_cell, read_json, write_json
from pneumocxr.inference.answers import ANSWER_COLUMNS, answer_record

FORMATS = ("csv", "jsonl")
PART = "part"  # a process's own file: JSON lines of {"batch": number, "answer": record}
PROGRESS = "pneumocxr-bulk/1"
CSV_HEADER = (",".join(ANSWER_COLUMNS) + "\r\n").encode()


def rows_text(records: list[dict], fmt: str, batch: int = 0) -> bytes:
    """Answers (dicts of ANSWER_COLUMNS) as `pneumocxr predict` writes them: --csv's rows
    (`fileio.formats.write_csv`'s quoting and line ends) or --json's lines; or a part file's
    lines (full precision: the merge writes them as one process would have)."""
    if not records:
        return b""
    if fmt == PART:
        lines = (json.dumps({"batch": batch, "answer": r}) for r in records)
        return "".join(line + "\n" for line in lines).encode("utf-8", errors="surrogateescape")
    if fmt == "jsonl":
        return "".join(json.dumps(answer_record(r)) + "\n" for r in records).encode()
    import pandas as pd

    table = pd.DataFrame(records, columns=ANSWER_COLUMNS).apply(lambda c: c.map(escape_cell))
    text = table.to_csv(index=False, header=False, lineterminator="\r\n")
    return text.encode("utf-8", errors="surrogateescape")


def made_here(fmt: str):
    """A `made_here` test for `fileio.outputs.check_output_file`: a file with the progress
    record of a bulk run, or one that starts as predict writes: exactly its CSV header line,
    or a JSON line with exactly its fields."""

    def test(path: Path) -> bool:
        if progress_path(Path(path)).is_file():
            return True
        with open(path, "rb") as handle:
            head = handle.readline(64 * 1024)
        if fmt == "csv":
            return head == CSV_HEADER
        try:
            return list(json.loads(head)) == ANSWER_COLUMNS
        except (ValueError, TypeError):
            return False

    return test


def progress_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.progress.json")


def part_path(out: Path, rank: int, world: int) -> Path:
    return out.with_name(f".{out.name}.part-{rank}-of-{world}.jsonl")


class ResultFile:
    """One process's output: `path` in `fmt`; `batches` of its own done so far (on resume)."""

    def __init__(self, path: Path, fmt: str, fingerprint: str, resume: bool,
                 rank: int = 0, world: int = 1):  # fmt: skip
        self.path, self.fmt, self.fingerprint = Path(path), fmt, fingerprint
        self.rank, self.world = rank, world
        # A run killed before its first batch left nothing: resuming it is starting it.
        resume = resume and os.path.lexists(self.path)
        self.state = self._resumed() if resume else self._fresh()

    @property
    def batches(self) -> int:
        return self.state["batches"]

    @property
    def complete(self) -> bool:
        return self.state["complete"]

    def append(self, batch: int, records: list[dict], inputs: int, failures: int) -> None:
        """One batch's rows, whole: written and synced before the progress file says so."""
        data = rows_text(records, self.fmt, batch)
        with open(self.path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        state = self.state
        state.update(batches=state["batches"] + 1, bytes=state["bytes"] + len(data),
                     rows=state["rows"] + len(records), inputs=state["inputs"] + inputs,
                     failures=state["failures"] + failures)  # fmt: skip
        write_json(progress_path(self.path), state)

    def finish(self) -> None:
        """The run is whole: a file's progress record goes (a --resume finds nothing to do);
        a part's says so, and goes with the part once merged."""
        self.state["complete"] = True
        if self.fmt == PART:
            write_json(progress_path(self.path), self.state)
        else:
            progress_path(self.path).unlink(missing_ok=True)

    def discard(self) -> None:
        """Nothing was answered: the file and its record go."""
        self.path.unlink(missing_ok=True)
        progress_path(self.path).unlink(missing_ok=True)

    def _fresh(self) -> dict:
        header = CSV_HEADER if self.fmt == "csv" else b""
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(header)
        state = {"format": PROGRESS, "fingerprint": self.fingerprint, "rank": self.rank,
                 "world": self.world, "batches": 0, "bytes": len(header), "rows": 0,
                 "inputs": 0, "failures": 0, "complete": False}  # fmt: skip
        write_json(progress_path(self.path), state)
        return state

    def _resumed(self) -> dict:
        record = progress_path(self.path)
        if not record.is_file():
            raise PneumoError(
                f"--resume: {self.path} has no record of an earlier run of this command "
                "(start it without --resume)"
            )
        state = read_json(record)
        if not isinstance(state, dict) or state.get("format") != PROGRESS:
            raise PneumoError(f"--resume: {record} is not pneumocxr's progress record")
        self._check_same(state)
        with open(self.path, "r+b") as handle:  # drop a batch written but not recorded
            handle.truncate(state["bytes"])
        return state

    def _check_same(self, state: dict) -> None:
        if state.get("world") != self.world:
            raise PneumoError(
                f"--resume: {self.path} was written by {state.get('world')} process(es); "
                f"resume it with as many (not {self.world})"
            )
        if state.get("fingerprint") != self.fingerprint:
            raise PneumoError(
                f"--resume: {self.path} was written for other inputs, another model or other "
                "settings; start it again without --resume"
            )


def part_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(batch number, answer) of a part file, in its order."""
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            entry = json.loads(line)
            yield entry["batch"], entry["answer"]


def merge_parts(out: Path, fmt: str, world: int, echo=None) -> int:
    """The parts of `world` processes, in input order, into `out` (atomically); the rows."""
    streams = [part_records(part_path(out, r, world)) for r in range(world)]
    merged = heapq.merge(*streams, key=lambda item: item[0])
    rows = 0
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        handle.write(CSV_HEADER if fmt == "csv" else b"")
        for _, group in itertools.groupby(merged, key=lambda item: item[0]):
            records = [answer for _, answer in group]
            handle.write(rows_text(records, fmt))
            rows += len(records)
            if echo is not None:
                echo(records)
    return rows


def remove_parts(out: Path, world: int) -> None:
    for rank in range(world):
        for path in (part_path(out, rank, world), progress_path(part_path(out, rank, world))):
            path.unlink(missing_ok=True)
