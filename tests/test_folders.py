"""Folders as users have them: symlinked folders and files, symlink loops, broken links, hidden
and unreadable folders. Every command that reads a folder walks it with data/index.py's
`walk_files`: nothing is dropped without a warning, and --strict makes lost input an error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import cli_batch, make_subset, shared_images
from corpus import good_model
from dicom_factory import jpeg_pixels, make_dicom, twelve_bit
from pneumocxr.data.index import index_images, walk_files
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import read_csv


def warnings_of(result) -> list[str]:
    return [x for x in result.stderr.splitlines() if x.startswith("warning:")]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return good_model(tmp_path_factory.mktemp("model") / "good")


def test_symlinked_class_folders_files_and_dicom_trees_are_read(tmp_path, model):
    elsewhere = make_subset(tmp_path / "elsewhere", 3, 4)
    data = tmp_path / "data"
    data.mkdir()
    (data / "NORMAL").symlink_to(elsewhere / "NORMAL")
    (data / "PNEUMONIA").symlink_to(elsewhere / "PNEUMONIA")
    table = index_images(data)
    assert table["label"].value_counts().to_dict() == {"PNEUMONIA": 4, "NORMAL": 3}
    scans = tmp_path / "scans"
    scans.mkdir()
    for image in shared_images("NORMAL", 2):
        make_dicom(scans / f"{image.stem}.dcm", twelve_bit(jpeg_pixels(image)))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "ward").symlink_to(scans)
    predicted, converted = cli_batch(
        [["predict", "--model", model, data], ["dicom2png", tree, tmp_path / "png"]]
    )
    assert predicted.returncode == 0 and len(predicted.stdout.splitlines()) == 7
    assert converted.returncode == 0, converted.stderr
    assert len(list((tmp_path / "png" / "ward").glob("*.png"))) == 2


def test_official_split_reads_symlinked_train_and_test_folders(tmp_path):
    store = tmp_path / "store"
    make_subset(store / "train", 30, 30)
    make_subset(store / "test", 8, 8, start=300)
    root = tmp_path / "chest_xray"
    root.mkdir()
    (root / "train").symlink_to(store / "train")
    (root / "test").symlink_to(store / "test")
    (result,) = cli_batch(
        [["split", "--data", root, "--out", tmp_path / "s", "--split", "official"]]
    )
    assert result.returncode == 0, result.stderr
    table = read_csv(tmp_path / "s" / "splits.csv", keep_default_na=False)
    test = table[table["split"] == "test"]
    assert len(test) == 16 and set(test["source"]) == {"test"}
    assert set(table.loc[table["split"] != "test", "source"]) == {"train"}


def test_a_symlink_loop_is_reported_once_and_not_followed(tmp_path, caplog):
    data = make_subset(tmp_path / "data", 6, 6)
    (data / "NORMAL" / "again").symlink_to(data)  # a link to a folder above it
    (data / "PNEUMONIA" / "self").symlink_to(data / "PNEUMONIA")
    table = index_images(data)
    assert len(table) == 12
    loops = [r.getMessage() for r in caplog.records if "symlink loop" in r.getMessage()]
    assert len(loops) == 1 and loops[0].startswith("2 symlink loops not followed")
    (result,) = cli_batch([["split", "--data", data, "--out", tmp_path / "s", "--strict"]])
    assert result.returncode == 0, result.stderr  # nothing is lost in a loop
    assert len(read_csv(tmp_path / "s" / "splits.csv")) == 12
    assert len([x for x in warnings_of(result) if "symlink loop" in x]) == 1


def test_a_broken_link_is_named_by_itself_and_fails_with_strict(tmp_path, model):
    data = make_subset(tmp_path / "data", 6, 6)
    moved = shared_images("NORMAL", 1, 20)[0]
    target = tmp_path / "moved" / "target-name.jpeg"
    (data / "NORMAL" / moved.name).symlink_to(target)
    link = data / "NORMAL" / moved.name
    split, strict, predicted, named = cli_batch(
        [
            ["split", "--data", data, "--out", tmp_path / "s"],
            ["split", "--data", data, "--out", tmp_path / "t", "--strict"],
            ["predict", "--model", model, data],
            ["predict", "--model", model, link],
        ]
    )
    for result in (split, predicted):
        (line,) = warnings_of(result)
        assert f"broken symbolic link: {link}" in line and "target-name" not in line, line
    assert len(read_csv(tmp_path / "s" / "splits.csv")) == 12
    assert strict.returncode == 1 and not (tmp_path / "t" / "splits.csv").exists()
    assert strict.stderr.strip() == (
        f"error: 1 link cannot be followed (broken symbolic link: {link})"
    )
    assert named.returncode == 1 and named.stderr.strip() == f"error: broken symbolic link: {link}"


def test_hidden_folders_are_left_out_and_said_once(tmp_path):
    data = make_subset(tmp_path / "data", 6, 6)
    make_subset(data / ".ipynb_checkpoints", 2, 1, start=50)
    make_subset(data / "PNEUMONIA" / ".Trash", 0, 3, start=60)
    assert len(walk_files(data)) == 12
    (result,) = cli_batch([["split", "--data", data, "--out", tmp_path / "s"]])
    assert result.returncode == 0, result.stderr
    (line,) = warnings_of(result)
    assert line.startswith("warning: 6 image files in hidden folders left out (")
    assert ".ipynb_checkpoints: 3" in line and ".Trash: 3" in line
    assert len(read_csv(tmp_path / "s" / "splits.csv")) == 12


def test_a_folder_that_cannot_be_listed_is_said_or_an_error(tmp_path, monkeypatch, caplog):
    data = make_subset(tmp_path / "data", 5, 5)
    locked = make_subset(data / "more", 3, 0, start=30) / "NORMAL"
    listing = os.scandir

    def scandir(path):
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert len(index_images(data)) == 10
    (message,) = [r.getMessage() for r in caplog.records]
    assert message == (
        f"1 folder could not be read (permission denied: {locked}); its images are not used"
    )
    with pytest.raises(PneumoError, match="^1 folder could not be read"):
        index_images(data, strict=True)
    with pytest.raises(PneumoError, match="cannot read the folder"):
        walk_files(locked)


def _unprivileged() -> list[str]:
    """A prefix under which a mode-000 folder cannot be read: none for a user, and for root
    setpriv without the capabilities that bypass file permissions."""
    if os.geteuid() != 0:
        return []
    drop = "-dac_override,-dac_read_search"
    prefix = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a folder unreadable")
    probe = subprocess.run([*prefix, sys.executable, "-c", "import os; os.listdir('/root')"])
    if probe.returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here")
    return prefix


def test_an_unreadable_class_folder_is_never_dropped_silently(tmp_path, model):
    prefix = _unprivileged()
    data = make_subset(tmp_path / "data", 5, 5)
    locked = make_subset(data / "more", 3, 0, start=30) / "NORMAL"
    locked.chmod(0)
    out = tmp_path / "out"
    commands = {
        "split": ["split", "--data", data, "--out", out / "s"],
        "evaluate": ["evaluate", model, "--data", data, "--out", out / "e"],
        "predict": ["predict", "--model", model, data],
    }
    strict = {f"{k} --strict": [*v, "--strict"] for k, v in commands.items()}
    strict["split --strict"][4] = out / "t"
    strict["evaluate --strict"][5] = out / "f"
    try:
        results = dict(zip([*commands, *strict], cli_batch([*commands.values(), *strict.values()],
                                                           prefix=prefix)))  # fmt: skip
    finally:
        locked.chmod(0o755)
    message = f"1 folder could not be read (permission denied: {locked})"
    for name in commands:
        result = results[name]
        assert result.returncode == 0, (name, result.stderr)
        assert warnings_of(result) == [f"warning: {message}; its images are not used"], name
        failed = results[f"{name} --strict"]
        assert failed.returncode == 1 and failed.stderr.strip() == f"error: {message}", name
    assert len(read_csv(out / "s" / "splits.csv")) == 10
    assert len(results["predict"].stdout.splitlines()) == 10
    assert not (out / "t").joinpath("splits.csv").exists() and not (out / "f").exists()
