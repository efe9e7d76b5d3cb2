"""The node's spool: an acknowledged instance is on disk before its C-STORE succeeds, and stays
there until its results are on disk; every change of state is one rename, made durable.

    SPOOL/tmp/                 partial writes (emptied at start)
    SPOOL/incoming/UID.dcm     acknowledged, not scored yet
    SPOOL/outbox/UID/*.dcm     results of a scored instance, not delivered yet
    SPOOL/dead-letter/UID/     results the destination kept refusing, with reason.txt
    SPOOL/failed/UID.dcm       an acknowledged instance that could not be scored (a bug)

Scoring an instance ends with its results renamed into outbox/ and only then its input
removed, so a kill at any moment leaves it either still to score or scored, never both lost
and never scored twice: at start, an input whose results are already in outbox/ is dropped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pydicom.dataset import Dataset

from pneumocxr.fileio.folders import ensure_dir

STATES = ("tmp", "incoming", "outbox", "dead-letter", "failed")


class Spool:
    def __init__(self, root):
        self.root = ensure_dir(Path(root))
        for state in STATES:
            ensure_dir(self.root / state)
        self.tmp, self.incoming, self.outbox = (self.root / s for s in STATES[:3])
        self.dead, self.failed = self.root / "dead-letter", self.root / "failed"

    # -- receiving ------------------------------------------------------------------------
    def accept(self, uid: str, data: bytes) -> None:
        """Write an instance's file durably into incoming/ (before its C-STORE succeeds)."""
        tmp = self._temp_file(data)
        os.replace(tmp, self.input_of(uid))
        sync_dir(self.incoming)

    def input_of(self, uid: str) -> Path:
        return self.incoming / f"{uid}.dcm"

    def pending(self) -> list[str]:
        """UIDs waiting to be scored, oldest first."""
        return _names_by_age(self.incoming, ".dcm")

    # -- scoring --------------------------------------------------------------------------
    def commit(self, uid: str, datasets: list[Dataset]) -> None:
        """Results of `uid` into outbox/ in one rename; then its input goes."""
        folder = Path(tempfile.mkdtemp(prefix=f"{uid}.", dir=self.tmp))
        for ds in datasets:
            write_durably(folder / f"{ds.SOPInstanceUID}.dcm", ds)
        sync_dir(folder)
        target = self.outbox / uid
        if target.exists():  # the same instance sent again before its results left
            shutil.rmtree(target)
        os.rename(folder, target)
        sync_dir(self.outbox)
        self.drop_input(uid)

    def drop_input(self, uid: str) -> None:
        self.input_of(uid).unlink(missing_ok=True)
        sync_dir(self.incoming)

    def set_aside(self, uid: str) -> Path:
        """An input that could not be scored moves to failed/ (kept, never lost)."""
        target = self.failed / f"{uid}.dcm"
        os.replace(self.input_of(uid), target)
        sync_dir(self.incoming)
        return target

    # -- delivering -----------------------------------------------------------------------
    def undelivered(self) -> list[str]:
        return _names_by_age(self.outbox, "")

    def results_of(self, uid: str) -> list[Path]:
        return sorted((self.outbox / uid).glob("*.dcm"))

    def delivered(self, uid: str) -> None:
        shutil.rmtree(self.outbox / uid, ignore_errors=True)
        sync_dir(self.outbox)

    def dead_letter(self, uid: str, reason: str) -> Path:
        """Results the destination kept refusing: kept with the reason, out of the queue."""
        target = self.dead / uid
        if target.exists():
            shutil.rmtree(target)
        (self.outbox / uid / "reason.txt").write_text(reason + "\n")
        os.rename(self.outbox / uid, target)
        sync_dir(self.outbox)
        return target

    # -- start-up -------------------------------------------------------------------------
    def recover(self) -> tuple[list[str], list[str]]:
        """After a stop or a kill: (inputs still to score, results still to deliver)."""
        for leftover in self.tmp.iterdir():
            _remove(leftover)
        for uid in self.pending():
            if (self.outbox / uid).is_dir():  # scored; killed before its input was removed
                self.drop_input(uid)
        return self.pending(), self.undelivered()

    def _temp_file(self, data: bytes) -> Path:
        fd, name = tempfile.mkstemp(dir=self.tmp, suffix=".dcm")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)


def write_durably(path: Path, ds: Dataset) -> None:
    """A dataset as a DICOM file, flushed to the disk before it counts as written."""
    with open(path, "wb") as handle:
        ds.save_as(handle, enforce_file_format=True)
        handle.flush()
        os.fsync(handle.fileno())


def sync_dir(folder: Path) -> None:
    """Make the renames and deletions in `folder` survive a power cut, not only a kill."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _names_by_age(folder: Path, suffix: str) -> list[str]:
    entries = []
    for entry in os.scandir(folder):
        if entry.name.endswith(suffix) and not entry.name.startswith("."):
            entries.append(
                (entry.stat().st_mtime_ns, entry.name.removesuffix(suffix) or entry.name)
            )
    return [name for _, name in sorted(entries)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
