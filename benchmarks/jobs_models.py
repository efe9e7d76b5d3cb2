"""Benchmark jobs that train: SmallNet at full size and its learning rates, the shipped model's
command, the main job (full and quick)."""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from pathlib import Path

from common import (
    DATA,
    EXTERNAL,
    PNEUMOCXR,
    ROOT,
    measured,
    run_summary,
    save,
    timed_cli,
)

# The shipped model's recipe (docs/VALIDATION.md says how it was chosen).
CARD_COMMAND = (
    "train --model efficientnet-lite0 --unfreeze all --epochs 15 --head-epochs 5 "
    "--class-weight balanced --augment strong --corruption-p 0.5 --keep last"
)


SHIP_OPTIONS = ["--half", "--threshold", "operating", "--threshold-on", str(EXTERNAL),
                "--min-sensitivity", "0.97", "--external", str(EXTERNAL),
                "--calibrate-on", str(EXTERNAL)]  # fmt: skip


def smallnet_full(_args) -> None:
    command = "train --model smallnet --epochs 15 --image-size 224 --split patient"
    with tempfile.TemporaryDirectory() as tmp:
        args = [*shlex.split(command), "--data", DATA, "--out", tmp]
        result = measured([*PNEUMOCXR, *args])
        wall, rss = result["wall_s"], result["peak_rss_mb"]
        (run,) = Path(tmp).glob("smallnet-*")
        summary = run_summary(run)
    save(
        "smallnet_full",
        {
            "command": f"pneumocxr {command} --data {DATA}",
            "wall_s": wall,
            "peak_rss_mb": rss,
            "s_per_epoch": wall / summary["epochs_run"],
            **summary,
        },
    )


def _lr_runs(template: str, settings, seeds) -> list[dict]:
    """Train SmallNet once per ((lr, epochs), seed); keep its validation AUC and accuracy."""
    rows = []
    for lr, epochs in settings:
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                args = template.format(lr=lr, epochs=epochs, seed=seed)
                wall, run = timed_cli(args, Path(tmp))
                summary = run_summary(run)
                predicted = _predicted_share(run)
            validation = summary["exported_model_val"]
            rows.append({"lr": lr, "epochs": epochs, "seed": seed, "wall_s": wall,
                         "val_auc": validation["auc"], "val_accuracy": validation["accuracy"],
                         "share_predicted_pneumonia": predicted})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def smallnet_lr(_args) -> None:
    """Does the tutorial's lr 1e-2 train reliably? Three seeds per rate, 4 epochs, 224 px."""
    template = "train --model smallnet --epochs {epochs} --lr {lr} --seed {seed}"
    rows = _lr_runs(template, ((1e-2, 4), (1e-3, 4), (1e-4, 4)), (1, 2, 3))
    command = "pneumocxr " + template.format(lr="LR", epochs=4, seed="S")
    save("smallnet_lr", {"command": command, "runs": rows})


def smallnet_lr_quick(_args) -> None:
    """The --quick profile (128 px, about 800 images): lr 1e-3 vs 1e-4, 3 vs 8 epochs."""
    template = "train --model smallnet --quick --epochs {epochs} --lr {lr} --seed {seed}"
    rows = _lr_runs(template, ((1e-3, 8), (1e-4, 3), (1e-4, 8)), (1, 2, 3, 42))
    command = "pneumocxr " + template.format(lr="LR", epochs="E", seed="S")
    save("smallnet_lr_quick", {"command": command, "runs": rows})


def _predicted_share(run: Path) -> float:
    """Share of validation images the exported model calls PNEUMONIA at 0.5."""
    import pandas as pd

    from pneumocxr.artifact.load import load_model
    from pneumocxr.inference.predict import predict_paths

    splits = pd.read_csv(run / "splits.csv")
    probs, _ = predict_paths(load_model(run), splits.loc[splits["split"] == "val", "path"].tolist())
    return float((probs["p_pneumonia"] >= 0.5).mean())


