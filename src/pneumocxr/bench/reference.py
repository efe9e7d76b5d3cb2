"""The yardsticks every `pneumocxr bench` figure is divided by, measured in the same run.

- A plain eager PyTorch loop: the tutorial's SmallNet written as one `nn.Sequential`, default
  memory format, random float tensors, `torch.optim.Adam` with its defaults, no data pipeline.
  It is what a user writing the tutorial in PyTorch gets.
- A large fp32 matrix multiply: about the best GFLOP/s this CPU reaches, so the ceiling for a
  model's images/s is GEMM GFLOP/s / the model's GFLOP per image.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def eager_smallnet(image_size: int = 224) -> nn.Sequential:
    """Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense1 as the tutorial writes it."""
    side = ((image_size - 2) // 2 - 2) // 2 - 2
    return nn.Sequential(
        nn.Conv2d(3, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * side * side, 64),
        nn.ReLU(),
        nn.Linear(64, 1),
    )


class EagerReference:
    """The plain loop's training step (forward, backward, Adam), one call at a time, so that it
    can run interleaved with another measurement: a changing load on a shared machine then
    slows both alike."""

    def __init__(self, batch: int, image_size: int, warmup: int = 1):
        self.model = eager_smallnet(image_size)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.images = torch.rand(batch, 3, image_size, image_size)
        self.labels = torch.randint(0, 2, (batch,)).float()
        self.seconds: list[float] = []
        for _ in range(warmup):
            self._step()

    def _step(self) -> None:
        self.optimizer.zero_grad()
        logits = self.model(self.images).squeeze(1)
        F.binary_cross_entropy_with_logits(logits, self.labels).backward()
        self.optimizer.step()

    def step(self) -> None:
        start = time.perf_counter()
        self._step()
        self.seconds.append(time.perf_counter() - start)

    def img_s(self) -> float:
        return len(self.images) * len(self.seconds) / sum(self.seconds)


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best of `repeats` n x n fp32 matrix multiplies, in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def forward_flop_per_image(forward, inputs: torch.Tensor) -> float:
    """FLOP per image of one forward pass, counted by torch's FLOP counter (convolutions and
    matrix multiplies; elementwise work is not counted). A training step is counted as three
    forward passes (the usual estimate; torch's counter overstates depthwise backward passes):
    for SmallNet at 224 px, 3 x 0.745 = 2.2 GFLOP per image."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward(inputs)
    return counter.get_total_flops() / len(inputs)
