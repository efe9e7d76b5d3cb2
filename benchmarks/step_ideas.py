"""Ideas for SmallNet's training step, measured interleaved in one process (docs/PERFORMANCE.md,
"What was tried for the training step").

Every variant runs the bare training step (augmentation of a uint8 batch, forward, loss,
backward, fused Adam; no Lightning) on the same real X-rays, round-robin, one step each per
round, and a 2048 x 2048 GEMM runs after every step: a changing load on the shared machine then
meets every variant and the ceiling alike. Prints one JSON line per variant: images/s, its
ratio to the current code, GFLOP per image counted as the step runs, and % of the GEMM.

    python benchmarks/step_ideas.py [--rounds 12] [--compile] [--bf16]

Variants:
- `before`: the code before this work (three-channel copy, torch's conv and max-pool);
- `gray`: + the first convolution on the gray channel (networks/gray.py);
- `current`: + max-pools keeping only their indices (networks/maxpool.py): what trains now;
- `nchw`: `current` in NCHW (contiguous) memory format instead of channels-last;
- `one_thread`: `current` with one intra-op thread instead of two;
- `inplace_relu`: `current` with in-place ReLUs;
- `compiled` (--compile): `current` under torch.compile (Inductor, the CPU backend);
- `bf16` (--bf16): `current` under CPU autocast to bfloat16 (changes the arithmetic).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI has it

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from pneumocxr._malloc import tune_malloc  # noqa: E402
from pneumocxr.bench.reference import Gemm, train_flop_per_image  # noqa: E402
from pneumocxr.data.augment import Augment  # noqa: E402
from pneumocxr.data.decode import decode_all  # noqa: E402
from pneumocxr.data.transforms import prepare_batch  # noqa: E402
from pneumocxr.networks.smallnet import SmallNet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PNEUMOCXR_DATA", ROOT / ".." / "shared" / "data" / "chest_xray"))


def _before(model: SmallNet) -> SmallNet:
    """SmallNet as it was: torch's Conv2d (three real channels) and MaxPool2d."""
    old = copy.deepcopy(model)
    conv = nn.Conv2d(3, 32, 3)
    conv.load_state_dict(model.features[0].state_dict())
    old.features[0], old.features[1], old.features[4] = conv, nn.MaxPool2d(2), nn.MaxPool2d(2)
    return old


def _gray_only(model: SmallNet) -> SmallNet:
    new = copy.deepcopy(model)
    new.features[1], new.features[4] = nn.MaxPool2d(2), nn.MaxPool2d(2)
    return new


def _inplace(model: SmallNet) -> SmallNet:
    new = copy.deepcopy(model)
    for m in new.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = True
    return new


class Variant:
    def __init__(self, name, model, layout="gray", threads=None, autocast=False):
        self.name, self.model, self.layout = name, model.train(), layout
        self.threads, self.autocast = threads, autocast
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=1e-4, fused=True)
        self.forward = model
        self.seconds: list[float] = []
        self.gemm = Gemm()

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if self.layout == "copy":  # three real channels, channels-last (the code before)
            x = x.contiguous(memory_format=torch.channels_last)
        elif self.layout == "nchw":
            x = x.contiguous()
        return x

    def step(self, images, labels, augment, prep, timed=True) -> None:
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        x = self.inputs(prepare_batch(images, prep, augment))
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", torch.bfloat16, enabled=self.autocast):
            logits = self.forward(x).squeeze(1).float()
        F.binary_cross_entropy_with_logits(logits, labels).backward()
        self.optimizer.step()
        if timed:
            self.seconds.append(time.perf_counter() - start)
        torch.set_num_threads(threads)
        self.gemm.step()

    def flop(self, images, prep) -> float:
        x = self.inputs(prepare_batch(images[:2], prep))
        flop = train_flop_per_image(lambda t: self.model(t).sum(), x)
        self.model.zero_grad(set_to_none=True)
        return flop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    tune_malloc()
    torch.manual_seed(0)
    files = sorted((DATA / "train" / "PNEUMONIA").glob("*.jpeg"))[:128]
    files += sorted((DATA / "train" / "NORMAL").glob("*.jpeg"))[:128]
    pixels = decode_all(files, 224).pixels
    labels = torch.tensor([1.0] * 128 + [0.0] * 128)
    model = SmallNet(224)
    prep, augment = model.preprocessing(), Augment("tutorial", size=224)
    variants = [
        Variant("before", _before(model), layout="copy"),
        Variant("gray", _gray_only(model)),
        Variant("current", copy.deepcopy(model)),
        Variant("nchw", _before(model), layout="nchw"),
        Variant("one_thread", copy.deepcopy(model), threads=1),
        Variant("inplace_relu", _inplace(model)),
    ]
    compile_s = None
    if args.compile:
        compiled = Variant("compiled", copy.deepcopy(model))
        compiled.forward = torch.compile(compiled.model)
        start = time.perf_counter()
        for _ in range(2):  # compiles forward and backward
            compiled.step(pixels[: args.batch], labels[: args.batch], augment, prep, False)
        compile_s = time.perf_counter() - start
        variants.append(compiled)
    if args.bf16:
        variants.append(Variant("bf16", copy.deepcopy(model), autocast=True))
    flop = {v.name: v.flop(pixels, prep) for v in variants if v.name != "compiled"}
    flop["compiled"] = flop["current"]
    generator = torch.Generator().manual_seed(1)
    for round_ in range(args.rounds + 1):  # the first round warms up, untimed
        pick = torch.randint(0, len(pixels), (args.batch,), generator=generator)
        for v in variants:
            v.step(pixels[pick], labels[pick], augment, prep, timed=round_ > 0)
    gemm = Gemm()
    gemm.seconds = [s for v in variants for s in v.gemm.seconds]
    ceiling = gemm.gflops()
    current = args.batch * len(variants[2].seconds) / sum(variants[2].seconds)
    for v in variants:
        img_s = args.batch * len(v.seconds) / sum(v.seconds)
        row = {
            "variant": v.name,
            "img_s": round(img_s, 2),
            "x_current": round(img_s / current, 3),
            "gflop_per_image": round(flop[v.name] / 1e9, 3),
            "gemm_share": round(img_s * flop[v.name] / 1e9 / ceiling, 3),
            "gemm_after_its_steps_gflops": round(v.gemm.gflops(), 1),
            "median_step_s": round(sorted(v.seconds)[len(v.seconds) // 2], 3),
        }
        if v.name == "compiled":
            row["compile_and_warmup_s"] = round(compile_s, 1)
        print(json.dumps(row))
    print(json.dumps({"gemm_gflops": round(ceiling, 1), "gemm_best_gflops": gemm.best_gflops(),
                      "load_average": os.getloadavg(), "rounds": args.rounds}))  # fmt: skip


if __name__ == "__main__":
    main()
