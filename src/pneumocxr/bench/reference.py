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
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count


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
    gemm = Gemm(n)
    for _ in range(repeats):
        gemm.step()
    return gemm.best_gflops()


class Gemm:
    """n x n fp32 matrix multiplies, one per call, so that they can run interleaved with the
    training steps they are the ceiling for (as `EagerReference` does).

    On the shared machine a lone GEMM swings between 100 and 196 GFLOP/s within a minute; the
    best of five taken before the training figures (bench's ceiling until 2026-12) met a quiet
    moment while the steps met a loaded one, and printed 48% of GEMM for a step that held 78%
    of the GEMMs run between its steps (docs/PERFORMANCE.md, "Measuring"). `gflops` is total
    work over total time, like every images/s figure."""

    def __init__(self, n: int = 2048):
        self.n = n
        self.a, self.b = torch.randn(n, n), torch.randn(n, n)
        self.out = self.a @ self.b  # warm-up; later products are written into it
        self.seconds: list[float] = []

    def step(self) -> None:
        start = time.perf_counter()
        torch.mm(self.a, self.b, out=self.out)
        self.seconds.append(time.perf_counter() - start)

    def gflops(self) -> float:
        return 2 * self.n**3 * len(self.seconds) / sum(self.seconds) / 1e9

    def best_gflops(self) -> float:
        return 2 * self.n**3 / min(self.seconds) / 1e9


def forward_flop_per_image(forward, inputs: torch.Tensor) -> float:
    """FLOP per image of one forward pass, counted by torch's FLOP counter (convolutions and
    matrix multiplies; elementwise work is not counted): the tutorial's SmallNet at 224 px,
    0.745 GFLOP per image (three of them, 2.2 GFLOP, are the usual estimate of a training
    step; `train_flop_per_image` counts one as it runs)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward(inputs)
    return counter.get_total_flops() / len(inputs)


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                        transposed, _output_padding, _groups, output_mask, out_shape=None,
                        **kwargs) -> int:  # fmt: skip
    """A convolution's backward pass: its forward FLOP once for the input's gradient and once
    for the weights', each only when computed (the first layer computes no input gradient).
    torch's own formula ignores groups and counted EfficientNet's depthwise backward passes
    50 times over (11.6 instead of 0.7 GFLOP per fine-tuning image)."""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def train_flop_per_image(step, inputs: torch.Tensor) -> float:
    """FLOP per image of one training step's forward and backward passes (`step(inputs)`
    returns the loss), counted by torch's FLOP counter as they run: convolutions and matrix
    multiplies, the gradients actually computed (none for the input of the first trainable
    layer), elementwise work not counted. SmallNet at 224 px: 2.15 GFLOP per image with three
    input channels (three forward passes, the usual estimate, say 2.23), 2.04 with its first
    convolution on the gray channel (networks/gray.py)."""
    mapping = {torch.ops.aten.convolution_backward: _conv_backward_flop}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        step(inputs).backward()
    return counter.get_total_flops() / len(inputs)
