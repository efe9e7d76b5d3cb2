"""Bulk scoring on Lightning's prediction loop: the flags of `pneumocxr train` (`--devices`,
`--num-nodes`, `--strategy ddp`) spread the batches over processes and machines. Each process
takes every world-size-th batch and appends its answers to its own part file as they come
(`bulk_output.ResultFile`); at the end rank 0 merges the parts in input order."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, IterableDataset

from pneumocxr.distributed import quiet_lightning, trainer_device_kwargs
from pneumocxr.inference.bulk import BulkJob, batch_records, outputs_of, report_failures
from pneumocxr.inference.bulk_data import rank_batches
from pneumocxr.inference.bulk_output import (
    PART,
    ResultFile,
    merge_parts,
    part_path,
    remove_parts,
)

# An iterable dataset shards itself (by rank, in bulk_data): Lightning's advice is for others.
warnings.filterwarnings("ignore", message=".*(does not have many workers|IterableDataset).*")


@dataclass
class DeviceOptions:
    """`lightning.Trainer`'s device options, as `pneumocxr train` takes them."""

    accelerator: str = "cpu"
    devices: str = "1"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"


class _Module(L.LightningModule):
    def __init__(self, job: BulkJob):
        super().__init__()
        self.job = job

    def on_predict_start(self) -> None:
        self.job.loaded.predictor.to(self.device)  # the Trainer's device (a GPU with one)

    def predict_step(self, batch, batch_idx):
        return outputs_of(self.job, batch["pixels"]) if batch["names"] else None


class _Batches(IterableDataset):
    """This process's batches, from where its part file says it stopped."""

    def __init__(self, job: BulkJob, writer: _Writer):
        self.job, self.writer = job, writer

    def __iter__(self):
        job, writer = self.job, self.writer
        size = job.loaded.preprocessing.image_size
        return rank_batches(job.source, size, job.batch_size, writer.rank, writer.world,
                            writer.result.batches)  # fmt: skip


class _Writer(BasePredictionWriter):
    def __init__(self, job: BulkJob, echo=None):
        super().__init__(write_interval="batch")
        self.job, self.echo, self.rank, self.world, self.result = job, echo, 0, 1, None

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.rank, self.world = trainer.global_rank, trainer.world_size
        job, alone = self.job, self.world == 1
        path = job.out if alone else part_path(job.out, self.rank, self.world)
        self.result = ResultFile(path, job.fmt if alone else PART, job.fingerprint(), job.resume,
                                 self.rank, self.world)  # fmt: skip

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch,
                           batch_idx, dataloader_idx=0):  # fmt: skip
        logits, scopes = prediction if prediction is not None else ([], None)
        records = batch_records(self.job, batch, logits, scopes)
        report_failures(batch["failures"], self.job.strict)
        self.result.append(batch["batch"], records, batch["inputs"], len(batch["failures"]))
        if self.world == 1 and self.echo is not None:
            self.echo(records)

    def on_predict_end(self, trainer, pl_module) -> None:
        self.result.finish()
        if self.world == 1:
            return
        trainer.strategy.barrier("pneumocxr-bulk-merge")  # every part is whole
        if trainer.is_global_zero:
            self.result.state["rows"] = merge_parts(self.job.out, self.job.fmt, self.world,
                                                    self.echo)  # fmt: skip
            remove_parts(self.job.out, self.world)


def score_on_lightning(job: BulkJob, options: DeviceOptions, echo=None) -> dict:
    """Score `job` with Lightning's prediction loop on `options`' devices."""
    quiet_lightning()
    writer = _Writer(job, echo)
    trainer = L.Trainer(**trainer_device_kwargs(options), callbacks=[writer], logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False)  # fmt: skip
    loader = DataLoader(_Batches(job, writer), batch_size=None, num_workers=0)
    with torch.inference_mode():
        trainer.predict(_Module(job), dataloaders=loader, return_predictions=False)
    return dict(writer.result.state)
