"""`pneumocxr serve`: a real uvicorn server on a loopback port, hostile uploads, batching, the
load-test command, and the page in a real browser."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, cli, launch_chromium, shared_images
from dicom_factory import jpeg_pixels, make_dicom, twelve_bit
from live_server import assert_clean_problem, post


@pytest.fixture(scope="module")
def xray():
    return shared_images("PNEUMONIA", 1, 40)[0]


# -- the API ---------------------------------------------------------------------------------
def test_health_model_and_docs(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["model"] == "default (efficientnet-lite0)"
    card = client.get("/api/model").json()
    meta = json.loads((ROOT / "src/pneumocxr/weights/model.json").read_text())
    assert card["threshold"] == pytest.approx(meta["threshold"])
    assert card["architecture"] == "efficientnet-lite0" and card["run"] == meta["training"]["run"]
    assert card["validation"]["internal"]["n"] == meta["training"]["validation"]["n"]
    assert "not a medical device" in card["card_markdown"].lower()
    assert card["calibration"].endswith("(shift tempering, gamma 0.5).")
    text = client.get("/api/model").text
    assert "/work" not in text and "/tmp" not in text  # model.json's paths stay on the server
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assert client.get("/openapi.json").json()["paths"]["/api/predict"]["post"]


def test_predict_matches_the_cli_path(client, xray):
    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.inference.answers import label_for
    from pneumocxr.inference.predict import predict_paths

    loaded = resolve_model(None)
    expected = float(predict_paths(loaded, [xray])[0]["p_pneumonia"][0])
    body = post(client, xray.read_bytes()).json()
    assert body["p_pneumonia"] == pytest.approx(expected, abs=1e-6)
    assert body["threshold"] == pytest.approx(loaded.threshold)
    assert body["label"] == label_for(expected, loaded.threshold)
    assert body["model"] == "default (efficientnet-lite0)" and body["gradcam_png"] is None


def test_gradcam_overlay_and_picture(client, xray):
    plain = post(client, xray.read_bytes()).json()
    body = post(client, xray.read_bytes(), gradcam=True).json()
    assert body["p_pneumonia"] == pytest.approx(plain["p_pneumonia"], abs=1e-5)
    heat = Image.open(io.BytesIO(base64.b64decode(body["gradcam_png"])))
    gray = Image.open(io.BytesIO(base64.b64decode(body["image_png"])))
    assert heat.format == gray.format == "PNG" and heat.size == gray.size == (224, 224)
    colours = np.asarray(heat.convert("RGB"), dtype=float)
    assert colours.std(axis=2).mean() > 10  # a coloured heatmap, not the gray picture
    assert gray.mode == "L" and np.asarray(gray).std() > 10


def test_dicom_tags_never_come_back(client, server, xray, tmp_path):
    path = make_dicom(tmp_path / "Test^Child.dcm", twelve_bit(jpeg_pixels(xray)))
    response = post(client, path.read_bytes(), name="scan.dcm", gradcam=True)
    assert response.status_code == 200
    jpeg = post(client, xray.read_bytes()).json()
    assert response.json()["p_pneumonia"] == pytest.approx(jpeg["p_pneumonia"], abs=0.05)
    # A broken length makes the transfer syntax UID run on into the patient's name: pydicom's
    # warning about the invalid UID quotes it, and must not reach the server's log.
    broken = bytearray(path.read_bytes())
    at = broken.index(b"\x02\x00\x10\x00UI")
    broken[at + 6 : at + 8] = struct.pack("<H", 600)
    odd = post(client, bytes(broken), name="scan.dcm")
    assert_clean_problem(odd, 422, "DICOM")
    for tag in ("Test^Child", "TEST001", "Child"):
        for text in (response.text, odd.text, server.log.read_text()):
            assert tag not in text


def tiny_png_bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (10000, 10000)).save(out, format="PNG")  # 12 kB, 100 million pixels
    return out.getvalue()


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge image (PIL itself refuses beyond its bomb limit)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("L", (32, 32), 128).save(out, format="GIF")
    return out.getvalue()


def dicom_claiming(tmp_path: Path, xray: Path, rows: int) -> bytes:
    import pydicom

    path = make_dicom(tmp_path / "big.dcm", twelve_bit(jpeg_pixels(xray)))
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = rows
    ds.save_as(path)
    return path.read_bytes()


HOSTILE = {
    "text": (lambda tmp, x: b"hello, I am not an X-ray\n", "a.jpeg", 415, "not JPEG, PNG or DICOM"),
    "random bytes": (lambda tmp, x: os.urandom(5000), "a.png", 415, "not JPEG, PNG or DICOM"),
    "gif": (lambda tmp, x: gif(), "a.gif", 415, "not JPEG, PNG or DICOM"),
    "empty": (lambda tmp, x: b"", "a.png", 422, "empty file"),
    "truncated jpeg": (lambda tmp, x: x.read_bytes()[:3000], "a.jpeg", 422, "truncated"),
    "png bomb": (lambda tmp, x: tiny_png_bomb(), "a.png", 422, "over the limit"),
    "png header bomb": (lambda tmp, x: header_only_png(90000, 90000), "a.png", 422, "bomb"),
    "dicom bomb": (lambda tmp, x: dicom_claiming(tmp, x, 60000), "a.dcm", 422, "over the limit"),
    "dicom ecg": (
        lambda tmp, x: make_dicom(
            tmp / "e.dcm", twelve_bit(jpeg_pixels(x)), modality="ECG"
        ).read_bytes(),
        "e.dcm",
        422,
        "modality ECG is not an image",
    ),
    "dicom without pixels": (
        lambda tmp, x: make_dicom(
            tmp / "n.dcm", twelve_bit(jpeg_pixels(x)), pixel_data=False
        ).read_bytes(),
        "n.dcm",
        422,
        "no pixel data",
    ),
    "broken .dcm": (lambda tmp, x: b"\0" * 200, "a.dcm", 422, "not a DICOM file"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_uploads_get_one_clean_line(client, xray, tmp_path, case):
    make, name, status, fragment = HOSTILE[case]
    assert_clean_problem(post(client, make(tmp_path, xray), name=name), status, fragment)


def test_too_large_uploads_get_413(client, xray):
    big = os.urandom(21 * 2**20)  # announced with Content-Length
    assert_clean_problem(post(client, big, name="a.png"), 413, "the limit is 20 MB")

    def chunks():  # no Content-Length: counted as it arrives
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(22):
            yield os.urandom(2**20)
        yield b"\r\n--x--\r\n"

    multipart = {"content-type": "multipart/form-data; boundary=x"}
    response = client.post("/api/predict", content=chunks(), headers=multipart)
    assert_clean_problem(response, 413, "the limit is 20 MB")
    assert post(client, xray.read_bytes()).status_code == 200  # and still serving


def test_malformed_requests_get_one_clean_line(client):
    assert_clean_problem(client.post("/api/predict", data={"x": "1"}), 422, "file")
    assert_clean_problem(client.post("/api/predict", json={"file": "x"}), 422, "file")
    response = client.post(
        "/api/predict", params={"gradcam": "perhaps"}, files={"file": ("a.png", b"x")}
    )
    assert_clean_problem(response, 422, "gradcam")
    assert_clean_problem(client.get("/api/nothing"), 404)
    assert_clean_problem(client.get("/api/predict"), 405)


def test_two_files_in_one_request_are_refused(client, xray):
    image = xray.read_bytes()
    files = [("file", ("a.jpeg", image)), ("file", ("b.jpeg", image))]
    response = client.post("/api/predict", files=files)
    assert_clean_problem(response, 400, "send one file per request")
    assert post(client, image).status_code == 200  # one file: answered


def test_multipart_refusals_say_what_to_change_and_log_no_parser_line(client, server, xray):
    logged = len(server.log.read_bytes())
    long_name = post(client, xray.read_bytes(), name="a" * 5000 + ".jpeg")
    assert_clean_problem(long_name, 400, "file name")
    multipart = {"content-type": "multipart/form-data; boundary=x"}
    broken = client.post("/api/predict", content=b"--xZ\r\n", headers=multipart)
    assert_clean_problem(broken, 400, "malformed multipart body")
    log = server.log.read_bytes()[logged:].decode()
    assert [line for line in log.splitlines() if not line.startswith("INFO:")] == [], log


def test_only_the_servers_own_host_names_are_answered(client, server):
    port = server.base.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
        assert client.get("/api/health", headers={"host": host}).status_code == 200, host
    for host in (f"evil.example:{port}", "attacker.test", "127.0.0.1.evil.example"):
        response = client.get("/api/model", headers={"host": host})
        assert_clean_problem(response, 400, "unknown Host header")
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_allowed_host_adds_names(tmp_path):
    from fastapi.testclient import TestClient

    from pneumocxr.artifact.load import load_model
    from pneumocxr.artifact.save import save_model
    from pneumocxr.networks.registry import build_model
    from pneumocxr.serve.app import create_app
    from pneumocxr.serve.guards import allowed_hosts
    from pneumocxr.serve.service import Service

    assert allowed_hosts("::1") == ["localhost", "127.0.0.1", "[::1]"]
    hosts = allowed_hosts("0.0.0.0", ["xray.lan", "10.0.0.7"])
    assert hosts == ["localhost", "127.0.0.1", "[::1]", "0.0.0.0", "xray.lan", "10.0.0.7"]
    save_model(build_model("smallnet", 64, weights="none"), tmp_path)
    app = create_app(Service(load_model(tmp_path), 0.5, 10**6), hosts=hosts)
    with TestClient(app, base_url="http://xray.lan:8000") as test_client:
        assert test_client.get("/api/health").status_code == 200
        assert test_client.get("/api/health", headers={"host": "other.lan"}).status_code == 400
    assert "--allowed-host" in cli("serve", "--help").stdout


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_card_shows_the_band_the_server_answers_with(xray):
    """The model's band with its own threshold; none with a --threshold outside it (the
    answers have none then), on the page's card as in each answer."""
    from fastapi.testclient import TestClient

    from pneumocxr.serve.app import create_app
    from pneumocxr.serve.service import Service

    for threshold, expect_band in (("model", True), (0.9, False)):
        service = Service.load(None, threshold)
        band = service.loaded.band
        with TestClient(create_app(service), base_url="http://localhost") as test_client:
            card = test_client.get("/api/model").json()
            body = post(test_client, xray.read_bytes()).json()
        shown = [band.low, band.high] if expect_band else None
        assert card["uncertain_band"] == body["uncertain_band"] == shown
        assert card["threshold"] == body["threshold"] == service.threshold


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_an_unexpected_error_is_a_generic_500(tmp_path):
    from fastapi.testclient import TestClient

    from pneumocxr.artifact.load import load_model
    from pneumocxr.artifact.save import save_model
    from pneumocxr.networks.registry import build_model
    from pneumocxr.serve.app import create_app
    from pneumocxr.serve.service import Service

    save_model(build_model("smallnet", 64, weights="none"), tmp_path)
    service = Service(load_model(tmp_path), 0.5, 10**6)

    def broken(_uploads):
        raise RuntimeError(f"secret detail in {tmp_path}")

    service.run_batch = broken
    image = shared_images("NORMAL", 1)[0].read_bytes()
    app = create_app(service)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as test_client:
        response = test_client.post("/api/predict", files={"file": ("a.jpeg", image)})
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}


