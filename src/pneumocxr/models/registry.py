"""The one place that names the architectures: a new model is one file plus one line here."""

from __future__ import annotations

from pneumocxr.errors import PneumoError
from pneumocxr.models.base import PneumoNet
from pneumocxr.models.efficientnet_lite0 import EfficientNetLite0
from pneumocxr.models.efficientnet_lite1 import EfficientNetLite1
from pneumocxr.models.efficientnet_lite2 import EfficientNetLite2
from pneumocxr.models.smallnet import SmallNet
from pneumocxr.models.vgg16 import VGG16

MODELS: dict[str, type[PneumoNet]] = {
    SmallNet.name: SmallNet,
    VGG16.name: VGG16,
    EfficientNetLite0.name: EfficientNetLite0,
    EfficientNetLite1.name: EfficientNetLite1,
    EfficientNetLite2.name: EfficientNetLite2,
}


def model_class(name: str) -> type[PneumoNet]:
    try:
        return MODELS[name]
    except KeyError:
        raise PneumoError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


def build_model(name: str, image_size: int | None = None, weights: str = "default") -> PneumoNet:
    return model_class(name).create(image_size, weights)
