"""kill -9 of a real `evaluate` or `export` at chosen moments: the output folder holds the old
results or the new ones, complete, never a mix, and the next successful run cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli_batch, make_subset
from corpus import good_model
from pneumocxr.artifact.load import load_model
from pneumocxr.artifact.save import save_model
from pneumocxr.evaluation.evaluate import EVALUATION_FILES
from pneumocxr.networks.smallnet import SmallNet
from pneumocxr.pipeline.assess import evaluate_to_folder
from pneumocxr.pipeline.export import export_model


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def files_in(path: Path) -> int:
    try:
        return len(os.listdir(path))
    except OSError:
        return -1


def kill_when(command: list, parent: Path, moment, limit: float = 120) -> bool:
    """Start the CLI, poll `parent` until `moment(temporary folders)` holds, then SIGKILL.
    False when the command finished before the moment came."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pneumocxr.cli", *map(str, command)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + limit
    try:
        while process.poll() is None and time.monotonic() < deadline:
            temps = [p for p in parent.glob(".*.tmp") if p.is_dir()]
            if temps and moment(temps[0]):
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                return True
            time.sleep(0.001)
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def evaluation_setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("kill-eval")
    data = make_subset(base / "data", 8, 8)
    old, new = good_model(base / "old"), good_model(base / "new")  # two random models
    out = base / "parent" / "evaluation"
    evaluate_to_folder(old, out, data)  # the earlier results
    evaluate_to_folder(new, base / "reference", data)  # what a complete new run writes
    return data, old, new, out, snapshot(base / "reference")


# Moments inside the write: the temporary folder holds some outputs; it holds them all.
EVALUATE_MOMENTS = {
    "half written": lambda tmp: files_in(tmp) >= 3,
    "all written": lambda tmp: files_in(tmp) >= len(EVALUATION_FILES),
}


@pytest.mark.parametrize("moment", list(EVALUATE_MOMENTS))
def test_evaluate_killed_leaves_old_or_new_results_whole(evaluation_setup, moment):
    data, old, new, out, complete = evaluation_setup
    before = snapshot(out)
    command = ["evaluate", new, "--data", data, "--out", out, "--overwrite"]
    killed = kill_when(command, out.parent, EVALUATE_MOMENTS[moment])
    after = snapshot(out)
    assert set(after) == EVALUATION_FILES
    assert after in (before, complete)  # all old or all new, byte for byte: never a mix
    assert killed or after == complete, "the command ended before the moment came"
    # The next successful write (the old model's results back) removes the killed temp.
    evaluate_to_folder(old, out, data, overwrite=True)
    assert hidden(out.parent) == []


def test_evaluate_refuses_to_overwrite_without_being_asked(evaluation_setup, tmp_path):
    data, _, new, out, _ = evaluation_setup
    before = snapshot(out)
    (tmp_path / "notes.txt").write_text("mine")
    plain, foreign = cli_batch([
        ["evaluate", new, "--data", data, "--out", out],
        ["evaluate", new, "--data", data, "--out", tmp_path, "--overwrite"],
    ])  # fmt: skip
    assert plain.returncode == 1 and "pass --overwrite to replace them" in plain.stderr
    assert snapshot(out) == before
    assert foreign.returncode == 1 and "notes.txt" in foreign.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def export_setup(tmp_path_factory):
    """A 44 MB SmallNet (224 px), so that writing it takes long enough to be caught."""
    base = tmp_path_factory.mktemp("kill-export")
    source = base / "source"
    save_model(SmallNet(224), source)
    out = base / "parent" / "model"
    export_model(source, out, half=True)
    return source, out


EXPORT_MOMENTS = {
    "weights being written": lambda tmp: any(p.name.startswith(".") for p in tmp.iterdir()),
    "weights written": lambda tmp: (tmp / "model.safetensors").exists(),
}


@pytest.mark.parametrize("moment", list(EXPORT_MOMENTS))
def test_export_killed_leaves_a_whole_model(export_setup, moment):
    source, out = export_setup
    before = snapshot(out)
    command = ["export", source, "--out", out, "--overwrite"]  # float32 this time
    killed = kill_when(command, out.parent, EXPORT_MOMENTS[moment])
    after = snapshot(out)
    assert set(after) == {"model.safetensors", "model.json"}
    assert killed or after != before, "the command ended before the moment came"
    assert after == before or load_model(out).meta["weights"]["dtype"] == "float32"
    load_model(out)  # weights and metadata belong together either way
    export_model(source, out, half=True, overwrite=True)
    assert hidden(out.parent) == []


def test_a_killed_first_export_leaves_nothing_behind(export_setup, tmp_path):
    source, _ = export_setup
    out = tmp_path / "model"
    assert kill_when(["export", source, "--out", out], tmp_path, EXPORT_MOMENTS["weights written"])
    assert not out.exists() and hidden(tmp_path)  # no model at all, and a temporary folder
    export_model(source, out)
    assert hidden(tmp_path) == [] and load_model(out)


def test_the_next_write_removes_temporaries_of_dead_writers_only(tmp_path):
    """What a run folder looks like after kill -9 during an export, then a resumed export."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)  # a process id that no longer runs
    stale = tmp_path / f".model.safetensors.{dead.pid}.abc123.safetensors"
    stale.write_bytes(b"")
    live = tmp_path / f".model.safetensors.{os.getppid()}.def456.safetensors"
    live.write_bytes(b"")  # another writer, still running
    other = tmp_path / ".model.safetensors.swp"
    other.write_bytes(b"")  # not ours at all
    save_model(SmallNet(32), tmp_path)
    assert not stale.exists() and live.exists() and other.exists()
    load_model(tmp_path)
