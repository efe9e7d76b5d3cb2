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
from torch import nn

from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.errors import PneumoError
from pneumocxr.models.base import PneumoNet


class Ensemble(PneumoNet):
    name = "ensemble"
    min_image_size = 1

    def __init__(self, members: list[PneumoNet]):
        if not members:
            raise PneumoError("an ensemble needs at least one member")
        super().__init__(max(m.image_size for m in members))
        self.members = nn.ModuleList(members)
        self.weights_source = "; ".join(m.weights_source for m in members)

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            image_size=self.image_size,
            channels=1,
            mean=(0.0,),
            std=(1.0,),
            color="grayscale; each member repeats it to its own channels",
            resize="squash, bilinear; each member resizes to its own input size",
        )

    def member_unit(self, member: PneumoNet, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's [0, 1] gray input at `member`'s size."""
        size = member.image_size
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return x

    def member_input(self, member: PneumoNet, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's [0, 1] gray input as `member` expects it."""
        return member.model_input(self.member_unit(member, x))

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Members x N x 1 logits."""
        return torch.stack([m(self.member_input(m, x)) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_logits(x).mean(dim=0)

    def logits_and_scope(self, unit: torch.Tensor):
        """Mean logits; out of scope when any member says so (the largest member score)."""
        outs = [m.logits_and_scope(self.member_unit(m, unit)) for m in self.members]
        logits = torch.stack([logit for logit, _ in outs]).mean(dim=0)
        scopes = [scope for _, scope in outs]
        if any(scope is None for scope in scopes):
            return logits, None
        return logits, torch.stack(scopes).amax(dim=0)

    def scope_ready(self) -> bool:
        return all(m.scope_ready() for m in self.members)

    def stages(self) -> list[nn.Module]:
        return [self]  # trained member by member, never as a whole

    def run_stages(self, x, start: int = 0, stop=None):
        return self(x)

    def gradcam_layer(self) -> nn.Module:
        raise PneumoError("Grad-CAM of an ensemble is the mean of its members' (explain/)")
