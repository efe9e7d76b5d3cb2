"""The DICOM node: a Storage SCP that spools what it receives, a scoring thread and a delivery
thread (`pneumocxr dicom listen`, docs/PACS.md).

An association is accepted only from an allowed calling AE title (others are rejected in the
A-ASSOCIATE, before any data). Each C-STORE is checked (its UIDs, that its pixels decode),
written to the spool and fsynced, and only then answered with success: what the node has
acknowledged survives a kill -9. Anything it cannot use gets a failure status instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pneumocxr.dicom.delivery import Delivery, FolderDelivery
from pneumocxr.dicom.receive import Receiver
from pneumocxr.dicom.send import Destination, StoreClient
from pneumocxr.dicom.spool import Spool
from pneumocxr.dicom.worker import Worker
from pneumocxr.dicom_results.model_info import ModelInfo
from pneumocxr.dicom_results.scoring import check_heatmaps

log = logging.getLogger("pneumocxr.dicom")


@dataclass
class NodeConfig:
    ae_title: str = "PNEUMOCXR"
    host: str = "127.0.0.1"
    port: int = 11112
    spool: Path = Path("spool")
    send_to: Destination | None = None
    out: Path | None = None  # without send_to: results folder (default SPOOL/results)
    allow: list[str] = field(default_factory=list)  # calling AE titles; empty: any
    heatmap: bool = True
    batch_size: int = 16
    retries: int = 5
    retry_delay: float = 1.0
    associations: int = 4  # concurrent C-STORE associations to send_to


class Node:
    def __init__(self, model, config: NodeConfig):
        self.config = config
        self.spool = Spool(config.spool)
        self.info = ModelInfo.of(model)
        if config.heatmap:
            check_heatmaps(model)
        threads = config.associations if config.send_to is not None else 1
        self.delivery = Delivery(
            self.spool, self._target, threads, config.retries, config.retry_delay
        )
        self.worker = Worker(
            model, self.info, self.spool, self.delivery.add, config.heatmap, config.batch_size
        )
        self.receiver = Receiver(self.spool, self.worker.add)
        self.server = None

    def start(self) -> int:
        """Recover the spool, start the threads, listen; returns the port listened on."""
        to_score, to_deliver = self.spool.recover()
        for uid in to_deliver:
            self.delivery.add(uid)
        for uid in to_score:
            self.worker.add(uid)
        if to_score or to_deliver:
            log.info(
                "resuming: %d instance(s) to score, results of %d to deliver",
                len(to_score),
                len(to_deliver),
            )
        self.delivery.start()
        self.worker.start()
        c = self.config
        self.server = self.receiver.listen(c.ae_title, c.host, c.port, c.allow)
        return self.server.server_address[1]

    def stop(self, timeout: float = 30) -> None:
        """Stop listening, finish the batch being scored, leave the rest in the spool."""
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        self.worker.stop()
        self.worker.join(timeout)
        self.delivery.stop()
        self.delivery.join(timeout)

    def wait_idle(self, timeout: float = 60) -> bool:
        """True once nothing is waiting to be scored or delivered (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker.idle() and self.delivery.idle():
                return True
            time.sleep(0.02)
        return False

    def _target(self):
        c = self.config
        if c.send_to is not None:
            return StoreClient(c.send_to, c.ae_title)
        return FolderDelivery(c.out or c.spool / "results")
