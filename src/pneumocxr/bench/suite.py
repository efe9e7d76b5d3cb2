"""`pneumocxr bench`: every speed figure in one process and one run, each also divided by the
plain-eager reference and by the GEMM ceiling measured in the same run."""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pneumocxr.bench import inference, reference, training
from pneumocxr.data.decode import decode_all
from pneumocxr.errors import PneumoError
from pneumocxr.networks.registry import build_model, model_class
from pneumocxr.training.phases import first_trainable_stage

# The full run's split of the 5,216 shared images: a head epoch is timed at these sizes.
FULL_RUN_SPLIT = (3341, 857)


@dataclass
class BenchOptions:
    model: str | None = None  # for the inference figures; None: the shipped model
    transfer: str = "efficientnet-lite0"
    batch_size: int = 32
    image_size: int = 224
    steps: int | None = None  # timed training steps per figure: 10 (3 with quick)
    quick: bool = False
    data: str | None = None  # image files to read; None: synthetic X-ray-sized JPEGs

    def resolved(self) -> BenchOptions:
        if self.batch_size < 1 or self.image_size < 32:
            raise PneumoError("--batch-size must be at least 1 and --image-size at least 32")
        if self.steps is not None and self.steps < 2:
            raise PneumoError("--steps must be at least 2")
        if model_class(self.transfer).pretrained_source is None:
            raise PneumoError(f"--transfer must be a pretrained model, not {self.transfer!r}")
        steps = self.steps or (3 if self.quick else 10)
        return BenchOptions(**{**asdict(self), "steps": steps})


def run_bench(opts: BenchOptions, progress=lambda message: None) -> dict:
    """Measure everything; a dict with the figures, their ratios and the machine."""
    opts = opts.resolved()
    batch, size, steps, warmup = opts.batch_size, opts.image_size, opts.steps, 1
    result: dict = {"settings": asdict(opts), "machine": machine()}
    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.artifact.schema import ONNX_FORMAT

    loaded = resolve_model(opts.model)  # a bad --model fails now, not after the training figures
    if loaded.meta.get("format") == ONNX_FORMAT:  # torch's FLOP counter cannot see into it
        raise PneumoError(
            "bench measures PyTorch models; an ONNX export is compared with its source by "
            "python benchmarks/run.py onnx-speed (docs/PERFORMANCE.md)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        files = image_files(opts.data, Path(tmp))
        pixels = decode_all(_cycle(files, batch * (steps + 2)), size).pixels
        progress("GEMM")
        result["gemm_best_gflops"] = reference.gemm_gflops()
        eager, gemm = reference.EagerReference(batch, size, warmup), reference.Gemm()
        result.update(_training(opts, pixels, eager, gemm, progress))
        result["eager_reference_img_s"] = eager.img_s()
        result["eager_reference_step_s"] = eager.seconds
        # The ceiling every % GEMM is taken of: GEMMs run between SmallNet's training steps,
        # so that both meet the same load (reference.Gemm); the best of five above is kept
        # beside it.
        result["gemm_gflops"] = gemm.gflops()
        result["gemm_step_s"] = gemm.seconds
        result.update(_inference(opts, loaded, files, progress))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["smallnet_vs_eager"] = result["smallnet_train_img_s"] / result["eager_reference_img_s"]
    result["ratios"] = ratios(result)
    return result


def _training(opts: BenchOptions, pixels, eager, gemm, progress) -> dict:
    batch, steps, size = opts.batch_size, opts.steps, opts.image_size
    out = {}
    progress("SmallNet training, interleaved step by step with the eager reference and a GEMM")
    model = build_model("smallnet", size, weights="none")

    def between() -> None:
        eager.step()
        gemm.step()

    small = training.image_training(model, pixels, batch, steps, 1, between=between)
    out |= _figure("smallnet_train", small)
    progress(f"{opts.transfer}: head on cached features")
    model = build_model(opts.transfer, size)
    head = training.cached_training(model, pixels, model.backbone_stages, batch, steps, 1)
    out |= _figure("transfer_head", head)
    out["transfer_head_epoch_s"] = training.head_epoch_seconds(
        build_model(opts.transfer, size), pixels[:batch], batch, *FULL_RUN_SPLIT
    )
    progress(f"{opts.transfer}: fine-tuning on cached features")
    model = build_model(opts.transfer, size)
    start = first_trainable_stage(model, model.default_unfreeze)
    tuned = training.cached_training(model, pixels, start, batch, steps, 1)
    out |= _figure("transfer_finetune", tuned)
    out["transfer_finetune_unfreeze"] = model.default_unfreeze
    if not opts.quick:
        progress(f"{opts.transfer}: every stage from images")
        model = build_model(opts.transfer, size)
        out |= _figure("transfer_full", training.image_training(model, pixels, batch, steps, 1))
    return out


def _figure(name: str, measured: dict) -> dict:
    out = {
        f"{name}_img_s": measured["img_s"],
        f"{name}_gflop_per_image": measured["flop"] / 1e9,
        f"{name}_gflops": measured["img_s"] * measured["flop"] / 1e9,
    }
    if "cache_img_s" in measured:
        out[f"{name}_cache_img_s"] = measured["cache_img_s"]
    return out


def _inference(opts: BenchOptions, loaded, files: list[Path], progress) -> dict:
    count = opts.batch_size * (6 if opts.quick else 32)
    paths = _cycle(files, count)
    progress(f"inference: {loaded.meta['architecture']}, {count} files")
    out = {"infer_model": loaded.meta["architecture"]}
    out["infer_img_s"] = inference.batch_img_s(loaded, paths, opts.batch_size)
    side = loaded.preprocessing.image_size
    example = torch.zeros(2, 1, side, side)  # [0, 1] gray, what a predictor takes
    flop = reference.forward_flop_per_image(loaded.predictor.eval().logits, example)
    out["infer_gflop_per_image"] = flop / 1e9
    out["infer_gflops"] = out["infer_img_s"] * flop / 1e9
    latency = inference.latency_ms(loaded, paths, 20 if opts.quick else 100)
    out["latency_p50_ms"], out["latency_p99_ms"] = latency["p50"], latency["p99"]
    return out


def ratios(result: dict) -> dict:
    """Every images/s figure over the eager reference, and its GFLOP/s over the GEMM's."""
    eager, gemm = result["eager_reference_img_s"], result["gemm_gflops"]
    out = {}
    for key, value in result.items():
        if key.endswith("_img_s") and not key.startswith("eager") and value:
            name = key[: -len("_img_s")]
            gflops = result.get(f"{name}_gflops")
            out[name] = {
                "x_eager": value / eager,
                "gemm_share": gflops / gemm if gflops is not None else None,
            }
    return out


def image_files(data: str | None, tmp: Path, synthetic: int = 32) -> list[Path]:
    """Image files under `data`, or `synthetic` X-ray-sized gray JPEGs written to `tmp`."""
    if data:
        from pneumocxr.inference.inputs import expand_inputs

        return expand_inputs([data])
    from PIL import Image, ImageFilter

    generator = np.random.default_rng(0)
    paths = []
    for i in range(synthetic):
        noise = generator.integers(0, 256, (224, 224), dtype=np.uint8)
        path = tmp / f"synthetic-{i}.jpeg"
        Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3)).save(path, quality=90)
        paths.append(path)
    return paths


