"""A network's first convolution reading a gray image's one channel.

The images are gray and the networks take three channels: `data.transforms.normalise` shows the
one channel three times (a stride-0 view, no copy) when every channel is normalised alike, and a
first convolution that sees such a view runs on the one channel with its weights summed over the
three. The same function: each output is sum_c w_c * g = (sum_c w_c) * g, and the summed
weights' gradient reaches each w_c whole, as it does through three equal channels. A third of
the first layer's work and no 3-channel copy (docs/PERFORMANCE.md, 11).
"""

from __future__ import annotations

import torch
from torch import nn

from pneumocxr.data.transforms import is_gray_view


def gray_conv(conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, weight) for a first convolution: the one channel and the weights summed over
    the input channels when `x` is a gray view, else `x` and the weights as they are. Traced
    and compiled graphs (the ONNX export) keep the plain convolution."""
    tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
    if tracing or not is_gray_view(x) or conv.groups != 1:
        return x, conv.weight
    return one_channel_last(x[:, :1]), conv.weight.sum(1, keepdim=True)


def one_channel_last(x: torch.Tensor) -> torch.Tensor:
    """A one-channel batch with channels-last strides, stated: with one channel the layout is
    ambiguous, and oneDNN then answered in NCHW and every later layer ran in NCHW (two 60 ms
    reorders per SmallNet step, which first made this change 23% slower)."""
    x = x.contiguous()
    _, _, h, w = x.shape
    return x.as_strided(x.shape, (h * w, 1, w, 1))


class Conv2d(nn.Conv2d):
    """nn.Conv2d that reads a gray view's one channel (`gray_conv`): a network's first layer.
    Named as torch's so that the layer summary (torchinfo) reads as the tutorial's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = gray_conv(self, x)
        return self._conv_forward(x, weight, self.bias)
