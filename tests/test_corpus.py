"""Every case of the bad-input corpus through predict, dataset loading, evaluate, dicom2png:
handled, or refused with one clear line; never a traceback, a raw warning, a hang (each call
has a timeout) or a partial output file."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conftest import cli, cli_batch, make_subset
from corpus import write_corpus
from pneumocxr.display import display_path
from pneumocxr.fileio import read_csv

RAW_WARNING = re.compile(r"\w+Warning: |Traceback|internal error")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    cases = write_corpus(base / "corpus")
    data = make_subset(base / "data", 12, 12)  # good images beside the bad ones
    (data / "NORMAL" / "bad").mkdir()
    for case in cases:
        if case.kind == "image":
            (data / "NORMAL" / "bad" / case.path.name).symlink_to(case.path)
    return base, cases, data


def images(cases, expect=None, dicom=None):
    return [
        c
        for c in cases
        if c.kind == "image"
        and (expect is None or c.expect == expect)
        and (dicom is None or c.dicom == dicom)
    ]


def named(case) -> list[str]:
    """How an output line names the case: its file, or where its link points."""
    return [
        f"/{display_path(case.path.name)}",
        f"/{display_path(Path(os.path.realpath(case.path)).name)}",
    ]


def lines_naming(text: str, case) -> list[str]:
    return [line for line in text.splitlines() if any(n in line for n in named(case))]


def assert_clean(result):
    assert not RAW_WARNING.search(result.stderr + result.stdout), result.stderr
    for line in result.stderr.splitlines():
        assert line.startswith(("warning:", "error:", "  ")), line


def assert_refusals_listed(result, cases):
    for case in cases:
        found = lines_naming(result.stderr, case)
        assert len(found) == 1, (case.name, result.stderr)
        assert found[0].startswith(("warning:", "error:", "  ")), found[0]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*")]


def test_the_corpus_has_at_least_30_kinds(corpus):
    _, cases, _ = corpus
    assert len({c.name for c in cases}) >= 30
    assert {c.expect for c in cases} == {"ok", "refuse"}
    assert len(images(cases, dicom=True)) >= 10


def test_predict_a_folder_of_every_case(corpus, tmp_path):
    base, cases, _ = corpus
    result = cli("predict", "--json", "--csv", tmp_path / "p.csv", base / "corpus" / "images",
                 timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_clean(result)
    answers = {}
    for line in result.stdout.splitlines():
        row = json.loads(line)
        answers[row["path"]] = row
    for case in images(cases, "ok"):
        row = answers.pop(str(case.path))
        assert 0 <= row["p_pneumonia"] <= 1 and row["label"] in ("NORMAL", "PNEUMONIA")
    assert not answers  # nothing refused was answered
    assert_refusals_listed(result, images(cases, "refuse"))
    table = read_csv(tmp_path / "p.csv")
    assert len(table) == len(images(cases, "ok"))
    assert no_temp_files(tmp_path)


def test_predict_with_nothing_readable_fails_and_writes_nothing(corpus, tmp_path):
    _, cases, _ = corpus
    bad = [c for c in images(cases, "refuse") if c.path.exists()]  # named: must exist
    result = cli("predict", "--csv", tmp_path / "p.csv", *[c.path for c in bad], check=False,
                 timeout=120)  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert_clean(result)
    assert_refusals_listed(result, bad)
    assert result.stderr.splitlines()[-1] == "error: no image could be read"
    assert not list(tmp_path.iterdir())


def test_dataset_loading_skips_each_bad_file_once(corpus, tmp_path):
    _, cases, data = corpus
    result = cli("split", "--data", data, "--out", tmp_path / "s", timeout=180)
    assert_clean(result)
    refused = images(cases, "refuse")
    assert f"skipping {len(refused)} unreadable file(s)" in result.stderr
    assert_refusals_listed(result, refused)
    listed = set(read_csv(tmp_path / "s" / "splits.csv")["path"])
    assert len(listed) == 24 + len(images(cases, "ok"))
    for case in images(cases, "ok"):
        assert os.path.realpath(case.path) in listed, case.name
    strict = cli("split", "--data", data, "--out", tmp_path / "t", "--strict", check=False,
                 timeout=180)  # fmt: skip
    assert strict.returncode == 1 and "error: unreadable image" in strict.stderr
    assert not (tmp_path / "t" / "splits.csv").exists()


def test_evaluate_skips_each_bad_file_once(corpus, tmp_path):
    base, cases, data = corpus
    model = base / "corpus" / "models" / "good"
    result = cli("evaluate", model, "--data", data, "--out", tmp_path / "e", timeout=180)
    assert_clean(result)
    assert_refusals_listed(result, images(cases, "refuse"))
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["n"] == 24 + len(images(cases, "ok"))
    assert len(read_csv(tmp_path / "e" / "predictions.csv")) == metrics["n"]
    assert no_temp_files(tmp_path)


def test_dicom2png_converts_each_good_dicom_and_lists_the_others(corpus, tmp_path):
    base, cases, _ = corpus
    out = tmp_path / "png"
    result = cli("dicom2png", base / "corpus" / "images", out, timeout=120)
    assert_clean(result)
    written = {p.name for p in out.iterdir()}
    expected = {c.path.with_suffix(".png").name for c in images(cases, "ok", dicom=True)}
    assert written == expected
    assert_refusals_listed(result, images(cases, "refuse", dicom=True))
    one = images(cases, "refuse", dicom=True)[0]
    single = cli("dicom2png", one.path, tmp_path / "one.png", check=False, timeout=60)
    assert single.returncode == 1 and single.stderr.startswith("error: ")
    assert_clean(single)
    assert not (tmp_path / "one.png").exists()


@pytest.mark.parametrize("kind", ["model", "run"])
def test_every_damaged_model_and_run_is_refused_in_one_line(corpus, tmp_path, kind):
    _, cases, _ = corpus
    image = next(c.path for c in images(cases, "ok") if c.name == "jpeg_gray")
    chosen = [c for c in cases if c.kind == kind]
    if kind == "model":
        commands = [["predict", "--model", c.path, image] for c in chosen]
    else:
        commands = [["evaluate", c.path, "--split", "test", "--out", tmp_path / c.name]
                    for c in chosen]  # fmt: skip
    for case, result in zip(chosen, cli_batch(commands, timeout=180)):
        assert_clean(result)
        if case.expect == "ok":
            assert result.returncode == 0 and len(result.stdout.splitlines()) == 1, case.name
        else:
            errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
            assert result.returncode == 1 and len(errors) == 1, (case.name, result.stderr)
            assert result.stdout == "", case.name
    assert not list(tmp_path.iterdir())  # no evaluation folder, not even an empty one