def _cycle(files: list, count: int) -> list:
    """`count` items spread over `files`, repeating them if there are fewer."""
    if len(files) >= count:
        step = len(files) / count
        return [files[int(i * step)] for i in range(count)]
    return [files[i % len(files)] for i in range(count)]


def machine() -> dict:
    cpu = ""
    if Path("/proc/cpuinfo").is_file():
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), "")
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


ROWS = [
    ("gemm_gflops", "fp32 GEMM (2048x2048), between steps", "GFLOP/s"),
    ("gemm_best_gflops", "fp32 GEMM, best of 5 before", "GFLOP/s"),
    ("eager_reference_img_s", "plain eager SmallNet (reference)", "img/s"),
    ("smallnet_train_img_s", "SmallNet training", "img/s"),
    ("transfer_head_img_s", "{transfer} head, cached features", "img/s"),
    ("transfer_head_epoch_s", "{transfer} head epoch (3,341 + 857)", "s"),
    ("transfer_head_cache_img_s", "{transfer} feature cache fill", "img/s"),
    ("transfer_finetune_img_s", "{transfer} fine-tuning, cached", "img/s"),
    ("transfer_full_img_s", "{transfer} every stage, images", "img/s"),
    ("infer_img_s", "inference from files, {model}", "img/s"),
    ("latency_p50_ms", "one image from file, p50", "ms"),
    ("latency_p99_ms", "one image from file, p99", "ms"),
    ("peak_rss_mb", "peak RSS of this run", "MB"),
]


def bench_table(result: dict) -> str:
    """The figures as an aligned text table with their two ratios."""
    names = {"transfer": result["settings"]["transfer"], "model": result.get("infer_model", "")}
    lines = [f"{'figure':44s} {'value':>10s} {'unit':8s} {'x eager':>8s} {'% GEMM':>7s}"]
    for key, label, unit in ROWS:
        value = result.get(key)
        if value is None:
            continue
        ratio = result["ratios"].get(key[: -len("_img_s")], {}) if key.endswith("_img_s") else {}
        x_eager = f"{ratio['x_eager']:.2f}" if ratio else ""
        share = ratio.get("gemm_share") if ratio else None
        lines.append(
            f"{label.format(**names):44s} {value:10.1f} {unit:8s} {x_eager:>8s} "
            f"{'' if share is None else f'{share:.0%}':>7s}"
        )
    m = result["machine"]
    lines.append(
        f"({m['cpu']}, {m['cores']} cores, {m['threads']} threads, torch {m['torch']}, "
        f"{m['date']}, load average {m['load_average']:.1f} at the start)"
    )
    return "\n".join(lines)