def default_model(args) -> None:
    """The model card's command (or the run given with --from), exported as float16 with its
    operating threshold chosen on the external set; evaluated on the internal validation and
    test splits and on the external set, and stress-tested on both.

    With --ship, the export replaces the shipped model in src/pneumocxr/weights/.
    """
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.source:
            run, wall = Path(args.source), None
        else:
            wall, run = timed_cli(CARD_COMMAND + f" --external {EXTERNAL}", tmp)
        summary = run_summary(run)
        shipped = run / "shipped"  # inside the run, so --split finds its splits.csv
        # shift tempering on the run's own validation and test splits (never its training)
        tempering = ["--temper-on", str(run / "splits.csv")]
        subprocess.run([*PNEUMOCXR, "export", str(run), "--out", str(shipped), "--overwrite",
                        *SHIP_OPTIONS, *tempering],
                       check=True, capture_output=True)  # fmt: skip
        meta = json.loads((shipped / "model.json").read_text())
        result = {
            "command": f"pneumocxr {CARD_COMMAND} --data {DATA} --external {EXTERNAL}",
            "export_command": "pneumocxr export RUN --out DIR " + " ".join(SHIP_OPTIONS)
            + " --temper-on RUN/splits.csv",
            **_wall(wall, args.wall_s, run),
            **summary,
            "threshold": meta["threshold"],
            "threshold_method": meta["threshold_method"],
            "internal_validation": _evaluate(shipped, "val", tmp / "val"),
            "internal_test": _evaluate(shipped, "test", tmp / "test"),
            "external": _evaluate(shipped, None, tmp / "ext", EXTERNAL),
            "stress_internal": _stress(shipped, tmp / "stress-val", split="val"),
            "stress_external": _stress(shipped, tmp / "stress-ext", data=EXTERNAL),
        }
        if args.ship:
            weights = ROOT / "src" / "pneumocxr" / "weights"
            for name in ("model.json", "model.safetensors"):
                shutil.copy2(shipped / name, weights / name)
            result["shipped_bytes"] = (weights / "model.safetensors").stat().st_size
    save("default_model", result)


def _wall(timed, given, run: Path) -> dict:
    """Training wall time: timed here, given (--wall-s, measured outside), or else the sum of
    the run's epochs (which leaves out decoding and caching)."""
    import pandas as pd

    if timed is not None:
        return {"wall_s": timed, "wall_source": "timed by this job"}
    if given is not None:
        return {"wall_s": given, "wall_source": "measured with /usr/bin/time, given with --wall-s"}
    epochs = pd.read_csv(run / "history.csv")["seconds"].sum()
    return {"wall_s": float(epochs), "wall_source": "sum of the epochs (decoding left out)"}


def _stress(model: Path, out: Path, split=None, data=None) -> dict:
    """`pneumocxr stress` (about 300 internal images; all external ones) and its summary."""
    where = ["--data", str(data)] if data else ["--split", split, "--limit", "300"]
    subprocess.run([*PNEUMOCXR, "stress", str(model), "--out", str(out), *where],
                   check=True, capture_output=True)  # fmt: skip
    summary = json.loads((out / "stress.json").read_text())
    return {k: v for k, v in summary.items() if k != "rows"} | {"table": summary["rows"]}


def _evaluate(model: Path, split, out: Path, data=None) -> dict:
    """`pneumocxr evaluate` on a split of the model's run (or on the folder `data`) at the
    model's threshold."""
    where = ["--data", str(data)] if data else ["--split", split]
    subprocess.run([*PNEUMOCXR, "evaluate", str(model), "--out", str(out), *where],
                   check=True, capture_output=True)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    keys = (
        "n",
        "accuracy",
        "accuracy_ci",
        "auc",
        "auc_ci",
        "sensitivity",
        "sensitivity_ci",
        "specificity",
        "specificity_ci",
        "brier",
    )
    return {k: metrics[k] for k in keys}


def _main_job(name: str, flags: list[str]) -> None:
    """Time `pneumocxr run` end to end as a user starts it, keep both models' test (internal)
    metrics, then evaluate both models on the external set (after the timing)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = measured([*PNEUMOCXR, "run", *flags, "--data", DATA, "--out", tmp])
        wall = result["wall_s"]
        (run,) = Path(tmp).glob("run-*")
        models = json.loads((run / "comparison" / "comparison.json").read_text())
        external = {m["name"]: _evaluate(run / m["name"], None, Path(tmp) / "ext" / m["name"],
                                         EXTERNAL) for m in models}  # fmt: skip
    keep = ("n", "auc", "auc_ci", "accuracy", "accuracy_ci", "sensitivity", "specificity")
    save(
        name,
        {
            "command": " ".join(["pneumocxr run", *flags, f"--data {DATA}"]),
            "wall_s": wall,
            "peak_rss_mb": result["peak_rss_mb"],
            "test": {m["name"]: {k: m[k] for k in keep} for m in models},
            "external": {n: {k: m[k] for k in keep} for n, m in external.items()},
            "external_command": f"pneumocxr evaluate RUN/MODEL --data {EXTERNAL}",
        },
    )


def quick_run(_args) -> None:
    _main_job("quick_run", ["--quick"])


def full_run(_args) -> None:
    _main_job("full_run", [])

