"""kill -9 of `evaluate` and `export` at random moments, and what each kill left.

    .venv/bin/python benchmarks/kill_trials.py --trials 20 --json benchmarks/results/kill.json

Each command first runs once to completion to time it; then, per trial, it is started over an
earlier result and killed with SIGKILL at a uniformly random moment: of the whole run for half
the trials, of its write phase (from its temporary folder's appearance on) for the other half.
Its output folder is checked: complete and either all old or all new (never a mix, never a partial
file). The next successful write must then leave no hidden temporary file behind.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TRAIN = ROOT.parent / "shared" / "data" / "chest_xray" / "train"

from corpus import good_model  # noqa: E402
from pneumocxr.artifact.load import load_model  # noqa: E402
from pneumocxr.artifact.save import save_model  # noqa: E402
from pneumocxr.networks.smallnet import SmallNet  # noqa: E402
from pneumocxr.pipeline.assess import evaluate_to_folder  # noqa: E402
from pneumocxr.pipeline.export import export_model  # noqa: E402


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def run_cli(args: list, parent: Path, delay: float | None, after_write_starts: bool) -> tuple:
    """Run the CLI; with `delay`, SIGKILL it that long after the start (or after its temporary
    folder appears in `parent`). Returns (seconds to the temporary folder, seconds in all)."""
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "pneumocxr.cli", *map(str, args)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    writing = None
    while process.poll() is None and time.monotonic() - start < 600:
        now = time.monotonic() - start
        if writing is None and any(p.is_dir() for p in parent.glob(".*.tmp")):
            writing = now
        begin = writing if after_write_starts else 0.0
        if delay is not None and begin is not None and now >= begin + delay:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    process.wait(10)
    return writing, time.monotonic() - start


def trials(name, command, out: Path, restore, check_new, count: int, rng) -> dict:
    """Half the kills fall anywhere in the run, half within its write phase (from the
    temporary folder's appearance to the end). `check_new(after, complete)`: whether `after`
    is the whole new output; `complete` is what an uninterrupted run wrote."""
    restore()
    writing, duration = run_cli(command, out.parent, None, False)
    complete = snapshot(out)
    restore()
    outcome = {"old kept": 0, "new complete": 0, "mixed or partial": 0, "temp left after next": 0}
    for trial in range(count):
        before = snapshot(out)
        in_write = trial % 2 == 1
        window = (duration - writing) if in_write else duration
        run_cli(command, out.parent, rng.uniform(0, window * 1.05), in_write)
        after = snapshot(out)
        if after == before:
            outcome["old kept"] += 1
        elif set(after) == set(before) and check_new(after, complete):
            outcome["new complete"] += 1
        else:
            outcome["mixed or partial"] += 1
        restore()
        if [p for p in out.parent.iterdir() if p.name.startswith(".")]:
            outcome["temp left after next"] += 1
    print(f"{name}: {count} kills, run {duration:.1f} s, writing from {writing:.1f} s: {outcome}",
          flush=True)  # fmt: skip
    timing = {"run_seconds": round(duration, 1), "write_starts_at": round(writing, 1)}
    return {"trials": count, **timing, **outcome}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        data = base / "data"
        for label in ("NORMAL", "PNEUMONIA"):
            (data / label).mkdir(parents=True)
            for image in sorted((TRAIN / label).glob("*.jpeg"))[:8]:
                (data / label / image.name).symlink_to(image)
        old, new = good_model(base / "old"), good_model(base / "new")
        evaluation = base / "e" / "evaluation"

        def restore_evaluation():
            evaluate_to_folder(old, evaluation, data, overwrite=True)

        def evaluation_is_new(after, complete):  # evaluations are byte for byte reproducible
            return after == complete

        source = base / "source"
        save_model(SmallNet(224), source)
        model = base / "m" / "model"

        def restore_model():
            export_model(source, model, half=True, overwrite=True)

        def model_is_new(after, complete):  # model.json holds a time: compare the weights
            same = after["model.safetensors"] == complete["model.safetensors"]
            return same and load_model(model).meta["weights"]["dtype"] == "float32"

        results = {
            "evaluate": trials(
                "evaluate",
                ["evaluate", new, "--data", data, "--out", evaluation, "--overwrite"],
                evaluation,
                restore_evaluation,
                evaluation_is_new,
                args.trials,
                rng,
            ),  # fmt: skip
            "export": trials(
                "export",
                ["export", source, "--out", model, "--overwrite"],
                model,
                restore_model,
                model_is_new,
                args.trials,
                rng,
            ),  # fmt: skip
        }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    bad = sum(r["mixed or partial"] + r["temp left after next"] for r in results.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
