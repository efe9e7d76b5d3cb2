"""SmallNet: the tutorial's small CNN, trained from scratch."""

from __future__ import annotations

from torch import nn

from pneumocxr.networks import gray
from pneumocxr.networks.base import PneumoNet, init_like_keras
from pneumocxr.networks.maxpool import MaxPool2d


def _conv_out(size: int) -> int:
    """Spatial size after the three valid 3x3 convolutions and two 2x2 poolings."""
    size = (size - 2) // 2
    size = (size - 2) // 2
    return size - 2


class SmallNet(PneumoNet):
    """Conv32-Pool-Conv64-Pool-Conv64-Flatten-Dense64-Dense1, valid padding, ReLU.

    The first two ReLUs run after their max-pooling rather than before: the same function and
    gradients (ReLU is monotonic, so it commutes with max), on a quarter of the values. That
    made a training step about 15% faster (docs/PERFORMANCE.md); the parameter names and the
    Grad-CAM layer stay those of the tutorial's order.
    """

    name = "smallnet"
    min_image_size = 18
    # Measured (docs/BENCHMARKS.md): the tutorial's 1e-2 never learned (3 of 3 seeds gave
    # every image the same output); 1e-3 failed on 2 of 4 seeds in the quick profile; 1e-4
    # learned in all 7 runs. `--lr 1e-2` still reproduces the tutorial.
    default_lr = 1e-4

    def __init__(self, image_size: int = 224):
        super().__init__(image_size)
        self.features = nn.Sequential(
            gray.Conv2d(3, 32, 3),  # reads a gray image's one channel (networks/gray.py)
            MaxPool2d(),  # frees its input once pooled (networks/maxpool.py)
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            MaxPool2d(),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3),
            nn.ReLU(),
        )
        side = _conv_out(image_size)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * side * side, 64), nn.ReLU(), nn.Linear(64, 1)
        )
        init_like_keras(self)

    def stages(self):
        # Each convolution block, the dense layer, the output: the scope check reads the
        # outputs of the first four (trained from scratch, there is no frozen prefix to cache).
        f, h = self.features, self.head
        return [f[0:3], f[3:6], f[6:8], h[0:3], h[3:4]]

    def gradcam_layer(self):
        return self.features[7]  # ReLU after the last convolution
