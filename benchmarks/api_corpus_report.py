"""Every file case of the bad-input corpus (tests/corpus.py) posted to the web API of a real
`pneumocxr serve`, as tests/test_api_corpus.py posts them, and what came of it.

    .venv/bin/python benchmarks/api_corpus_report.py [--json benchmarks/results/api_corpus.json]

Each case is posted twice, plain and with `gradcam=true`, 30 seconds each. An outcome is
`answered` (200), `refused` (4xx with a one-line `detail` and nothing that looks like a path),
`crash` (5xx, or a body holding a traceback or a path) or `hang` (no answer in time); it is
`as expected` when the status is the one tests/test_api_corpus.py expects: the CLI's outcome,
mapped for what the web app does of its own (JPEG, PNG and DICOM only; `--max-megapixels`).
The requests that are bad as requests (`REQUESTS` there: two files, a 5,000-character file
name, a malformed body, a foreign Host header) are posted the same way, carrying a good JPEG.
Run it with PYTHONPATH pointing at another source tree to measure that code instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from corpus import write_corpus  # noqa: E402
from live_server import LEAKS, running_server  # noqa: E402
from test_api_corpus import (  # noqa: E402
    NOT_UPLOADS,
    REQUEST_S,
    REQUESTS,
    browser_form,
    expected_status,
    send_request,
)


def outcome(client: httpx.Client, case, gradcam: bool) -> tuple[str, int | None]:
    body, kind = browser_form(os.fsencode(case.path.name), case.path.read_bytes())
    try:
        response = client.post("/api/predict", params={"gradcam": str(gradcam).lower()},
                               content=body, headers={"content-type": kind})  # fmt: skip
    except httpx.TimeoutException:
        return "hang", None
    return judged(response)


def request_outcome(client: httpx.Client, name: str, good: bytes, gradcam: bool):
    try:
        return judged(send_request(client, name, good, gradcam))
    except httpx.TimeoutException:
        return "hang", None


def judged(response: httpx.Response) -> tuple[str, int | None]:
    status, answer = response.status_code, response.json()
    text = json.dumps({k: v for k, v in answer.items() if not k.endswith("_png")})  # not base64
    if status >= 500 or any(leak in text for leak in LEAKS):
        return "crash", status
    if status == 200:
        return "answered", status
    detail = answer.get("detail")
    one_line = isinstance(detail, str) and detail.isprintable() and len(detail) <= 300
    return ("refused" if one_line else "crash"), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-corpus-") as folder:
        work = Path(folder)
        cases = [c for c in write_corpus(work / "corpus") if c.kind == "image"]
        cases = [c for c in cases if c.name not in NOT_UPLOADS]
        (work / "server").mkdir()
        with (
            running_server(work / "server") as server,
            httpx.Client(base_url=server.base, timeout=REQUEST_S, trust_env=False) as client,
        ):
            rows = []
            for case in cases:
                for gradcam in (False, True):
                    kind, status = outcome(client, case, gradcam)
                    rows.append({"case": case.name, "gradcam": gradcam, "outcome": kind,
                                 "status": status, "expected": expected_status(case)})  # fmt: skip
            good = next(c for c in cases if c.name == "jpeg_gray").path.read_bytes()
            for name, (_, expected, _) in REQUESTS.items():
                for gradcam in (False, True):
                    kind, status = request_outcome(client, name, good, gradcam)
                    rows.append({"case": name, "gradcam": gradcam, "outcome": kind,
                                 "status": status, "expected": expected})  # fmt: skip
    summary = {
        "cases": len(cases) + len(REQUESTS),
        "requests": len(rows),
        "as_expected": sum(r["status"] == r["expected"] for r in rows),
        "outcomes": dict(Counter(r["outcome"] for r in rows)),
        "statuses": {str(k): v for k, v in sorted(Counter(r["status"] for r in rows).items())},
        "unexpected": [r for r in rows if r["status"] != r["expected"]],
    }
    text = json.dumps({**summary, "rows": rows}, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
