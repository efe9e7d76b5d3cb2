"""A run's phases: each trains the stages from one index onwards. Models trained from scratch
have one phase; transfer models train their head on a frozen backbone and, with `--unfreeze`,
then fine-tune the top of the backbone at a lower learning rate."""

from __future__ import annotations

from dataclasses import dataclass

from pneumocxr.errors import PneumoError
from pneumocxr.networks.base import PneumoNet


@dataclass
class Phase:
    name: str
    start: int  # first trainable stage
    epochs: int
    lr: float


def first_trainable_stage(model: PneumoNet, unfreeze: int | str) -> int:
    """Stage index where training starts: 0 trains all, `backbone_stages` the head only."""
    if str(unfreeze).lower() == "all":
        return 0
    n = int(unfreeze) if str(unfreeze).isdigit() else -1
    if not 0 <= n <= model.backbone_stages:
        raise PneumoError(
            f"--unfreeze must be between 0 and {model.backbone_stages} for {model.name} "
            f"(or 'all'), got {unfreeze!r}"
        )
    return model.backbone_stages - n


def plan_phases(cfg, model: PneumoNet) -> list[Phase]:
    """The phases of `cfg` (a resolved TrainConfig) for `model`."""
    if model.pretrained_source is None:
        return [Phase("train", 0, cfg.epochs, cfg.lr)]
    start = first_trainable_stage(model, cfg.unfreeze)
    head = model.backbone_stages
    if start == head:
        return [Phase("head", head, cfg.epochs, cfg.lr)]
    if start == 0 and cfg.weights == "none":
        return [Phase("train", 0, cfg.epochs, cfg.lr)]
    return [
        Phase("head", head, cfg.head_epochs, cfg.lr),
        Phase("finetune", start, cfg.epochs, cfg.finetune_lr),
    ]
