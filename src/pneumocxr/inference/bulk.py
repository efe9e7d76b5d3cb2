"""Bulk scoring (`pneumocxr predict ... --csv/--jsonl`, docs/SCALING.md): inputs streamed from
folders or a CSV listing them, answers appended as they come, a killed run resumed from its
last whole batch, and, with `--devices` / `--num-nodes` / `--strategy`, the same work spread
over processes and machines by Lightning's prediction loop (`bulk_lightning.py`), one part file
per process, merged in input order at the end.

Memory stays that of a few batches whatever the number of images; every process and every
resumed run cuts the inputs into the same batches, so the rows are the same bit for bit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.data.decode import unreadable_error
from pneumocxr.data.transforms import to_unit
from pneumocxr.inference.answers import Settings, answers, record_of
from pneumocxr.inference.bulk_data import rank_batches
from pneumocxr.inference.bulk_output import ResultFile, progress_path
from pneumocxr.inference.sources import InputSource
from pneumocxr.predictors.checks import checked_outputs
from pneumocxr.scope.differences import refused_differences

log = logging.getLogger("pneumocxr")


@dataclass
class BulkJob:
    """What to score and where: `out` (None: answers only echoed), `fmt` csv or jsonl."""

    loaded: LoadedModel
    source: InputSource
    settings: Settings
    out: Path | None = None
    fmt: str = "csv"
    batch_size: int = 32
    resume: bool = False
    strict: bool = False  # an unreadable input stops the run

    def fingerprint(self) -> str:
        """The inputs, the model's weights and the decision settings: what a resumed run must
        share with the run it continues."""
        weights = (self.loaded.meta.get("weights") or {}).get("sha256")
        band = self.settings.band
        return "-".join(str(x) for x in (
            self.source.fingerprint(), weights, self.settings.threshold,
            None if band is None else (band.low, band.high), self.settings.scope_check,
            self.batch_size, self.fmt,
        ))  # fmt: skip


@torch.inference_mode()
def outputs_of(job: BulkJob, pixels: torch.Tensor):
    """(logits, scope scores or None) of one batch, as `inference.batches` computes them."""
    predictor = job.loaded.predictor.eval()
    unit = to_unit(pixels.to(predictor.device))
    if job.settings.scope_check and job.loaded.has_scope:
        logits, scopes = checked_outputs(*predictor.outputs(unit), len(pixels))
        scopes = scopes.float().cpu().numpy()
    else:
        logits, scopes = checked_outputs(predictor.logits(unit), None, len(pixels))
    return logits.float().cpu().numpy().astype("float64"), scopes


def batch_records(job: BulkJob, batch: dict, logits, scopes) -> list[dict]:
    """The answers of one decoded batch, as rows."""
    differs = {} if scopes is None else refused_differences(batch["pixels"], scopes)
    found = answers(job.loaded, batch["names"], logits, scopes, batch["notes"], job.settings,
                    differs)  # fmt: skip
    return [record_of(answer) for answer in found]


def score_in_process(job: BulkJob, echo=None) -> dict:
    """One process, no Lightning (a cold `predict` stays quick): the same batches and rows as
    the prediction loop's."""
    result = None if job.out is None else ResultFile(job.out, job.fmt, job.fingerprint(),
                                                     job.resume)  # fmt: skip
    size, done = job.loaded.preprocessing.image_size, 0 if result is None else result.batches
    totals = {"rows": 0, "inputs": 0, "failures": 0}
    for batch in rank_batches(job.source, size, job.batch_size, done=done):
        logits, scopes = outputs_of(job, batch["pixels"]) if batch["names"] else ([], None)
        records = batch_records(job, batch, logits, scopes)
        report_failures(batch["failures"], job.strict)
        if result is not None:
            result.append(batch["batch"], records, batch["inputs"], len(batch["failures"]))
        if echo is not None:
            echo(records)
        for key, n in (("rows", len(records)), ("inputs", batch["inputs"]),
                       ("failures", len(batch["failures"]))):  # fmt: skip
            totals[key] += n
    if result is not None and not result.state["rows"] and totals["failures"]:
        result.discard()  # nothing answered: no file
    elif result is not None:
        result.finish()
    return totals if result is None else dict(result.state)


def report_failures(failures, strict: bool = False) -> None:
    if failures and strict:
        raise unreadable_error(failures)
    for _, reason in failures:
        log.warning("skipped %s", reason)


def is_complete(out: Path) -> bool:
    """Whether a bulk output file is whole: there, with no progress record beside it."""
    return Path(out).is_file() and not progress_path(Path(out)).is_file()
