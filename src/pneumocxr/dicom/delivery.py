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
from pneumocxr.dicom_results.uids import is_safe_uid
from pneumocxr.fileio.folders import ensure_dir

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


class Delivery:
    """`threads` senders share the outbox's queue, each over its own association: a PACS
    answers each C-STORE after storing it (Orthanc about 55 ms), so one association alone
    held the node to 17 results a second; four took 100 in 1.9 s instead of 5.6."""

    def __init__(self, spool: Spool, make_target, threads: int = 1, retries=5, delay=1.0):
        self.spool, self.make_target = spool, make_target
        self.retries, self.delay = retries, delay
        self._threads = [
            threading.Thread(target=self._run, name=f"pneumocxr-delivery-{n}", daemon=True)
            for n in range(threads)
        ]
        self._queue: dict[str, None] = {}
        self._active: set[str] = set()  # being delivered: never by two threads at once
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self.sent = self.dead = 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def add(self, uid: str) -> None:
        with self._ready:
            self._queue[uid] = None
            self._ready.notify()

    def stop(self) -> None:
        self._stopping.set()
        with self._ready:
            self._ready.notify_all()

    def idle(self) -> bool:
        with self._ready:
            return not self._queue and not self._active

    def _run(self) -> None:
        target = self.make_target()
        try:
            while (uid := self._next(target)) is not None:
                try:
                    self._deliver(uid, target)
                except OSError as err:  # the spool itself failed: the results stay in outbox/
                    log.error(
                        "results of %s: spool error (%s); kept for the next start",
                        uid,
                        err.strerror or err,
                    )
                finally:
                    with self._ready:
                        self._active.discard(uid)
                        self._ready.notify_all()
        finally:
            target.release()

    def _next(self, target) -> str | None:
        with self._ready:
            while not self._stopping.is_set():
                uid = next((u for u in self._queue if u not in self._active), None)
                if uid is not None:
                    del self._queue[uid]
                    self._active.add(uid)
                    return uid
                target.release()  # nothing to send: free the destination's association
                self._ready.wait()
            return None

    def _deliver(self, uid: str, target) -> None:
        for attempt in range(self.retries + 1):
            paths = self.spool.results_of(uid)
            if not paths:  # replaced by a newer commit of the same instance, queued again
                return
            try:
                target.send(paths)
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
            with self._ready:
                self.sent += 1
            log.info("delivered results of %s to %s", uid, target)
            return
        if self._stopping.is_set():
            return
        where = self.spool.dead_letter(uid, reason)
        with self._ready:
            self.dead += 1
        log.error(
            "results of %s given up after %d tries (%s); kept in %s",
            uid,
            self.retries + 1,
            reason,
            where,
        )
