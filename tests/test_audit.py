"""tools/audit.py against a PyPI stand-in on loopback: a fixable vulnerability fails, an
unreachable service is a clear skip line, never a pass."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

AUDIT = Path(__file__).resolve().parents[1] / "tools" / "audit.py"
PROJECTS = {
    "alpha": {"info": {"version": "1.0"}, "vulnerabilities": [
        {"id": "PYSEC-0000-1", "fixed_in": ["1.1"], "withdrawn": None},
        {"id": "PYSEC-0000-2", "fixed_in": [], "withdrawn": None}]},
    "beta": {"info": {"version": "3.0"}, "vulnerabilities": []},
    "gamma": {"info": {"version": "2.0"}, "vulnerabilities": []},
}  # fmt: skip


class FakePyPI(BaseHTTPRequestHandler):
    def do_GET(self):  # /pypi/<name>/json
        name = self.path.strip("/").split("/")[1]
        body = json.dumps(PROJECTS[name]).encode() if name in PROJECTS else b""
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def pypi():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePyPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/pypi"
    server.shutdown()


def audit(lock: Path, *args) -> subprocess.CompletedProcess:
    command = [sys.executable, AUDIT, lock, "--no-pip-audit", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_vulnerability_with_a_fix_fails(pypi, tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("alpha==1.0\nbeta==2.0\ngamma==2.0+cpu\n")
    result = audit(lock, "--pypi", pypi)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "audit: alpha 1.0: PYSEC-0000-1, fixed in 1.1",
        "audit: note: alpha 1.0: PYSEC-0000-2 has no fixed release yet",
        "audit: 2 of 3 locked packages audited (0 by pip-audit, 2 from latest-release data), "
        "1 vulnerabilities with a fix",
        "audit: not audited (PyPI has no data for these releases): beta 2.0",
    ]


def test_clean_packages_pass_and_unaudited_ones_are_named(pypi, tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("gamma==2.0\nbeta==2.0\n")
    assert audit(lock, "--pypi", pypi).returncode == 0
    assert audit(lock, "--pypi", pypi, "--required").returncode == 2


def test_an_unreachable_service_is_a_skip_not_a_pass(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("alpha==1.0\n")
    result = audit(lock, "--pypi", "http://127.0.0.1:9/pypi")
    assert result.returncode == 0
    assert result.stdout.startswith("audit: skipped: no vulnerability data could be fetched")
    assert "nothing was audited" in result.stdout
    assert audit(lock, "--pypi", "http://127.0.0.1:9/pypi", "--required").returncode == 2


def test_the_lock_pins_every_installed_package():
    from importlib.metadata import distributions

    lock = AUDIT.parents[1] / "requirements.lock"
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in lock.read_text().split()}
    installed = {d.metadata["Name"].lower().replace("_", "-") for d in distributions()}
    installed -= {"pneumocxr", "pip", "setuptools", "wheel"}
    assert installed <= pinned, f"not in requirements.lock (run make lock): {installed - pinned}"
