"""Scale-out through Lightning: real DDP with two CPU processes (gloo) on a small subset."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pandas as pd

from conftest import ROOT, make_subset
from pneumocxr.artifact.load import load_model
from pneumocxr.distributed import is_global_zero, trainer_device_kwargs
from pneumocxr.inference.predict import predict_paths
from pneumocxr.training.config import TrainConfig


def _wait_for(path, seconds: float = 120):
    """The second process may still be exporting into its scratch folder when rank 0 exits."""
    deadline = time.monotonic() + seconds
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    return json.loads(path.read_text())


def test_ddp_on_two_processes_shards_every_epoch_and_exports_one_model(tmp_path):
    data = make_subset(tmp_path / "data", 36, 36)
    out, seen = tmp_path / "runs", tmp_path / "seen"
    seen.mkdir()
    command = [sys.executable, str(ROOT / "tests" / "ddp_train.py"), "train", "--data", data,
               "--out", out, "--model", "efficientnet-lite0", "--unfreeze", "all",
               "--head-epochs", "1", "--epochs", "1", "--image-size", "64", "--batch-size", "8",
               "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]  # fmt: skip
    env = {**os.environ, "PNEUMOCXR_TEST_SEEN": str(seen)}
    result = subprocess.run(
        [str(x) for x in command], capture_output=True, text=True, env=env, timeout=400
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run folder:") == 1
    (run,) = out.iterdir()  # the second process wrote no run folder of its own
    splits = pd.read_csv(run / "splits.csv")
    n_train = int((splits["split"] == "train").sum())
    ranks = [_wait_for(seen / f"seen-{rank}.json") for rank in (0, 1)]
    # Head phase: cached float features; fine-tuning (every stage): uint8 images.
    for dtype in ("torch.float32", "torch.uint8"):
        shards = [[i for d, n, i in rank if d == dtype and n == n_train] for rank in ranks]
        half = math.ceil(n_train / 2)
        assert [len(s) for s in shards] == [half, half], dtype
        assert set(shards[0]) | set(shards[1]) == set(range(n_train)), dtype
        # Disjoint but for the DistributedSampler's padding of an odd count.
        assert len(set(shards[0]) & set(shards[1])) == 2 * half - n_train, dtype
    history = pd.read_csv(run / "history.csv")
    assert history["phase"].tolist() == ["head", "finetune"]
    loaded = load_model(run)
    table, failures = predict_paths(loaded, splits.loc[splits["split"] == "test", "path"])
    assert not failures and table["p_pneumonia"].between(0, 1).all()


def test_device_options_reach_the_trainer_and_ranks_come_from_the_environment(monkeypatch):
    cfg = TrainConfig(accelerator="gpu", devices="4", num_nodes=2, strategy="ddp",
                      precision="16-mixed")  # fmt: skip
    assert trainer_device_kwargs(cfg) == {
        "accelerator": "gpu",
        "devices": 4,
        "num_nodes": 2,
        "strategy": "ddp",
        "precision": "16-mixed",
    }
    assert trainer_device_kwargs(TrainConfig(devices="0,1"))["devices"] == "0,1"
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert is_global_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")  # Lightning's second process on this machine
    assert not is_global_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")  # the first process of the second machine
    assert not is_global_zero()
    monkeypatch.delenv("NODE_RANK")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert is_global_zero()  # a lone SLURM task's id says nothing about DDP
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert not is_global_zero()
