"""The web page shows a DICOM upload's patient-safe header (modality, view position, body
part) beside the answer, and never a name, identifier or date."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import launch_chromium, shared_images
from live_server import free_port, post
from pacs_cases import PATIENT_ID, PATIENT_NAME, chest_dx


@pytest.fixture(scope="module")
def app():
    from pneumocxr.serve.app import create_app
    from pneumocxr.serve.service import Service

    return create_app(Service.load())


@pytest.fixture
def lateral(tmp_path):
    return chest_dx(tmp_path / "lateral.dcm", shared_images("NORMAL", 1, 70)[0], ViewPosition="LL")


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_api_returns_the_safe_header_only(app, lateral, tmp_path):
    from fastapi.testclient import TestClient

    frontal = chest_dx(tmp_path / "pa.dcm", shared_images("NORMAL", 1, 70)[0])
    with TestClient(app, base_url="http://localhost") as client:
        pa = post(client, frontal.read_bytes(), name="pa.dcm")
        ll = post(client, lateral.read_bytes(), name="ll.dcm")
        jpeg = post(client, shared_images("NORMAL", 1, 70)[0].read_bytes()).json()
    assert pa.json()["dicom_header"] == {
        "modality": "DX",
        "view_position": "PA",
        "body_part": "CHEST",
    }
    assert (
        ll.json()["label"] == "OUT_OF_SCOPE" and ll.json()["dicom_header"]["view_position"] == "LL"
    )
    assert jpeg["dicom_header"] is None
    for secret in (PATIENT_ID, *PATIENT_NAME.split("^"), "20190304", "ACC123"):
        assert secret not in pa.text and secret not in ll.text


def test_the_page_shows_it_beside_the_answer(app, lateral):
    playwright = pytest.importorskip("playwright.sync_api")
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with playwright.sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("#model-name strong")
                page.set_input_files("#files", str(lateral))
                page.wait_for_selector(".result .dicom", timeout=30_000)
                shown = page.text_content(".result .dicom")
                card = page.text_content(".result")
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    assert shown == "DICOM: modality DX, view LL, body part CHEST"
    assert "not a chest X-ray the model knows" in card and "lateral" in card
    assert not any(s in card for s in (PATIENT_ID, *PATIENT_NAME.split("^")))
