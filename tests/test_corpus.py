"""Every case of the bad-input corpus through predict, dataset loading, evaluate, dicom2png:
handled, or refused with one clear line; never a traceback, a raw warning, a hang (each call
has a timeout) or a partial output file."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conftest import cli_batch, make_subset, problems
from corpus import write_corpus
from pneumocxr.display import display_path
from pneumocxr.fileio.formats import read_csv

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


# An image that decodes is answered: with a label, or as out of scope (a bilevel or black
# picture is no chest X-ray the model knows).
LABELS = ("NORMAL", "PNEUMONIA", "UNCERTAIN", "OUT_OF_SCOPE")


def lines_naming(text: str, case) -> list[str]:
    return [line for line in text.splitlines() if any(n in line for n in named(case))]


def assert_clean(result, name=""):
    assert not RAW_WARNING.search(result.stderr + result.stdout), (name, result.stderr)
    for line in problems(result.stderr):
        assert line.startswith(("warning:", "error:", "  ")), (name, line)
        assert len(line) < 500, (name, line)  # a path of thousands is cut in the middle


def assert_refusals_listed(result, cases):
    for case in cases:
        found = lines_naming(result.stderr, case)
        assert len(found) == 1, (case.name, result.stderr)
        assert found[0].startswith(("warning:", "error:", "  ")), found[0]


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """Every command over the corpus, in one process (torch is imported once)."""
    base, cases, data = corpus
    out = tmp_path_factory.mktemp("outputs")
    bad = [c for c in images(cases, "refuse") if c.path.exists()]  # named: must exist
    one_bad_dicom = images(cases, "refuse", dicom=True)[0]
    image = next(c.path for c in images(cases, "ok") if c.name == "jpeg_gray")
    model = base / "corpus" / "models" / "good"
    commands = {
        "predict folder": ["predict", "--json", "--csv", out / "p.csv", base / "corpus" / "images"],
        "predict bad": ["predict", "--csv", out / "bad.csv", *[c.path for c in bad]],
        "split": ["split", "--data", data, "--out", out / "s"],
        "split strict": ["split", "--data", data, "--out", out / "t", "--strict"],
        "evaluate": ["evaluate", base / "corpus" / "models" / "good", "--data", data,
                     "--out", out / "e"],
        "dicom2png": ["dicom2png", base / "corpus" / "images", out / "png"],
        "dicom2png bad": ["dicom2png", one_bad_dicom.path, out / "one.png"],
    }  # fmt: skip
    for case in cases:
        if case.kind == "model":
            commands[case.name] = ["predict", "--model", case.path, image]
        elif case.kind == "run":
            commands[case.name] = ["evaluate", case.path, "--split", "test",
                                   "--out", out / case.name]  # fmt: skip
        elif case.kind == "folder":
            commands[case.name] = ["split", "--data", case.path, "--out", out / case.name]
            commands[f"predict {case.name}"] = ["predict", "--model", model, case.path]
        elif case.kind == "labels":
            commands[case.name] = ["split", "--labels", case.path, "--out", out / case.name]
        elif case.kind == "resume":
            commands[case.name] = ["train", "--resume", case.path]
        elif case.kind == "weights":
            commands[case.name] = ["train", "--model", "efficientnet-lite0", "--weights",
                                   case.path, "--trust-pickle", "--data", data,
                                   "--out", out / case.name]  # fmt: skip
    results = dict(zip(commands, cli_batch(list(commands.values()), timeout=600)))
    return out, bad, results


def test_the_corpus_has_at_least_30_kinds(corpus):
    _, cases, _ = corpus
    assert len({c.name for c in cases}) >= 30
    assert {c.expect for c in cases} == {"ok", "refuse"}
    assert len(images(cases, dicom=True)) >= 10


def test_nothing_prints_a_traceback_or_a_raw_warning(runs):
    for name, result in runs[2].items():
        assert_clean(result, name)


def test_predict_a_folder_of_every_case(corpus, runs):
    _, cases, _ = corpus
    out, _, results = runs
    result = results["predict folder"]
    assert result.returncode == 0, result.stderr
    answers = {}
    for line in result.stdout.splitlines():
        row = json.loads(line)
        answers[row["path"]] = row
    for case in images(cases, "ok"):
        row = answers.pop(display_path(case.path))  # --json escapes names as text output does
        assert 0 <= row["p_pneumonia"] <= 1 and row["label"] in LABELS
        assert row["in_scope"] == (row["label"] != "OUT_OF_SCOPE")
    assert not answers  # nothing refused was answered
    assert_refusals_listed(result, images(cases, "refuse"))
    assert len(read_csv(out / "p.csv")) == len(images(cases, "ok"))


def test_predict_with_nothing_readable_fails_and_writes_nothing(runs):
    out, bad, results = runs
    result = results["predict bad"]
    assert result.returncode == 1 and result.stdout == ""
    assert_refusals_listed(result, bad)
    assert problems(result.stderr)[-1] == "error: no image could be read"
    assert not (out / "bad.csv").exists()


def test_dataset_loading_skips_each_bad_file_once(corpus, runs):
    _, cases, _ = corpus
    out, _, results = runs
    refused = images(cases, "refuse")
    links = [c for c in refused if not os.path.exists(c.path)]  # said by the folder walk
    assert f"skipping {len(refused) - len(links)} unreadable file(s)" in results["split"].stderr
    assert f"{len(links)} links cannot be followed" in results["split"].stderr
    assert_refusals_listed(results["split"], refused)
    listed = set(read_csv(out / "s" / "splits.csv")["path"])
    assert len(listed) == 24 + len(images(cases, "ok"))
    for case in images(cases, "ok"):
        assert os.path.realpath(case.path) in listed, case.name
    strict = results["split strict"]
    assert strict.returncode == 1 and strict.stderr.startswith("error: ")
    assert len(strict.stderr.splitlines()) == 1
    assert not (out / "t" / "splits.csv").exists()


def test_evaluate_skips_each_bad_file_once(corpus, runs):
    _, cases, _ = corpus
    out, _, results = runs
    assert_refusals_listed(results["evaluate"], images(cases, "refuse"))
    metrics = json.loads((out / "e" / "metrics.json").read_text())
    assert metrics["n"] == 24 + len(images(cases, "ok"))
    assert len(read_csv(out / "e" / "predictions.csv")) == metrics["n"]


def test_dicom2png_converts_each_good_dicom_and_lists_the_others(corpus, runs):
    _, cases, _ = corpus
    out, _, results = runs
    written = {p.name for p in (out / "png").iterdir()}
    expected = {c.path.with_suffix(".png").name for c in images(cases, "ok", dicom=True)}
    assert written == expected
    assert_refusals_listed(results["dicom2png"], images(cases, "refuse", dicom=True))
    single = results["dicom2png bad"]
    assert single.returncode == 1 and single.stderr.startswith("error: ")
    assert not (out / "one.png").exists()


def test_every_damaged_model_and_run_is_refused_in_one_line(corpus, runs):
    _, cases, _ = corpus
    out, _, results = runs
    assert {c.kind for c in cases} == {
        "image", "model", "run", "resume", "weights", "folder", "labels"
    }  # fmt: skip
    for case in (c for c in cases if c.kind in ("model", "run", "resume", "weights")):
        result = results[case.name]
        if case.expect == "ok":
            assert result.returncode == 0 and len(result.stdout.splitlines()) == 1, case.name
        else:
            errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
            assert result.returncode == 1 and len(errors) == 1, (case.name, result.stderr)
            assert result.stdout == "", case.name
        assert not (out / case.name).exists()  # no evaluation folder, not even an empty one
    damaged = next(c for c in cases if c.kind == "resume").path / "checkpoints"
    kept = {p.name: p.read_bytes() for p in damaged.iterdir()}  # not trained over
    assert kept == dict.fromkeys(
        ["train-best.ckpt", "train-last.ckpt"], b"PK\x03\x04 cut short by a crash"
    )


def test_every_odd_folder_and_labels_file_is_read_or_refused_in_one_line(corpus, runs):
    _, cases, _ = corpus
    out, _, results = runs
    for case in (c for c in cases if c.kind in ("folder", "labels")):
        result = results[case.name]
        lines = result.stderr.splitlines()
        if case.expect == "ok":
            assert result.returncode == 0, (case.name, result.stderr)
            assert (out / case.name / "splits.csv").is_file()
            assert len(lines) == (1 if case.said else 0), (case.name, lines)
        else:
            assert result.returncode == 1 and len(lines) == 1, (case.name, lines)
            assert lines[0].startswith("error: ") and result.stdout == "", case.name
            assert not (out / case.name / "splits.csv").exists()
        assert case.said in result.stderr, (case.name, result.stderr)
        if case.kind == "folder":  # predict FOLDER walks it the same way (and needs no classes)
            predicted = results[f"predict {case.name}"]
            assert predicted.returncode == 0 and len(predicted.stdout.splitlines()) >= 4
            if case.expect == "ok":
                assert problems(predicted.stderr) == problems(result.stderr), case.name


def test_no_temporary_file_is_left(runs):
    assert not list(runs[0].rglob(".*"))
