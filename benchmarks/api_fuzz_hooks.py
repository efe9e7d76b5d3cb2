"""schemathesis hooks for benchmarks/api_fuzz.py, which loads them through SCHEMATHESIS_HOOKS.

Random bytes are never an image, so schemathesis alone would only ever see refusals: about
half of the generated uploads are replaced by small valid files (JPEG, PNG, 16-bit PNG,
DICOM; synthetic pictures, no X-ray), so that answers, Grad-CAM included, are checked against
the schema too. Every response's status code is appended to the file API_FUZZ_STATUSES names.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from corpus import picture  # noqa: E402
from dicom_factory import make_dicom, twelve_bit  # noqa: E402


def _encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _uploads() -> list[bytes]:
    with tempfile.TemporaryDirectory() as folder:
        dicom = make_dicom(Path(folder) / "x.dcm", twelve_bit(picture(96, 80, seed=3)))
        dicom_bytes = dicom.read_bytes()
    return [
        _encoded(picture(128, 96, seed=1), "JPEG"),
        _encoded(picture(64, 64, seed=2), "PNG"),
        _encoded(picture(80, 100).astype(np.uint16) * 256, "PNG"),
        dicom_bytes,
    ]


UPLOADS = _uploads()


@schemathesis.hook
def flatmap_body(context, body):
    # Only a schema-valid form (a dict whose file is bytes or text): replacing the file of a
    # deliberately invalid one (negative testing) would make it valid.
    if isinstance(body, dict) and isinstance(body.get("file"), (bytes, str)):
        valid = st.sampled_from(UPLOADS).map(lambda data: {**body, "file": data})
        return st.one_of(st.just(body), valid)
    return st.just(body)


@schemathesis.hook
def after_call(context, case, response):
    if os.environ.get("API_FUZZ_STATUSES"):
        with open(os.environ["API_FUZZ_STATUSES"], "a") as out:
            out.write(f"{response.status_code}\n")
