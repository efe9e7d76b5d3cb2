"""What the tool writes and prints stays whole and parseable, whatever the file names hold;
data folders count each image once; nothing runs from data; no patient data is printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from conftest import cli, cli_batch, make_subset, problems, shared_images
from corpus import picture
from dicom_factory import make_dicom, twelve_bit
from pneumocxr.data.index import index_images
from pneumocxr.fileio.formats import read_csv

ODD_NAMES = [os.fsdecode(b"caf\xe9.jpeg"), "two\nlines.jpeg", "tab\there.jpeg", "back\\slash.jpeg"]


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    source = shared_images("NORMAL", 1)[0]
    for name in [*ODD_NAMES, "plain.jpeg"]:
        shutil.copy(source, folder / name)
    return folder


@pytest.fixture(scope="module")
def batch(odd_folder, kaggle_zip, tmp_path_factory):
    """The CLI runs of this module, in one process (torch is imported once)."""
    out = tmp_path_factory.mktemp("batch")
    warn = out / "warn"
    warn.mkdir()
    (warn / "bad\nname.jpeg").write_bytes(b"not an image")
    shutil.copy(shared_images("NORMAL", 1)[0], warn / "good.jpeg")
    sizes = out / "sizes"
    sizes.mkdir()
    Image.new("L", (1, 1)).save(sizes / "dot.png")
    Image.new("L", (20000, 10)).save(sizes / "line.png")
    Image.new("L", (4000, 600)).save(sizes / "strip.png")  # 6.7:1
    (sizes / "black.png").write_bytes(_black_png(21000, 21000))
    commands = {
        "odd": ["predict", odd_folder, "--csv", out / "p.csv"],
        "warn": ["predict", warn],
        "sizes": ["predict", sizes],
        "split": ["split", "--data", kaggle_zip, "--out", out / "s", "--split", "image"],
    }
    return out, dict(zip(commands, cli_batch(list(commands.values()))))


def test_odd_file_names_keep_one_tsv_line_each_and_a_csv(odd_folder, batch):
    tmp_path, results = batch
    result = results["odd"]
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and all(line.count("\t") == 2 for line in lines)
    shown = sorted(line.split("\t")[0].rsplit("/", 1)[1] for line in lines)
    assert shown == sorted(
        ["caf\\xe9.jpeg", "two\\nlines.jpeg", "tab\\there.jpeg", "back\\\\slash.jpeg", "plain.jpeg"]
    )
    listed = sorted(os.path.basename(p) for p in read_csv(tmp_path / "p.csv")["path"])
    assert listed == sorted([*ODD_NAMES, "plain.jpeg"])  # the exact names, bytes and all
    for name in listed:
        assert (odd_folder / name).is_file()


def test_predict_json_is_valid_utf8_with_names_escaped_as_in_the_text(odd_folder):
    done = subprocess.run([sys.executable, "-m", "pneumocxr.cli", "predict", "--json",
                           odd_folder], capture_output=True, timeout=600, check=True)  # fmt: skip
    rows = [json.loads(line) for line in done.stdout.decode("utf-8", errors="strict").splitlines()]
    shown = sorted(row["path"].rsplit("/", 1)[1] for row in rows)
    assert shown == sorted(
        ["caf\\xe9.jpeg", "two\\nlines.jpeg", "tab\\there.jpeg", "back\\\\slash.jpeg", "plain.jpeg"]
    )
    for row in rows:
        row["path"].encode("utf-8")  # no lone surrogate


FORMULAS = ["=cmd|calc.jpeg", "+1.jpeg", "-2.jpeg", "@sum.jpeg"]


def test_csv_cells_a_spreadsheet_would_run_are_quoted(tmp_path):
    for name in [*FORMULAS, "plain.jpeg"]:
        shutil.copy(shared_images("NORMAL", 1)[0], tmp_path / name)
    cli("predict", "--csv", "p.csv", "--", *FORMULAS, "plain.jpeg", cwd=tmp_path)
    cells = [line.split(",")[0] for line in (tmp_path / "p.csv").read_text().splitlines()[1:]]
    assert [c.lstrip('"') for c in cells] == [f"'{n}" for n in FORMULAS] + ["plain.jpeg"]
    assert read_csv(tmp_path / "p.csv")["path"].tolist() == [*FORMULAS, "plain.jpeg"]


@pytest.mark.parametrize(
    "text", ["=1+1", "+x", "-1", "@a", "\tx", "\rx", "'=a", "''-a", "'quoted", "plain", "a=b", ""]
)
def test_the_tool_reads_its_own_csv_cells_back_exactly(tmp_path, text):
    import pandas as pd

    from pneumocxr.fileio.formats import write_csv

    write_csv(tmp_path / "t.csv", pd.DataFrame({"path": [text, "x"], "p": [-0.5, 1.0]}))
    first = (tmp_path / "t.csv").read_text().splitlines()[1].lstrip('"')
    assert not first.startswith(("=", "+", "-", "@", "\t", "\r"))  # never a formula
    back = read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert back["path"].tolist() == [text, "x"] and back["p"].tolist() == [-0.5, 1.0]


def test_splits_csv_with_formula_like_names_reads_back(tmp_path):
    from pneumocxr.data.split_file import read_splits

    root = make_subset(tmp_path / "data", 15, 15)
    for label in ("NORMAL", "PNEUMONIA"):  # the patient id is taken from such a name
        first = sorted((root / label).iterdir())[0]
        first.rename(first.with_name(f"=HYPERLINK(1)-{label}.jpeg"))
    cli("split", "--data", root, "--out", tmp_path / "s")
    text = (tmp_path / "s" / "splits.csv").read_text()
    assert ",=" not in text and ",'=HYPERLINK(1)-NORMAL," in text
    patients = set(read_splits(tmp_path / "s")["patient"])
    assert {"=HYPERLINK(1)-NORMAL", "=HYPERLINK(1)-PNEUMONIA"} <= patients


def test_csv_into_a_folder_is_a_clear_error(odd_folder, tmp_path):
    result = cli("predict", odd_folder / "plain.jpeg", "--csv", tmp_path, check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: --csv {tmp_path} is a folder; give a file name\n"
    assert list(tmp_path.iterdir()) == []


def test_a_warning_naming_an_odd_file_stays_on_one_line(batch):
    out, results = batch
    assert problems(results["warn"].stderr) == [
        f"warning: skipped {out}/warn/bad\\nname.jpeg: not a readable image (unknown format "
        "or damaged)"
    ]


def test_dicom2png_gives_same_named_dicoms_their_own_png(tmp_path):
    stored = twelve_bit(picture())
    for name in ("scan", "scan.dcm", "scan.dicom"):
        make_dicom(tmp_path / "in" / name if (tmp_path / "in").exists() else _mkdir(tmp_path)
                   / name, stored)  # fmt: skip
    cli("dicom2png", tmp_path / "in", tmp_path / "out")
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["scan.dcm.png", "scan.dicom.png", "scan.png"]


def test_dicom2png_keeps_earlier_pngs_without_overwrite(tmp_path):
    stored = twelve_bit(picture())
    folder = _mkdir(tmp_path)
    make_dicom(folder / "a.dcm", stored)
    make_dicom(folder / "b.dcm", 4095 - stored)
    single, tree = tmp_path / "one.png", tmp_path / "out"
    first = cli_batch([["dicom2png", folder / "a.dcm", single], ["dicom2png", folder, tree]])
    assert [r.returncode for r in first] == [0, 0]
    single.write_bytes(b"kept"), (tree / "a.png").write_bytes(b"kept")
    again = cli_batch([["dicom2png", folder / "a.dcm", single], ["dicom2png", folder, tree]])
    for result in again:
        assert result.returncode == 1 and "pass --overwrite" in result.stderr, result.stderr
    assert single.read_bytes() == b"kept" and (tree / "a.png").read_bytes() == b"kept"
    forced = cli_batch(
        [
            ["dicom2png", folder / "a.dcm", single, "--overwrite"],
            ["dicom2png", folder, tree, "--overwrite"],
            ["dicom2png", "--help"],
        ]
    )
    assert [r.returncode for r in forced] == [0, 0, 0]
    assert Image.open(single).size == Image.open(tree / "a.png").size == stored.shape[::-1]
    assert "--overwrite" in forced[2].stdout


def _mkdir(tmp_path):
    (tmp_path / "in").mkdir()
    return tmp_path / "in"


# -- data folders -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kaggle_zip(tmp_path_factory):
    """A Kaggle-zip layout: chest_xray/train/... and the same files again under
    chest_xray/chest_xray/train/... (real copies, as unzipping makes them)."""
    root = tmp_path_factory.mktemp("zip") / "chest_xray"
    for label in ("NORMAL", "PNEUMONIA"):
        for outer in (root / "train" / label, root / "chest_xray" / "train" / label):
            outer.mkdir(parents=True)
            for image in shared_images(label, 15, start=200):
                shutil.copy(image, outer / image.name)
    return root


def test_a_nested_copy_of_the_data_counts_once(kaggle_zip, caplog):
    table = index_images(kaggle_zip)
    assert len(table) == 30 and not table["path"].str.contains("chest_xray/chest_xray").any()
    assert "30 duplicate file(s) ignored" in caplog.text


def test_the_image_split_never_puts_one_file_in_two_splits(batch):
    out, results = batch
    assert results["split"].stderr.count("duplicate file(s) ignored") == 1
    table = read_csv(out / "s" / "splits.csv")
    names = table["path"].map(os.path.basename)
    assert len(table) == 30 and names.is_unique


def test_a_file_filed_under_both_labels_is_left_out(tmp_path, caplog):
    root = make_subset(tmp_path / "data", 5, 5)
    image = shared_images("NORMAL", 1, start=300)[0]
    shutil.copy(image, root / "NORMAL" / image.name)
    shutil.copy(image, root / "PNEUMONIA" / image.name)
    table = index_images(root)
    assert len(table) == 10 and image.name not in " ".join(table["path"])
    assert "filed as both NORMAL and PNEUMONIA" in caplog.text


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP"])
def test_other_formats_are_read_in_folders_as_when_named(tmp_path, fmt):
    root = make_subset(tmp_path / "data", 4, 4)
    image = Image.open(shared_images("NORMAL", 1, start=50)[0]).convert("L")
    image.save(root / "NORMAL" / f"extra.{fmt.lower()}", format=fmt)
    table = index_images(root)
    assert table["path"].str.endswith(f"extra.{fmt.lower()}").sum() == 1


def test_sizes_no_radiograph_has_are_refused(batch):
    result = batch[1]["sizes"]
    assert result.returncode == 1 and result.stdout == ""
    messages = sorted(line.split(".png: ", 1)[1] for line in problems(result.stderr)[:-1])
    assert messages == [
        "1x1 pixels is too small for a radiograph (each side must be at least 32)",
        "20000x10 pixels is too small for a radiograph (each side must be at least 32)",
        "4000x600 pixels is too elongated for a radiograph (at most 5:1 allowed)",
        "over 128 megapixels (the limit is 64); a decompression bomb or not a radiograph",
    ]
    assert "Warning" not in result.stderr


def _black_png(width, height):
    from corpus import _black_png as black

    return black(width, height)


# -- nothing runs from data, nothing private is printed -----------------------------------------
def test_a_pth_weights_file_needs_trust_pickle(tmp_path, small_data):
    import torch

    from pneumocxr.networks.efficientnet_lite import EfficientNetLite0

    torch.save(EfficientNetLite0(64).state_dict(), tmp_path / "weights.pth")
    common = ["train", "--data", small_data, "--model", "efficientnet-lite0", "--out", tmp_path,
              "--weights", tmp_path / "weights.pth", "--unfreeze", "99"]  # fmt: skip
    refused, trusted = cli_batch([common, [*common, "--trust-pickle"]])
    assert refused.returncode == 1 and "pickle-based" in refused.stderr
    assert "--trust-pickle" in refused.stderr
    # Trusted, it is read (and training then stops at the bad --unfreeze, after the weights).
    assert trusted.returncode == 1 and "--unfreeze must be between" in trusted.stderr


def test_patient_data_never_reaches_the_output(tmp_path):
    secret = {"PatientName": "Secretname^Jane", "PatientID": "SECRETID77",
              "PatientBirthDate": "19700101", "InstitutionName": "Secret Hospital"}  # fmt: skip
    stored = twelve_bit(picture())
    made = {
        "good": make_dicom(tmp_path / "good.dcm", stored),
        "bad_window": make_dicom(tmp_path / "window.dcm", stored, window=(2048, 0)),
        "truncated": make_dicom(tmp_path / "cut.dcm", stored),
    }
    import pydicom

    for path in made.values():
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():  # pydicom warns here too, writing the invalid values
            warnings.simplefilter("ignore")
            for key, value in secret.items():
                setattr(ds, key, value)
            ds.SpecificCharacterSet = "Secretname"  # an invalid value pydicom would warn about
            ds.save_as(path)
    data = made["truncated"].read_bytes()
    made["truncated"].write_bytes(data[: len(data) - 5000])
    results = cli_batch(
        [["predict", *made.values()], ["dicom2png", tmp_path, tmp_path / "png"]]
        + [["dicom2png", path, tmp_path / f"{name}.png"] for name, path in made.items()]
    )
    for result in results:
        text = result.stdout + result.stderr
        for value in ("Secretname", "Jane", "SECRETID77", "19700101", "Secret Hospital"):
            assert value not in text, (result.args, text)
    assert results[0].returncode == 0 and len(results[0].stdout.splitlines()) == 1
    assert len(problems(results[0].stderr)) == 2  # the two damaged files, one line each
    assert np.asarray(Image.open(tmp_path / "good.png")).shape[:2] == stored.shape
