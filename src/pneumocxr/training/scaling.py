"""Several devices and machines, through Lightning (docs/SCALING.md).

The Trainer's device options come from the config (`pneumocxr.distributed`). With DDP every
process runs the whole `pneumocxr train` command: Lightning starts the others by running the
same command line again (or torchrun / SLURM start them all). Each process trains on its own
shard of every epoch (Lightning wraps the samplers in a `DistributedSampler`); only the process
of global rank 0 writes the run folder and exports the model. The others write into a scratch
copy that is removed when they exit.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from pathlib import Path


def follower_run_dir(run_dir: Path | None) -> Path:
    """For ranks other than 0: a scratch folder to write into instead of the run folder
    (holding a copy of the run's files when resuming one), and quiet logging."""
    logging.getLogger("pneumocxr").setLevel(logging.WARNING)
    scratch = Path(tempfile.mkdtemp(prefix="pneumocxr-rank-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    if run_dir is not None and Path(run_dir).is_dir():
        for item in Path(run_dir).iterdir():
            if item.is_file():
                shutil.copy2(item, scratch / item.name)
        if (Path(run_dir) / "checkpoints").is_dir():  # read only: rank 0 writes checkpoints
            (scratch / "checkpoints").symlink_to(Path(run_dir).resolve() / "checkpoints")
    return scratch
