"""Every case of the bad-input corpus (tests/corpus.py) through the CLI, one command per case,
and what came of it.

    .venv/bin/python benchmarks/corpus_report.py [--json benchmarks/results/corpus.json]

Image cases go through `predict` (and `dicom2png` for DICOMs), model cases through
`predict --model`, run cases through `evaluate --split test`, data-folder cases through `split
--data`, labels-CSV cases through `split --labels`, the resume case through `train --resume`,
the weights case through `train --weights ... --trust-pickle`. Each command has 60 seconds.
An outcome is `answered` (exit 0 with a result), `refused` (non-zero exit, one `error:` line),
`crash` (a traceback or an internal error), `raw warning` (a Python warning on stderr) or
`hang` (killed at 60 s); it is `as expected` when it matches the case's expected outcome.
Run it with PYTHONPATH pointing at another source tree to measure that code instead.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from corpus import write_corpus  # noqa: E402

RAW_WARNING = re.compile(r"\w+Warning: ")


def outcome(args: list) -> str:
    try:
        done = subprocess.run([sys.executable, "-m", "pneumocxr.cli", *map(str, args)],
                              capture_output=True, text=True, errors="backslashreplace",
                              timeout=60)  # fmt: skip
    except subprocess.TimeoutExpired:
        return "hang"
    text = done.stdout + done.stderr
    if "Traceback" in text or "internal error" in text:
        return "crash"
    if RAW_WARNING.search(done.stderr):
        return "raw warning"
    errors = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    if done.returncode != 0:
        return "refused" if len(errors) == 1 else "crash"
    return "answered" if done.stdout.strip() else "refused"


def commands(case, folder: Path) -> dict[str, list]:
    if case.kind == "model":
        return {"predict": ["predict", "--model", case.path, folder / "images" / "gray.jpeg"]}
    if case.kind == "run":
        return {"evaluate": ["evaluate", case.path, "--split", "test", "--out",
                             folder / "out" / case.name]}  # fmt: skip
    out = folder / "out" / case.name
    if case.kind == "folder":
        return {"split": ["split", "--data", case.path, "--out", out]}
    if case.kind == "labels":
        return {"split": ["split", "--labels", case.path, "--out", out]}
    if case.kind == "resume":
        return {"train --resume": ["train", "--resume", case.path]}
    if case.kind == "weights":
        return {"train --weights": ["train", "--model", "efficientnet-lite0", "--weights",
                                    case.path, "--trust-pickle", "--data", folder / "images",
                                    "--out", folder / "out" / case.name]}  # fmt: skip
    found = {"predict": ["predict", case.path]}
    if case.dicom:
        found["dicom2png"] = ["dicom2png", case.path, folder / "out" / f"{case.name}.png"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = write_corpus(folder)
        jobs = [(c, name, cmd) for c in cases for name, cmd in commands(c, folder).items()]
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda job: outcome(job[2]), jobs))
    rows = []
    for (case, command, _), result in zip(jobs, results):
        expected = {"ok": "answered", "refuse": "refused"}[case.expect]
        rows.append({"case": case.name, "kind": case.kind, "command": command,
                     "expected": expected, "outcome": result})  # fmt: skip
    outcomes = sorted({r["outcome"] for r in rows})
    summary = {
        "kinds": len(cases),
        "runs": len(rows),
        "as expected": sum(r["outcome"] == r["expected"] for r in rows),
        "by outcome": {o: sum(r["outcome"] == o for r in rows) for o in outcomes},
        "not as expected": [f"{r['case']} ({r['command']}): {r['outcome']}" for r in rows
                            if r["outcome"] != r["expected"]],
    }  # fmt: skip
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")
    return 0 if not summary["not as expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
