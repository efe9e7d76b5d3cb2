"""Measurements behind docs/BENCHMARKS.md. Rerun with `make benchmarks` (or one by name).

    python benchmarks/run.py smallnet-lr       # lr 1e-2 (the tutorial's), 1e-3, 1e-4; 3 seeds
    python benchmarks/run.py smallnet-lr-quick # --quick: lr 1e-3 vs 1e-4, 3 vs 8 epochs
    python benchmarks/run.py smallnet-full     # 15 epochs at 224 px, patient split
    python benchmarks/run.py default-model     # the model card's command
    python benchmarks/run.py quick-run         # `pneumocxr run --quick`
    python benchmarks/run.py full-run          # `pneumocxr run` (about 40 minutes)
    python benchmarks/run.py inference         # ms per image, with and without malloc tuning
    python benchmarks/run.py serve-load        # `pneumocxr loadtest` against `pneumocxr serve`
    python benchmarks/run.py bench             # `pneumocxr bench --json` (about 3 minutes)
    python benchmarks/run.py predict-folder    # `pneumocxr predict` on 2,000 files: img/s, RSS
    python benchmarks/run.py predict-cold      # `pneumocxr predict IMAGE` from a cold start
    python benchmarks/run.py speed             # the three above, then report (about 6 minutes)
    python benchmarks/run.py onnx-int8         # torch vs ONNX Runtime fp32 / int8 (tried, dropped)
    python benchmarks/run.py scope             # the scope check on outside images (about 10 min)
    python benchmarks/run.py calibration       # cross-fitted ECE and UNCERTAIN, external set
    python benchmarks/run.py serve-scope       # web API p50 with the scope check on and off
    python benchmarks/run.py onnx-speed        # PyTorch vs the ONNX export, same predict path
    python benchmarks/run.py report            # rewrite docs/BENCHMARKS.md from results/

Each measurement writes benchmarks/results/<name>.json; `report` turns them into markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "chest_xray").resolve()
RESULTS = ROOT / "benchmarks" / "results"
PNEUMOCXR = [sys.executable, "-m", "pneumocxr.cli"]
# The shipped model's recipe (docs/VALIDATION.md says how it was chosen).
CARD_COMMAND = (
    "train --model efficientnet-lite0 --unfreeze all --epochs 15 --head-epochs 5 "
    "--class-weight balanced --augment strong --corruption-p 0.5 --keep last"
)
EXTERNAL = (ROOT / ".." / "shared" / "data" / "external").resolve()
SHIP_OPTIONS = ["--half", "--threshold", "operating", "--threshold-on", str(EXTERNAL),
                "--min-sensitivity", "0.97", "--external", str(EXTERNAL)]  # fmt: skip


def machine() -> dict:
    """CPU, cores, threads, torch, Python, date and load average (`pneumocxr bench`'s)."""
    from pneumocxr.bench.suite import machine as bench_machine

    return bench_machine()


def save(name: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), **result}
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


# Runs a command and prints its wall seconds and peak RSS (this wrapper's only child).
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"wall_s": time.perf_counter() - start, "returncode": done.returncode,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "stdout": done.stdout[-20000:], "stderr": done.stderr[-3000:]}))
"""


def measured(command: list[str]) -> dict:
    """Run `command`; its wall seconds, peak RSS (MB), output. Fails loudly if it failed."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *map(str, command)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(out.stdout)
    if result["returncode"]:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{result['stderr']}")
    return result


def timed_cli(args: str, out: Path) -> tuple[float, Path]:
    """Run a pneumocxr command; return (wall seconds, the run folder it printed)."""
    command = [*PNEUMOCXR, *shlex.split(args), "--data", str(DATA), "--out", str(out)]
    start = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.time() - start
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    folders = [
        x.split(":", 1)[1].strip()
        for x in result.stderr.splitlines() + result.stdout.splitlines()
        if x.startswith("run folder:")
    ]
    return wall, Path(folders[-1])


