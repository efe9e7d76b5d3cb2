"""Training killed at any moment resumes to exactly the run it would have been."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from conftest import cli

OPTIONS = ["--model", "smallnet", "--image-size", "48", "--batch-size", "16", "--augment",
           "strong", "--corruption-p", "0.5", "--mixup", "0.2", "--seed", "7"]  # fmt: skip


def _train(data, out, epochs: int):
    cli("train", "--data", data, "--out", out, "--epochs", epochs, *OPTIONS)
    (run,) = Path(out).iterdir()
    return run


def _killed(data, out, epochs: int, ready) -> Path:
    """Start training; SIGKILL it as soon as `ready(run folder)` is true."""
    command = [sys.executable, "-m", "pneumocxr.cli", "train", "--data", str(data), "--out",
               str(out), "--epochs", str(epochs), *OPTIONS]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            runs = [p.parent for p in Path(out).glob("*/config.json")]
            if runs and ready(runs[0]):
                break
            assert process.poll() is None, "training ended before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("training made no progress in 300 s")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    return runs[0]


def _epochs_done(run: Path) -> int:
    history = run / "history.csv"
    return len(pd.read_csv(history)) if history.is_file() else 0


MOMENTS = {
    "before the first checkpoint": lambda run: True,
    "in the third epoch": lambda run: (
        _epochs_done(run) >= 2 and (run / "checkpoints" / "train-last.ckpt").is_file()
    ),
}


@pytest.fixture(scope="module")
def uninterrupted(small_data, tmp_path_factory):
    return _train(small_data, tmp_path_factory.mktemp("whole"), 4)


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_killed_run_resumes_to_the_same_weights(small_data, uninterrupted, tmp_path, moment):
    run = _killed(small_data, tmp_path, 4, MOMENTS[moment])
    assert not (run / "model.json").exists()  # killed before the end
    result = cli("train", "--resume", run, "--epochs", 4)
    expected = "starting the run again" if moment.startswith("before") else "resuming phase"
    assert expected in result.stderr
    want = load_file(uninterrupted / "model.safetensors")
    got = load_file(run / "model.safetensors")
    for key in want:
        assert torch.equal(want[key], got[key]), key
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    whole = pd.read_csv(uninterrupted / "history.csv")
    assert history["val_loss"].tolist() == pytest.approx(whole["val_loss"].tolist(), abs=1e-7)
    leftovers = [p.name for p in run.rglob(".*") if p.is_file()]
    assert not leftovers, leftovers  # no half-written temp files


def test_resume_uses_the_best_checkpoint_when_the_last_is_damaged(small_data, tmp_path):
    run = _train(small_data, tmp_path / "a", 1)
    checkpoints = run / "checkpoints"
    (checkpoints / "train-last.ckpt").write_bytes(b"")  # what a kill mid-write used to leave
    result = cli("train", "--resume", run, "--epochs", 2)
    assert "train-best.ckpt" in result.stderr
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == [1, 2]
    (checkpoints / "train-last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    bad = cli("train", "--resume", checkpoints / "train-last.ckpt", check=False)
    assert bad.returncode == 1 and "not a complete checkpoint" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_resume_never_writes_over_damaged_checkpoints_without_restart(small_data, tmp_path):
    from pneumocxr.training.checkpoints import checkpoint_epoch

    run = _train(small_data, tmp_path / "a", 1)
    checkpoints = run / "checkpoints"
    for path in checkpoints.glob("*.ckpt"):  # what a disk error could leave
        path.write_bytes(b"PK\x03\x04 damaged " + path.name.encode())
    damaged = {p.name: p.read_bytes() for p in checkpoints.glob("*.ckpt")}
    assert sorted(damaged) == ["train-best.ckpt", "train-last.ckpt"]
    refused = cli("train", "--resume", run, "--epochs", 2, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    (error,) = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert "every checkpoint" in error and "--restart" in error and "train-last.ckpt" in error
    assert {p.name: p.read_bytes() for p in checkpoints.glob("*.ckpt")} == damaged
    restarted = cli("train", "--resume", run, "--epochs", 1, "--restart")
    (aside,) = checkpoints.glob("damaged-*")
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == damaged  # kept, not deleted
    assert "moved 2 damaged checkpoint(s)" in restarted.stderr
    assert checkpoint_epoch(checkpoints / "train-last.ckpt") is not None  # a new, sound one
    assert "--restart" in cli("train", "--help").stdout


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    from pneumocxr.fileio.atomic import DiskFull
    from pneumocxr.training.checkpoints import AtomicCheckpointIO, checkpoint_epoch

    path = tmp_path / "train-last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1, "state_dict": {}}, path)

    def broken_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(DiskFull, match=f"no space left on {tmp_path}"):
        AtomicCheckpointIO().save_checkpoint({"epoch": 2, "state_dict": {}}, path)
    assert checkpoint_epoch(path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["train-last.ckpt"]


def test_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    from pneumocxr.training.checkpoints import rng_state, set_rng_state

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    torch.save({"rng": rng_state()}, tmp_path / "c.ckpt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(tmp_path / "c.ckpt", weights_only=True)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]
    assert os.path.getsize(tmp_path / "c.ckpt") < 20_000
