"""One network and its scope check: the predictor of every model folder but ensembles and
ONNX exports."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from pneumocxr.data.preprocessing import Preprocessing
from pneumocxr.data.transforms import network_input
from pneumocxr.networks.base import PneumoNet, device_of, network_lock
from pneumocxr.networks.features import forward_pooled
from pneumocxr.networks.folding import folded
from pneumocxr.predictors.base import Predictor
from pneumocxr.scope.check import OWN, PREFIX, ScopeCheck
from pneumocxr.scope.reference import reference_features


class NetworkPredictor(Predictor):
    """`network` with BatchNorm folded (`fold`; an ensemble's members run as they are, as they
    always have: their answers stay bit for bit those of earlier versions), and `scope`, the
    scope check fitted for it (None: it labels any image)."""

    explainable = True

    def __init__(self, network: PneumoNet, scope: ScopeCheck | None = None, fold: bool = True):
        self.network, self.scope, self.fold = network, scope, fold

    @property
    def image_size(self) -> int:
        return self.network.image_size

    @property
    def weights_source(self) -> str:
        return self.network.weights_source

    @property
    def scoped(self) -> bool:
        return self.scope is not None

    @property
    def device(self) -> torch.device:
        return device_of(self.network)

    def preprocessing(self) -> Preprocessing:
        return self.network.preprocessing()

    def to(self, device):
        self.network.to(device)
        if self.scope is not None:
            self.scope.to(device)
        return self

    def eval(self):
        self.network.eval()
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's tensors and the scope check's (prefixed `scope.`): what a model file
        stores."""
        state = dict(self.network.state_dict())
        if self.scope is not None:
            state.update({PREFIX + k: v for k, v in self.scope.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load `state_dict`'s tensors (those it lacks keep their values)."""
        mine = {k: v for k, v in state.items() if not k.startswith(PREFIX)}
        self.network.load_state_dict(mine, strict=False)
        if self.scope is not None:
            scope = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
            self.scope.load_state_dict(scope, strict=False)

    def network_input(self, unit: torch.Tensor) -> torch.Tensor:
        """[0, 1] gray images -> the network's channels and normalisation."""
        return network_input(unit, self.network.preprocessing())

    def runner(self) -> PneumoNet:
        return folded(self.network) if self.fold else self.network

    def guard(self, runner: PneumoNet):
        """The network's lock when it runs itself (unfolded): a Grad-CAM on it in another
        thread must not see this pass (`networks.base.network_lock`). A folded copy is
        private to predictions."""
        return network_lock(self.network) if runner is self.network else nullcontext()

    def logits(self, unit: torch.Tensor) -> torch.Tensor:
        runner = self.runner()
        with self.guard(runner):
            return runner(self.network_input(unit)).squeeze(1)

    def outputs(self, unit: torch.Tensor):
        if self.scope is None:
            return self.logits(unit), None
        if self.scope.source == OWN:
            runner = self.runner()
            with self.guard(runner):
                logits, features = forward_pooled(runner, self.network_input(unit),
                                                  self.scope.stages)  # fmt: skip
            logits = logits.squeeze(1)
        else:
            logits, features = self.logits(unit), reference_features(self.scope, unit)
        return logits, self.scope(features)


def as_predictor(model) -> Predictor:
    """A predictor as it is, a bare network wrapped (no scope check)."""
    return NetworkPredictor(model) if isinstance(model, PneumoNet) else model
