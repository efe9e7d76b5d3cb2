"""evaluate, predict, compare: metrics cross-checked with scikit-learn on the same predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from conftest import cli, make_subset
from pneumocxr.evaluation.metrics import bootstrap_ci, evaluate_predictions


@pytest.fixture(scope="module")
def holdout(tmp_path_factory):
    """Images the quick runs never saw (later in the sorted file lists)."""
    return make_subset(tmp_path_factory.mktemp("holdout") / "chest_xray", 40, 40, start=1000)


@pytest.fixture(scope="module")
def evaluated(smallnet_run, holdout, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    result = cli("evaluate", smallnet_run, "--data", holdout, "--out", out)
    return out, result


def test_evaluate_writes_every_output(evaluated):
    out, result = evaluated
    for name in (
        "predictions.csv",
        "metrics.json",
        "report.txt",
        "confusion_matrix.png",
        "roc.png",
        "calibration.png",
        "risk_coverage.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert "AUC" in result.stdout and "referred (UNCERTAIN)" in result.stdout
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == [
        "path", "label", "p_pneumonia", "predicted", "decision", "in_scope", "scope_score",
        "reason", "p_uncalibrated",
    ]  # fmt: skip
    assert set(predictions["decision"]) <= {"NORMAL", "PNEUMONIA", "UNCERTAIN", "OUT_OF_SCOPE"}
    # X-rays from the training folder: the scope check refuses (almost) none of them
    assert predictions["in_scope"].mean() >= 0.95
    assert len(predictions) == 80
    assert "precision" in (out / "report.txt").read_text()


def test_metrics_agree_with_scikit_learn(evaluated, smallnet_run):
    out, _ = evaluated
    predictions = pd.read_csv(out / "predictions.csv")
    m = json.loads((out / "metrics.json").read_text())
    y = (predictions["label"] == "PNEUMONIA").astype(int)
    p = predictions["p_pneumonia"]
    threshold = json.loads((smallnet_run / "model.json").read_text())["threshold"]
    yhat = (p >= threshold).astype(int)
    assert (predictions["predicted"] == np.where(yhat, "PNEUMONIA", "NORMAL")).all()
    assert m["threshold"] == threshold and m["n"] == 80
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, yhat))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, yhat, pos_label=0))
    if yhat.sum():
        assert m["ppv"] == pytest.approx(skm.precision_score(y, yhat))
    else:
        assert m["ppv"] is None  # undefined without positive predictions: null, not 0
    assert m["f1"] == pytest.approx(skm.f1_score(y, yhat))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert m["confusion_matrix"]["matrix"] == skm.confusion_matrix(y, yhat).tolist()
    report = skm.classification_report(
        y, yhat, target_names=["NORMAL", "PNEUMONIA"], output_dict=True, zero_division=0
    )
    assert m["classification_report"]["PNEUMONIA"]["recall"] == pytest.approx(
        report["PNEUMONIA"]["recall"]
    )
    for name in ("accuracy", "auc", "sensitivity", "specificity"):
        low, high = m[f"{name}_ci"]
        assert low <= m[name] <= high, name


def test_bootstrap_intervals_contain_the_estimate_and_narrow_with_n():
    rng = np.random.default_rng(1)

    def sample(n):
        y = rng.integers(0, 2, n)
        p = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, n), 0, 1)
        return y, p

    widths = []
    for n in (100, 400, 1600):
        y, p = sample(n)
        m = evaluate_predictions(y, p, n_boot=500)
        for name in ("accuracy", "auc", "sensitivity", "specificity"):
            assert m[f"{name}_ci"][0] <= m[name] <= m[f"{name}_ci"][1]
        widths.append(m["auc_ci"][1] - m["auc_ci"][0])
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] > 1.5  # 16 times the images: about 4 times narrower in theory
    ci = bootstrap_ci([1, 1, 1], [0.9, 0.8, 0.7])
    assert np.isnan(ci["auc"][0]) and np.isnan(ci["specificity"][0])


def test_bootstrap_auc_is_scikit_learns_without_calling_it(monkeypatch):
    """The bootstrap counts each resample's ranked pairs itself (scikit-learn's input checks
    were most of evaluate's bootstrap time); ties (scores rounded to two decimals) count one
    half, as in roc_auc_score's trapezoids: the same intervals."""
    from pneumocxr.evaluation import metrics

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.3, 300), 0, 1), 2)
    picks = np.random.default_rng(0)  # bootstrap_ci's own draws (seed 0)
    aucs = []
    for _ in range(200):
        pick = picks.integers(0, 300, 300)
        aucs.append(skm.roc_auc_score(y[pick], p[pick]))
    expected = metrics.percentile_interval(np.asarray(aucs))
    calls = []
    monkeypatch.setattr(metrics, "roc_auc_score", lambda *a, **k: calls.append(a))
    got = bootstrap_ci(y, p, n_boot=200)["auc"]
    assert not calls and got == pytest.approx(expected, abs=1e-12)


