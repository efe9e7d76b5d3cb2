"""Bulk scoring (`pneumocxr predict ... --csv/--jsonl`, docs/SCALING.md): two processes give
exactly the rows of one, a run killed with SIGKILL and resumed gives exactly the rows of one
that was not, and the rows are those `predict` prints."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli, shared_images
from pneumocxr.errors import PneumoError
from pneumocxr.inference.bulk_output import ResultFile

ROWS = 48


@pytest.fixture(scope="module")
def listing(tmp_path_factory) -> Path:
    """A CSV listing real X-rays under other names (links), with one file that is no image."""
    folder = tmp_path_factory.mktemp("listing")
    images = shared_images("NORMAL", ROWS // 2, 200) + shared_images("PNEUMONIA", ROWS // 2, 200)
    names = []
    for i, image in enumerate(images):
        (folder / f"x{i:03d}.jpeg").symlink_to(image)
        names.append(f"x{i:03d}.jpeg")
    (folder / "broken.png").write_text("not an image")
    names.insert(13, "broken.png")
    (folder / "list.csv").write_text("path\n" + "\n".join(names) + "\n")
    return folder / "list.csv"


@pytest.fixture(scope="module")
def long_listing(listing) -> Path:
    """The same images listed 8 times: a run long enough to stop part of the way."""
    rows = listing.read_text().splitlines()[1:]
    long = listing.with_name("long.csv")
    long.write_text("path\n" + "\n".join(rows * 8) + "\n")
    return long


def _predict(model, listing, out, *extra, check=True):
    return cli("predict", "--model", model, "--labels", listing, "--csv", out,
               "--batch-size", 5, *extra, check=check)  # fmt: skip


def test_two_processes_give_exactly_the_rows_of_one(smallnet_run, listing, tmp_path):
    one = _predict(smallnet_run, listing, tmp_path / "one.csv")
    two = _predict(smallnet_run, listing, tmp_path / "two.csv", "--accelerator", "cpu",
                   "--devices", 2, "--strategy", "ddp")  # fmt: skip
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert len((tmp_path / "one.csv").read_text().splitlines()) == ROWS + 1  # and the header
    assert one.stdout == two.stdout  # printed as they came, or at the merge, in input order
    assert "broken.png" in two.stderr and "Initializing distributed" not in two.stderr
    assert not [p for p in tmp_path.iterdir() if ".part-" in p.name]  # the parts are merged


def test_a_killed_run_resumes_to_exactly_the_rows_of_one_not_killed(smallnet_run, long_listing,
                                                                     tmp_path):  # fmt: skip
    _predict(smallnet_run, long_listing, tmp_path / "whole.csv")
    out = tmp_path / "killed.csv"
    command = [sys.executable, "-m", "pneumocxr.cli", "predict", "--model", str(smallnet_run),
               "--labels", str(long_listing), "--csv", str(out), "--batch-size", "5"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = tmp_path / ".killed.csv.progress.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _batches(record) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done, total = _batches(record), (8 * (ROWS + 1) + 4) // 5
    assert 3 <= done < total, done  # stopped part of the way
    with open(out, "ab") as handle:  # a batch written but not yet recorded when it died
        handle.write(b"/half/a/row.jpeg,NORM")
    resumed = _predict(smallnet_run, long_listing, out, "--resume")
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()
    printed = len(resumed.stdout.splitlines())  # only the rows of the batches not yet done
    assert 0 < printed < 8 * ROWS


def _batches(record: Path) -> int:
    try:
        return json.loads(record.read_text())["batches"]
    except (OSError, ValueError, KeyError):
        return 0


def test_resume_refuses_what_it_cannot_continue(smallnet_run, listing, tmp_path):
    out = tmp_path / "a.csv"
    _predict(smallnet_run, listing, out)
    again = _predict(smallnet_run, listing, out, "--resume")
    assert "complete already" in again.stderr and again.stdout == ""
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no record left
    unfinished = ResultFile(tmp_path / "b.csv", "csv", "these inputs", resume=False)
    with pytest.raises(PneumoError, match="other inputs, another model or other settings"):
        ResultFile(tmp_path / "b.csv", "csv", "other inputs", resume=True)
    with pytest.raises(PneumoError, match="written by 1 process"):
        ResultFile(tmp_path / "b.csv", "csv", "these inputs", resume=True, world=2)
    assert ResultFile(tmp_path / "b.csv", "csv", "these inputs", resume=True).batches == 0
    assert unfinished.batches == 0
    foreign = tmp_path / "mine.csv"
    foreign.write_text("path,label\nscan.png,NORMAL\n")  # a user's own label CSV
    refused = _predict(smallnet_run, listing, foreign, check=False)
    assert refused.returncode == 1 and "not written by pneumocxr" in refused.stderr
    assert foreign.read_text() == "path,label\nscan.png,NORMAL\n"
    alone = cli("predict", "--labels", listing, "--resume", check=False)
    assert alone.returncode == 1 and "--resume continues a --csv or --jsonl file" in alone.stderr


def test_jsonl_holds_the_lines_predict_json_prints(smallnet_run, listing, tmp_path):
    out = tmp_path / "a.jsonl"
    printed = cli("predict", "--model", smallnet_run, "--labels", listing, "--json",
                  "--jsonl", out)  # fmt: skip
    assert out.read_text() == printed.stdout and len(printed.stdout.splitlines()) == ROWS
