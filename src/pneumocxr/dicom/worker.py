"""The node's scoring thread: takes spooled instances in batches, scores them, and commits
their results to the spool's outbox.

Batches are gathered like the web app's: whatever is waiting (up to `batch_size`), plus what
arrives within a few milliseconds more, so that images sent one after the other share a
forward pass. One thread runs the model; receiving and sending run beside it.
"""

from __future__ import annotations

import logging
import threading
import time

from pneumocxr.dicom.scoring import Instance, read_header, score
from pneumocxr.dicom.spool import Spool
from pneumocxr.errors import PneumoError

log = logging.getLogger("pneumocxr.dicom")
GATHER_SECONDS = 0.02  # how long a batch waits for more images once it has one


class Worker(threading.Thread):
    def __init__(self, model, info, spool: Spool, delivered, heatmap=True, batch_size=16):
        super().__init__(name="pneumocxr-scoring", daemon=True)
        self.model, self.info, self.spool = model, info, spool
        self.deliver = delivered  # called with each UID whose results are in the outbox
        self.heatmap, self.batch_size = heatmap, batch_size
        self._waiting: dict[str, None] = {}  # insertion-ordered: oldest first, no repeats
        self._busy = False
        self._ready = threading.Condition()
        self._stopping = False
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
            return not self._waiting and not self._busy

    def run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._score(batch)
            finally:
                with self._ready:
                    self._busy = False

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
            self._busy = True
            return batch

    def _score(self, uids: list[str]) -> None:
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
            return
        try:
            results = score(self.model, instances, self.heatmap, self.info)
        except Exception:  # one bad instance must not cost the batch: score them one by one
            if len(instances) > 1:
                for uid in kept:
                    self._score([uid])
                return
            self._give_up(kept[0], None)
            return
        for uid, result in zip(kept, results):
            self.spool.commit(uid, result.datasets)
            self.scored += 1
            answer = result.prediction
            log.info("scored %s: %s P=%.4f", uid, answer.label, answer.p_pneumonia)
            self.deliver(uid)

    def _give_up(self, uid: str, err) -> None:
        where = self.spool.set_aside(uid)
        why = str(err) if err is not None else "an internal error"
        log.error("could not score %s (%s); the instance is kept in %s", uid, why, where)
