"""VGG16 as the tutorial uses it: the ImageNet convolutional base, frozen, and a dense head.

The base keeps torchvision's module layout (`features.0` ... `features.30`), so torchvision's
official state dict loads without renaming. The head is the tutorial's
Flatten -> Dense 4096 -> Dense 1072 -> Dropout 0.2 -> Dense 1.
"""

from __future__ import annotations

from torch import nn

from pneumocxr.networks.base import PneumoNet, init_like_keras
from pneumocxr.networks.weights import download_state_dict, load_into, read_state_dict
from pneumocxr.task import IMAGENET_NORMALISATION

WEIGHTS_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _conv_base() -> nn.Sequential:
    layers, channels = [], 3
    for item in _CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers)


class VGG16(PneumoNet):
    name = "vgg16"
    default_lr = 1e-3
    normalisation = IMAGENET_NORMALISATION
    pretrained_source = f"ImageNet (torchvision) {WEIGHTS_URL}"

    def __init__(self, image_size: int = 224):
        super().__init__(image_size)
        self.features = _conv_base()
        side = image_size // 32
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * side * side, 4096),
            nn.ReLU(),
            nn.Linear(4096, 1072),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(1072, 1),
        )
        init_like_keras(self.head)

    def stages(self):
        # The five convolutional blocks, each ending with its max-pool, then the head.
        bounds = [0, 5, 10, 17, 24, 31]
        blocks = [self.features[a:b] for a, b in zip(bounds, bounds[1:])]
        return [*blocks, self.head]

    def gradcam_layer(self):
        return self.features[29]  # ReLU after block5_conv3, as in the Keras example

    def load_pretrained(self, weights: str) -> None:
        if weights == "default":
            state = download_state_dict(WEIGHTS_URL, "--weights FILE")
            source = self.pretrained_source
        else:
            state = read_state_dict(weights)
            source = f"file {weights}"
        if not any(k.startswith("features.") for k in state):
            state = {f"features.{k}": v for k, v in state.items()}  # a bare conv-base dict
        load_into(self.features, state, "VGG16 weights", prefix="features.")
        self.weights_source = source
