"""The README's two commands on a fresh clone, as a new user runs them (docs/BENCHMARKS.md,
"Every day"): wall time with the virtual environment's creation included, and peak RSS, by
GNU time.

    python benchmarks/run.py fresh-run    # make run DATA=... EXTERNAL=... (about 20 minutes)
    python benchmarks/run.py fresh-test   # make test (about 10 minutes)

The clone is made beside this checkout (so that ../shared is found as the README says), from
its last commit, and removed afterwards; its log is kept in benchmarks/results/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from common import DATA, EXTERNAL, RESULTS, ROOT, save

TIME = "/usr/bin/time"


def fresh_run(_args) -> None:
    command = ["make", "run", f"DATA={DATA}", f"EXTERNAL={EXTERNAL}"]
    with _clone("fresh-run") as clone:
        log = RESULTS / "fresh_run.log"
        result = timed(command, clone, log)
        result.update(run_metrics(next((clone / "runs").glob("run-*"))))
    save("fresh_run", {"command": " ".join(command), **result})


def fresh_test(_args) -> None:
    command = ["make", "test"]
    with _clone("fresh-test") as clone:
        log = RESULTS / "fresh_test.log"
        result = timed(command, clone, log)
        result.update(test_summary(log.read_text(errors="replace")))
    save("fresh_test", {"command": " ".join(command), **result})


class _clone:
    """A clone of this checkout's HEAD beside it, removed on exit."""

    def __init__(self, name: str):
        self.path = ROOT.parent / f".pneumocxr-{name}"

    def __enter__(self) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", str(ROOT), str(self.path)], check=True)
        return self.path

    def __exit__(self, *_exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def timed(command: list[str], cwd: Path, log: Path) -> dict:
    """Wall seconds and the largest peak RSS of any process `command` started (GNU time -v)."""
    if not Path(TIME).is_file():
        sys.exit(f"{TIME} (GNU time) is needed: apt-get install time")
    with open(log, "w") as out:
        done = subprocess.run([TIME, "-v", *command], cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    return {"returncode": done.returncode, **gnu_time(text), "log": str(log.relative_to(ROOT))}


def gnu_time(text: str) -> dict:
    """wall_s and peak_rss_mb from GNU time -v's report at the end of `text`."""
    clock = re.findall(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)[-1]
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part)
    rss_kb = int(re.findall(r"Maximum resident set size \(kbytes\): (\d+)", text)[-1])
    return {"wall_s": round(seconds, 1), "peak_rss_mb": round(rss_kb / 1024)}


def run_metrics(run: Path) -> dict:
    """Both models' test (internal) and external metrics from the run's comparison."""
    keep = ("n", "auc", "auc_ci", "accuracy", "sensitivity", "specificity")
    models = json.loads((run / "comparison" / "comparison.json").read_text())
    return {
        "test": {m["name"]: {k: m[k] for k in keep} for m in models},
        "external": {m["name"]: {k: m["external"][k] for k in keep} for m in models},
    }


def test_summary(text: str) -> dict:
    """pytest's last line (passed, failed, seconds) and its slowest durations."""
    summary = re.findall(r"=+ (.*(?:passed|failed).* in ([\d.]+)s.*) =+", text)[-1]
    slowest = re.findall(r"^([\d.]+)s (setup|call|teardown) +(\S+)", text, re.M)
    return {
        "pytest": summary[0],
        "pytest_s": float(summary[1]),
        "slowest": [{"s": float(s), "when": w, "test": t} for s, w, t in slowest[:20]],
    }
