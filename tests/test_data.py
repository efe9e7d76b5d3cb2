"""Indexing, patient parsing, splits and decoding on the real shared X-rays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import EXTERNAL, make_subset, shared_images
from pneumocxr.data.decode import decode_all, load_image
from pneumocxr.data.index import index_images, parse_patient
from pneumocxr.data.split import make_splits, split_summary
from pneumocxr.errors import PneumoError


@pytest.fixture(scope="module")
def shared_table(data_root):
    return index_images(data_root)


def test_index_counts_the_shared_folder(shared_table):
    assert len(shared_table) == 5216
    assert shared_table["label"].value_counts().to_dict() == {"PNEUMONIA": 3875, "NORMAL": 1341}
    assert list(shared_table.columns) == ["path", "label", "patient", "subtype", "source"]
    assert set(shared_table["source"]) == {"train"}
    pneumonia = shared_table[shared_table["label"] == "PNEUMONIA"]
    assert set(pneumonia["subtype"]) == {"bacteria", "virus"}
    assert set(shared_table.loc[shared_table["label"] == "NORMAL", "subtype"]) == {""}


@pytest.mark.parametrize(
    ("name", "patient", "subtype"),
    [
        ("person12_bacteria_46.jpeg", "person12", "bacteria"),
        ("person1_virus_6.jpeg", "person1", "virus"),
        ("IM-0115-0001.jpeg", "IM-0115", ""),
        ("NORMAL2-IM-0381-0001.jpeg", "NORMAL2-IM-0381", ""),
        ("Person3_Bacteria_10.JPG", "Person3", "bacteria"),
        ("scan.png", "scan", ""),
    ],
)
def test_patient_parsing(name, patient, subtype):
    assert parse_patient(name) == (patient, subtype)


def test_patients_of_shared_data_belong_to_one_class(shared_table):
    assert shared_table.groupby("patient")["label"].nunique().max() == 1
    assert shared_table["patient"].nunique() < len(shared_table)  # several images per patient


def test_index_is_recursive_case_insensitive_and_skips_macosx(tmp_path):
    root = tmp_path / "download"
    make_subset(root / "chest_xray" / "train", 2, 2)
    (root / "chest_xray" / "test" / "normal").mkdir(parents=True)
    image = shared_images("NORMAL", 1, 10)[0]
    (root / "chest_xray" / "test" / "normal" / "IM-9999-0001.JPG").symlink_to(image)
    (root / "__MACOSX" / "chest_xray" / "train" / "NORMAL").mkdir(parents=True)
    (root / "__MACOSX" / "chest_xray" / "train" / "NORMAL" / "._x.jpeg").write_bytes(b"junk")
    (root / "chest_xray" / "train" / "NORMAL" / "notes.txt").write_text("not an image")
    table = index_images(root)
    assert len(table) == 5
    assert table["label"].value_counts().to_dict() == {"NORMAL": 3, "PNEUMONIA": 2}


def test_index_errors(tmp_path):
    with pytest.raises(PneumoError, match="not found"):
        index_images(tmp_path / "missing")
    with pytest.raises(PneumoError, match="no images found"):
        index_images(tmp_path)


def test_patient_split_keeps_patients_whole_and_classes_balanced(shared_table):
    table = make_splits(shared_table, "patient", seed=42)
    groups = [set(table.loc[table["split"] == s, "patient"]) for s in ("train", "val", "test")]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    overall = (table["label"] == "PNEUMONIA").mean()
    for split in ("train", "val", "test"):
        share = (table.loc[table["split"] == split, "label"] == "PNEUMONIA").mean()
        assert abs(share - overall) < 0.03, split
    fractions = table["split"].value_counts(normalize=True)
    assert abs(fractions["test"] - 0.2) < 0.03
    assert abs(fractions["val"] - 0.16) < 0.03


def test_image_split_reproduces_the_tutorial(shared_table):
    from sklearn.model_selection import train_test_split

    table = make_splits(shared_table, "image")
    rest, test = train_test_split(shared_table.index, test_size=0.2, random_state=42)
    assert set(table.index[table["split"] == "test"]) == set(test)
    counts = table["split"].value_counts()
    assert counts["test"] == 1044 and counts["val"] == 835 and counts["train"] == 3337
    leaked = set(table.loc[table["split"] == "train", "patient"]) & set(
        table.loc[table["split"] == "test", "patient"]
    )
    assert leaked  # the tutorial's protocol does share patients between splits


def test_split_options_and_determinism(shared_table):
    a = make_splits(shared_table, "patient", test_size=0.1, val_size=0.1, seed=7)
    b = make_splits(shared_table, "patient", test_size=0.1, val_size=0.1, seed=7)
    c = make_splits(shared_table, "patient", test_size=0.1, val_size=0.1, seed=8)
    assert a["split"].equals(b["split"]) and not a["split"].equals(c["split"])
    assert abs((a["split"] == "test").mean() - 0.1) < 0.02
    summary = split_summary(a)
    assert sum(s["images"] for s in summary.values()) == len(shared_table)
    with pytest.raises(PneumoError, match="between 0 and 1"):
        make_splits(shared_table, test_size=1.5)


def test_decoding_accepts_grayscale_png_and_full_size(tmp_path):
    source = shared_images("PNEUMONIA", 1)[0]
    rgb = np.asarray(Image.open(source).convert("RGB"))
    gray = rgb[..., 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(rgb).resize((1800, 1400)).save(tmp_path / "big.jpg", quality=95)
    sixteen = (gray.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "deep.png")
    reference = load_image(source, 224)
    assert reference.shape == (224, 224) and reference.dtype == np.uint8
    assert np.array_equal(load_image(tmp_path / "gray.png", 224), reference)
    assert np.abs(load_image(tmp_path / "deep.png", 224).astype(int) - reference).max() <= 1
    big = load_image(tmp_path / "big.jpg", 224)
    assert np.abs(big.astype(float) - reference).mean() < 6  # same picture after a round trip


def test_decoding_follows_exif_orientation(tmp_path):
    source = shared_images("NORMAL", 1)[0]
    gray = np.asarray(Image.open(source).convert("L"))
    stored = Image.fromarray(np.rot90(gray).copy())  # stored sideways, as a phone might
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    stored.save(tmp_path / "sideways.png", exif=exif)
    upright = load_image(tmp_path / "sideways.png", 224)
    assert np.array_equal(upright, load_image(source, 224))


def test_decode_all_lists_unreadable_files(tmp_path):
    good = shared_images("NORMAL", 2)
    (tmp_path / "broken.jpeg").write_bytes(good[0].read_bytes()[:300])
    (tmp_path / "text.jpeg").write_text("hello")
    decoded = decode_all([*good, tmp_path / "broken.jpeg", tmp_path / "text.jpeg"], 64)
    assert decoded.pixels.shape == (2, 1, 64, 64)
    assert decoded.ok.tolist() == [True, True, False, False]
    assert [p for p, _ in decoded.failures] == [
        str(tmp_path / "broken.jpeg"),
        str(tmp_path / "text.jpeg"),
    ]


@pytest.fixture(scope="module")
def kaggle_layout(tmp_path_factory):
    """A Kaggle download: train/ and val/ from the shared training X-rays, test/ from the
    external set (symlinks; nothing is trained here)."""
    root = tmp_path_factory.mktemp("kaggle") / "chest_xray"
    make_subset(root / "train", 60, 60)
    make_subset(root / "val", 4, 4, start=200)
    for label in ("NORMAL", "PNEUMONIA"):
        (root / "test" / label).mkdir(parents=True)
        for image in sorted((EXTERNAL / label).glob("*.jpeg"))[:20]:
            (root / "test" / label / image.name).symlink_to(image)
    return root


def test_official_split_uses_the_test_folder_and_keeps_patients_apart(kaggle_layout):
    table = make_splits(index_images(kaggle_layout), "official", seed=1)
    test = table[table["split"] == "test"]
    assert set(test["source"]) == {"test"} and len(test) == 40
    assert (table.loc[table["source"] == "test", "split"] == "test").all()
    rest = table[table["split"] != "test"]
    assert set(rest["source"]) == {"train", "val"}  # the val folder joins the training pool
    train, val = (set(rest.loc[rest["split"] == s, "patient"]) for s in ("train", "val"))
    assert train and val and not train & val
    assert abs(len(val) / (len(val) + len(train)) - 0.2) < 0.05  # patients, 20% to validation


def test_auto_split_picks_the_protocol_from_the_layout(kaggle_layout, small_data):
    from pneumocxr.data.split import resolve_split

    assert resolve_split("auto", index_images(kaggle_layout)) == "official"
    assert resolve_split("auto", index_images(small_data)) == "patient"
    assert resolve_split("patient", index_images(kaggle_layout)) == "patient"
    pooled = make_splits(index_images(kaggle_layout), "patient", seed=1)
    assert set(pooled.loc[pooled["split"] == "test", "source"]) != {"test"}  # pooling


def test_official_split_without_a_test_folder_says_what_is_missing(small_data):
    with pytest.raises(PneumoError, match="needs the Kaggle layout: a test/ folder"):
        make_splits(index_images(small_data), "official")
