"""Several processes and machines, through Lightning (docs/SCALING.md): the Trainer's device
options and whether this process is rank 0, known before any Trainer exists. Used by training
and by bulk prediction alike; imports nothing of pneumocxr."""

from __future__ import annotations

import logging
import os
import warnings

# Variables that name a process's rank under Lightning's own launcher, torchrun, SLURM or LSF.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "JSM_NAMESPACE_RANK")


def trainer_device_kwargs(options) -> dict:
    """accelerator, devices, num_nodes, strategy and precision for `lightning.Trainer`, from
    anything with those attributes (a TrainConfig, bulk prediction's options)."""
    devices = str(options.devices)
    return {
        "accelerator": options.accelerator,
        "devices": int(devices) if devices.isdigit() else devices,
        "num_nodes": options.num_nodes,
        "strategy": options.strategy,
        "precision": options.precision,
    }


def is_global_zero() -> bool:
    """Whether this process is rank 0 (or the only one), known before any Trainer exists."""
    ranks = [os.environ.get(name, "0") for name in RANK_VARIABLES]
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:  # SLURM_PROCID alone may be stale
        ranks.append(os.environ.get("SLURM_PROCID", "0"))
    return all(rank.strip() in ("", "0") for rank in ranks)


def quiet_lightning() -> None:
    """Keep Lightning's start-up banners (GPU/TPU availability, tips, DDP set-up) and its advice
    that does not apply here out of the output. Lightning resets its loggers when imported:
    call this after importing it."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
