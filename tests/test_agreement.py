"""Inter-rater agreement: kappas against hand-computed values, the CSV format, the model rater."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import cli, shared_images
from in_process import run_cli
from pneumocxr.errors import PneumoError
from pneumocxr.evaluation.agreement import agreement, cohen, fleiss, read_ratings

A = [1, 1, 0, 0, 1, 0, 1, 0]
B = [1, 0, 0, 0, 1, 0, 1, 1]
C = [1, 1, 0, 1, 1, 0, 1, 0]


def test_cohen_kappa_by_hand():
    # observed agreement 6/8, chance agreement 0.5*0.5 + 0.5*0.5 = 0.5
    assert cohen(pd.Series(A).to_numpy(), pd.Series(B).to_numpy()) == pytest.approx(0.5)


def test_vectorised_replicates_match_the_libraries():
    from pneumocxr.evaluation.agreement import _cohen_binary, _fleiss_binary

    a, b, c = (pd.Series(x).to_numpy() for x in (A, B, C))
    assert _cohen_binary(a, b) == pytest.approx(cohen(a, b))
    matrix = pd.DataFrame({"a": A, "b": B, "c": C}).to_numpy()
    assert _fleiss_binary(matrix) == pytest.approx(fleiss(matrix))


def test_fleiss_kappa_by_hand():
    # mean item agreement 0.75; category shares 13/24 and 11/24 -> chance 290/576
    matrix = pd.DataFrame({"a": A, "b": B, "c": C}).to_numpy()
    assert fleiss(matrix) == pytest.approx(142 / 286)


@pytest.fixture
def ratings_csv(tmp_path):
    names = {1: "PNEUMONIA", 0: "normal"}
    table = pd.DataFrame(
        {
            "image": [f"img{i}.jpeg" for i in range(8)],
            "dr_a": [names[v] for v in A],
            "dr_b": B,
            "dr_c": [str(v) for v in C],
        }
    )
    path = tmp_path / "ratings.csv"
    table.to_csv(path, index=False)
    return path


def test_agreement_command(ratings_csv):
    result = json.loads(cli("agreement", ratings_csv, "--json").stdout)
    assert result["raters"] == ["dr_a", "dr_b", "dr_c"]
    pair = next(p for p in result["cohen"] if p["raters"] == ["dr_a", "dr_b"])
    assert pair["kappa"] == pytest.approx(0.5) and pair["n"] == 8
    low, high = pair["kappa_ci"]
    assert low <= 0.5 <= high
    assert result["fleiss"]["kappa"] == pytest.approx(142 / 286)
    text = cli("agreement", ratings_csv).stdout
    assert "dr_a vs dr_b: kappa 0.500" in text and "Fleiss' kappa (3 raters): 0.497" in text


def test_bad_ratings(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,r1,r2\na.jpeg,NORMAL,maybe\n")
    with pytest.raises(PneumoError, match="line 2, rater 'r2': 'maybe'"):
        read_ratings(bad)
    one = tmp_path / "one.csv"
    one.write_text("image,r1\na.jpeg,NORMAL\nb.jpeg,PNEUMONIA\n")
    with pytest.raises(PneumoError, match="at least two raters"):
        agreement(read_ratings(one)[0])
    result = cli("agreement", tmp_path / "missing.csv", check=False)
    assert result.returncode == 1 and "not found" in result.stderr


def test_model_as_a_rater(smallnet_run, tmp_path):
    images = shared_images("NORMAL", 4, 300) + shared_images("PNEUMONIA", 4, 300)
    table = pd.DataFrame(
        {
            "image": [str(p) for p in images],
            "r1": ["NORMAL"] * 4 + ["PNEUMONIA"] * 4,
            "r2": ["NORMAL"] * 3 + ["PNEUMONIA"] * 5,
        }
    )
    table.to_csv(tmp_path / "r.csv", index=False)
    result = json.loads(
        cli("agreement", tmp_path / "r.csv", "--model", smallnet_run, "--json").stdout
    )
    assert result["raters"] == ["r1", "r2", "model"]
    assert len(result["cohen"]) == 3 and result["fleiss"]["n"] == 8


def test_listed_images_resolve_beside_the_ratings_or_here(tmp_path, monkeypatch):
    from pneumocxr.pipeline.assess import _resolve_image

    (tmp_path / "ratings").mkdir()
    (tmp_path / "ratings" / "a.png").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    base = tmp_path / "ratings"
    assert _resolve_image(base, "a.png") == base / "a.png"
    assert _resolve_image(base, " b.png ").resolve() == tmp_path / "b.png"
    with pytest.raises(PneumoError, match="not found: c.png"):
        _resolve_image(base, "c.png")


def _many_raters(path, raters: int, images: int = 20):
    rng = np.random.default_rng(0)
    votes = rng.integers(0, 2, (images, raters))
    table = pd.DataFrame(np.array(["NORMAL", "PNEUMONIA"])[votes],
                         columns=[f"r{i}" for i in range(raters)])  # fmt: skip
    table.insert(0, "image", [f"img{i}.jpeg" for i in range(images)])
    table.to_csv(path, index=False)
    return path


def test_300_raters_get_fleiss_kappa_and_a_bounded_amount_of_work(tmp_path):
    csv = _many_raters(tmp_path / "r.csv", 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' warning about a fragmented frame included
        ratings, _ = read_ratings(csv)
        result = agreement(ratings)
    assert result["cohen"] == [] and result["cohen_left_out"] == 44850
    assert result["fleiss"]["n"] == 20
    complete = ratings.drop(columns="image").to_numpy()
    assert result["fleiss"]["kappa"] == pytest.approx(fleiss(complete))
    said = run_cli("agreement", csv)
    assert said.returncode == 0, said.stderr
    assert "not computed for 300 raters (44,850 pairs" in said.stdout
    assert "--all-pairs computes them" in said.stdout
    assert "Fleiss' kappa (300 raters)" in said.stdout


def test_every_pair_when_asked_with_progress(tmp_path, monkeypatch, caplog):
    import pneumocxr.evaluation.agreement as module

    monkeypatch.setattr(module, "PROGRESS_EVERY_S", 0.0)
    ratings, _ = read_ratings(_many_raters(tmp_path / "r.csv", 25, 8))
    with caplog.at_level(logging.INFO, "pneumocxr"):
        result = agreement(ratings, n_boot=50, all_pairs=True)
    assert len(result["cohen"]) == 300 and "cohen_left_out" not in result
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == "Cohen's kappa: 1 of 300 pairs of raters" and len(said) == 299


def test_an_image_rated_twice_must_get_the_same_rating(tmp_path, caplog):
    csv = tmp_path / "r.csv"
    csv.write_text(
        "image,dr_a,dr_b\na.jpeg,NORMAL,NORMAL\nb.jpeg,PNEUMONIA,1\nc.jpeg,0,\n"
        "c.jpeg,,PNEUMONIA\na.jpeg,PNEUMONIA,normal\n"
    )
    with pytest.raises(PneumoError) as refused:
        read_ratings(csv)
    assert str(refused.value) == (
        f"{csv}: rater 'dr_a' rated image 'a.jpeg' both NORMAL and PNEUMONIA (lines 2 and 6); "
        "give each image one rating per rater"
    )
    csv.write_text(csv.read_text().replace("a.jpeg,PNEUMONIA", "a.jpeg,NORMAL"))
    with caplog.at_level(logging.WARNING, "pneumocxr"):
        ratings, _ = read_ratings(csv)  # rows that agree count once
    assert ratings.to_dict("list") == {
        "image": ["a.jpeg", "b.jpeg", "c.jpeg"], "dr_a": [0.0, 1.0, 0.0], "dr_b": [0.0, 1.0, 1.0]
    }  # fmt: skip
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("2 image(s) listed more than once in ") and "(e.g. a.jpeg)" in said
