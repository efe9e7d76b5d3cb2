"""Recipes measured on the external set: train each with the real CLI, then score it.

    python benchmarks/recipes.py benchmarks/recipes.txt --parallel 1 --out results.json
    python benchmarks/recipes.py benchmarks/recipes.txt --only L0_strong_corr SN_base
    python benchmarks/recipes.py --add NAME RUN_DIR --out results.json  # a run trained already

Each line of the recipe file is `NAME | pneumocxr train options`. For every recipe this runs
`pneumocxr train --data DATA --external EXTERNAL OPTIONS`, then records the internal validation
split and external AUCs, both sets' logits (plain and mirrored, for ensemble and test-time
augmentation analysis), the per-epoch history, and the stress test on about 300 internal
validation images and on the external set. Training uses the GPU when there is one. Results are
written after every recipe, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "data").resolve()


def score(run_dir: Path, external: Path) -> dict:
    """Logits and stress results of one exported run."""
    import pandas as pd
    import torch

    from pneumocxr.artifact.load import load_model
    from pneumocxr.data.dataset import subset_patients
    from pneumocxr.data.decode import decode_all
    from pneumocxr.data.index import index_images
    from pneumocxr.evaluation.stress import stress_test
    from pneumocxr.inference.batches import predict_logits

    loaded = load_model(run_dir)
    if torch.cuda.is_available():
        loaded.predictor.network.cuda()
    splits = pd.read_csv(run_dir / "splits.csv")
    val = splits[splits["split"] == "val"][["path", "label", "patient"]].reset_index(drop=True)
    outside = index_images(external)[["path", "label"]]
    result = {}
    for name, table in (("val", val), ("ext", outside)):
        pixels = decode_all(table["path"], loaded.preprocessing.image_size).pixels
        result[name] = {
            "y": (table["label"] == "PNEUMONIA").astype(int).tolist(),
            "logit": [round(v, 4) for v in predict_logits(loaded.predictor, pixels).tolist()],
            "logit_mirror": [
                round(v, 4) for v in predict_logits(loaded.predictor, pixels.flip(-1)).tolist()
            ],
        }
    for name, table in (("val", subset_patients(val, 300, 0)), ("ext", outside)):
        stressed = stress_test(loaded, table[["path", "label"]], 0.5)
        result[f"stress_{name}"] = {
            **stressed.summary(),
            "rows": stressed.table.to_dict("records"),
        }
    result["meta"] = json.loads((run_dir / "model.json").read_text())
    result["history"] = pd.read_csv(run_dir / "history.csv").to_dict("list")
    return result


def run_recipe(name: str, options: str, args) -> dict:
    out = Path(args.runs) / name
    command = [sys.executable, "-m", "pneumocxr.cli", "train", "--data", str(args.data),
               "--external", str(args.external), "--out", str(out), *options.split()]  # fmt: skip
    start = time.time()
    trained = subprocess.run(command, capture_output=True, text=True)
    train_s = time.time() - start
    if trained.returncode:
        return {"options": options, "error": trained.stderr[-2000:]}
    run_dir = next(out.glob("*/model.json")).parent
    scored = subprocess.run(
        [sys.executable, __file__, "--score", str(run_dir), "--external", str(args.external)],
        capture_output=True,
        text=True,
    )
    if scored.returncode:
        return {"options": options, "error": scored.stderr[-2000:]}
    result = json.loads((run_dir / "recipe-score.json").read_text())
    return {**result, "options": options, "train_s": train_s, "total_s": time.time() - start}


def add_run(name: str, run_dir: Path, args) -> None:
    """Score a run trained elsewhere (its options from config.json, its time from history)."""
    import pandas as pd

    config = json.loads((run_dir / "config.json").read_text())
    scored = subprocess.run(
        [sys.executable, __file__, "--score", str(run_dir), "--external", str(args.external)],
        capture_output=True,
        text=True,
    )
    if scored.returncode:
        sys.exit(scored.stderr[-2000:])
    result = json.loads((run_dir / "recipe-score.json").read_text())
    command = config.get("command", "")
    options = command.split(" train ", 1)[-1] if " train " in command else command
    seconds = float(pd.read_csv(run_dir / "history.csv")["seconds"].sum())
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.setdefault("machine", {**machine(), "date": time.strftime("%Y-%m-%d")})
    results.setdefault("recipes", {})[name] = {**result, "options": options, "train_s": seconds}
    args.out.write_text(json.dumps(results))


def machine() -> dict:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return {"device": device, "torch": torch.__version__, "cores": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="?", type=Path)
    parser.add_argument("--only", nargs="*", help="run only these recipe names")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--data", type=Path, default=SHARED / "chest_xray")
    parser.add_argument("--external", type=Path, default=SHARED / "external")
    parser.add_argument("--runs", type=Path, default=Path("recipe-runs"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/recipes.json")
    parser.add_argument("--add", nargs=2, metavar=("NAME", "RUN"), help="score a finished run")
    parser.add_argument("--score", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score:
        result = score(args.score, args.external)
        (args.score / "recipe-score.json").write_text(json.dumps(result))
        return
    if args.add:
        add_run(args.add[0], Path(args.add[1]), args)
        return
    lines = [x.split("|", 1) for x in args.recipes.read_text().splitlines() if "|" in x]
    recipes = {k.strip(): v.strip() for k, v in lines if not k.strip().startswith("#")}
    if args.only:
        recipes = {k: v for k, v in recipes.items() if k in args.only}
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.setdefault("machine", machine())
    results.setdefault("recipes", {})
    with ThreadPoolExecutor(args.parallel) as pool:
        jobs = {name: pool.submit(run_recipe, name, opts, args) for name, opts in recipes.items()}
        for name, job in jobs.items():
            results["recipes"][name] = job.result()
            args.out.write_text(json.dumps(results))
            print(name, results["recipes"][name].get("error", "done")[-300:], flush=True)


if __name__ == "__main__":
    main()