def run_summary(run: Path) -> dict:
    import pandas as pd

    history = pd.read_csv(run / "history.csv")
    meta = json.loads((run / "model.json").read_text())
    best = history.set_index("epoch").loc[meta["training"]["best_epoch"]]
    return {
        "epochs_run": int(len(history)),
        "best_epoch": int(best.name),
        "best_epoch_val": {
            k: float(best[f"val_{k}"]) for k in ("loss", "accuracy", "auc", "recall", "precision")
        },
        "final_epoch_val": {
            k: float(history.iloc[-1][f"val_{k}"]) for k in ("loss", "accuracy", "auc")
        },
        "exported_model_val": meta["training"]["validation"],
        "threshold": meta["threshold"],
        **({"mean_epoch_s": float(history["seconds"].mean())} if "seconds" in history else {}),
    }


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

    from pneumocxr.evaluation.inference import predict_paths
    from pneumocxr.models.io import load_model

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
        subprocess.run([*PNEUMOCXR, "export", str(run), "--out", str(shipped), "--overwrite",
                        *SHIP_OPTIONS],
                       check=True, capture_output=True)  # fmt: skip
        meta = json.loads((shipped / "model.json").read_text())
        result = {
            "command": f"pneumocxr {CARD_COMMAND} --data {DATA} --external {EXTERNAL}",
            "export_command": "pneumocxr export RUN --out DIR " + " ".join(SHIP_OPTIONS),
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


def inference(_args) -> None:
    """Milliseconds per image for each model at 224 px, with and without the malloc tuning."""
    script = ROOT / "benchmarks" / "inference_speed.py"
    rows = []
    for tuned in (True, False):
        for name in ("smallnet", "efficientnet-lite0", "vgg16"):
            out = subprocess.run(
                [sys.executable, str(script), name, str(int(tuned))],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(out.stdout.splitlines()[-1]))
    save("inference", {"command": "python benchmarks/inference_speed.py MODEL TUNED", "runs": rows})


def bench(_args) -> None:
    """Every speed figure of the issue in one process: `pneumocxr bench --json`."""
    command = [*PNEUMOCXR, "bench", "--json", "--data", str(DATA)]
    result = measured(command)
    figures = json.loads(result["stdout"])
    save("bench", {"command": f"pneumocxr bench --json --data {DATA}", **figures})


def predict_folder(_args, count: int = 2000) -> None:
    """`pneumocxr predict FOLDER` on 2,000 shared images, end to end in a fresh process."""
    images = sorted((DATA / "train").glob("*/*.jpeg"))[:: max(1, 5216 // count)][:count]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for image in images:
            (Path(tmp) / image.name).symlink_to(image)
        for scope_check in ("off", "on", "off", "on"):  # interleaved: load drifts
            result = measured([*PNEUMOCXR, "predict", tmp, "--scope-check", scope_check])
            rows.append({"engine": "torch", "scope_check": scope_check, "images": len(images),
                         "wall_s": result["wall_s"], "img_s": len(images) / result["wall_s"],
                         "peak_rss_mb": result["peak_rss_mb"]})  # fmt: skip
            print(rows[-1], flush=True)
    command = f"pneumocxr predict FOLDER  # {count} images of {DATA}/train"
    save("predict_folder", {"command": command, "runs": rows})


def predict_cold(_args, repeats: int = 5) -> None:
    """`pneumocxr predict IMAGE` from process start to answer, `repeats` times."""
    image = sorted((DATA / "train" / "PNEUMONIA").glob("*.jpeg"))[0]
    walls = [measured([*PNEUMOCXR, "predict", image])["wall_s"] for _ in range(repeats)]
    save("predict_cold", {"command": f"pneumocxr predict {image}", "wall_s": walls,
                          "median_s": float(sorted(walls)[len(walls) // 2])})  # fmt: skip


def onnx_int8(_args) -> None:
    """Is int8 worth it? Speed and validation/external metrics of the shipped model."""
    script = ROOT / "benchmarks" / "onnx_int8.py"
    external = DATA.parent / "external"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # as the CLI runs torch
    out = subprocess.run([sys.executable, str(script), str(DATA), str(external)],
                         check=True, capture_output=True, text=True, env=env)  # fmt: skip
    result = json.loads(out.stdout.splitlines()[-1])
    save("onnx_int8", {"command": "python benchmarks/onnx_int8.py DATA EXTERNAL", **result})


def onnx_speed(_args) -> None:
    """The shipped model in PyTorch and as its ONNX export (`export --format onnx`)."""
    script = ROOT / "benchmarks" / "onnx_speed.py"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # as the CLI runs torch
    out = subprocess.run([sys.executable, str(script)], check=True, capture_output=True,
                         text=True, env=env)  # fmt: skip
    result = json.loads(out.stdout.splitlines()[-1])
    save("onnx_speed", {"command": "python benchmarks/onnx_speed.py", **result})


def speed(args) -> None:
    for job in (bench, predict_folder, predict_cold, report):
        job(args)


SERVE_SETUPS = (  # label, image side (None: the shared 224 px files), --max-batch, environment
    ("224 px JPEG, batching on", None, 16, {}),
    ("224 px JPEG, batching off", None, 1, {}),
    ("224 px JPEG, batching on, spinning OpenMP", None, 16, {"OMP_WAIT_POLICY": "ACTIVE"}),
    ("2048 px JPEG, batching on", 2048, 16, {}),
)
LOAD_ARGS = ["--requests", "64", "--clients", "1,4,16", "--time-limit", "300"]


def serve_load(_args) -> None:
    """Requests/s and p50/p99 latency of `pneumocxr serve` at 1, 4 and 16 clients, with and
    without Grad-CAM; with batching off for comparison, and with large uploads."""
    shared = [
        path
        for label in ("NORMAL", "PNEUMONIA")
        for path in sorted((DATA / "train" / label).glob("*.jpeg"))[:16]
    ]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, side, max_batch, env in SERVE_SETUPS:
            images = shared if side is None else _enlarged(shared, side, Path(tmp))
            before = os.getloadavg()[0]  # others' load on a shared machine skews these figures
            result = _load_test(images, max_batch, env, Path(tmp))
            runs.append({"setup": label, "max_batch": max_batch, "image_side": side, "env": env,
                         "load_average": [before, os.getloadavg()[0]], **result})  # fmt: skip
            print(json.dumps(runs[-1]["levels"]), flush=True)
    save(
        "serve_load",
        {
            "command": "pneumocxr serve --port PORT --max-batch B & pneumocxr loadtest IMAGES "
            f"--url http://127.0.0.1:PORT {' '.join(LOAD_ARGS)} --json",
            "images": "32 shared training X-rays (16 NORMAL, 16 PNEUMONIA), as they are "
            "(224x224 JPEG) or enlarged to 2048x2048 JPEG (quality 90)",
            "runs": runs,
        },
    )


def serve_scope(_args, repeats: int = 3) -> None:
    """The scope check's cost in the web API: p50/p99 latency at one client, with the scope
    check on and off (the `scope_check` query parameter), interleaved on one server."""
    shared = [p for label in ("NORMAL", "PNEUMONIA")
              for p in sorted((DATA / "train" / label).glob("*.jpeg"))[:16]]  # fmt: skip
    args = ["--requests", "64", "--clients", "1", "--time-limit", "300"]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for scope_check in ("off", "on"):
                result = _load_test(
                    shared, 16, {}, Path(tmp), [*args, "--scope-check", scope_check]
                )
                runs.append({"scope_check": scope_check, "levels": result["levels"]})
                print(json.dumps(runs[-1]), flush=True)
    command = (f"pneumocxr serve --port PORT & pneumocxr loadtest IMAGES --url "
               f"http://127.0.0.1:PORT {' '.join(args)} --scope-check on|off --json")  # fmt: skip
    save("serve_scope", {"command": command, "images": "32 shared training X-rays, 224x224 JPEG",
                         "runs": runs})  # fmt: skip


def _enlarged(images: list[Path], side: int, tmp: Path) -> list[Path]:
    """Copies the size of a real radiograph (the shared files are 224 px)."""
    from PIL import Image

    out = []
    for path in images:
        target = tmp / f"{side}-{path.name}"
        image = Image.open(path).convert("L").resize((side, side), Image.Resampling.BICUBIC)
        image.save(target, quality=90)
        out.append(target)
    return out


def _load_test(images: list[Path], max_batch: int, env: dict, tmp: Path, args=None) -> dict:
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [*PNEUMOCXR, "serve", "--port", str(port), "--max-batch", str(max_batch)]
    with open(tmp / "server.log", "w") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        try:
            for _ in range(240):
                if server.poll() is not None:
                    sys.exit(f"the server stopped:\n{(tmp / 'server.log').read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/api/health", trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            load = [*PNEUMOCXR, "loadtest", *map(str, images), "--url", url,
                    *(args or LOAD_ARGS), "--json"]  # fmt: skip
            done = subprocess.run(load, capture_output=True, text=True, timeout=900)
        finally:
            server.terminate()
            server.wait(timeout=30)
    if done.returncode:
        sys.exit(f"the load test failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def scope(_args) -> None:
    from trust import scope as measure  # benchmarks/trust.py

    measure(save)


def calibration(_args) -> None:
    from trust import calibration as measure  # benchmarks/trust.py

    measure(save)


def report(_args) -> None:
    from render import render  # benchmarks/render.py

    (ROOT / "docs" / "BENCHMARKS.md").write_text(render(RESULTS))
    print(f"wrote {ROOT / 'docs' / 'BENCHMARKS.md'}")


JOBS = {
    "smallnet-lr": smallnet_lr,
    "smallnet-lr-quick": smallnet_lr_quick,
    "smallnet-full": smallnet_full,
    "default-model": default_model,
    "quick-run": quick_run,
    "full-run": full_run,
    "inference": inference,
    "serve-load": serve_load,
    "bench": bench,
    "predict-folder": predict_folder,
    "predict-cold": predict_cold,
    "onnx-int8": onnx_int8,
    "scope": scope,
    "serve-scope": serve_scope,
    "calibration": calibration,
    "onnx-speed": onnx_speed,
    "speed": speed,
    "report": report,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job", choices=[*JOBS, "all"])
    parser.add_argument(
        "--ship", action="store_true", help="default-model: replace the shipped model"
    )
    parser.add_argument(
        "--from", dest="source", help="default-model: export this finished run, do not train"
    )
    parser.add_argument(
        "--wall-s", type=float, help="default-model --from: the run's measured wall time (s)"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"the shared data was expected at {DATA}")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    every = [j for j in JOBS if j not in ("speed", "report")] + ["report"]
    jobs = every if args.job == "all" else [args.job]
    for job in jobs:
        JOBS[job](args)


if __name__ == "__main__":
    main()
