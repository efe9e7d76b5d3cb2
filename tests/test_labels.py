"""A labels CSV instead of class folders (--labels): the RSNA, ChestX-ray14 and CheXpert
conventions read with options alone, a flat folder evaluated exactly like class folders, and
every bad CSV refused in one line."""

from __future__ import annotations

import json
import logging

import numpy as np
import pydicom
import pytest
from PIL import Image

from conftest import cli, cli_batch, make_subset, shared_images
from corpus import good_model
from dicom_factory import make_dicom, twelve_bit
from pneumocxr.data.labels import LabelsSpec, canonical, read_labels
from pneumocxr.data.split import make_splits
from pneumocxr.errors import PneumoError
from pneumocxr.fileio.formats import read_csv


def link(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(image)
    return path


def test_chexpert_style_labels(tmp_path, caplog):
    """CheXpert: paths from the folder above CheXpert-v1.0-small, 1.0 / 0.0 / -1.0 / blank,
    the patient in the path."""
    rows = [("patient00001/study1/view1_frontal.jpg", "1.0"),
            ("patient00001/study2/view1_frontal.jpg", "1.0"),
            ("patient00002/study1/view1_frontal.jpg", "0.0"),
            ("patient00003/study1/view1_frontal.jpg", "-1.0"),
            ("patient00004/study1/view1_frontal.jpg", ""),
            ("patient00005/study1/view2_lateral.jpg", "0")]  # fmt: skip
    images = shared_images("NORMAL", len(rows))
    lines = ["Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Pneumonia"]
    for (path, value), image in zip(rows, images):
        link(tmp_path / "CheXpert-v1.0-small" / "train" / path, image)
        lines.append(f"CheXpert-v1.0-small/train/{path},Female,68,Frontal,AP,,{value}")
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    spec = LabelsSpec(
        str(tmp_path / "train.csv"), path_column="Path", label_column="Pneumonia",
        patient_pattern=r"patient\d+", positive=("1",), negative=("0",), uncertain=("-1",),
    )  # fmt: skip
    table = read_labels(spec)
    assert table["label"].tolist() == ["PNEUMONIA", "PNEUMONIA", "NORMAL", "NORMAL"]
    assert table["patient"].tolist() == ["patient00001"] * 2 + ["patient00002", "patient00005"]
    assert table["path"].tolist() == [str(images[i].resolve()) for i in (0, 1, 2, 5)]
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert message.startswith("2 row(s) of ") and message.endswith(
        "left out: uncertain or empty label in column 'Pneumonia' (-1: 1, empty: 1)"
    )


def test_chestxray14_style_labels(tmp_path):
    """NIH ChestX-ray14: `Image Index`, findings separated by |, a Patient ID column."""
    rows = [("00000001_000.png", "Cardiomegaly", "1"),
            ("00000001_001.png", "Cardiomegaly|Pneumonia", "1"),
            ("00000002_000.png", "No Finding", "2"),
            ("00000003_000.png", "Pneumonia", "3"),
            ("00000003_001.png", "Effusion|Infiltration", "3")]  # fmt: skip
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,View Position,"]
    for (name, findings, patient), image in zip(rows, shared_images("PNEUMONIA", len(rows))):
        link(tmp_path / "images" / name, image)
        lines.append(f"{name},{findings},0,{patient},58,PA,")
    (tmp_path / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    spec = LabelsSpec(
        str(tmp_path / "Data_Entry_2017.csv"), path_column="Image Index",
        label_column="Finding Labels", patient_column="Patient ID", positive=("Pneumonia",),
        separator="|",
    )  # fmt: skip
    table = read_labels(spec, tmp_path / "images")
    assert table["label"].tolist() == ["NORMAL", "PNEUMONIA", "NORMAL", "PNEUMONIA", "NORMAL"]
    assert table["patient"].tolist() == ["1", "1", "2", "3", "3"]


def test_label_values_compare_by_case_and_number():
    assert canonical(" Pneumonia ") == canonical("PNEUMONIA") == "pneumonia"
    assert canonical("1.0") == canonical("1") == "1" and canonical("-1.0") == "-1"
    assert canonical("") == "" and canonical("0.5") == "0.5"


@pytest.fixture
def flat(tmp_path):
    """A flat folder of renamed X-rays (0001.jpeg...) and its labels CSV."""
    (tmp_path / "flat").mkdir()
    lines = ["path,label"]
    for i, image in enumerate([*shared_images("NORMAL", 3), *shared_images("PNEUMONIA", 3)]):
        link(tmp_path / "flat" / f"{i + 1:04d}.jpeg", image)
        lines.append(f"{i + 1:04d}.jpeg,{image.parent.name}")
    return tmp_path / "flat", lines


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return LabelsSpec(str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty: a labels CSV needs a header row"),
        ("path,label\n", "has a header but no rows"),
        ("file,diagnosis\n0001.jpeg,NORMAL\n", "has no column 'path' (its columns: 'file', "),
        ("path,label\nnaïve.jpeg,NORMAL\n".encode("latin-1"), "is not UTF-8 text (byte "),
        (b"\x00\xff\xfe\x00garbage\n", "is not UTF-8 text"),
        ("path,label\n0001.jpeg,NORMAL\n0001.jpeg,PNEUMONIA\n0002,NORMAL\n0002.jpeg,PNEUMONIA\n",
         "2 image(s) have rows that disagree in "),
        ("path,label\n0001.jpeg,covid\n0002.jpeg,Normal\n0003.jpeg,covid\n0004.jpeg,x\n",
         "unknown label value(s) in column 'label' of "),
        ("path,label\n" + "".join(f"gone{i}.jpeg,NORMAL\n" for i in range(5)),
         "5 image(s) listed in "),
        ("path,label\n,NORMAL\n", "1 row(s) of "),
        ("path,label,split\n0001.jpeg,NORMAL,validation\n", "unknown split value(s) in "),
        ("path,label, path\n0001.jpeg,NORMAL,0001.jpeg\n", "has the column 'path' twice (spaces"),
        ("path,label\n0001.jpeg,NORMAL\n".encode("utf-16-le"),
         "is not UTF-8 text (it looks like UTF-16 without a byte-order mark); save it as UTF-8"),
        ("path,label\n0001.jpeg,NORMAL\n".encode("utf-16"),
         "is not UTF-8 text (it looks like UTF-16); save it as UTF-8"),
    ],
    ids=["empty", "header only", "missing column", "latin-1", "binary", "conflicting",
         "unknown labels", "missing files", "empty path", "unknown split", "repeated column",
         "utf-16", "utf-16 with mark"],
)  # fmt: skip
def test_bad_labels_files_are_one_line_errors(flat, content, message):
    folder, _ = flat
    with pytest.raises(PneumoError, match="^") as caught:
        read_labels(write(folder / "labels.csv", content))
    text = str(caught.value)
    assert message in text and "\n" not in text, text
    if "disagree" in message:
        assert "0001.jpeg (label: NORMAL, PNEUMONIA), 0002.jpeg (label: NORMAL, PNEUMONIA)" in text
    if "unknown label" in message:
        assert "'covid' (2 rows), 'x' (1 row); expected NORMAL or PNEUMONIA" in text
    if "listed" in message:
        assert text.endswith("gone0.jpeg, gone1.jpeg, gone2.jpeg and 2 more")


def test_a_named_patient_column_must_exist_and_split_column_needs_every_split(flat):
    folder, lines = flat
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    named = LabelsSpec(str(folder / "labels.csv"), patient_column="Patient ID")
    with pytest.raises(PneumoError, match="has no column 'Patient ID' \\(its columns: 'path', "):
        read_labels(named)
    table = read_labels(LabelsSpec(str(folder / "labels.csv")))
    with pytest.raises(PneumoError, match="needs a split .* for every image; 6 have none"):
        make_splits(table, "column")
    with pytest.raises(PneumoError, match="the split column names no test image"):
        make_splits(table.assign(source=["train"] * 3 + ["val"] * 3), "column")


def test_a_flat_folder_evaluates_exactly_like_class_folders(flat, tmp_path):
    folder, lines = flat
    splits = ["train", "train", "val", "test", "train", "val"]
    rows = [f"{line},{split}" for line, split in zip(lines[1:], splits)]
    (folder / "labels.csv").write_text("\n".join([lines[0] + ",split", *rows]) + "\n")
    classes = make_subset(tmp_path / "classes", 3, 3)
    model = good_model(tmp_path / "model")
    a, b, split, stray = cli_batch(
        [
            ["evaluate", model, "--data", folder, "--labels", folder / "labels.csv",
             "--out", tmp_path / "a"],
            ["evaluate", model, "--data", classes, "--out", tmp_path / "b"],
            ["split", "--labels", folder / "labels.csv", "--out", tmp_path / "s"],
            ["split", "--data", classes, "--out", tmp_path / "t", "--positive", "1"],
        ]
    )  # fmt: skip
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    flat_metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    class_metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert flat_metrics == class_metrics and flat_metrics["n"] == 6
    assert split.returncode == 0 and "split protocol: column" in split.stdout
    table = read_csv(tmp_path / "s" / "splits.csv", keep_default_na=False)
    assert table.sort_values("patient")["split"].tolist() == splits  # as the CSV gives them
    assert stray.returncode == 1 and stray.stderr == "error: --positive goes with --labels CSV\n"


def rsna_folder(folder, normal: int, pneumonia: int):
    """stage_2_train_images/<patientId>.dcm and stage_2_train_labels.csv, one row per box:
    an empty box for a negative image, 1-3 boxes for a positive one."""
    images = folder / "stage_2_train_images"
    images.mkdir(parents=True)
    lines = ["patientId,x,y,width,height,Target"]
    picks = [*shared_images("NORMAL", normal), *shared_images("PNEUMONIA", pneumonia)]
    for i, jpeg in enumerate(picks):
        patient = f"{i:04x}cfab-14fd-4e49-80ba-63a80b6bddd6"
        gray = np.asarray(Image.open(jpeg).convert("L").resize((96, 96)), dtype=np.uint8)
        path = make_dicom(images / f"{patient}.dcm", twelve_bit(gray))
        ds = pydicom.dcmread(path)
        ds.PatientID = patient  # as RSNA's files have it
        ds.save_as(path)
        if jpeg.parent.name == "NORMAL":
            lines.append(f"{patient},,,,,0")
        for box in range(0 if jpeg.parent.name == "NORMAL" else 1 + i % 3):
            lines.append(f"{patient},{100 + box},{200 + box},300,400,1")
    (folder / "stage_2_train_labels.csv").write_text("\n".join(lines) + "\n")
    return images, folder / "stage_2_train_labels.csv"


def test_rsna_dicoms_and_box_rows_train_a_model(tmp_path):
    images, csv = rsna_folder(tmp_path / "rsna", 40, 40)
    result = cli(
        "train", "--data", images, "--labels", csv, "--path-column", "patientId",
        "--label-column", "Target", "--positive", "1", "--out", tmp_path / "runs",
        "--epochs", 1, "--image-size", 64, "--batch-size", 16,
    )  # fmt: skip
    run = next((tmp_path / "runs").iterdir())
    assert (run / "model.safetensors").is_file()
    assert "warning" not in result.stderr, result.stderr
    splits = read_csv(run / "splits.csv", keep_default_na=False)
    assert len(splits) == 80 and splits["label"].value_counts().to_dict() == {
        "NORMAL": 40,
        "PNEUMONIA": 40,
    }
    assert splits["patient"].nunique() == 80 and splits["patient"].str.startswith("dicom-").all()
    assert not splits["patient"].str.contains("cfab").any()  # the header's ID is not written
    config = json.loads((run / "config.json").read_text())
    assert config["labels"]["csv"] == str(csv.resolve())  # --resume reads it from here
    assert config["labels"]["label_column"] == "Target" and config["labels"]["positive"] == ["1"]
    meta = json.loads((run / "model.json").read_text())
    assert meta["training"]["labels"] == csv.name  # model.json holds no path


def test_run_reads_a_labels_csv(tmp_path):
    lines = ["file,finding"]
    for i, image in enumerate([*shared_images("NORMAL", 10), *shared_images("PNEUMONIA", 10)]):
        link(tmp_path / "xrays" / f"{i:03d}.jpeg", image)
        lines.append(f"{i:03d},{'yes' if image.parent.name == 'PNEUMONIA' else 'no'}")
    (tmp_path / "xrays" / "labels.csv").write_text("\n".join(lines) + "\n")
    cli("run", "--labels", tmp_path / "xrays" / "labels.csv", "--path-column", "file",
        "--label-column", "finding", "--positive", "yes", "--negative", "no", "--quick",
        "--out", tmp_path / "runs")  # fmt: skip
    (run,) = (tmp_path / "runs").glob("run-*")
    assert len(read_csv(run / "splits.csv")) == 20
    for model in ("smallnet", "efficientnet-lite0"):
        config = json.loads((run / model / "config.json").read_text())
        assert config["labels"]["positive"] == ["yes"], model
        assert (run / model / "evaluation" / "metrics.json").is_file()
