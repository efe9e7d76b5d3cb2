"""The node's delivery thread: moves results from the spool's outbox to where they go (a PACS
by C-STORE, or a folder), retrying with backoff, then into dead-letter/ if they still fail.

Results leave the outbox only once they are delivered, so a kill or a PACS that is down loses
nothing: at the next start, whatever is in the outbox is sent again.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pydicom

from pneumocxr.dicom.send import DeliveryError
from pneumocxr.dicom.spool import Spool, sync_dir
from pneumocxr.dicom.uids import is_safe_uid
from pneumocxr.fileio import ensure_dir

log = logging.getLogger("pneumocxr.dicom")


class FolderDelivery:
    """Results into OUT/<StudyInstanceUID>/<SOPInstanceUID>.dcm (without --send-to)."""

    def __init__(self, folder):
        self.folder = ensure_dir(Path(folder))

    def send(self, paths: list[Path]) -> None:
        for path in paths:
            study = str(pydicom.dcmread(path, specific_tags=["StudyInstanceUID"]).StudyInstanceUID)
            if not is_safe_uid(study):  # the spool's own file: a bug, not bad input
                raise DeliveryError(f"{path.name}: no usable StudyInstanceUID")
            target = ensure_dir(self.folder / study) / path.name
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=target.parent)
            with os.fdopen(fd, "wb") as handle, open(path, "rb") as source:
                shutil.copyfileobj(source, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            sync_dir(target.parent)

    def release(self) -> None:
        pass

    def __str__(self) -> str:
        return str(self.folder)


class Delivery(threading.Thread):
    def __init__(self, spool: Spool, target, retries: int = 5, delay: float = 1.0):
        super().__init__(name="pneumocxr-delivery", daemon=True)
        self.spool, self.target = spool, target
        self.retries, self.delay = retries, delay
        self._queue: dict[str, None] = {}
        self._busy = False
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self.sent = self.dead = 0

    def add(self, uid: str) -> None:
        with self._ready:
            self._queue[uid] = None
            self._ready.notify()

    def stop(self) -> None:
        self._stopping.set()
        with self._ready:
            self._ready.notify()

    def idle(self) -> bool:
        with self._ready:
            return not self._queue and not self._busy

    def run(self) -> None:
        try:
            while (uid := self._next()) is not None:
                try:
                    self._deliver(uid)
                finally:
                    with self._ready:
                        self._busy = False
        finally:
            self.target.release()

    def _next(self) -> str | None:
        with self._ready:
            while not self._queue and not self._stopping.is_set():
                self.target.release()  # nothing to send: free the destination's association
                self._ready.wait()
            if self._stopping.is_set():
                return None
            uid = next(iter(self._queue))
            del self._queue[uid]
            self._busy = True
            return uid

    def _deliver(self, uid: str) -> None:
        for attempt in range(self.retries + 1):
            paths = self.spool.results_of(uid)
            if not paths:  # replaced by a newer commit of the same instance, queued again
                return
            try:
                self.target.send(paths)
            except (DeliveryError, OSError) as err:
                reason = str(err)
                if attempt == self.retries or self._stopping.is_set():
                    break
                wait = self.delay * 2**attempt
                log.warning("results of %s not delivered (%s); retry in %.3g s", uid, reason, wait)
                if self._stopping.wait(wait):
                    return  # stopping: the results stay in the outbox for the next start
                continue
            self.spool.delivered(uid)
            self.sent += 1
            log.info("delivered results of %s to %s", uid, self.target)
            return
        if self._stopping.is_set():
            return
        where = self.spool.dead_letter(uid, reason)
        self.dead += 1
        log.error(
            "results of %s given up after %d tries (%s); kept in %s",
            uid,
            self.retries + 1,
            reason,
            where,
        )
