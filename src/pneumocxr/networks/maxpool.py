"""2x2 max-pooling that keeps only its argmax indices for the backward pass (SmallNet's).

torch's max_pool2d keeps its whole input alive for the backward pass, where it reads only the
input's shape: SmallNet's first convolution output (200 MB per batch of 32 at 224 px) and its
second (97 MB) stayed alive from the forward pass to the end of the backward one. Here they are
freed as soon as they are pooled, and the backward pass scatters each gradient to its argmax:
exactly torch's gradients, ties included (docs/PERFORMANCE.md, 12).
"""

from __future__ import annotations

import torch
from torch import nn


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out, indices = torch.ops.aten.max_pool2d_with_indices(x, [2, 2], [2, 2])
        ctx.save_for_backward(indices)
        ctx.input_size = x.shape[2:]
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (indices,) = ctx.saved_tensors
        n, c, ho, wo = grad.shape
        h, w = ctx.input_size
        last = torch.channels_last  # rows of channels: indices and gradients side by side

        def rows(t: torch.Tensor) -> torch.Tensor:
            return t.contiguous(memory_format=last).permute(0, 2, 3, 1).reshape(n, ho * wo, c)

        out = grad.new_zeros(n, h * w, c)
        out.scatter_(1, rows(indices), rows(grad))  # 2x2 windows do not overlap
        return out.view(n, h, w, c).permute(0, 3, 1, 2)


class MaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d(2) whose training pass frees its input early (`_MaxPool2x2`) when the input
    is channels-last; inference, traced graphs (the ONNX export) and other layouts run torch's
    own. Named as torch's so that the layer summary reads as the tutorial's."""

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            torch.is_grad_enabled()
            and x.requires_grad
            and x.ndim == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
        ):
            return _MaxPool2x2.apply(x)
        return super().forward(x)
