"""The one place that names the architectures: a new model is one file plus one line here
(or one `register_network` call, for an architecture defined outside the package)."""

from __future__ import annotations

from pneumocxr.errors import PneumoError
from pneumocxr.networks.base import PneumoNet
from pneumocxr.networks.efficientnet_lite import VARIANT_CLASSES
from pneumocxr.networks.smallnet import SmallNet
from pneumocxr.networks.vgg16 import VGG16

MODELS: dict[str, type[PneumoNet]] = {
    SmallNet.name: SmallNet,
    VGG16.name: VGG16,
    **{cls.name: cls for cls in VARIANT_CLASSES},
}


def register_network(cls: type[PneumoNet]) -> type[PneumoNet]:
    """Make `cls` trainable, exportable and loadable by its `name` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, PneumoNet)) or not getattr(cls, "name", ""):
        raise PneumoError("register_network takes a PneumoNet subclass with a name")
    MODELS[cls.name] = cls
    return cls


def model_class(name: str) -> type[PneumoNet]:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise PneumoError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


def build_model(name: str, image_size: int | None = None, weights: str = "default") -> PneumoNet:
    return model_class(name).create(image_size, weights)
