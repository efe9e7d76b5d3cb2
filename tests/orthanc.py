"""A private Orthanc for the PACS tests: Debian's /usr/sbin/Orthanc on loopback, free ports, a
temporary configuration and storage folder, the DICOMweb plugin loaded; stopped afterwards.

    with Orthanc(tmp_path) as pacs:
        pacs.upload(path)                          # REST POST /instances
        pacs.add_modality("node", "PNEUMOCXR", port)
        pacs.store("node", [instance_id])          # Orthanc C-STOREs to the node
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def require_orthanc() -> None:
    """Fail (not skip): `make test` installs Orthanc (tools/system-deps.sh)."""
    for needed in (ORTHANC, DICOMWEB_PLUGIN):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: install Debian's orthanc and orthanc-dicomweb")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Orthanc:
    def __init__(self, folder: Path, aet: str = "ORTHANC", **options):
        """`options`: more configuration (e.g. ConcurrentJobs=4 for parallel C-STOREs)."""
        require_orthanc()
        self.options = options
        self.folder = Path(folder)
        self.aet = aet
        self.http_port, self.dicom_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.process = None

    def __enter__(self) -> Orthanc:
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "pneumocxr-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "OverwriteInstances": True,  # a result sent again replaces the stored one
            "DicomAlwaysAllowStore": True,
            "SaveJobs": False,
            "StableAge": 1,
            "DicomScuTimeout": 30,
            **self.options,
        }
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(config))
        log = open(self.folder / "orthanc.log", "wb")  # noqa: SIM115 (kept open while it runs)
        self.process = subprocess.Popen([str(ORTHANC), str(path)], stdout=log, stderr=log)
        self._wait_ready()
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:  # its storage goes too: no need to wait for a clean stop
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder / "storage", ignore_errors=True)

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.folder / "orthanc.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Orthanc exited: {log}")
            try:
                if httpx.get(f"{self.url}/system", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("Orthanc did not start")

    # -- REST -------------------------------------------------------------------------------
    def get(self, path: str):
        response = httpx.get(self.url + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def upload(self, path) -> str:
        response = httpx.post(f"{self.url}/instances", content=Path(path).read_bytes(), timeout=30)
        response.raise_for_status()
        return response.json()["ID"]

    def add_modality(self, name: str, aet: str, port: int, host: str = "127.0.0.1") -> None:
        body = {"AET": aet, "Host": host, "Port": port}
        httpx.put(f"{self.url}/modalities/{name}", json=body, timeout=10).raise_for_status()

    def store(self, modality: str, ids: list[str], timeout: float = 120) -> httpx.Response:
        """Orthanc C-STOREs the instances to `modality` over one association (synchronous)."""
        body = {"Resources": ids, "Synchronous": True}
        return httpx.post(f"{self.url}/modalities/{modality}/store", json=body, timeout=timeout)

    def instances(self) -> list[dict]:
        return self.get("/instances?expand")

    def lookup(self, uid: str) -> list[dict]:
        """Orthanc's resources with this DICOM UID (empty when it holds none)."""
        response = httpx.post(f"{self.url}/tools/lookup", content=uid, timeout=30)
        response.raise_for_status()
        return response.json()

    def file(self, instance_id: str) -> bytes:
        response = httpx.get(f"{self.url}/instances/{instance_id}/file", timeout=30)
        response.raise_for_status()
        return response.content

    def wait_for(self, condition, timeout: float = 60, every: float = 0.1):
        """Poll until `condition()` returns something true; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = condition()
            if found:
                return found
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout} s waiting for Orthanc")
