"""schemathesis against the web API's OpenAPI schema: a short, seeded run of
benchmarks/api_fuzz.py on the live server (the long run is in docs/RELIABILITY.md), a check
that the harness does fail on a server error, and the fix the fuzzing led to."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from conftest import ROOT, shared_images
from live_server import assert_clean_problem, free_port

FUZZ = ROOT / "benchmarks" / "api_fuzz.py"


def run_fuzz(url: str, examples: int, out) -> tuple[subprocess.CompletedProcess, dict]:
    command = [sys.executable, FUZZ, "--url", url, "--examples", examples, "--seed", 1,
               "--json", out]  # fmt: skip
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=300)
    return result, json.loads(out.read_text())


def test_a_short_schemathesis_run_finds_nothing(server, tmp_path):
    result, found = run_fuzz(server.base, 30, tmp_path / "api_fuzz.json")
    assert found["failures"] == [] and found["errors"] == [], result.stderr
    assert result.returncode == 0, result.stderr
    assert found["operations"] == 3 and found["test_cases"] >= 60
    statuses = found["requests_by_status"]
    assert int(statuses.get("200", 0)) >= 5  # valid uploads reached the model: answers checked
    assert {"405", "415", "422"} <= set(statuses)
    assert not [s for s in statuses if s.startswith("5")]


def test_a_malformed_multipart_body_gets_a_documented_400(client):
    responses = client.get("/openapi.json").json()["paths"]["/api/predict"]["post"]["responses"]
    assert responses["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    broken = b"--x\r\nFalse--x--\r\n"  # what schemathesis sent: a part without headers
    form = {"content-type": "multipart/form-data; boundary=x"}
    response = client.post("/api/predict", content=broken, headers=form)
    assert_clean_problem(response, 400, "multipart")


def test_the_harness_fails_on_a_server_error(tmp_path):
    """The app over a model that raises: the uploads that reach it get 500s, which the run must
    report (a fuzz run that cannot fail would prove nothing)."""
    import uvicorn

    from pneumocxr.artifact.load import load_model
    from pneumocxr.artifact.save import save_model
    from pneumocxr.networks.registry import build_model
    from pneumocxr.serve.app import create_app
    from pneumocxr.serve.service import Service

    save_model(build_model("smallnet", 64, weights="none"), tmp_path / "model")
    service = Service(load_model(tmp_path / "model"), 0.5, 10**6)

    def broken(_uploads):
        raise RuntimeError("a bug")

    service.run_batch = broken
    port = free_port()
    config = uvicorn.Config(create_app(service), port=port, log_level="critical")
    stand_in = uvicorn.Server(config)
    thread = threading.Thread(target=stand_in.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not stand_in.started and time.monotonic() < deadline:
            time.sleep(0.05)
        image = shared_images("NORMAL", 1)[0].read_bytes()
        direct = _post(port, image)
        result, found = run_fuzz(f"http://127.0.0.1:{port}", 10, tmp_path / "api_fuzz.json")
    finally:
        stand_in.should_exit = True
        thread.join(timeout=30)
    assert direct == 500
    assert result.returncode == 1 and "Server error" in result.stderr
    assert "ServerError" in {f["type"] for f in found["failures"]}
    assert int(found["requests_by_status"]["500"]) > 0


def _post(port: int, image: bytes) -> int:
    import httpx

    url = f"http://127.0.0.1:{port}/api/predict"
    response = httpx.post(url, files={"file": ("a.jpeg", image)}, timeout=30, trust_env=False)
    return response.status_code
