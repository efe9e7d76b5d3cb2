"""The shipped model in PyTorch (BatchNorm folded, eager: what `predict` runs) and as its ONNX
export (`pneumocxr export default --format onnx`) in ONNX Runtime, through the same prediction
path (`inference.predict.predict_arrays`: forward pass with the scope check, calibration,
decision). Run by `benchmarks/run.py onnx-speed` with OpenMP threads sleeping when idle, as the
CLI has them (ONNX Runtime's sleep too: models/onnx_model.py).

- in one process, interleaved rounds on 64 decoded training images: ms per image (wall and
  CPU) at batch 32 and at batch 1;
- end to end, `pneumocxr predict FOLDER` on `--files` shared images in fresh processes,
  alternating engines: images/s.

Medians over the rounds; the largest |P difference| over the 64 images as a check.

python benchmarks/onnx_speed.py [--rounds 7] [--files 640] [--repeats 3]   # one JSON line
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pneumocxr._malloc import tune_malloc
from pneumocxr.artifact.resolve import resolve_model
from pneumocxr.data.decode import decode_all
from pneumocxr.inference.answers import Settings
from pneumocxr.inference.predict import predict_arrays
from pneumocxr.pipeline.export import export_model

ROOT = Path(__file__).resolve().parents[1]
TRAIN = (ROOT / ".." / "shared" / "data" / "chest_xray" / "train").resolve()


def per_image(run, n: int, rounds: int) -> dict:
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append((time.perf_counter() - wall) / n * 1e3)
        cpus.append((time.process_time() - cpu) / n * 1e3)
    return {"wall_ms": walls, "cpu_ms": cpus}


def in_process(models: dict, pixels: torch.Tensor, rounds: int) -> dict:
    """Interleaved: one round of each engine after the other, `rounds` times."""
    settings = {name: Settings.of(loaded) for name, loaded in models.items()}
    single = pixels[:16]
    runs = {}
    for name, loaded in models.items():
        run = functools.partial(predict_arrays, loaded, settings=settings[name])
        runs[(name, 32)] = functools.partial(run, pixels=pixels, batch_size=32)
        runs[(name, 1)] = functools.partial(run, pixels=single, batch_size=1)
    for run in runs.values():  # warm up
        run()
    times = {key: {"wall_ms": [], "cpu_ms": []} for key in runs}
    for _ in range(rounds):
        for (name, batch), run in runs.items():
            n = len(pixels) if batch == 32 else len(single)
            once = per_image(run, n, 1)
            for k in once:
                times[(name, batch)][k] += once[k]
    return {
        f"{name}_batch{batch}": {
            "median_wall_ms": statistics.median(t["wall_ms"]),
            "median_cpu_ms": statistics.median(t["cpu_ms"]),
            "wall_ms": [round(x, 2) for x in t["wall_ms"]],
        }
        for (name, batch), t in times.items()
    }


def end_to_end(models: dict, count: int, repeats: int) -> dict:
    """`pneumocxr predict FOLDER --model M` in fresh processes, engines alternating."""
    images = sorted(TRAIN.glob("*/*.jpeg"))[:: max(1, 5216 // count)][:count]
    walls = {name: [] for name in models}
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with tempfile.TemporaryDirectory() as folder:
        for image in images:
            (Path(folder) / image.name).symlink_to(image)
        for _ in range(repeats):
            for name, spec in models.items():
                command = [sys.executable, "-m", "pneumocxr.cli", "predict", "--model", spec,
                           folder]  # fmt: skip
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=env)
                walls[name].append(time.perf_counter() - start)
    return {
        name: {
            "images": len(images),
            "wall_s": [round(w, 2) for w in v],
            "median_img_s": len(images) / statistics.median(v),
        }  # fmt: skip
        for name, v in walls.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--files", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tune_malloc()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        export_model("default", Path(tmp) / "onnx", fmt="onnx")
        export_s = time.perf_counter() - started
        models = {"pytorch": resolve_model(None), "onnxruntime": resolve_model(Path(tmp) / "onnx")}
        images = sorted(TRAIN.glob("*/*.jpeg"))[::80][:64]
        pixels = decode_all(images, models["pytorch"].preprocessing.image_size).pixels
        answers = {
            name: predict_arrays(m, pixels, Settings.of(m), batch_size=32)
            for name, m in models.items()
        }
        p_diff = max(
            abs(a.p_pneumonia - b.p_pneumonia)
            for a, b in zip(answers["pytorch"], answers["onnxruntime"])
        )
        scope_diff = max(
            abs(a.scope_score - b.scope_score)
            for a, b in zip(answers["pytorch"], answers["onnxruntime"])
        )
        speed = in_process(models, pixels, args.rounds)
        files = end_to_end({"pytorch": "default", "onnxruntime": str(Path(tmp) / "onnx")},
                           args.files, args.repeats)  # fmt: skip
    print(json.dumps({
        "model": "the shipped model (efficientnet-lite0, 224 px, scope check on)",
        "export_s": round(export_s, 1),
        "threads": torch.get_num_threads(),
        "max_abs_p_difference": float(p_diff),
        "max_abs_scope_difference": float(scope_diff),
        "labels_equal": [a.label for a in answers["pytorch"]]
        == [b.label for b in answers["onnxruntime"]],
        "in_process": speed,
        "predict_folder": files,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "onnxruntime": __import__("onnxruntime").__version__,
        "rounds": args.rounds,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