def test_predict_gives_exactly_what_evaluate_gave(evaluated, smallnet_run):
    out, _ = evaluated
    predictions = pd.read_csv(out / "predictions.csv").head(6)
    result = cli("predict", "--model", smallnet_run, "--json", *predictions["path"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["path"] for x in lines] == predictions["path"].tolist()
    assert np.allclose([x["p_pneumonia"] for x in lines], predictions["p_pneumonia"], atol=1e-6)
    csv_out = out / "predict.csv"
    cli("predict", "--model", smallnet_run / "model.json", "--csv", csv_out, *predictions["path"])
    again = pd.read_csv(csv_out)
    assert np.allclose(again["p_pneumonia"], predictions["p_pneumonia"], atol=1e-9)


def test_predict_folders_text_output_and_bad_files(smallnet_run, holdout, tmp_path):
    (tmp_path / "junk.png").write_text("not a png")
    result = cli("predict", "--model", smallnet_run, holdout / "NORMAL", tmp_path / "junk.png")
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 40
    assert {r[1] for r in rows} <= {"NORMAL", "PNEUMONIA", "UNCERTAIN", "OUT_OF_SCOPE"}
    assert "junk.png" in result.stderr
    missing = cli("predict", "--model", smallnet_run, tmp_path / "nope.jpeg", check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_threshold_options(smallnet_run, holdout, tmp_path):
    meta = json.loads((smallnet_run / "model.json").read_text())
    cli(
        "evaluate", smallnet_run, "--data", holdout, "--out", tmp_path / "m", "--threshold", "model"
    )
    m = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert m["threshold"] == pytest.approx(meta["threshold"])
    cli("evaluate", smallnet_run, "--data", holdout, "--out", tmp_path / "z", "--threshold", "0")
    z = json.loads((tmp_path / "z" / "metrics.json").read_text())
    assert z["sensitivity"] == 1.0 and z["specificity"] == 0.0
    bad = cli(
        "evaluate",
        smallnet_run,
        "--data",
        holdout,
        "--out",
        tmp_path / "x",
        "--threshold",
        "high",
        check=False,
    )
    assert bad.returncode == 1 and "--threshold must be a number" in bad.stderr


def test_evaluate_a_split_of_the_run(smallnet_run, tmp_path):
    cli("evaluate", smallnet_run, "--split", "test", "--out", tmp_path)
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    splits = pd.read_csv(smallnet_run / "splits.csv")
    assert set(predictions["path"]) == set(splits.loc[splits["split"] == "test", "path"])


def test_compare_two_models(smallnet_run, effnet_run, holdout, tmp_path):
    result = cli("compare", smallnet_run, effnet_run, "--data", holdout, "--out", tmp_path)
    assert (tmp_path / "roc_comparison.png").stat().st_size > 0
    table = json.loads((tmp_path / "comparison.json").read_text())
    assert len(table) == 2 and {t["n"] for t in table} == {80}
    assert "| smallnet" in result.stdout and "| efficientnet-lite0" in result.stdout
    assert (tmp_path / "comparison.md").read_text().count("\n") == 4


def test_compare_keeps_models_of_the_same_name_apart(smallnet_run, holdout, tmp_path):
    cli("compare", smallnet_run, smallnet_run, "--data", holdout, "--out", tmp_path)
    rows = (tmp_path / "comparison.md").read_text().splitlines()[2:]
    assert len(rows) == 2 and rows[0].split("|")[1] != rows[1].split("|")[1]
