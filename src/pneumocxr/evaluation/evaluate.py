"""Evaluating exported models on labelled images: predictions, metrics, figures, comparison."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.data.decode import unreadable_error
from pneumocxr.data.index import index_images
from pneumocxr.data.labels import image_table
from pneumocxr.data.split_file import read_splits, splits_source
from pneumocxr.errors import PneumoError
from pneumocxr.evaluation.metrics import (
    CI_METRICS,
    answered_metrics,
    calibration_metrics,
    evaluate_predictions,
    report_text,
    risk_coverage,
)
from pneumocxr.evaluation.plots import (
    confusion_figure,
    reliability_figure,
    risk_coverage_figure,
    roc_figure,
)
from pneumocxr.fileio.folders import ensure_dir
from pneumocxr.fileio.formats import save_figure, write_csv, write_json, write_text
from pneumocxr.inference.answers import Settings
from pneumocxr.inference.predict import predict_paths

log = logging.getLogger("pneumocxr")
TABLE_METRICS = (
    "n", "accuracy", "auc", "sensitivity", "specificity", "ppv", "npv", "f1", "brier", "ece",
    "out_of_scope", "referred", "answered_accuracy", "answered_sensitivity",
)  # fmt: skip
PREDICTION_COLUMNS = ["path", "label", "p_pneumonia", "predicted", "decision", "in_scope",
                      "scope_score", "reason", "p_uncalibrated"]  # fmt: skip


@dataclass
class Evaluation:
    name: str
    predictions: pd.DataFrame  # PREDICTION_COLUMNS: the truth in `label`, the answer in `decision`
    metrics: dict

    @property
    def labels(self) -> np.ndarray:
        return (self.predictions["label"] == "PNEUMONIA").to_numpy(dtype=int)

    @property
    def probs(self) -> np.ndarray:
        return self.predictions["p_pneumonia"].to_numpy()


def labelled_images(
    data=None,
    split: str | None = None,
    model_dir=None,
    keep_patients: bool = False,
    *,
    labels=None,
    strict: bool = False,
) -> pd.DataFrame:
    """The images to evaluate: a data folder (or a labels CSV, data/labels.py's LabelsSpec), or
    one split of the run the model came from.

    Columns `path, label` (and `patient` with `keep_patients`)."""
    columns = ["path", "label", "patient"] if keep_patients else ["path", "label"]
    if split and labels is not None:
        raise PneumoError("--split reads the run's splits.csv; --labels goes with --data")
    if split:
        if model_dir is None:
            raise PneumoError("--split needs a run folder as MODEL (its splits.csv says which)")
        table = read_splits(splits_source(Path(model_dir)))
        table = table[table["split"] == split]
        if table.empty:
            raise PneumoError(f"the run has no {split!r} split")
        return table[columns].reset_index(drop=True)
    if labels is not None:
        return image_table(data, labels)[columns]
    if data is None:
        raise PneumoError("give --data DIR (a labelled folder) or --split test")
    return index_images(data, strict)[columns]


def evaluate_model(
    loaded: LoadedModel, images: pd.DataFrame, settings: Settings, name: str = "",
    n_boot: int = 1000, strict: bool = False,
) -> Evaluation:  # fmt: skip
    """Predict every image (skipping unreadable ones with a warning, or failing on them with
    `strict`) and score the result.

    The classification metrics are over every image at the threshold (`predicted`), as the
    literature's are; the decisions (`decision`: OUT_OF_SCOPE, UNCERTAIN, NORMAL, PNEUMONIA)
    are scored apart (`answered_*`), with the calibration (ECE, Brier) and risk-coverage."""
    answers, failures = predict_paths(loaded, list(images["path"]), settings=settings)
    if failures and strict:
        raise unreadable_error(failures)
    for _, reason in failures:
        log.warning("skipped %s", reason)
    if answers.empty:
        raise PneumoError("none of the images could be read")
    answers = answers.rename(columns={"label": "decision", "p_raw": "p_uncalibrated"})
    answers = answers.drop(columns="logit")
    table = images.merge(answers, on="path", how="inner")
    labels = (table["label"] == "PNEUMONIA").to_numpy(dtype=int)
    if len(np.unique(labels)) < 2:
        log.warning("only one class in the data: AUC and some intervals are undefined")
    probs = table["p_pneumonia"].to_numpy()
    metrics = evaluate_predictions(labels, probs, settings.threshold, n_boot)
    metrics.update(calibration_metrics(labels, probs, table["p_uncalibrated"].to_numpy(), n_boot))
    metrics.update(answered_metrics(labels, table["decision"]))
    metrics["risk_coverage"] = risk_coverage(labels, probs, settings.threshold)
    metrics["scope_check"] = settings.scope_check and loaded.has_scope
    band = settings.band
    metrics["uncertain_band"] = None if band is None else band.bounds()
    metrics["model"] = name or loaded.meta["architecture"]
    return Evaluation(name or loaded.meta["architecture"], table[PREDICTION_COLUMNS], metrics)


EVALUATION_FILES = {"predictions.csv", "metrics.json", "report.txt", "confusion_matrix.png",
                    "roc.png", "calibration.png", "risk_coverage.png"}  # fmt: skip


def write_evaluation(evaluation: Evaluation, out) -> Path:
    """EVALUATION_FILES: predictions, metrics, the report and the figures."""
    out = ensure_dir(out)
    write_csv(out / "predictions.csv", evaluation.predictions)
    write_json(out / "metrics.json", evaluation.metrics)
    title = f"{evaluation.name}: evaluation on {evaluation.metrics['n']} images"
    write_text(
        out / "report.txt",
        report_text(evaluation.labels, evaluation.probs, evaluation.metrics, title),
    )
    save_figure(
        confusion_figure(evaluation.metrics, f"{evaluation.name}"), out / "confusion_matrix.png"
    )
    curves = {evaluation.name: (evaluation.labels, evaluation.probs)}
    save_figure(roc_figure(curves, f"ROC: {evaluation.name}"), out / "roc.png")
    before = evaluation.predictions["p_uncalibrated"].to_numpy()
    reliability = {"before calibration": before, "after calibration": evaluation.probs}
    title = f"Reliability: {evaluation.name}"
    save_figure(reliability_figure(evaluation.labels, reliability, title=title),
                out / "calibration.png")  # fmt: skip
    title = f"Risk-coverage: {evaluation.name}"
    save_figure(risk_coverage_figure(evaluation.metrics["risk_coverage"], title),
                out / "risk_coverage.png")  # fmt: skip
    return out


def comparison_table(evaluations: list[Evaluation]) -> pd.DataFrame:
    rows = {}
    for ev in evaluations:
        row = {k: ev.metrics[k] for k in TABLE_METRICS}
        for name in CI_METRICS:
            low, high = ev.metrics[f"{name}_ci"]
            row[f"{name}_ci"] = f"{low:.3f}-{high:.3f}"
        rows[ev.name] = row
    return pd.DataFrame(rows).T


GAP_METRICS = ("auc", "accuracy", "sensitivity", "specificity")


def gap_table(internal: list[Evaluation], external: list[Evaluation]) -> pd.DataFrame:
    """Internal vs external per model: each metric on both and the gap (external - internal)."""
    rows = {}
    for ins, ext in zip(internal, external):
        row = {}
        for name in GAP_METRICS:
            row[f"{name} internal"] = ins.metrics[name]
            row[f"{name} external"] = ext.metrics[name]
            row[f"{name} gap"] = ext.metrics[name] - ins.metrics[name]
        rows[ins.name] = row
    return pd.DataFrame(rows).T


COMPARISON_FILES = {"roc_comparison.png", "comparison.md", "comparison.json"}


def write_comparison(
    evaluations: list[Evaluation], out, external: list[Evaluation] | None = None
) -> pd.DataFrame:
    """roc_comparison.png, comparison.md and comparison.json in `out`; with `external` (the
    same models on an external set), their curves, figures and the gap too."""
    out = ensure_dir(out)
    curves = {ev.name: (ev.labels, ev.probs) for ev in evaluations}
    for ev in external or []:
        curves[f"{ev.name} (external)"] = (ev.labels, ev.probs)
    save_figure(roc_figure(curves, "ROC comparison"), out / "roc_comparison.png")
    table = comparison_table(evaluations)
    text = comparison_markdown(table)
    records = [ev.metrics | {"name": ev.name} for ev in evaluations]
    if external:
        gaps = gap_table(evaluations, external)
        text += "\nInternal vs external (gap = external - internal):\n\n"
        text += comparison_markdown(gaps)
        for record, ext, (_, gap) in zip(records, external, gaps.iterrows()):
            record["external"] = ext.metrics
            record["gap"] = {m: gap[f"{m} gap"] for m in GAP_METRICS}
    write_text(out / "comparison.md", text)
    write_json(out / "comparison.json", records)
    return gaps if external else table


def comparison_markdown(table: pd.DataFrame) -> str:
    def cell(value):
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    header = "| model | " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * (len(table.columns) + 1)
    rows = [
        f"| {name} | " + " | ".join(cell(v) for v in row) + " |"
        for name, row in zip(table.index, table.itertuples(index=False))
    ]
    return "\n".join([header, rule, *rows]) + "\n"
