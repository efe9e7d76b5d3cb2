"""Benchmark jobs that measure speed and trust: inference, `pneumocxr bench`, predict on a folder
and from a cold start, ONNX, the web server under load, the scope check and calibration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    DATA,
    PNEUMOCXR,
    ROOT,
    measured,
    report,
    save,
)


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

