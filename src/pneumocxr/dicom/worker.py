"""The node's scoring: takes spooled instances in batches, scores them, and commits their
results to the spool's outbox.

Batches are gathered like the web app's: whatever is waiting (up to `batch_size`), plus what
arrives within a few milliseconds more, so that images sent one after the other share a
forward pass. Two threads: the model's (decode, forward pass, Grad-CAM) and the writer's (the
SR and Secondary Capture, the spool commit). The network releases the GIL, so building one
batch's results overlaps the next batch's forward pass (docs/PACS.md, "Speed").
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from pneumocxr.dicom.spool import Spool
from pneumocxr.dicom_results.scoring import Instance, assess, build, read_header
from pneumocxr.errors import PneumoError, whole_number

log = logging.getLogger("pneumocxr.dicom")
GATHER_SECONDS = 0.02  # how long a batch waits for more images once it has one


class Worker(threading.Thread):
    def __init__(self, model, info, spool: Spool, delivered, heatmap=True, batch_size=16):
        super().__init__(name="pneumocxr-scoring", daemon=True)
        self.model, self.info, self.spool = model, info, spool
        self.deliver = delivered  # called with each UID whose results are in the outbox
        self.heatmap, self.batch_size = heatmap, whole_number(batch_size, "batch_size")
        self._waiting: dict[str, None] = {}  # insertion-ordered: oldest first, no repeats
        self._in_flight = 0  # batches taken and not yet committed
        self._ready = threading.Condition()
        self._stopping = False
        self._assessed: queue.Queue = queue.Queue(maxsize=2)  # bounds the pictures held
        self._writer = threading.Thread(target=self._write, name="pneumocxr-results", daemon=True)
        self.scored = 0

    def add(self, uid: str) -> None:
        with self._ready:
            self._waiting[uid] = None
            self._ready.notify()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()

    def idle(self) -> bool:
        with self._ready:
            return not self._waiting and not self._in_flight

    def run(self) -> None:
        self._writer.start()
        try:
            while (batch := self._take()) is not None:
                try:
                    self._assessed.put(self._assess(batch))
                except BaseException:
                    self._done_with_batch()
                    raise
        finally:
            self._assessed.put(None)
            self._writer.join()

    def _done_with_batch(self) -> None:
        with self._ready:
            self._in_flight -= 1

    def _take(self) -> list[str] | None:
        with self._ready:
            while not self._waiting and not self._stopping:
                self._ready.wait()
            if self._stopping:
                return None
            deadline = time.monotonic() + GATHER_SECONDS
            while len(self._waiting) < self.batch_size and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0 or not self._ready.wait(left):
                    break
            batch = list(self._waiting)[: self.batch_size]
            for uid in batch:
                del self._waiting[uid]
            self._in_flight += 1
            return batch

    def _assess(self, uids: list[str]) -> list:
        """[(uid, Assessed)] for the batch's instances still in the spool."""
        instances, kept = [], []
        for uid in uids:
            path = self.spool.input_of(uid)
            if not path.exists():  # a second copy of an instance already scored
                continue
            try:
                instances.append(Instance(read_header(path), path))
                kept.append(uid)
            except PneumoError as err:
                self._give_up(uid, err)
        if not instances:
            return []
        try:
            return list(zip(kept, assess(self.model, instances, self.heatmap, self.info)))
        except Exception:  # one bad instance must not cost the batch: assess them one by one
            if len(instances) == 1:
                self._give_up(kept[0], None)
                return []
            found = []
            for uid in kept:
                found += self._assess([uid])
            return found

    def _write(self) -> None:
        while (batch := self._assessed.get()) is not None:
            try:
                for uid, assessed in batch:
                    self._commit(uid, assessed)
            finally:
                self._done_with_batch()

    def _commit(self, uid: str, assessed) -> None:
        try:
            result = build(assessed, self.info)
        except Exception:  # a header highdicom will not take: kept, and said so
            self._give_up(uid, None)
            return
        try:
            self.spool.commit(uid, result.datasets)
        except OSError as err:  # a full disk: the input stays in incoming/, scored again later
            log.error(
                "cannot write the results of %s (%s); it stays in the spool",
                uid,
                err.strerror or err,
            )
            time.sleep(1.0)
            self.add(uid)
            return
        self.scored += 1
        answer = result.prediction
        log.info("scored %s: %s P=%.4f", uid, answer.label, answer.p_pneumonia)
        self.deliver(uid)

    def _give_up(self, uid: str, err) -> None:
        why = str(err) if err is not None else "an internal error"
        try:
            where = self.spool.set_aside(uid)
        except OSError:  # gone meanwhile (a second copy scored it), or the disk failed
            where = self.spool.input_of(uid)
        log.error("could not score %s (%s); the instance is kept in %s", uid, why, where)
