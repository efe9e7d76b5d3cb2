"""The shipped model three ways: PyTorch, ONNX Runtime fp32, ONNX Runtime int8 (static,
per-channel QDQ, calibrated on 256 training-split images). Speed, interleaved in one process
(run by `benchmarks/run.py onnx-int8` with OpenMP threads sleeping when idle, as the CLI has
them; ONNX Runtime's threads sleep too), and AUC / accuracy at 0.5 on the
validation split and on ../shared/data/external. Needs `pip install onnxruntime onnx` (not
dependencies of pneumocxr: docs/PERFORMANCE.md says why).

python benchmarks/onnx_int8.py DATA EXTERNAL   # prints one JSON line
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from sklearn.metrics import accuracy_score, roc_auc_score

from pneumocxr._malloc import tune_malloc
from pneumocxr.artifact.resolve import resolve_model
from pneumocxr.data.dataset import load_dataset
from pneumocxr.data.decode import decode_all
from pneumocxr.data.index import index_images
from pneumocxr.data.transforms import prepare_batch
from pneumocxr.inference.batches import predict_logits


def export_onnx(model, path: Path) -> None:
    side = model.image_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on the size-dependent padding
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, side, side),), str(path),
                          input_names=["pixels"], output_names=["logit"],
                          dynamic_axes={"pixels": {0: "batch"}, "logit": {0: "batch"}},
                          opset_version=17, dynamo=False)  # fmt: skip


class Batches(CalibrationDataReader):
    def __init__(self, inputs: np.ndarray, size: int = 32):
        self.batches = iter([{"pixels": inputs[i : i + size]} for i in range(0, len(inputs), size)])

    def get_next(self):
        return next(self.batches, None)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_logits(sess, pixels: torch.Tensor, prep, batch: int = 32) -> np.ndarray:
    out = []
    for start in range(0, len(pixels), batch):
        inputs = prepare_batch(pixels[start : start + batch], prep).contiguous().numpy()
        out.append(sess.run(None, {"pixels": inputs})[0][:, 0])
    return np.concatenate(out).astype(np.float64)


def scores(labels: np.ndarray, logits: np.ndarray) -> dict:
    probs = 1 / (1 + np.exp(-logits))
    return {"auc": roc_auc_score(labels, probs), "accuracy": accuracy_score(labels, probs >= 0.5)}


def speed(runs: dict, pixels: torch.Tensor, rounds: int = 5) -> dict:
    """Best wall and CPU milliseconds per image of each runner, interleaved."""
    times = {name: [] for name in runs}
    for run in runs.values():
        run(pixels)
    for _ in range(rounds):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run(pixels)
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    n = len(pixels)
    return {
        name: {"wall_ms": min(t[0] for t in v) / n * 1e3, "cpu_ms": min(t[1] for t in v) / n * 1e3}
        for name, v in times.items()
    }


def main(data: Path, external: Path) -> None:
    tune_malloc()
    loaded = resolve_model(None)
    model, prep = loaded.predictor.network.eval(), loaded.preprocessing
    dataset = load_dataset(data, prep.image_size, seed=42)
    split = dataset.split_index()
    calibration = dataset.pixels[split["train"][:: max(1, len(split["train"]) // 256)][:256]]
    table = index_images(external)
    sets = {
        "val": (dataset.pixels[split["val"]], dataset.labels[split["val"]].numpy()),
        "external": (
            decode_all(table["path"], prep.image_size).pixels,
            (table["label"] == "PNEUMONIA").to_numpy().astype(float),
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre, int8 = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        export_onnx(model, fp32)
        quant_pre_process(str(fp32), str(pre))
        inputs = prepare_batch(calibration, prep).contiguous().numpy()
        quantize_static(str(pre), str(int8), Batches(inputs), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)  # fmt: skip
        sessions = {"onnx_fp32": session(fp32), "onnx_int8": session(int8)}
        runners = {"torch": lambda p: predict_logits(model, p, 32)}
        for name, sess in sessions.items():
            runners[name] = lambda p, s=sess: ort_logits(s, p, prep)
        metrics = {
            name: {where: scores(labels, run(pixels)) for where, (pixels, labels) in sets.items()}
            for name, run in runners.items()
        }
        timing = speed(runners, sets["val"][0][:64])
    print(json.dumps({"metrics": metrics, "speed_batch32": timing,
                      "calibration_images": len(calibration)}))  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
