"""Bad input: one clear line on stderr, a non-zero exit, no traceback, nothing overwritten."""

from __future__ import annotations

import os

import pytest

from conftest import cli, make_subset, shared_images


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
