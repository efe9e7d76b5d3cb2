"""Commands that use a model: evaluate, compare, gradcam, stress, agreement, export, ensemble,
report (predict: `predicting.py`). Each goes through the Python API or pipeline; none computes
anything."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from pneumocxr.cli._app import app
from pneumocxr.cli.options import (
    ExportFormat,
    ExternalOpt,
    LabelledDataOpt,
    ModelArg,
    OnOff,
    OverwriteOpt,
    ScopeOpt,
    SeedOpt,
    SplitsFromOpt,
    StrictOpt,
    ThresholdOpt,
    TTAOpt,
    with_card_options,
    with_labels_options,
)


@app.command()
@with_labels_options
def evaluate(
    model: ModelArg,
    out: Annotated[Path, typer.Option(help="Folder for predictions, metrics and figures.")],
    data: LabelledDataOpt = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="Evaluate on this split of MODEL's run (train, val or test) instead of --data."
        ),
    ] = None,
    threshold: ThresholdOpt = None,
    tta: TTAOpt = False,
    overwrite: OverwriteOpt = False,
    scope_check: ScopeOpt = OnOff.on,
    strict: StrictOpt = False,
    labels=None,  # the --labels options (with_labels_options)
):
    """Metrics with 95% CIs over every image, the decisions (out of scope, referred, answered),
    calibration (ECE, Brier), report, confusion matrix, ROC, reliability and risk-coverage."""
    from pneumocxr.pipeline.assess import evaluate_to_folder

    metrics = evaluate_to_folder(
        model,
        out,
        data,
        split,
        threshold,
        overwrite,
        tta,
        scope_check == OnOff.on,
        strict=strict,
        labels=labels,
    )
    low, high = metrics["auc_ci"]
    typer.echo(
        f"{metrics['n']} images: accuracy {metrics['accuracy']:.4f}, AUC "
        f"{metrics['auc']:.4f} (95% CI {low:.4f}-{high:.4f}), sensitivity "
        f"{metrics['sensitivity']:.4f}, specificity {metrics['specificity']:.4f}"
    )
    typer.echo(
        f"out of scope {metrics['out_of_scope']:.1%}, referred (UNCERTAIN) "
        f"{metrics['referred']:.1%}; answered: accuracy {metrics['answered_accuracy']:.4f}, "
        f"sensitivity {metrics['answered_sensitivity']:.4f}; ECE {metrics['ece']:.4f}, Brier "
        f"{metrics['brier']:.4f}"
    )
    typer.echo(
        f"wrote {out}/ (predictions.csv, metrics.json, report.txt, confusion_matrix.png, "
        "roc.png, calibration.png, risk_coverage.png)"
    )


@app.command()
@with_labels_options
def compare(
    models: Annotated[list[str], typer.Argument(help="Run folders or models to compare.")],
    out: Annotated[Path, typer.Option(help="Folder for the ROC plot and tables.")] = Path(
        "compare"
    ),
    data: LabelledDataOpt = None,
    split: Annotated[
        str | None, typer.Option(help="A split of the first model's run instead of --data.")
    ] = None,
    threshold: ThresholdOpt = None,
    external: ExternalOpt = None,
    tta: TTAOpt = False,
    scope_check: ScopeOpt = OnOff.on,
    strict: StrictOpt = False,
    overwrite: OverwriteOpt = False,
    labels=None,  # the --labels options (with_labels_options)
):
    """One ROC plot with every model, and a table of their metrics, calibration and decisions
    (markdown and JSON); with --external, internal and external side by side with the gap."""
    from pneumocxr.evaluation.evaluate import comparison_markdown
    from pneumocxr.pipeline.assess import compare_models

    table = compare_models(
        models,
        out,
        data,
        split,
        threshold,
        external,
        tta,
        scope_check == OnOff.on,
        strict=strict,
        labels=labels,
        overwrite=overwrite,
    )
    typer.echo(comparison_markdown(table))
    typer.echo(f"wrote {out}/ (roc_comparison.png, comparison.md, comparison.json)")


@app.command()
def gradcam(
    model: ModelArg,
    images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, DICOM).")],
    out: Annotated[Path, typer.Option(help="Folder for the heatmap PNGs.")] = Path("gradcam"),
    threshold: ThresholdOpt = None,
    scope_check: ScopeOpt = OnOff.on,
    overwrite: Annotated[
        bool, typer.Option(help="Replace files in --out that pneumocxr did not draw.")
    ] = False,
):
    """Grad-CAM heatmap over each image, and a panel of up to three side by side; titles give
    the decision. Unreadable images are skipped with a warning. An input image is never
    written over."""
    from pneumocxr.display import display_path
    from pneumocxr.pipeline.assess import gradcam_to_folder

    on = scope_check == OnOff.on
    for path in gradcam_to_folder(model, images, out, threshold, on, overwrite):
        typer.echo(f"wrote {display_path(path)}")


@app.command()
@with_labels_options
def stress(
    model: ModelArg,
    out: Annotated[Path, typer.Option(help="Folder for stress.csv/.json/.md and stress.png.")],
    data: LabelledDataOpt = None,
    split: Annotated[
        str | None, typer.Option(help="A split of MODEL's run (e.g. val) instead of --data.")
    ] = None,
    threshold: ThresholdOpt = None,
    corruption: Annotated[
        list[str] | None,
        typer.Option(help="Only this corruption (repeatable). [all 15]"),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=10, help="Use about this many images (whole patients).")
    ] = None,
    seed: SeedOpt = 0,
    strict: StrictOpt = False,
    overwrite: OverwriteOpt = False,
    labels=None,  # the --labels options (with_labels_options)
):
    """AUC and accuracy under acquisition changes (MedMNIST-C's 13 corruptions for chest X-rays,
    masked borders, a stamped text label) at five severities each, and the mean-corruption AUC."""
    from pneumocxr.pipeline.assess import stress_to_folder

    summary = stress_to_folder(model, out, data, split, threshold, corruption, limit, seed,
                               strict=strict, labels=labels, overwrite=overwrite)  # fmt: skip
    typer.echo(
        f"{summary['n']} images: clean AUC {summary['clean_auc']:.4f}, mean-corruption AUC "
        f"{summary['mean_corruption_auc']:.4f} (MedMNIST-C's 13: "
        f"{summary['mean_corruption_auc_medmnist_c']:.4f}); worst "
        f"{summary['worst']['corruption']} at severity {summary['worst']['severity']} "
        f"(AUC {summary['worst']['auc']:.4f})"
    )
    typer.echo(f"wrote {out}/ (stress.csv, stress.json, stress.md, stress.png)")


@app.command()
def agreement(
    ratings: Annotated[Path, typer.Argument(help="CSV: an image column, one column per rater.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Add this model's predictions as a rater ('default' for the shipped model)."
        ),
    ] = None,
    threshold: ThresholdOpt = None,
    all_pairs: Annotated[
        bool,
        typer.Option(
            help="Cohen's kappa for every pair of raters however many there are (by default "
            "only up to 20 raters: 300 raters make 44,850 pairs)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Cohen's kappa per pair of raters and Fleiss' kappa for all, with 95% CIs. An image
    listed twice must have the same rating from each rater."""
    from pneumocxr.evaluation.agreement import agreement_text
    from pneumocxr.pipeline.assess import rater_agreement

    result = rater_agreement(ratings, model, threshold, all_pairs)
    typer.echo(json.dumps(result, indent=2) if as_json else agreement_text(result))


