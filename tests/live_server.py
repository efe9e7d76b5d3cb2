"""A real `pneumocxr serve` on a free loopback port (the `server` fixture of conftest.py), and
what the web API tests post to it and check in its answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 90
LEAKS = ("Traceback", 'File "', "/tmp", "/work", str(ROOT), "site-packages")


@dataclass
class Server:
    base: str
    home: Path
    tmp: Path
    log: Path
    process: subprocess.Popen


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(home: Path):
    """The server runs in `home` with TMPDIR=`home/tmp`; stopped with SIGTERM on exit, it must
    leave nothing behind but its log."""
    tmp = home / "tmp"
    tmp.mkdir()
    base = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "pneumocxr.cli", "serve", "--port", base.rsplit(":", 1)[1]]
    with open(home / "server.log", "w") as log:
        process = subprocess.Popen(
            command, cwd=home, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(tmp)},
        )  # fmt: skip
        try:
            _wait_for_health(base, process, home / "server.log")
            yield Server(base, home, tmp, home / "server.log", process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    # uvicorn stops cleanly on SIGTERM, and the private temporary folder goes with it
    assert list(tmp.iterdir()) == [], list(tmp.iterdir())
    assert sorted(p.name for p in home.iterdir()) == ["server.log", "tmp"]


def _wait_for_health(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/api/health", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"no /api/health within {STARTUP_S} s:\n{log.read_text()}")


def post(client, data: bytes, name: str = "x.jpeg", gradcam: bool = False, **kwargs):
    params = {"gradcam": "true"} if gradcam else {}
    return client.post("/api/predict", params=params, files={"file": (name, data)}, **kwargs)


def assert_clean_problem(response, status: int, *fragments) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail
    for leak in LEAKS:
        assert leak not in response.text, response.text
    for fragment in fragments:
        assert fragment in detail, detail
    return detail
