"""What the DICOM node promises when things go wrong: a kill -9 mid-batch loses no acknowledged
instance and scores none twice; a destination that refuses results gets retries, then the
results wait in the dead-letter folder; the spool's recovery rules."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE, evt

from conftest import shared_images
from orthanc import free_port
from pacs_cases import DX_STORAGE, chest_dx, read_report, sop_uid
from pneumocxr.api import load_model
from pneumocxr.dicom.node import Node, NodeConfig
from pneumocxr.dicom.send import Destination
from pneumocxr.dicom.spool import Spool

LISTENING = re.compile(r"listening on [\d.]+:(\d+)")


class Listener:
    """`pneumocxr dicom listen` as a process, its log collected line by line."""

    def __init__(self, spool: Path):
        command = [
            sys.executable,
            "-m",
            "pneumocxr.cli",
            "dicom",
            "listen",
            "--spool",
            str(spool),
            "--port",
            "0",
            "--allow",
            "TESTSCU",
            "--batch-size",
            "4",
        ]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.port = None
        ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        assert ready.wait(120), "the node did not start: " + "\n".join(self.lines)

    def _read(self, ready: threading.Event) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            found = LISTENING.search(line)
            if found:
                self.port = int(found[1])
                ready.set()
        ready.set()

    def scored(self) -> list[str]:
        return [line.split()[1].rstrip(":") for line in self.lines if line.startswith("scored ")]


def _send(port: int, files: list[Path], acked: list[str]) -> None:
    """C-STORE each file, recording the UIDs the node acknowledged, until the node dies."""
    scu = AE(ae_title="TESTSCU")
    scu.add_requested_context(DX_STORAGE, "1.2.840.10008.1.2.1")
    assoc = scu.associate("127.0.0.1", port, ae_title="PNEUMOCXR")
    for path in files:
        if not assoc.is_established:
            return
        status = assoc.send_c_store(path)
        if getattr(status, "Status", None) == 0x0000:
            acked.append(sop_uid(path))
    if assoc.is_established:
        assoc.release()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("kill")
    jpegs = shared_images("NORMAL", 6, 50) + shared_images("PNEUMONIA", 6, 50)
    return [chest_dx(folder / f"{i:02d}.dcm", jpeg) for i, jpeg in enumerate(jpegs)]


def test_kill_9_mid_batch_then_restart_scores_each_acknowledged_instance_once(images, tmp_path):
    spool = tmp_path / "spool"
    first = Listener(spool)
    acked: list[str] = []
    sender = threading.Thread(target=_send, args=(first.port, images, acked))
    sender.start()
    deadline = time.monotonic() + 120
    while not first.scored() and time.monotonic() < deadline:  # scoring has begun
        time.sleep(0.01)
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    sender.join(30)
    assert acked and first.scored(), "the kill came too early or too late to test anything"
    assert len(first.scored()) < len(acked), "every instance was scored before the kill"

    second = Listener(spool)
    deadline = time.monotonic() + 120
    while _left(spool) and time.monotonic() < deadline:
        time.sleep(0.05)
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(60) == 0
    assert not _left(spool)

    results = {}
    for path in (spool / "results").rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        if ds.Modality == "SR":
            results.setdefault(read_report(ds)["source"], []).append(path)
    assert set(acked) <= set(results)  # every acknowledged instance has its result...
    assert all(len(found) == 1 for found in results.values())  # ...exactly one
    scored = first.scored() + second.scored()
    assert len(scored) == len(set(scored))  # none was scored twice


def _left(spool: Path) -> list:
    return [*(spool / "incoming").iterdir(), *(spool / "outbox").iterdir()]


@pytest.fixture
def refusing():
    """A Storage SCP that answers every C-STORE with 0xA700 (out of resources)."""
    calls = []

    def refuse(event):
        calls.append(event.request.AffectedSOPInstanceUID)
        return 0xA700

    scp = AE(ae_title="REFUSER")
    for sop_class in ("1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.7"):
        scp.add_supported_context(sop_class, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = scp.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, refuse)]
    )
    yield port, calls
    server.shutdown()


def test_a_refusing_destination_gets_retries_then_dead_letter(refusing, images, tmp_path, caplog):
    port, calls = refusing
    config = NodeConfig(
        port=0,
        spool=tmp_path,
        send_to=Destination("REFUSER", "127.0.0.1", port),
        retries=2,
        retry_delay=0.01,
    )
    node = Node(load_model("default"), config)
    node_port = node.start()
    try:
        acked: list[str] = []
        _send_as("TESTSCU", node_port, images[:1], acked)
        assert acked and node.wait_idle(60)
    finally:
        node.stop()
    uid = acked[0]
    assert len(calls) == 3  # the first try and two retries, each refused
    letter = tmp_path / "dead-letter" / uid
    assert sorted(p.suffix for p in letter.iterdir()) == [".dcm", ".dcm", ".txt"]  # SR, SC, why
    assert "status 0xA700" in (letter / "reason.txt").read_text()
    assert not any((tmp_path / "outbox").iterdir())
    assert "given up after 3 tries" in caplog.text


def _send_as(aet: str, port: int, files, acked) -> None:
    scu = AE(ae_title=aet)
    scu.add_requested_context(DX_STORAGE, "1.2.840.10008.1.2.1")
    assoc = scu.associate("127.0.0.1", port, ae_title="PNEUMOCXR")
    for path in files:
        if assoc.send_c_store(path).Status == 0:
            acked.append(sop_uid(path))
    assoc.release()


def test_recovery_drops_an_input_whose_results_are_already_in_the_outbox(tmp_path):
    spool = Spool(tmp_path)
    spool.accept("1.2.3", b"scored, killed before the input was removed")
    spool.accept("1.2.4", b"not scored yet")
    (spool.outbox / "1.2.3").mkdir()
    (spool.outbox / "1.2.3" / "9.9.dcm").write_bytes(b"result")
    (spool.tmp / "half-written.dcm").write_bytes(b"partial")
    to_score, to_deliver = spool.recover()
    assert to_score == ["1.2.4"] and to_deliver == ["1.2.3"]
    assert not spool.input_of("1.2.3").exists() and not any(spool.tmp.iterdir())