def test_concurrent_requests_share_forward_passes(client, server):
    images = shared_images("NORMAL", 4, 80) + shared_images("PNEUMONIA", 4, 80)
    alone = [post(client, p.read_bytes()).json()["p_pneumonia"] for p in images]
    before = client.get("/api/health").json()
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda p: post(client, p.read_bytes()), images))
    after = client.get("/api/health").json()
    assert [r.status_code for r in together] == [200] * 8
    assert np.allclose([r.json()["p_pneumonia"] for r in together], alone, atol=1e-5)
    assert after["images"] - before["images"] == 8
    assert after["batches"] - before["batches"] < 8  # some requests shared a batch
    assert after["largest_batch"] > 1


def test_nothing_is_written_outside_the_private_temp_folder(client, server, xray):
    big_png = io.BytesIO()  # over 1 MB: the upload is spooled to a temporary file
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1200, 1200), np.uint8)).save(
        big_png, format="PNG"
    )
    assert len(big_png.getvalue()) > 2**20
    assert post(client, big_png.getvalue(), name="big.png").status_code == 200
    (private,) = server.tmp.iterdir()
    assert private.name.startswith("pneumocxr-serve-") and list(private.iterdir()) == []
    assert sorted(p.name for p in server.home.iterdir()) == ["server.log", "tmp"]


