"""A model's preprocessing contract: how pixels are prepared for it.

It lives in the data layer because the data pipeline applies it; each model states its own in
`PneumoNet.preprocessing()` and `model.json` stores it, so `predict` applies exactly the steps
training used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pneumocxr.data.borders import DESCRIPTION as BORDERS
from pneumocxr.task import NO_NORMALISATION


@dataclass(frozen=True)
class Preprocessing:
    """How pixels must be prepared for a model; stored in model.json and applied by predict."""

    image_size: int
    channels: int = 3
    mean: tuple[float, ...] = NO_NORMALISATION[0]
    std: tuple[float, ...] = NO_NORMALISATION[1]
    resize: str = "squash, bilinear"  # Keras' target_size: no crop, aspect not kept
    color: str = "grayscale replicated to the model's channels"
    scale: str = "pixel / 255"
    # Every model gets its input trimmed (decode.squash), those whose model.json predates this
    # field too: it reads as this text (why: docs/VALIDATION.md, "Borders and other alterations").
    borders: str = BORDERS

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Preprocessing:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["mean"] = tuple(fields.get("mean", NO_NORMALISATION[0]))
        fields["std"] = tuple(fields.get("std", NO_NORMALISATION[1]))
        return cls(**fields)
