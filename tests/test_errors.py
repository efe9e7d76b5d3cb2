"""Bad input: one clear line on stderr, a non-zero exit, no traceback, nothing overwritten."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import cli, cli_batch, make_subset, shared_images
from in_process import run_cli
from pneumocxr.errors import PneumoError


def assert_clean_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize("command", ["split", "train"])
def test_missing_folder(tmp_path, command):
    result = cli(command, "--data", tmp_path / "nowhere", "--out", tmp_path / "o", check=False)
    assert_clean_error(result, "not found", "nowhere")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("split", "--data", tmp_path / "empty", "--out", tmp_path / "o", check=False)
    assert_clean_error(result, "no images found")


def test_only_one_class(tmp_path):
    root = tmp_path / "data"
    (root / "PNEUMONIA").mkdir(parents=True)
    for image in shared_images("PNEUMONIA", 5):
        (root / "PNEUMONIA" / image.name).symlink_to(image)
    result = cli("train", "--data", root, "--out", tmp_path / "o", check=False)
    assert_clean_error(result, "only PNEUMONIA", "both NORMAL and PNEUMONIA")


@pytest.fixture
def data_with_junk(tmp_path):
    root = make_subset(tmp_path / "data", 30, 30)
    good = shared_images("NORMAL", 1)[0].read_bytes()
    (root / "NORMAL" / "IM-9000-0001.jpeg").write_bytes(good[: len(good) // 3])  # truncated
    (root / "PNEUMONIA" / "person9000_virus_1.jpeg").write_text("<html>not an image</html>")
    return root


def test_corrupt_files_are_listed_and_skipped(data_with_junk, tmp_path):
    result = cli("split", "--data", data_with_junk, "--out", tmp_path / "o")
    assert "skipping 2 unreadable file(s)" in result.stderr
    assert "IM-9000-0001.jpeg" in result.stderr and "person9000_virus_1.jpeg" in result.stderr
    splits = (tmp_path / "o" / "splits.csv").read_text()
    assert "IM-9000" not in splits and splits.count("\n") == 61


def test_corrupt_files_fail_with_strict(data_with_junk, tmp_path):
    result = cli(
        "split", "--data", data_with_junk, "--out", tmp_path / "o", "--strict", check=False
    )
    assert_clean_error(result, "unreadable image", "(and 1 more)")
    assert not (tmp_path / "o" / "splits.csv").exists()


def test_unwritable_output_folder(small_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a file")
    result = cli("split", "--data", small_data, "--out", blocker / "out", check=False)
    assert_clean_error(result, "cannot create folder")
    assert blocker.read_text() == "I am a file"
    if os.geteuid() != 0:  # root may write anywhere; the check only means something for users
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = cli("split", "--data", small_data, "--out", locked, check=False)
        assert_clean_error(result, "not writable")


def test_existing_outputs_survive_a_failed_write(small_data, tmp_path):
    out = tmp_path / "o"
    cli("split", "--data", small_data, "--out", out)
    before = (out / "splits.csv").read_bytes()
    result = cli("split", "--data", small_data, "--out", out, "--test-size", "2", check=False)
    assert_clean_error(result, "between 0 and 1")
    assert (out / "splits.csv").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_bad_options_are_reported_without_traceback(small_data, tmp_path):
    result = cli("train", "--data", small_data, "--model", "resnet", check=False)
    assert_clean_error(result, "unknown model 'resnet'")
    result = cli(
        "train",
        "--data",
        small_data,
        "--model",
        "efficientnet-lite0",
        "--unfreeze",
        "99",
        "--out",
        tmp_path,
        check=False,
    )
    assert_clean_error(result, "--unfreeze must be between 0 and 18")
    result = cli("train", "--resume", tmp_path / "nothing", check=False)
    assert_clean_error(result, "not a run folder")


def test_library_errors_stay_on_one_line(tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("image,r1,r2\na.jpeg,NORMAL,NORMAL\nb.jpeg,NORMAL,NORMAL,PNEUMONIA,1\n")
    result = cli("agreement", ratings, check=False)  # pandas' message ends with a newline
    assert_clean_error(result, "not a readable CSV")
    assert result.stderr.strip().count("\n") == 0, result.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "-0.1", "--lr must be above 0"),
        ("--finetune-lr", "0", "--finetune-lr must be above 0"),
        ("--cache-views", "0", "--cache-views must be at least 1"),
        ("--unfreeze", "some", "--unfreeze must be between 0 and 18"),
        ("--image-size", "0", "needs images of at least 32 pixels"),
    ],
)
def test_bad_training_numbers(small_data, tmp_path, option, value, message):
    result = cli(
        "train", "--data", small_data, "--model", "efficientnet-lite0", option, value,
        "--out", tmp_path, check=False,
    )  # fmt: skip
    assert_clean_error(result, message)


def test_a_damaged_model_file(tmp_path):
    for text, message in (("[1, 2]", "not a pneumocxr model"), (
        '{"format": "pneumocxr-model/2", "architecture": "smallnet"}', "incomplete or damaged"
    ), ('{"format": "pneumocxr-model/1"}', "exported by an earlier pneumocxr")):  # fmt: skip
        (tmp_path / "model.json").write_text(text)
        image = shared_images("NORMAL", 1)[0]
        assert_clean_error(cli("predict", "--model", tmp_path, image, check=False), message)


def test_an_oversized_image_is_skipped_like_a_corrupt_one(monkeypatch):
    from PIL import Image

    from pneumocxr.data.decode import decode_all

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 1000-pixel "bomb" limit
    decoded = decode_all(shared_images("NORMAL", 1), 64)
    assert decoded.pixels.shape[0] == 0 and "decompression bomb" in decoded.failures[0][1]


# -- a full disk --------------------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path):
    """A small tmpfs filled to the last byte: real ENOSPC from every writer. Needs root and
    `mount` (a container may refuse it: then skipped; the in-process tests below still run)."""
    mount = tmp_path / "full"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mount],
                          capture_output=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        with open(mount / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 4096)
        yield mount
    finally:
        subprocess.run(["umount", "-l", mount], check=False)


def test_a_full_disk_is_one_line_naming_the_folder_and_leaves_no_folder(full_disk, tmp_path):
    from corpus import good_model
    from dicom_factory import make_dicom, twelve_bit

    model = good_model(tmp_path / "model")
    image = shared_images("NORMAL", 1)[0]
    data = make_subset(tmp_path / "data", 20, 20)
    dicom = make_dicom(tmp_path / "scan.dcm", twelve_bit(np.full((64, 64), 100, np.uint8)))
    commands = {
        "export": ["export", model, "--out", full_disk / "export"],
        "csv": ["predict", image, "--csv", full_disk / "csv" / "p.csv"],
        "split": ["split", "--data", data, "--out", full_disk / "split"],
        "evaluate": ["evaluate", model, "--data", data, "--out", full_disk / "evaluate"],
        "gradcam": ["gradcam", model, image, "--out", full_disk / "gradcam"],
        "dicom2png": ["dicom2png", dicom, full_disk / "png" / "scan.png"],
    }
    results = dict(zip(commands, cli_batch(list(commands.values()))))
    for name, result in results.items():
        folder = "png" if name == "dicom2png" else name
        assert_clean_error(result, f"no space left on {full_disk / folder}")
        assert "internal error" not in result.stderr
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no folder left behind


def test_a_checkpoint_write_on_a_full_disk_says_so(full_disk):
    from pneumocxr.fileio.atomic import DiskFull
    from pneumocxr.training.checkpoints import AtomicCheckpointIO

    state = {"epoch": 1, "weights": torch.zeros(100_000)}
    with pytest.raises(DiskFull, match=f"no space left on {full_disk / 'run'}"):
        AtomicCheckpointIO().save_checkpoint(state, full_disk / "run" / "train-last.ckpt")
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_disk_full_errors_are_recognised_however_wrapped(tmp_path, monkeypatch):
    import pandas as pd
    from safetensors import SafetensorError

    from pneumocxr.fileio.atomic import is_disk_full
    from pneumocxr.fileio.formats import write_csv

    rust = SafetensorError(
        "Error while serializing: I/O error: No space left on device (os error 28)"
    )
    assert is_disk_full(rust) and is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_disk_full(wrapped)

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", no_space)
    with pytest.raises(PneumoError, match=f"^no space left on {tmp_path / 'new'}$"):
        write_csv(tmp_path / "new" / "p.csv", pd.DataFrame({"a": [1]}))
    assert list(tmp_path.iterdir()) == []  # the folder it made for the file is gone again

    def export_fails(*_args, **_kwargs):  # a library error outside pneumocxr's writers
        raise rust

    monkeypatch.setattr("pneumocxr.pipeline.export.export_model", export_fails)
    # run_cli puts the logger back: a handler left on capsys's closed stream broke later tests.
    done = run_cli("export", "default", "--out", tmp_path)
    assert done.returncode == 1
    assert done.stderr.endswith("error: no space left on the disk\n")


# -- messages that name the cause and a way forward ----------------------------------------------
def test_messages_name_the_real_cause(tmp_path, small_data):
    from corpus import good_model

    image = shared_images("NORMAL", 1)[0]
    run = good_model(tmp_path / "run")  # a finished run: its model.json is there
    (run / "checkpoints").mkdir()
    torch.save({"epoch": 3, "state_dict": {}}, run / "checkpoints" / "train-best.ckpt")
    unfinished = tmp_path / "unfinished" / "checkpoints"
    unfinished.mkdir(parents=True)
    torch.save({"epoch": 1, "state_dict": {}}, unfinished / "train-last.ckpt")
    bom = good_model(tmp_path / "bom")
    (bom / "model.json").write_bytes(b"\xef\xbb\xbf" + (bom / "model.json").read_bytes())
    (tmp_path / "dangling.jpeg").symlink_to(tmp_path / "nowhere.jpeg")
    (tmp_path / "loop.jpeg").symlink_to(tmp_path / "loop.jpeg")
    (tmp_path / "gone").symlink_to(tmp_path / "no-model")
    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": torch.zeros(2), "run": print}, evil)
    train = ["train", "--data", small_data, "--model", "efficientnet-lite0", "--out", tmp_path]
    cases = {
        "finished run's checkpoint": (
            ["predict", "--model", run / "checkpoints" / "train-best.ckpt", image],
            ["is a training checkpoint", f"give the run folder {run}", f"export {run} --out"],
        ),
        "unfinished run's checkpoint": (
            ["predict", "--model", unfinished / "train-last.ckpt", image],
            ["is a training checkpoint", f"train --resume {unfinished.parent}"],
        ),
        "dangling image": (["predict", tmp_path / "dangling.jpeg"],
                           [f"broken symbolic link: {tmp_path / 'dangling.jpeg'}"]),
        "image link loop": (["predict", tmp_path / "loop.jpeg"],
                            [f"symbolic link loop: {tmp_path / 'loop.jpeg'}"]),
        "gradcam dangling": (["gradcam", bom, tmp_path / "dangling.jpeg", "--out", tmp_path / "g"],
                             [f"broken symbolic link: {tmp_path / 'dangling.jpeg'}"]),
        "dangling model": (["predict", "--model", tmp_path / "gone", image],
                           [f"broken symbolic link: {tmp_path / 'gone'}"]),
        "model link loop": (["predict", "--model", tmp_path / "loop.jpeg", image],
                            [f"symbolic link loop: {tmp_path / 'loop.jpeg'}"]),
        "pickled objects": ([*train, "--weights", evil, "--trust-pickle"],
                            ["holds Python objects besides tensors (such as print)"]),
    }  # fmt: skip
    results = cli_batch([command for command, _ in cases.values()] + [["predict", "--model", bom,
                                                                       image]])  # fmt: skip
    for (name, (_, fragments)), result in zip(cases.items(), results):
        assert_clean_error(result)
        assert all(f in result.stderr for f in fragments), (name, result.stderr)  # gradcam: warning
        assert "nowhere" not in result.stderr and "no-model" not in result.stderr, name
        assert "weights_only=False" not in result.stderr and "JSON" not in result.stderr, name
    assert results[-1].returncode == 0 and len(results[-1].stdout.splitlines()) == 1  # the BOM
    assert not (tmp_path / "g").exists()


# -- outputs checked before the slow part --------------------------------------------------------
def test_evaluate_checks_its_out_folder_before_any_inference(tmp_path, monkeypatch):
    from pneumocxr.errors import PneumoError
    from pneumocxr.pipeline.assess import evaluate_to_folder

    def inference(*_args, **_kwargs):
        pytest.fail("the model ran before --out was checked")

    monkeypatch.setattr("pneumocxr.evaluation.evaluate.evaluate_model", inference)
    monkeypatch.setattr("pneumocxr.artifact.resolve.resolve_model", inference)
    data = make_subset(tmp_path / "data", 2, 2)
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a file")
    with pytest.raises(PneumoError, match=f"cannot create folder {blocker / 'out'}: .* not a"):
        evaluate_to_folder("default", blocker / "out", data)
    locked = tmp_path / "locked"  # read-only for a user; root writes anyway, so simulated
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != locked and
                        real_access(p, mode, **kw))  # fmt: skip
    for out in (locked / "out", locked / "deeper" / "out"):
        with pytest.raises(PneumoError, match=f"output folder is not writable: {locked}"):
            evaluate_to_folder("default", out, data)
    assert blocker.read_text() == "I am a file" and list(locked.iterdir()) == []


def test_utf16_text_files_say_what_they_are(tmp_path):
    """A ratings CSV and a model.json saved as UTF-16 without a byte-order mark read as UTF-8
    with a NUL between letters: columns like 'p\\x00a\\x00t\\x00h' (issue 22)."""
    image = shared_images("NORMAL", 1)[0]
    (tmp_path / "ratings.csv").write_bytes(
        "image,r1,r2\na.jpeg,normal,normal\n".encode("utf-16-le")
    )
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.json").write_bytes('{"format": "x"}'.encode("utf-16-le"))
    ratings, model = cli_batch(
        [["agreement", tmp_path / "ratings.csv"], ["predict", "--model", tmp_path / "m", image]]
    )
    said = "is not UTF-8 text (it looks like UTF-16 without a byte-order mark); save it as UTF-8"
    for result, path in ((ratings, tmp_path / "ratings.csv"), (model, tmp_path / "m/model.json")):
        assert result.returncode == 1
        assert result.stderr.splitlines() == [f"error: {path} {said}"], result.stderr
