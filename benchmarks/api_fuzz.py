"""schemathesis against the web API's OpenAPI schema (`/openapi.json`) on a real server.

    .venv/bin/python benchmarks/api_fuzz.py --examples 500 --json benchmarks/results/api_fuzz.json

Starts `pneumocxr serve` on a free loopback port (or uses `--url`, a server on this machine)
and runs `schemathesis run` on it: `--examples` cases per operation and phase, a fixed seed,
one worker, every check but `positive_data_acceptance` (any bytes are a schema-valid `file`;
only an image is a usable one, which a schema cannot say). About half of the uploads are
replaced by small valid images (benchmarks/api_fuzz_hooks.py), so 200 answers are checked
too. A failure is a 5xx, an undocumented status code or content type, or a response that does
not match its schema. Exit status 1 when there was one (schemathesis' report, with a `curl`
line to reproduce each, goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOOKS = Path(__file__).resolve().parent / "api_fuzz_hooks.py"
sys.path.insert(0, str(ROOT / "tests"))

from live_server import running_server  # noqa: E402
from pneumocxr.serve.loadtest import check_target  # noqa: E402

EXCLUDED = "positive_data_acceptance"


def fuzz(url: str, examples: int, seed: int, time_limit: float, work: Path) -> dict:
    report, statuses = work / "report.json", work / "statuses.txt"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--max-examples", str(examples), "--seed", str(seed), "--workers", "1",
        "--checks", "all", "--exclude-checks", EXCLUDED, "--continue-on-failure",
        "--generation-database", "none", "--request-timeout", "30", "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "API_FUZZ_STATUSES": str(statuses)}
    start = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=time_limit, cwd=work
    )
    if not report.exists():
        raise SystemExit(f"error: schemathesis wrote no report:\n{done.stdout}\n{done.stderr}")
    found = json.loads(report.read_text())
    codes = Counter(statuses.read_text().split()) if statuses.exists() else Counter()
    return {
        "schemathesis": found["schemathesis_version"],
        "seed": seed,
        "examples_per_operation": examples,
        "checks": f"all but {EXCLUDED}",
        "operations": found["operations"]["tested"],
        "test_cases": found["test_cases"]["generated"],
        "requests_by_status": dict(sorted(codes.items())),
        "failures": found["failures"],
        "errors": found["errors"],
        "warnings": sorted(k for k, v in found["warnings"].items() if v),
        "seconds": round(time.monotonic() - start, 1),
        "exit_code": done.returncode,
        "output": done.stdout if done.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="cases per operation")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--url", help="a running server (loopback only); default: start one")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds, in all")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-fuzz-") as folder:
        work = Path(folder)
        if args.url:
            server = nullcontext(argparse.Namespace(base=check_target(args.url.rstrip("/"))))
        else:
            (work / "server").mkdir()
            server = running_server(work / "server")
        with server as running:
            summary = fuzz(running.base, args.examples, args.seed, args.time_limit, work)
    output = summary.pop("output")
    text = json.dumps(summary, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    if summary["failures"] or summary["errors"] or summary["exit_code"]:
        print(output, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
