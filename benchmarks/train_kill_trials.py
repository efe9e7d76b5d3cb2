"""kill -9 of `pneumocxr train` at random moments, then `--resume`: is the result the run that
would have been?

    .venv/bin/python benchmarks/train_kill_trials.py --trials 10

A small real run (SmallNet, 120 + 120 shared X-rays at 48 px, 6 epochs, strong augmentation,
stress-test corruptions and mixup, so that every random-number stream matters) is trained once
without interruption. Each trial starts the same run, kills it with SIGKILL at a uniformly
random moment of the uninterrupted run's time after its run folder appeared (of its second half
for half the trials, where checkpoints are being written), resumes it with `pneumocxr train
--resume RUN` (killing the resumed run again at random in a third of the trials, then resuming
once more), records whether each kill landed before the run ended, and
compares: exported weights byte for byte, the validation loss of every epoch, and whether any
temporary file was left behind. Writes benchmarks/results/train_kill.json.
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

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import make_subset  # noqa: E402

OPTIONS = ["--model", "smallnet", "--image-size", "48", "--batch-size", "16", "--epochs", "6",
           "--augment", "strong", "--corruption-p", "0.5", "--mixup", "0.2",
           "--seed", "7"]  # fmt: skip


def cli(args, kill_after: float | None = None, folder_in: Path | None = None) -> tuple:
    """Run the CLI, SIGKILL it `kill_after` seconds after its start or, with `folder_in`, after
    its run folder appeared there (so that kills land in training, not in start-up).
    Returns (seconds from the start, seconds from the folder's appearance or None, killed)."""
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "pneumocxr.cli", *map(str, args)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    appeared = None
    if folder_in is not None:
        while process.poll() is None and not list(folder_in.glob("*/config.json")):
            time.sleep(0.02)
        appeared = time.monotonic()
    killed = False
    try:
        process.wait(timeout=kill_after if kill_after is not None else 900)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        killed = True
    end = time.monotonic()
    return end - start, None if appeared is None else end - appeared, killed


def outcome(run: Path, reference: Path) -> dict:
    """What the interrupted-and-resumed run left, against the uninterrupted one."""
    files = ("model.safetensors",)
    same_weights = all((run / f).read_bytes() == (reference / f).read_bytes() for f in files)
    history = pd.read_csv(run / "history.csv")["val_loss"].tolist()
    expected = pd.read_csv(reference / "history.csv")["val_loss"].tolist()
    leftovers = [str(p.relative_to(run)) for p in run.rglob(".*")]
    return {"same_weights": same_weights, "same_history": history == expected,
            "leftover_temporaries": leftovers}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_subset(tmp / "data", 120, 120)
        full, training, _ = cli(["train", "--data", data, "--out", tmp / "reference", *OPTIONS],
                                folder_in=tmp / "reference")  # fmt: skip
        (reference,) = (tmp / "reference").iterdir()
        rows = []
        for trial in range(args.trials):
            out = tmp / f"trial{trial}"
            late = trial % 2 == 1  # half the kills in the last half, where checkpoints are
            moment = rng.uniform(training / 2 if late else 0.0, training)
            *_, killed = cli(["train", "--data", data, "--out", out, *OPTIONS], moment, out)
            runs = list(out.glob("*/config.json"))
            if not runs:  # killed before the run folder existed: nothing to resume
                rows.append({"trial": trial, "killed_at_s": moment, "run_folder": False})
                continue
            run = runs[0].parent
            second, killed_again = None, False
            if trial % 3 == 2:  # kill the resumed run too
                second = rng.uniform(0, full)
                *_, killed_again = cli(["train", "--resume", run, "--epochs", 6], second)
            cli(["train", "--resume", run, "--epochs", 6])
            rows.append({"trial": trial, "killed_at_s": round(moment, 2), "run_folder": True,
                         "killed": killed, "resume_killed_at_s": second and round(second, 2),
                         "resume_killed": killed_again,
                         **outcome(run, reference)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    from run import save  # benchmarks/run.py: adds the machine and date

    resumed = [r for r in rows if r["run_folder"]]
    save("train_kill", {
        "command": f"python benchmarks/train_kill_trials.py --trials {args.trials}",
        "uninterrupted_s": full,
        "training_s": training,
        "trials": rows,
        "killed": sum(r["killed"] for r in resumed),
        "resumes_killed": sum(r["resume_killed"] for r in resumed),
        "identical": sum(r["same_weights"] and r["same_history"] for r in resumed),
        "resumed": len(resumed),
        "leftovers": sum(bool(r["leftover_temporaries"]) for r in resumed),
    })  # fmt: skip


if __name__ == "__main__":
    main()
