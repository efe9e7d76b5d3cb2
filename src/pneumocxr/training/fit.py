"""Training a model end to end: data -> run directory -> phases (`loop.py`) -> the model folder
with its scope check and model card (`finish.py`). A run killed at any point continues with
`--resume` from its newest sound checkpoint."""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch

from pneumocxr.data.dataset import Dataset, load_dataset, load_external
from pneumocxr.data.labels import LabelsSpec
from pneumocxr.data.split import PROTOCOLS, split_summary
from pneumocxr.data.split_file import read_splits, write_splits
from pneumocxr.distributed import is_global_zero, quiet_lightning
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.folders import ensure_dir
from pneumocxr.fileio.formats import write_json, write_text
from pneumocxr.fileio.outputs import check_outside
from pneumocxr.networks.base import PneumoNet
from pneumocxr.networks.registry import build_model
from pneumocxr.networks.summary import parameter_counts, summary_text
from pneumocxr.task import __version__
from pneumocxr.training import rundir
from pneumocxr.training.checkpoints import (
    damaged_checkpoints,
    newest_checkpoint,
    require_sound,
    set_aside,
)
from pneumocxr.training.config import TrainConfig
from pneumocxr.training.finish import finish_run, same_folder
from pneumocxr.training.loop import fit_phases, monitor_name
from pneumocxr.training.phases import Phase, plan_phases
from pneumocxr.training.scaling import follower_run_dir

log = logging.getLogger("pneumocxr")


@dataclass
class TrainResult:
    run_dir: Path
    model: PneumoNet
    threshold: float
    val_metrics: dict = field(default_factory=dict)
    external_metrics: dict | None = None


def train(cfg: TrainConfig, dataset: Dataset | None = None, run_dir: Path | None = None,
          resume: Path | None = None, external: Dataset | None = None,
          restart: bool = False) -> TrainResult:  # fmt: skip
    """Train into a new run folder (`run_dir`, or RUNS/<model>-<time>), or continue the run
    that `resume` (a run folder or a checkpoint in one) belongs to; export the best model.
    A run whose every checkpoint is damaged starts again only with `restart`.

    `dataset` and `external` may be passed already decoded (at the model's image size)."""
    cfg = cfg.resolved()
    quiet_lightning()
    L.seed_everything(cfg.seed, verbose=False)
    if resume is not None:
        run_dir = rundir.find_run_dir(resume)
    if not is_global_zero():  # other DDP processes write into scratch, rank 0 into the run
        run_dir = follower_run_dir(run_dir)
    if resume is None and run_dir is None:  # never into a data folder: read as X-rays later
        check_outside(cfg.out, [None if cfg.labels else cfg.data, cfg.external])
    model = build_model(cfg.model, cfg.image_size, cfg.weights)  # fails early on bad weights
    phases = plan_phases(cfg, model)  # ... and on a bad --unfreeze
    first, checkpoint = 0, None
    if resume is not None:  # before the data: a refusal should not wait for the decoding
        first, checkpoint = _resume_point(phases, run_dir, resume, restart)
    if resume is None and run_dir is None:
        ensure_dir(cfg.out)  # ... and on an unwritable output folder, before decoding images
    if dataset is None:
        dataset = _load_dataset(cfg, run_dir if resume is not None else None)
    if dataset.protocol in PROTOCOLS:
        cfg.split = dataset.protocol  # config.json and model.json say what "auto" became
        log.info("split protocol: %s", PROTOCOLS[dataset.protocol])
    external = _external(cfg, dataset, external)
    calibrate_on = _calibrate_on(cfg, dataset, external)  # before training: a bad folder fails now
    if resume is None:
        run_dir = _start_run(cfg, run_dir, dataset, model, phases)
    log.info("run folder: %s", run_dir)
    state = rundir.read_state(run_dir)
    offset = sum(state["phases"].get(p.name, {}).get("epochs", 0) for p in phases[:first])
    fit_phases(cfg, model, dataset, run_dir, phases[first:], state, offset, checkpoint, external)
    threshold, internal, outside = finish_run(
        cfg, model, dataset, run_dir, external, calibrate_on, monitor_name(cfg)
    )
    return TrainResult(Path(run_dir), model, threshold, internal, outside)