def test_a_killed_servers_private_folder_is_removed_by_the_next_server(tmp_path):
    from live_server import _wait_for_health, free_port

    tmp = tmp_path / "tmp"
    (tmp / "pneumocxr-serve-old").mkdir(parents=True)  # no process id in the name: left alone
    seen = []
    for _ in range(2):  # each server killed with SIGKILL, which leaves its folder behind
        port = free_port()
        with open(tmp_path / "log", "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "pneumocxr.cli", "serve", "--port", str(port)],
                cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp)}, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _wait_for_health(f"http://127.0.0.1:{port}", process, tmp_path / "log")
            seen.append((process.pid, sorted(p.name for p in tmp.iterdir())))
        finally:
            process.kill()
            process.wait(timeout=30)
    (first_pid, first), (second_pid, second) = seen
    assert [n.split("-")[2] for n in first if n != "pneumocxr-serve-old"] == [str(first_pid)]
    assert [n.split("-")[2] for n in second if n != "pneumocxr-serve-old"] == [str(second_pid)]
    assert "pneumocxr-serve-old" in second


def test_serve_refuses_a_busy_port_and_a_missing_model(server, tmp_path):
    port = server.base.rsplit(":", 1)[1]
    result = cli("serve", "--port", port, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: cannot listen on 127.0.0.1:" + port)
    result = cli("serve", "--port", 0, "--model", tmp_path / "nothing", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: model not found")


# -- the load test -----------------------------------------------------------------------------
def test_loadtest_refuses_other_machines(xray):
    from pneumocxr.errors import PneumoError
    from pneumocxr.serve.loadtest import check_target

    for url in ("http://10.1.2.3:8000", "http://example.org", "http://[::2]:80", "http://0.0.0.0"):
        with pytest.raises(PneumoError, match="refusing to load-test"):
            check_target(url)
    for url in ("https://127.0.0.1:8000", "ftp://x", "127.0.0.1:8000"):
        with pytest.raises(PneumoError, match="must look like"):
            check_target(url)
    for url in (
        "http://127.0.0.1:8000",
        "http://127.8.9.10",
        "http://[::1]:80",
        "http://localhost",
    ):
        assert check_target(url) == url
    result = cli("loadtest", xray, "--url", "http://192.168.1.1:8000", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: refusing to load-test 192.168.1.1")


def test_loadtest_measures_a_running_server(server, xray):
    images = shared_images("NORMAL", 2, 90) + [xray]
    result = cli(
        "loadtest", *images, "--url", server.base.replace("127.0.0.1", "localhost"),
        "--requests", 3, "--clients", "1,2", "--time-limit", 60, "--json",
    )  # fmt: skip
    report = json.loads(result.stdout)
    levels = [(x["gradcam"], x["clients"]) for x in report["levels"]]
    assert levels == [(False, 1), (False, 2), (True, 1), (True, 2)]
    for level in report["levels"]:
        assert level["completed"] == 3 and level["failed"] == 0
        assert 0 < level["p50_ms"] <= level["p99_ms"] and level["requests_per_s"] > 0


# -- the page in a real browser ----------------------------------------------------------------
def test_page_in_chromium(server, client, xray, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    expected = post(client, xray.read_bytes()).json()
    batch = shared_images("NORMAL", 1, 100) + shared_images("PNEUMONIA", 1, 100)
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requested = []
            page.on("request", lambda r: requested.append(r.url))
            page.goto(server.base + "/")
            page.wait_for_selector("#model-name strong")
            model_text = page.text_content("#model")
            notice = page.text_content(".notice")
            focused = _tab_to(page, "files")
            page.set_input_files("#files", str(xray))
            page.wait_for_selector(".result .label", timeout=30_000)
            label = page.text_content(".result .label")
            shown_p = page.text_content(".result .p")
            heatmap = page.eval_on_selector(".result img.heat", "i => i.complete && i.naturalWidth")
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

            page.set_input_files("#files", [str(p) for p in batch])
            page.locator(".result .label").nth(2).wait_for(timeout=30_000)
            page.click("#summary th[data-key=p] button")  # sort by probability, ascending
            ordered = page.eval_on_selector_all(
                "#summary tbody tr td:nth-child(4)", "cells => cells.map(c => c.textContent)"
            )
            with page.expect_download() as download:
                page.click("#csv")
            rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
            page.set_viewport_size({"width": 390, "height": 844})
            fits_phone = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
            page.goto(server.base + "/docs")  # Swagger UI, from the package too
            page.locator(".opblock-summary-path").first.wait_for(timeout=20_000)
            operations = page.locator(".opblock-summary-path").all_text_contents()
            if os.environ.get("PNEUMOCXR_KEEP_SCREENSHOTS"):  # to look at them
                keep = Path(os.environ["PNEUMOCXR_KEEP_SCREENSHOTS"])
                page.screenshot(path=str(keep / "phone.png"), full_page=True)
                page.set_viewport_size({"width": 1280, "height": 900})
                page.screenshot(path=str(keep / "page.png"), full_page=True)
        finally:
            browser.close()
    assert focused, "the file chooser cannot be reached with the Tab key"
    assert "Not a medical device" in notice
    assert label == expected["label"] and float(shown_p) == pytest.approx(
        expected["p_pneumonia"], abs=1e-3
    )
    assert heatmap and heatmap > 0
    meta = json.loads((ROOT / "src/pneumocxr/weights/model.json").read_text())
    shown = [f"{meta['validation'][k]['auc']:.3f}" for k in ("internal", "external")]
    assert "default (efficientnet-lite0)" in model_text and "not measured" not in model_text
    assert all(auc in model_text for auc in shown), shown  # both AUCs from model.json
    assert all(u.startswith(server.base) or u.startswith("data:") for u in requested), requested
    assert {"/api/predict", "/api/health", "/api/model"} <= {x.strip() for x in operations}
    values = [float(x) for x in ordered]
    assert len(values) == 3 and values == sorted(values)
    assert [r["file"] for r in rows] and len(rows) == 3
    assert {r["label"] for r in rows} <= {"NORMAL", "PNEUMONIA"} and all(r["model"] for r in rows)
    assert fits_phone
    shot = Image.open(tmp_path / "page.png").convert("RGB")
    assert (tmp_path / "page.png").stat().st_size > 50_000 and np.asarray(shot).std() > 20
    assert np.asarray(shot).std(axis=2).mean() > 1  # the coloured heatmap is on the page


def _tab_to(page, element_id: str, presses: int = 12) -> bool:
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return True
    return False
