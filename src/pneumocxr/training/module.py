"""The LightningModule: what to compute per step; the Trainer decides how to run it."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryPrecision,
    BinaryRecall,
)

from pneumocxr.networks.base import PneumoNet

METRIC_NAMES = ("loss", "accuracy", "recall", "precision", "auc")
# Validation loaders in order: the validation split, then the external set when given.
EVAL_PREFIXES = ("val_", "ext_")


def _metrics(prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "accuracy": BinaryAccuracy(),
            "recall": BinaryRecall(),
            "precision": BinaryPrecision(),
            "auc": BinaryAUROC(),
        },
        prefix=prefix,
    )


class Classifier(L.LightningModule):
    """Binary classifier around a `PneumoNet`, trained from stage `input_stage` onwards.

    `input_stage` is 0 when batches are images, or the first trainable stage when batches are
    cached features of the frozen stages before it. `monitor` is the metric the learning-rate
    schedule follows (the one checkpoints and early stopping follow too). `mixup` is the Beta
    parameter of mixup (0: off); `label_smoothing` pulls targets towards 0.5 by that amount.
    """

    def __init__(
        self,
        model: PneumoNet,
        lr: float,
        input_stage: int = 0,
        class_weights: tuple[float, float] = (1.0, 1.0),
        lr_factor: float = 0.3,
        lr_patience: int = 3,
        min_lr: float = 1e-6,
        monitor: str = "val_loss",
        mixup: float = 0.0,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))
        self.train_metrics = _metrics("train_")
        self.eval_metrics = torch.nn.ModuleList(_metrics(p) for p in EVAL_PREFIXES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.run_stages(x, self.hparams.input_stage).squeeze(1)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0):
        weight = self.class_weights[(y >= 0.5).long()]
        target = y * (1 - smoothing) + 0.5 * smoothing
        return F.binary_cross_entropy_with_logits(logits, target, weight=weight)

    def _log_step(self, logits, y, loss, metrics: MetricCollection, prefix: str) -> None:
        metrics.update(torch.sigmoid(logits), (y >= 0.5).long())
        kwargs = {"on_step": False, "on_epoch": True, "add_dataloader_idx": False}
        # sync_dist: with DDP every process logs the mean over all shards (no-op otherwise).
        self.log(f"{prefix}loss", loss, prog_bar=True, sync_dist=True, **kwargs)
        self.log_dict(metrics, prog_bar=prefix == "val_", **kwargs)

    def on_train_epoch_start(self) -> None:
        # Lightning restores each submodule's recorded mode around validation; re-apply ours,
        # which keeps frozen stages (their BatchNorm and stochastic depth) in eval mode.
        self.model.train()

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.mixup > 0:
            x, y = self._mix(x, y)
        logits = self(x)
        loss = self._loss(logits, y, self.hparams.label_smoothing)
        self._log_step(logits, y, loss, self.train_metrics, "train_")
        return loss

    def _mix(self, x: torch.Tensor, y: torch.Tensor):
        """mixup (Zhang et al. 2018): convex blends of pairs of inputs and of their labels."""
        alpha = self.hparams.mixup
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        lam = max(lam, 1 - lam)  # the first image dominates: its label still counts for metrics
        order = torch.randperm(len(x), device=x.device)
        return lam * x + (1 - lam) * x[order], lam * y + (1 - lam) * y[order]

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y)
        prefix = EVAL_PREFIXES[dataloader_idx]
        self._log_step(logits, y, loss, self.eval_metrics[dataloader_idx], prefix)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        # One fused kernel per step instead of a dozen passes over SmallNet's 11M weights.
        optimizer = torch.optim.Adam(params, lr=self.hparams.lr, fused=True)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=self.hparams.lr_factor,
            patience=self.hparams.lr_patience,
            min_lr=self.hparams.min_lr,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.hparams.monitor,
                "interval": "epoch",
            },
        }
