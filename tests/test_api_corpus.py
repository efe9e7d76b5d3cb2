"""The bad-input corpus (tests/corpus.py) through the web API: every case that is one file is
posted to `POST /api/predict` of a real server (the `server` fixture), named as a browser
names it, and a sample again with `?gradcam=true`. What the CLI reads gets a 200 with the
probability the CLI gives; what it refuses gets a 4xx with a one-line `detail`. Never a 5xx,
a traceback, a file path, a temporary folder's name or a DICOM patient tag; every request has
a time limit.

The web app differs from the CLI on purpose (docs/SERVING.md): it takes JPEG, PNG and DICOM
only (415 for GIF, BMP, TIFF, WebP), and `--max-megapixels` (40 by default) is its own limit.

Besides the files, requests that are bad as requests whatever file they carry (`REQUESTS`: two
files, a 5,000-character file name, a malformed body, a foreign Host header) get a 400.
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass

import pytest
from PIL import Image

from corpus import Case, write_corpus
from live_server import LEAKS

REQUEST_S = 30  # per request: the slowest case takes well under a second
NOT_UPLOADS = {"unreadable", "fifo", "dangling_link", "symlink_loop"}  # file-system cases
WEB_DIFFERS = {  # read by the CLI, refused by the web app on purpose
    "gif": 415,
    "gif_animated": 415,
    "bmp": 415,
    "tiff": 415,
    "webp": 415,
    "huge_valid_7000": 422,  # 49 megapixels, over --max-megapixels 40
}
NOT_AN_UPLOAD_FORMAT = {  # refused by both; for the web app not JPEG, PNG or DICOM: 415
    "text_as_jpeg", "html_as_jpeg", "pdf_as_jpeg", "eps_as_jpeg", "svg_as_png", "zip_as_png",
    "ico_as_png", "tiff_float_nan",
}  # fmt: skip
GRADCAM_SAMPLE = [
    "jpeg_gray", "jpeg_exif_rotated", "png_16bit", "png_alpha", "dicom_multiframe", "dicom_rgb",
    "dicom_monochrome1", "jpeg_named_dcm", "zero_byte", "text_as_jpeg", "bomb_png",
    "dicom_no_pixels", "gif", "huge_valid_7000",
]  # fmt: skip
PATIENT_TAGS = ("Corpus^Case", "CORPUS01", "Test^Child", "TEST001")
FIELDS = {"label", "p_pneumonia", "in_scope", "scope_score", "reason", "threshold",
          "uncertain_band", "model", "gradcam_png", "image_png", "dicom_header"}  # fmt: skip


@dataclass
class Answer:
    case: Case
    status: int
    text: str
    body: dict


def expected_status(case: Case) -> int:
    if case.name in WEB_DIFFERS:
        return WEB_DIFFERS[case.name]
    if case.expect == "ok":
        return 200
    return 415 if case.name in NOT_AN_UPLOAD_FORMAT else 422


def browser_form(name: bytes, data: bytes) -> tuple[bytes, str]:
    """multipart/form-data as browsers write it: the file's name as its bytes (UTF-8 or not),
    with only `"`, CR and LF percent-encoded (the HTML standard's rule)."""
    for raw, escaped in ((b'"', b"%22"), (b"\r", b"%0D"), (b"\n", b"%0A")):
        name = name.replace(raw, escaped)
    boundary = "----pneumocxr" + os.urandom(8).hex()
    body = (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="' + name + b'"\r\n'
        + b"Content-Type: application/octet-stream\r\n\r\n"
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )  # fmt: skip
    return body, f"multipart/form-data; boundary={boundary}"


def _two_files(data: bytes) -> dict:
    first, kind = browser_form(b"a.jpeg", data)
    boundary = kind.split("=", 1)[1].encode()
    part = first[: first.rindex(b"--" + boundary + b"--")]  # the first part, unclosed
    body = part + first.replace(b'filename="a.jpeg"', b'filename="b.jpeg"')
    return {"content": body, "headers": {"content-type": kind}}


def _named(name: bytes, **headers) -> dict:
    def build(data: bytes) -> dict:
        body, kind = browser_form(name, data)
        return {"content": body, "headers": {"content-type": kind, **headers}}

    return build


def _malformed(_data: bytes) -> dict:
    return {"content": b"--xZ\r\n", "headers": {"content-type": "multipart/form-data; boundary=x"}}


REQUESTS = {  # name: (the request for a good image's bytes, status, what the detail says)
    "two_files": (_two_files, 400, "send one file per request"),
    "file_name_5000_chars": (_named(b"a" * 5000 + b".jpeg"), 400, "file name"),
    "malformed_multipart": (_malformed, 400, "malformed multipart body"),
    "foreign_host": (_named(b"x.jpeg", host="rebound.example"), 400, "unknown Host header"),
}


def send_request(client, name: str, data: bytes, gradcam: bool = False):
    build = REQUESTS[name][0]
    params = {"gradcam": "true"} if gradcam else {}
    return client.post("/api/predict", params=params, timeout=REQUEST_S, **build(data))


def send(client, case: Case, gradcam: bool = False) -> Answer:
    body, kind = browser_form(os.fsencode(case.path.name), case.path.read_bytes())
    response = client.post(
        "/api/predict", params={"gradcam": "true"} if gradcam else {}, content=body,
        headers={"content-type": kind}, timeout=REQUEST_S,
    )  # fmt: skip
    return Answer(case, response.status_code, response.text, response.json())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[list[Case], list[Case]]:
    """(every file case, the ones posted)."""
    cases = [c for c in write_corpus(tmp_path_factory.mktemp("corpus")) if c.kind == "image"]
    return cases, [c for c in cases if c.name not in NOT_UPLOADS]


@pytest.fixture(scope="module")
def answers(client, server, corpus):
    """{case name: (plain answer, Grad-CAM answer or None)}, and what the server logged."""
    logged = len(server.log.read_bytes())
    found = {}
    for case in corpus[1]:
        gradcam = send(client, case, gradcam=True) if case.name in GRADCAM_SAMPLE else None
        found[case.name] = (send(client, case), gradcam)
    return found, server.log.read_bytes()[logged:].decode(errors="replace")


def test_every_file_of_the_corpus_is_posted(corpus, answers):
    cases, posted = corpus
    assert {c.name for c in cases} >= NOT_UPLOADS  # renamed cases would slip through
    named = set(WEB_DIFFERS) | NOT_AN_UPLOAD_FORMAT | set(GRADCAM_SAMPLE)
    assert {c.name for c in posted} >= named
    assert sorted(answers[0]) == sorted(c.name for c in posted) and len(posted) >= 50
    assert {plain.status for plain, _ in answers[0].values()} == {200, 415, 422}


def test_each_case_gets_the_status_the_cli_outcome_implies(answers):
    wrong = [
        (name, plain.status, expected_status(plain.case), plain.text[:120])
        for name, (plain, _) in answers[0].items()
        if plain.status != expected_status(plain.case)
    ]
    assert wrong == []


def test_no_answer_is_a_5xx_or_leaks_anything(answers, server, corpus):
    leaks = [*LEAKS, *PATIENT_TAGS, server.base, str(corpus[0][0].path.parent.parent)]
    leaks += ["pneumocxr-serve-", *(p.name for p in server.tmp.iterdir())]  # the private folder
    for plain, gradcam in answers[0].values():
        for answer in filter(None, (plain, gradcam)):
            assert answer.status < 500, (answer.case.name, answer.text)
            text = json.dumps({k: v for k, v in answer.body.items() if not k.endswith("_png")})
            found = [x for x in [*leaks, answer.case.path.name] if x in text]
            assert found == [], (answer.case.name, text)
            if answer.status != 200:
                assert list(answer.body) == ["detail"], answer.text
                detail = answer.body["detail"]
                assert isinstance(detail, str) and detail and detail.isprintable(), detail
                assert len(detail) <= 300, detail


def test_refusals_are_one_line_that_says_why(answers):
    for plain, _ in answers[0].values():
        detail = plain.body.get("detail", "")
        if plain.status == 415:
            assert detail == "not a readable image (not JPEG, PNG or DICOM)", plain.case.name
        elif plain.status == 422:
            assert "JPEG, PNG or DICOM" not in detail, (plain.case.name, detail)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # jpeg_bad_exif, read here as well
def test_answers_are_what_the_cli_gives(answers):
    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.inference.predict import predict_paths

    answered = {n: plain for n, (plain, _) in answers[0].items() if plain.status == 200}
    loaded = resolve_model(None)
    table, failures = predict_paths(loaded, [a.case.path for a in answered.values()])
    assert failures == []
    for answer, (_, row) in zip(answered.values(), table.iterrows()):
        body = answer.body
        assert set(body) == FIELDS and body["gradcam_png"] is None and body["image_png"] is None
        assert body["p_pneumonia"] == pytest.approx(row["p_pneumonia"], abs=1e-5), answer.case.name
        assert body["threshold"] == pytest.approx(loaded.threshold)
        # the same decision as the CLI's: scope check, band, threshold
        assert (body["label"], body["in_scope"]) == (row["label"], row["in_scope"])
        assert body["scope_score"] == pytest.approx(row["scope_score"], abs=1e-4)
        assert body["model"] == "default (efficientnet-lite0)"


def test_gradcam_answers_agree_with_the_plain_ones(answers):
    for name in GRADCAM_SAMPLE:
        plain, explained = answers[0][name]
        assert explained.status == plain.status, name
        if plain.status != 200:
            assert explained.body == plain.body, name
            continue
        assert explained.body["p_pneumonia"] == pytest.approx(plain.body["p_pneumonia"], abs=1e-5)
        if not plain.body["in_scope"]:  # an image out of scope gets no heat map
            assert explained.body["gradcam_png"] is None, name
            continue
        heat, gray = (_png(explained.body[key]) for key in ("gradcam_png", "image_png"))
        assert heat.size == gray.size and max(heat.size) <= 384 and min(heat.size) >= 32, name


def test_the_server_logged_no_traceback_and_no_patient_tag(answers):
    log = answers[1]
    posts = sum(1 + (explained is not None) for _, explained in answers[0].values())
    assert log.count("POST /api/predict") == posts
    for text in ("Traceback", "Error:", *PATIENT_TAGS):
        assert text not in log


def test_bad_requests_get_a_400_that_says_what_to_change(client, server, corpus):
    good = next(c for c in corpus[0] if c.name == "jpeg_gray").path.read_bytes()
    logged = len(server.log.read_bytes())
    for name, (_, status, fragment) in REQUESTS.items():
        for gradcam in (False, True):
            response = send_request(client, name, good, gradcam)
            assert response.status_code == status, (name, response.text)
            assert list(response.json()) == ["detail"] and fragment in response.json()["detail"]
    single = _named(b"x.jpeg")(good)  # the same request with one file, as named: answered
    assert client.post("/api/predict", **single).status_code == 200
    log = server.log.read_bytes()[logged:].decode(errors="replace")
    assert [x for x in log.splitlines() if not x.startswith("INFO:")] == [], log


def _png(encoded: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert image.format == "PNG"
    return image
