"""Ensembles: several exported models whose logits are averaged.

Members may differ in architecture, input size and normalisation. The ensemble's input is the
gray image in [0, 1] at the largest member's size; each member resizes it to its own size
(bilinear, antialiased) and applies its own normalisation, so one decoded image serves all.
Diverse members (a CNN from scratch beside pretrained ones, several seeds) rank images more
robustly than any one of them (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.data.transforms import network_input
from pneumocxr.errors import PneumoError
from pneumocxr.predictors.base import Predictor
from pneumocxr.predictors.single import NetworkPredictor

NAME = "ensemble"


class Ensemble(Predictor):
    """Mean logit of its members; out of scope when any member says so (the largest score)."""

    explainable = True

    def __init__(self, members: list[NetworkPredictor]):
        if not members:
            raise PneumoError("an ensemble needs at least one member")
        # Members run unfolded, as ensembles always have (bit-identical answers).
        self.parts = [NetworkPredictor(m.network, m.scope, fold=False) for m in members]
        self.image_size = max(m.image_size for m in self.parts)
        self.weights_source = "; ".join(m.weights_source for m in self.parts)

    def members(self) -> list[NetworkPredictor]:
        return list(self.parts)

    @property
    def scoped(self) -> bool:
        return all(m.scoped for m in self.parts)

    @property
    def device(self) -> torch.device:
        return self.parts[0].device

    def to(self, device):
        for m in self.parts:
            m.to(device)
        return self

    def eval(self):
        for m in self.parts:
            m.eval()
        return self

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            image_size=self.image_size,
            channels=1,
            mean=(0.0,),
            std=(1.0,),
            color="grayscale; each member repeats it to its own channels",
            resize="squash, bilinear; each member resizes to its own input size",
        )

    def member_unit(self, member, unit: torch.Tensor) -> torch.Tensor:
        """The ensemble's [0, 1] gray input at `member`'s size."""
        size = member.image_size
        if unit.shape[-1] != size or unit.shape[-2] != size:
            unit = F.interpolate(unit, size=(size, size), mode="bilinear", antialias=True)
        return unit

    def logits(self, unit: torch.Tensor) -> torch.Tensor:
        # Through the ensemble's own (identity) normalisation: channels-last, as before.
        x = network_input(unit, self.preprocessing())
        return torch.stack([m.logits(self.member_unit(m, x)) for m in self.parts]).mean(dim=0)

    def outputs(self, unit: torch.Tensor):
        outs = [m.outputs(self.member_unit(m, unit)) for m in self.parts]
        logits = torch.stack([logit for logit, _ in outs]).mean(dim=0)
        scopes = [scope for _, scope in outs]
        if any(scope is None for scope in scopes):
            return logits, None
        return logits, torch.stack(scopes).amax(dim=0)
