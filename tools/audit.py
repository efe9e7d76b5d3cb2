"""Known vulnerabilities in the locked dependencies (requirements.lock).

    .venv/bin/python tools/audit.py [requirements.lock] [--required]

pip-audit checks every pinned release against PyPI's vulnerability data. Where PyPI does not
answer for a release (some mirrors serve only each project's latest release data), the
project's own JSON is used when its latest release is the locked one. A package neither way
could check is listed as not audited: a skip is said, never counted as a pass.

Exit status: 1 when a vulnerability with a fixed release is found; 2 with --required when
some package could not be audited (no network, no data); else 0.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PYPI = "https://pypi.org/pypi"


def read_lock(path: Path) -> dict[str, str]:
    """name -> version; local labels (torch's +cpu) dropped: advisories name public releases."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        if not version:
            raise SystemExit(f"error: {path}: not a pinned requirement: {line}")
        pins[_normal(name)] = version.split("+", 1)[0]
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_audit(pins: dict[str, str]) -> tuple[dict, str]:
    """({name: [vulnerability]} for packages pip-audit could check, problem or '')."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as req:
        req.write("".join(f"{n}=={v}\n" for n, v in pins.items()))
        req.flush()
        command = [sys.executable, "-m", "pip_audit", "-r", req.name, "--no-deps", "-s", "pypi",
                   "--disable-pip", "-f", "json", "--progress-spinner", "off"]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            report = json.loads(done.stdout)
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            lines = (done.stderr if "done" in locals() else "timed out").strip().splitlines()
            return {}, (lines[-1] if lines else "no answer")[:200]
    found = {}
    for dep in report.get("dependencies", []):
        if "skip_reason" not in dep:
            found[_normal(dep["name"])] = [
                {"id": v["id"], "fixed_in": v.get("fix_versions", [])} for v in dep["vulns"]
            ]
    return found, ""


def latest_release_data(name: str, version: str, pypi: str) -> list | None:
    """The project's vulnerabilities when its latest release is `version`, else None."""
    try:
        with urllib.request.urlopen(f"{pypi}/{name}/json", timeout=30) as answer:
            data = json.load(answer)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if data.get("info", {}).get("version") != version:
        return None
    return [
        {"id": v["id"], "fixed_in": v.get("fixed_in", [])}
        for v in data.get("vulnerabilities", [])
        if not v.get("withdrawn")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description="Audit requirements.lock for vulnerabilities.")
    parser.add_argument("lock", type=Path, nargs="?", default=Path("requirements.lock"))
    parser.add_argument("--required", action="store_true", help="fail when not all is audited")
    parser.add_argument("--pypi", default=PYPI, help="PyPI's JSON API (tests use a local one)")
    parser.add_argument("--no-pip-audit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    pins = read_lock(args.lock)
    found, problem = ({}, "not run") if args.no_pip_audit else pip_audit(pins)
    by_pip_audit = len(found)
    rest = sorted(set(pins) - set(found))
    with ThreadPoolExecutor(8) as pool:  # network-bound
        answers = pool.map(lambda n: latest_release_data(n, pins[n], args.pypi), rest)
    found |= {name: vulns for name, vulns in zip(rest, answers) if vulns is not None}
    unaudited = sorted(set(pins) - set(found))
    fixable = [(n, v) for n in sorted(found) for v in found[n] if v["fixed_in"]]
    unfixed = [(n, v) for n in sorted(found) for v in found[n] if not v["fixed_in"]]
    for name, vuln in fixable:
        print(f"audit: {name} {pins[name]}: {vuln['id']}, fixed in {', '.join(vuln['fixed_in'])}")
    for name, vuln in unfixed:
        print(f"audit: note: {name} {pins[name]}: {vuln['id']} has no fixed release yet")
    if not found:
        print(f"audit: skipped: no vulnerability data could be fetched for {args.lock} "
              f"({problem or 'PyPI did not answer'}); nothing was audited")  # fmt: skip
    else:
        print(f"audit: {len(found)} of {len(pins)} locked packages audited ({by_pip_audit} "
              f"by pip-audit, {len(found) - by_pip_audit} from latest-release data), "
              f"{len(fixable)} vulnerabilities with a fix")  # fmt: skip
        if unaudited:
            listed = ", ".join(f"{n} {pins[n]}" for n in unaudited)
            print(f"audit: not audited (PyPI has no data for these releases): {listed}")
    if fixable:
        return 1
    return 2 if args.required and unaudited else 0


if __name__ == "__main__":
    sys.exit(main())
