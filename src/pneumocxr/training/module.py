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

from pneumocxr.models.base import PneumoNet

METRIC_NAMES = ("loss", "accuracy", "recall", "precision", "auc")


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
    cached features of the frozen stages before it.
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
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))
        self.train_metrics = _metrics("train_")
        self.val_metrics = _metrics("val_")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.run_stages(x, self.hparams.input_stage).squeeze(1)

    def _step(self, batch, metrics: MetricCollection, prefix: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.binary_cross_entropy_with_logits(logits, y, weight=self.class_weights[y.long()])
        metrics.update(torch.sigmoid(logits), y.long())
        # sync_dist: with DDP every process sees the mean over all shards (a no-op otherwise).
        self.log(f"{prefix}loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=prefix == "val_")
        return loss

    def on_train_epoch_start(self) -> None:
        # Lightning restores each submodule's recorded mode around validation; re-apply ours,
        # which keeps frozen stages (their BatchNorm and stochastic depth) in eval mode.
        self.model.train()

    def training_step(self, batch, batch_idx):
        return self._step(batch, self.train_metrics, "train_")

    def validation_step(self, batch, batch_idx):
        self._step(batch, self.val_metrics, "val_")

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
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss", "interval": "epoch"},
        }
