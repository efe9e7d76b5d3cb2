"""What a training run is asked to do: `TrainConfig` (plain keywords, validated in one place,
`resolved`), the defaults, the --quick profile and `pneumocxr run`'s recipes."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from pneumocxr.decision.calibration import (
    METHODS,
)
from pneumocxr.errors import PneumoError
from pneumocxr.networks.registry import model_class

# Defaults for options left unset; --quick swaps in a profile of a few minutes.
DEFAULTS = {"epochs": 15, "head_epochs": 5, "image_size": None, "limit": None}


QUICK = {"epochs": 8, "head_epochs": 2, "image_size": 128, "limit": 800}


# `pneumocxr run`'s recipes. SmallNet as the tutorial trains it. The transfer model with the
# recipe that held up best outside the training pool within the run's time budget (strong
# augmentation, stress-test corruptions, balanced loss, the last epoch's weights; see
# docs/BENCHMARKS.md, "Recipes measured on the external set").
RUN_RECIPES = {
    "smallnet": {},
    "transfer": {
        "class_weight": "balanced",
        "augment": "strong",
        "corruption_p": 0.5,
        "keep": "last",
    },
}


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs"
    model: str = "smallnet"
    epochs: int | None = None  # 15 (8 with --quick)
    batch_size: int = 32
    image_size: int | None = None  # the model's default (128 with --quick)
    split: str = "auto"  # official when the data has a Kaggle test/ folder, else patient
    test_size: float = 0.2
    val_size: float = 0.2
    seed: int = 42
    lr: float | None = None  # the model's default
    class_weight: str = "none"  # or "balanced"
    weights: str = "default"  # "default" (ImageNet for transfer models), "none" or a file
    unfreeze: str | None = None  # backbone stages to fine-tune: N or "all"; None: model's default
    head_epochs: int | None = None  # head-only epochs before fine-tuning: 5 (2 with --quick)
    finetune_lr: float | None = None  # default: lr / 10
    augment: str = "tutorial"  # "tutorial", "strong" or "none" (data/augment.py)
    corruption_p: float = 0.0  # share of training images given a stress-test corruption
    mixup: float = 0.0  # mixup's Beta parameter; 0 turns it off
    label_smoothing: float = 0.0
    labels: dict | None = None  # a labels CSV read with `data` (data/labels.py's LabelsSpec)
    external: str | None = None  # an external validation folder, evaluated every epoch
    select_on: str = "val"  # what checkpoints, early stopping and the lr schedule follow
    feature_cache: bool = True
    cache_views: int = 4
    cache_limit_gb: float = 4.0
    patience: int = 20
    keep: str = "best"  # the weights each phase ends with: "best" (lowest monitored loss) or "last"
    lr_patience: int = 3
    lr_factor: float = 0.3
    min_lr: float = 1e-6
    limit: int | None = None  # use about this many images, whole patients (800 with --quick)
    calibrate_on: str | None = None  # a labelled folder; default: the validation split
    calibration: str = "platt"  # platt, temperature, isotonic or none (decision/calibration.py)
    refer_at_most: float = 0.08  # UNCERTAIN band's budget (docs/VALIDATION.md); 0 turns it off
    strict: bool = False
    quick: bool = False
    # Passed to Lightning's Trainer (training/scaling.py, docs/SCALING.md).
    accelerator: str = "auto"  # cpu, gpu, ... ; auto takes a GPU when there is one
    devices: str = "1"  # a count, "auto", or device ids "0,1"
    num_nodes: int = 1
    strategy: str = "auto"  # ddp with several devices or nodes
    precision: str = "32-true"  # or 16-mixed, bf16-mixed

    def typed(self) -> TrainConfig:
        """The same options, each of its field's type, or one line naming the first that is
        not (the API passes them unparsed: `train(epochs="x")`)."""
        values = {}
        for field in dataclasses.fields(self):
            value = _coerced(field.name, getattr(self, field.name))
            if not _of_type(value, field.type):
                raise PneumoError(
                    f"training option {field.name} must be {_TYPE_WORDS[field.type]}, "
                    f"got {type(value).__name__} {value!r:.60}"
                )
            values[field.name] = value
        return TrainConfig(**values)

    def resolved(self) -> TrainConfig:
        """Fill in the model's defaults and the --quick profile."""
        self = self.typed()
        cls = model_class(self.model)
        values = dataclasses.asdict(self)
        for key, default in (QUICK if self.quick else DEFAULTS).items():
            if values[key] is None:
                values[key] = default
        if values["image_size"] is None:
            values["image_size"] = cls.default_image_size
        for name in ("lr", "finetune_lr"):
            if values[name] is not None and values[name] <= 0:
                raise PneumoError(f"--{name.replace('_', '-')} must be above 0")
        if values["lr"] is None:
            values["lr"] = cls.default_lr
        if values["finetune_lr"] is None:
            values["finetune_lr"] = values["lr"] / 10
        pretrained = cls.pretrained_source is not None and self.weights != "none"
        if values["unfreeze"] is None:
            values["unfreeze"] = cls.default_unfreeze if pretrained else "all"
        values["augment"] = _augment_policy(values["augment"])
        if not 0 <= values["label_smoothing"] < 1 or values["mixup"] < 0:
            raise PneumoError("--label-smoothing must be in [0, 1) and --mixup at least 0")
        if self.keep not in ("best", "last"):
            raise PneumoError(f"--keep must be 'best' or 'last', got {self.keep!r}")
        if self.select_on not in ("val", "external"):
            raise PneumoError(f"--select-on must be 'val' or 'external', got {self.select_on!r}")
        if self.select_on == "external" and not self.external:
            raise PneumoError("--select-on external needs --external DIR")
        if self.calibration not in METHODS:
            raise PneumoError(
                f"--calibration must be one of {', '.join(METHODS)}, got {self.calibration!r}"
            )
        if not 0 <= self.refer_at_most < 1:
            raise PneumoError("--refer-at-most must be in [0, 1)")
        if self.class_weight not in ("none", "balanced"):
            raise PneumoError(
                f"--class-weight must be 'none' or 'balanced', got {self.class_weight!r}"
            )
        for name in ("epochs", "batch_size", "head_epochs", "cache_views"):
            if values[name] < 1:
                raise PneumoError(f"--{name.replace('_', '-')} must be at least 1")
        return TrainConfig(**values)


# The annotations of TrainConfig's fields (strings: `from __future__ import annotations`).
_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict}
_TYPE_WORDS = {
    "int": "a whole number",
    "int | None": "a whole number or None",
    "float": "a number",
    "float | None": "a number or None",
    "str": "text",
    "str | None": "text or None",
    "bool": "True or False",
    "dict | None": "a dict or None",
}


def _coerced(name: str, value):
    """Paths are taken for text, whole numbers for `unfreeze` and `devices`, and older
    config.json files' true/false for `augment`."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if name in ("unfreeze", "devices") and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _augment_policy(value) if name == "augment" and isinstance(value, bool) else value


def _of_type(value, annotation: str) -> bool:
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None:
        return "None" in kinds
    if isinstance(value, bool):
        return "bool" in kinds
    return any(isinstance(value, _TYPES[k]) for k in kinds if k != "None")


def _augment_policy(value) -> str:
    """Older config.json files stored augmentation as true/false."""
    if isinstance(value, bool):
        return "tutorial" if value else "none"
    from pneumocxr.data.augment import POLICIES

    if value not in POLICIES:
        raise PneumoError(f"--augment must be one of {', '.join(POLICIES)}, got {value!r}")
    return value
