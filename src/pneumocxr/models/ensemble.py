"""Ensembles: several exported models whose logits are averaged.

Members may differ in architecture, input size and normalisation. The ensemble's input is the
gray image in [0, 1] at the largest member's size; each member resizes it to its own size
(bilinear, antialiased) and applies its own normalisation, so one decoded image serves all.
Diverse members (a CNN from scratch beside pretrained ones, several seeds) rank images more
robustly than any one of them (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pneumocxr import CLASS_NAMES, __version__
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

    def stages(self) -> list[nn.Module]:
        return [self]  # trained member by member, never as a whole

    def run_stages(self, x, start: int = 0, stop=None):
        return self(x)

    def gradcam_layer(self) -> nn.Module:
        raise PneumoError("Grad-CAM of an ensemble is the mean of its members' (explain/)")


MEMBERS_DIR = "members"


ENSEMBLE_FILES = {"model.json", MEMBERS_DIR}


def save_ensemble(members, directory, extra: dict | None = None, overwrite: bool = False):
    """An ensemble folder: model.json naming the members, and each member's own model files
    copied unchanged under members/ (so their hashes and metadata still hold).

    The folder is built beside `directory` and then put in its place, so a reader never sees
    a half-written ensemble."""
    from pneumocxr.fileio import replace_dir, write_json
    from pneumocxr.models.io import ENSEMBLE_FORMAT, META_NAME

    directory = Path(directory)
    ensemble = Ensemble([m.model for m in members])
    entries = []
    with replace_dir(directory, ENSEMBLE_FILES, overwrite, "ensemble") as staging:
        for i, member in enumerate(members, start=1):
            folder = Path(MEMBERS_DIR) / f"{i}-{member.meta['architecture']}"
            (staging / folder).mkdir(parents=True)
            weights = member.meta["weights"]["file"]
            for name in (META_NAME, weights):
                shutil.copy2(member.path / name, staging / folder / name)
            entries.append({"path": folder.as_posix(), "from": str(member.path)})
        meta = {
            "format": ENSEMBLE_FORMAT,
            "architecture": Ensemble.name,
            "combine": "mean of the members' logits",
            "members": entries,
            "preprocessing": ensemble.preprocessing().to_json(),
            "class_names": list(CLASS_NAMES),
            "output": "one logit; sigmoid(logit) = P(PNEUMONIA)",
            "threshold": 0.5,
            "pneumocxr_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **(extra or {}),
        }
        write_json(staging / META_NAME, meta)
    return directory / META_NAME


def load_ensemble(meta_path: Path, meta: dict):
    from pneumocxr.models.io import LoadedModel, load_model

    try:
        entries = [entry["path"] for entry in meta["members"]]
    except (KeyError, TypeError) as err:
        raise PneumoError(f"{meta_path} is incomplete or damaged (at {err})") from None
    root = meta_path.parent.resolve()
    members = []
    for entry in entries:
        folder = (root / entry).resolve()
        if root not in folder.parents:  # members live inside the ensemble's folder
            raise PneumoError(f"{meta_path}: member {entry!r} lies outside the ensemble folder")
        members.append(load_model(folder).model)
    ensemble = Ensemble(members).eval()
    return LoadedModel(ensemble, meta, meta_path.parent)