def _load_dataset(cfg: TrainConfig, resumed_run: Path | None) -> Dataset:
    """The data, decoded at the model's size (a resumed run keeps its splits)."""
    return load_dataset(
        cfg.data,
        cfg.image_size,
        split=cfg.split,
        test_size=cfg.test_size,
        val_size=cfg.val_size,
        seed=cfg.seed,
        strict=cfg.strict,
        limit=cfg.limit,
        splits=None if resumed_run is None else read_splits(resumed_run),
        labels=LabelsSpec.from_dict(cfg.labels) if cfg.labels else None,
    )


def _start_run(cfg: TrainConfig, run_dir, dataset: Dataset, model, phases) -> Path:
    run_dir = rundir.new_run_dir(cfg.out, cfg.model) if run_dir is None else Path(run_dir)
    ensure_dir(run_dir)
    model.freeze_before(phases[0].start)  # the summary shows the first phase's freezing
    _write_run_files(run_dir, cfg, dataset, model)
    return run_dir


def _external(cfg: TrainConfig, dataset: Dataset, given: Dataset | None) -> Dataset | None:
    """The external set, decoded at the model's size; never part of the training pool."""
    if not cfg.external:
        return None
    if given is None:
        given = load_external(cfg.external, cfg.image_size, dataset.table, cfg.strict)
    log.info(
        "external set: %d images from %s (reported beside validation; %s)",
        len(given.table),
        given.root,
        "used for model selection" if cfg.select_on == "external" else "not used for selection",
    )
    return given


def _calibrate_on(cfg: TrainConfig, dataset: Dataset, external: Dataset | None):
    """The --calibrate-on folder, decoded (the external set itself when it is that folder);
    None: calibrate on the validation split."""
    if not cfg.calibrate_on:
        return None
    if same_folder(cfg):
        return external
    return load_external(cfg.calibrate_on, cfg.image_size, dataset.table, cfg.strict)


def _resume_point(phases: list[Phase], run_dir: Path, resume: Path, restart: bool = False):
    """(index of the phase to continue, checkpoint to continue it from): the given checkpoint,
    or the newest sound one of the latest phase that has one."""
    names = [p.name for p in phases]
    if Path(resume).is_file():
        name = Path(resume).name.split("-")[0]
        if name not in names:
            raise PneumoError(f"{resume} belongs to no phase of this run ({', '.join(names)})")
        return names.index(name), require_sound(Path(resume))
    for i in reversed(range(len(phases))):
        found = newest_checkpoint(Path(run_dir) / "checkpoints", names[i])
        if found is not None:
            return i, found
    _set_aside_damaged(Path(run_dir) / "checkpoints", restart)
    # Killed before its first checkpoint: the run starts again from its seed, which gives
    # exactly the run it would have been.
    log.info("no complete checkpoint yet in %s: starting the run again", run_dir)
    return 0, None


def _set_aside_damaged(folder: Path, restart: bool) -> None:
    """Starting again would write over checkpoints that did not load: only with --restart,
    and then they are moved aside, not deleted (they may yet be recovered)."""
    damaged = damaged_checkpoints(folder)
    if not damaged:
        return
    if not restart:
        names = ", ".join(p.name for p in damaged)
        raise PneumoError(
            f"every checkpoint in {folder} is damaged ({names}); pass --restart to train the "
            "run again from its start (they are moved to a damaged-<time> folder, not deleted)"
        )
    log.warning("moved %d damaged checkpoint(s) to %s", len(damaged), set_aside(damaged, folder))



def _write_run_files(run_dir: Path, cfg: TrainConfig, dataset: Dataset, model) -> None:
    write_splits(run_dir, dataset.table)
    write_text(Path(run_dir) / "summary.txt", summary_text(model) + "\n")
    config = {
        **dataclasses.asdict(cfg),
        "data": str(Path(cfg.data).resolve()) if cfg.data else str(dataset.root),
        "pneumocxr_version": __version__,
        "torch_version": torch.__version__,
        "command": " ".join(sys.argv),
        "images": split_summary(dataset.table),
        "parameters": parameter_counts(model),
        "weights_source": model.weights_source,
    }
    write_json(Path(run_dir) / rundir.CONFIG_NAME, config)