@app.command()
@with_card_options
def export(
    model: ModelArg,
    out: Annotated[
        Path, typer.Option(help="Folder for model.safetensors (or model.onnx) and model.json.")
    ],
    export_format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="safetensors: a PyTorch model folder. onnx: model.onnx, one float32 graph "
            "from the [0, 1] gray image (N x 1 x S x S) to the logit and the scope score, for "
            "ONNX Runtime (pip install 'pneumocxr[onnx]'); ensembles too. No --half, no "
            "Grad-CAM (docs/SERVING.md).",
        ),
    ] = ExportFormat.safetensors,
    half: Annotated[
        bool, typer.Option(help="Store float16 weights (half the size; safetensors only).")
    ] = False,
    card=None,  # the options of what model.json records (with_card_options)
    splits_from: SplitsFromOpt = None,
    overwrite: OverwriteOpt = False,
):
    """Copy an exported model elsewhere, optionally as float16 or as an ONNX graph, with its
    metadata; optionally with a new operating threshold, calibration, UNCERTAIN band, scope
    check and external-validation figures."""
    from pneumocxr.pipeline.export import export_model

    card = replace(card, splits_from=splits_from)
    written = export_model(model, out, half, overwrite, card, export_format.value)
    typer.echo(f"wrote {written}")


@app.command()
@with_card_options
def ensemble(
    models: Annotated[list[str], typer.Argument(help="Exported models (run folders) to average.")],
    out: Annotated[Path, typer.Option(help="Folder for the ensemble (model.json, members/).")],
    card=None,  # the options of what model.json records (with_card_options)
    overwrite: OverwriteOpt = False,
):
    """Combine models into one that averages their logits (out of scope when any member says
    so); every command takes the folder."""
    from pneumocxr.pipeline.export import make_ensemble

    path, figures = make_ensemble(models, out, card, overwrite)
    typer.echo(f"threshold {figures['threshold']:.4f} ({figures['threshold_method']})")
    typer.echo(f"wrote {path}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A folder made by `pneumocxr run`.")],
    overwrite: Annotated[
        bool, typer.Option(help="Replace a report.html that pneumocxr did not write.")
    ] = False,
):
    """Rebuild report.html of a run folder."""
    from pneumocxr.report.html import write_report

    typer.echo(f"wrote {write_report(run_dir, overwrite)}")
