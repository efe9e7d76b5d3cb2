"""The `pneumocxr` command line: thin wrappers over the library, one subcommand per task."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pneumocxr.errors import PneumoError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Train, evaluate and explain chest X-ray classifiers (NORMAL vs PNEUMONIA).",
)
log = logging.getLogger("pneumocxr")


class SplitMethod(StrEnum):
    auto = "auto"
    official = "official"
    patient = "patient"
    image = "image"
    column = "column"


class AugmentPolicy(StrEnum):
    tutorial = "tutorial"
    strong = "strong"
    none = "none"


class SelectOn(StrEnum):
    val = "val"
    external = "external"


class ClassWeight(StrEnum):
    none = "none"
    balanced = "balanced"


DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Folder in the Kaggle chest_xray layout. Default: $PNEUMOCXR_DATA, "
        "./data/chest_xray, else download.",
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Random seed for splits, shuffling, augmentation.")]
SplitOpt = Annotated[
    SplitMethod,
    typer.Option(
        "--split",
        help="auto: column if the --labels CSV has a split column, official if the data has a "
        "Kaggle test/ folder, else patient. official: test = the test/ folder, validation "
        "carved by patient from train/. patient: all images pooled, no patient in two splits. "
        "image: the tutorial's random image split. column: the --labels CSV's split column "
        "(train, val, test) as it is.",
    ),
]
ExternalOpt = Annotated[
    Path | None,
    typer.Option(
        "--external",
        help="An external validation folder (NORMAL/, PNEUMONIA/) from outside the training "
        "pool: evaluated every epoch and at the end beside validation, never trained on.",
    ),
]
TestSizeOpt = Annotated[float, typer.Option(help="Fraction of all images held out for testing.")]
ValSizeOpt = Annotated[float, typer.Option(help="Fraction of the rest used for validation.")]
StrictOpt = Annotated[
    bool,
    typer.Option(
        help="Fail on input that cannot be read (an image, a folder, a broken link) instead of "
        "skipping it with a warning."
    ),
]
LabelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="A CSV labelling images anywhere (columns path and label; optional patient and "
        "split): paths relative to --data (default: the CSV's folder) or absolute. The options "
        "below read other conventions (RSNA, ChestX-ray14, CheXpert: docs/TRAINING.md).",
    ),
]
PathColumnOpt = Annotated[
    str,
    typer.Option(
        help="--labels column naming each image: a path, or a name to which .dcm, .png, .jpeg... "
        "are added until a file is found."
    ),
]
LabelColumnOpt = Annotated[str, typer.Option(help="--labels column holding the label.")]
PatientColumnOpt = Annotated[
    str,
    typer.Option(
        help="--labels column holding the patient; without one, a DICOM's PatientID, else the "
        "file name (as for Kaggle names)."
    ),
]
PatientPatternOpt = Annotated[
    str | None,
    typer.Option(
        help="Regular expression finding the patient in each listed path (its first group, or "
        "the whole match), e.g. 'patient\\d+' for CheXpert."
    ),
]
PositiveOpt = Annotated[
    list[str] | None,
    typer.Option(help="A label value meaning PNEUMONIA (repeatable). [PNEUMONIA]"),
]
NegativeOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="A label value meaning NORMAL (repeatable); other values are then an error. "
        "[NORMAL; with --positive: any other value]"
    ),
]
UncertainOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="A label value whose rows are left out, with a count (repeatable); rows with an "
        "empty label always are."
    ),
]
SeparatorOpt = Annotated[
    str | None,
    typer.Option(
        help="Labels list several findings separated by this (e.g. '|'); PNEUMONIA when any "
        "of them is a --positive value."
    ),
]
OverwriteOpt = Annotated[
    bool, typer.Option(help="Replace earlier results in --out (the folder is replaced whole).")
]
TrustPickleOpt = Annotated[
    bool,
    typer.Option(
        help="Allow a pickle-based weights file (.pth); it is still read with weights_only=True."
    ),
]


CalibrateOnOpt = Annotated[
    Path | None,
    typer.Option(
        help="A labelled folder (NORMAL/, PNEUMONIA/) to calibrate P(pneumonia) and fit the "
        "UNCERTAIN band on. [the validation split]"
    ),
]
ReferOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=0.5,
        help="Most of the calibration set the UNCERTAIN band may refer (docs/VALIDATION.md); "
        "0: no band. [0.08]",
    ),
]


class CalibrationMethod(StrEnum):
    platt = "platt"
    temperature = "temperature"
    isotonic = "isotonic"
    none = "none"


class ExportFormat(StrEnum):
    safetensors = "safetensors"
    onnx = "onnx"


CalibrationOpt = Annotated[
    CalibrationMethod | None,
    typer.Option(help="How P(pneumonia) is calibrated. [platt]"),
]


# -- data -----------------------------------------------------------------------------------
@app.command()
def download(
    dest: Annotated[Path, typer.Option(help="Where to put chest_xray/.")] = Path("data"),
):
    """Download the Kaggle chest X-ray dataset with kagglehub and tidy it."""
    from pneumocxr.data.download import download as fetch

    typer.echo(fetch(dest))


@app.command()
def split(
    out: Annotated[Path, typer.Option(help="Folder for splits.csv and distribution.png.")],
    data: DataOpt = None,
    method: SplitOpt = SplitMethod.auto,
    test_size: TestSizeOpt = 0.2,
    val_size: ValSizeOpt = 0.2,
    seed: SeedOpt = 42,
    strict: StrictOpt = False,
    labels: LabelsOpt = None,
    path_column: PathColumnOpt = "path",
    label_column: LabelColumnOpt = "label",
    patient_column: PatientColumnOpt = "patient",
    patient_pattern: PatientPatternOpt = None,
    positive: PositiveOpt = None,
    negative: NegativeOpt = None,
    uncertain: UncertainOpt = None,
    separator: SeparatorOpt = None,
):
    """Split the images into train/val/test and plot the class counts."""
    from pneumocxr.data.dataset import load_dataset
    from pneumocxr.data.download import resolve_data
    from pneumocxr.data.split import PROTOCOLS, split_summary
    from pneumocxr.fileio import check_can_create
    from pneumocxr.training.rundir import write_splits

    spec = _labels_spec(labels, path_column, label_column, patient_column, patient_pattern,
                        positive, negative, uncertain, separator)  # fmt: skip
    check_can_create(out)  # now; the folder itself is made when its files are written
    root = resolve_data(_data_folder(data, spec))
    dataset = load_dataset(
        root,
        32,
        split=method.value,
        test_size=test_size,
        val_size=val_size,
        seed=seed,
        strict=strict,
        labels=spec,
    )
    write_splits(out, dataset.table)
    typer.echo(f"split protocol: {PROTOCOLS[dataset.protocol]}")
    for name, counts in split_summary(dataset.table).items():
        typer.echo(
            f"{name:5s} {counts['images']:5d} images, {counts['patients']:5d} patients "
            f"(NORMAL {counts['NORMAL']}, PNEUMONIA {counts['PNEUMONIA']})"
        )
    typer.echo(f"wrote {out / 'splits.csv'} and {out / 'distribution.png'}")


@app.command()
def preview(
    out: Annotated[Path, typer.Option(help="PNG file for the 4x4 grid.")],
    data: DataOpt = None,
    image_size: Annotated[int, typer.Option(min=16, help="Image size in pixels.")] = 224,
    seed: SeedOpt = 42,
):
    """Write a 4x4 grid of augmented training images."""
    from pneumocxr.data.download import resolve_data
    from pneumocxr.fileio import check_output_file, made_by_pneumocxr_png
    from pneumocxr.pipeline import write_preview

    check_output_file(out, "--out", made_here=made_by_pneumocxr_png)
    write_preview(resolve_data(data), out, image_size, seed)
    typer.echo(f"wrote {out}")


# -- models ---------------------------------------------------------------------------------
@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """List the architectures with their parameter counts at their default input size."""
    from pneumocxr.pipeline import model_table

    rows = model_table()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'model':20s} {'input':>9s} {'total':>13s} {'trainable':>13s} {'frozen':>13s}")
    for r in rows:
        size = f"{r['input_size']}x{r['input_size']}"
        typer.echo(
            f"{r['name']:20s} {size:>9s} {r['total_params']:>13,} "
            f"{r['trainable_params']:>13,} {r['frozen_params']:>13,}"
        )


@app.command()
def train(
    data: DataOpt = None,
    model: Annotated[
        str, typer.Option(help="smallnet, vgg16, efficientnet-lite0, -lite1 or -lite2.")
    ] = "smallnet",
    out: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("runs"),
    epochs: Annotated[int | None, typer.Option(help="Epochs (of the last phase). [15]")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
    image_size: Annotated[int | None, typer.Option(help="Input size. [model's]")] = None,
    method: SplitOpt = SplitMethod.auto,
    test_size: TestSizeOpt = 0.2,
    val_size: ValSizeOpt = 0.2,
    seed: SeedOpt = 42,
    lr: Annotated[float | None, typer.Option(help="Learning rate. [model's]")] = None,
    class_weight: Annotated[
        ClassWeight, typer.Option(help="balanced: inverse class frequency loss weights.")
    ] = ClassWeight.none,
    weights: Annotated[
        str, typer.Option(help="Backbone weights: default (ImageNet), none, or a file.")
    ] = "default",
    unfreeze: Annotated[
        str | None,
        typer.Option(
            help="Backbone stages to fine-tune after "
            "the head: N or all. [vgg16: 0, efficientnet-lite0: 5]"
        ),
    ] = None,
    head_epochs: Annotated[
        int | None, typer.Option(help="Head-only epochs before fine-tuning. [5]")
    ] = None,
    finetune_lr: Annotated[float | None, typer.Option(help="Fine-tuning rate. [lr/10]")] = None,
    augment: Annotated[
        AugmentPolicy,
        typer.Option(
            help="tutorial: rotation +/-5 deg, shifts 10%. strong: also random-resized crops, "
            "zoom, brightness/contrast/gamma, random erasing. none."
        ),
    ] = AugmentPolicy.tutorial,
    corruption_p: Annotated[
        float,
        typer.Option(help="Share of training images given a random stress-test corruption."),
    ] = 0.0,
    mixup: Annotated[float, typer.Option(help="mixup's Beta parameter (0: off).")] = 0.0,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing (0: off).")] = 0.0,
    external: ExternalOpt = None,
    select_on: Annotated[
        SelectOn,
        typer.Option(
            help="What checkpoints, early stopping and the lr schedule follow: val (the "
            "internal split) or external (then the external figures are no longer unbiased)."
        ),
    ] = SelectOn.val,
    feature_cache: Annotated[bool, typer.Option(help="Cache frozen-backbone features.")] = True,
    cache_views: Annotated[int, typer.Option(help="Augmented views cached per image.")] = 4,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).")] = 20,
    keep: Annotated[
        str,
        typer.Option(
            help="Weights each phase ends with: best (the epoch with the lowest validation "
            "loss, Keras' restore_best_weights) or last."
        ),
    ] = "best",
    limit: Annotated[int | None, typer.Option(help="Use about this many images.")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue a run from a checkpoint in it (or from the run folder). The run's "
            "config.json supplies every option but --epochs."
        ),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option(
            help="With --resume, when every checkpoint of the run is damaged: start the run "
            "again, moving those files to checkpoints/damaged-<time>/ (they are not deleted)."
        ),
    ] = False,
    quick: Annotated[
        bool, typer.Option(help="A few-minute profile: 8 epochs, 128 px, 800 images.")
    ] = False,
    calibrate_on: CalibrateOnOpt = None,
    calibration: CalibrationOpt = None,
    refer_at_most: ReferOpt = None,
    strict: StrictOpt = False,
    labels: LabelsOpt = None,
    path_column: PathColumnOpt = "path",
    label_column: LabelColumnOpt = "label",
    patient_column: PatientColumnOpt = "patient",
    patient_pattern: PatientPatternOpt = None,
    positive: PositiveOpt = None,
    negative: NegativeOpt = None,
    uncertain: UncertainOpt = None,
    separator: SeparatorOpt = None,
    trust_pickle: TrustPickleOpt = False,
    accelerator: Annotated[
        str, typer.Option(help="Lightning accelerator: auto (a GPU if any), cpu, gpu...")
    ] = "auto",
    devices: Annotated[
        str, typer.Option(help="Devices per node: a count, auto, or ids such as 0,1.")
    ] = "1",
    num_nodes: Annotated[int, typer.Option(min=1, help="Machines (see docs/SCALING.md).")] = 1,
    strategy: Annotated[
        str, typer.Option(help="Lightning strategy: auto, ddp, ddp_find_unused_parameters_true...")
    ] = "auto",
    precision: Annotated[
        str, typer.Option(help="32-true, 16-mixed (GPU) or bf16-mixed.")
    ] = "32-true",
):
    """Train one model into a run folder and export its best weights (on several devices or
    machines with --devices, --num-nodes: docs/SCALING.md)."""
    from pneumocxr.data.download import resolve_data
    from pneumocxr.training.rundir import find_run_dir, read_config
    from pneumocxr.training.scaling import is_global_zero
    from pneumocxr.training.trainer import TrainConfig
    from pneumocxr.training.trainer import train as run_training

    spec = _labels_spec(labels, path_column, label_column, patient_column, patient_pattern,
                        positive, negative, uncertain, separator)  # fmt: skip
    if restart and resume is None:
        raise PneumoError("--restart goes with --resume RUN")
    if resume is not None:
        saved = read_config(find_run_dir(resume))
        fields = TrainConfig.__dataclass_fields__
        cfg = TrainConfig(**{k: v for k, v in saved.items() if k in fields})
        if epochs is not None:
            cfg.epochs = epochs
    else:
        cfg = TrainConfig(
            data=str(resolve_data(_data_folder(data, spec))),
            labels=None if spec is None else spec.to_dict(),
            out=str(out),
            model=model,
            epochs=epochs,
            batch_size=batch_size,
            image_size=image_size,
            split=method.value,
            test_size=test_size,
            val_size=val_size,
            seed=seed,
            lr=lr,
            class_weight=class_weight.value,
            weights=weights,
            unfreeze=unfreeze,
            head_epochs=head_epochs,
            finetune_lr=finetune_lr,
            augment=augment.value,
            corruption_p=corruption_p,
            mixup=mixup,
            label_smoothing=label_smoothing,
            external=str(external) if external else None,
            select_on=select_on.value,
            feature_cache=feature_cache,
            cache_views=cache_views,
            patience=patience,
            keep=keep,
            limit=limit,
            strict=strict,
            quick=quick,
            calibrate_on=str(calibrate_on) if calibrate_on else None,
            calibration=(calibration or CalibrationMethod.platt).value,
            refer_at_most=0.08 if refer_at_most is None else refer_at_most,
        )
    _allow_pickle(cfg.weights, trust_pickle)
    devices_now = {"accelerator": accelerator, "devices": devices, "num_nodes": num_nodes,
                   "strategy": strategy, "precision": precision}  # fmt: skip
    cfg = dataclasses.replace(cfg, **devices_now)  # a resumed run may move to other devices
    result = run_training(cfg, resume=resume, restart=restart)
    if is_global_zero():  # the other DDP processes ran the same command
        typer.echo(f"run folder: {result.run_dir}")


def _labels_spec(
    labels, path_column, label_column, patient_column, patient_pattern, positive, negative,
    uncertain, separator,
):  # fmt: skip
    """The --labels options as data/labels.py's LabelsSpec, or None without --labels."""
    from pneumocxr.data.labels import LabelsSpec

    given = {
        "--path-column": path_column != "path", "--label-column": label_column != "label",
        "--patient-column": patient_column != "patient", "--patient-pattern": patient_pattern,
        "--positive": positive, "--negative": negative, "--uncertain": uncertain,
        "--separator": separator is not None,
    }  # fmt: skip
    if labels is None:
        stray = [name for name, value in given.items() if value]
        if stray:
            raise PneumoError(f"{stray[0]} goes with --labels CSV")
        return None
    if separator == "":
        raise PneumoError("--separator must not be empty")
    return LabelsSpec(
        str(Path(labels).resolve()), path_column, label_column, patient_column, patient_pattern,
        tuple(positive or ()), tuple(negative or ()), tuple(uncertain or ()), separator,
    )  # fmt: skip


def _data_folder(data, spec):
    """--data; with --labels and no --data, the CSV's folder (never a download)."""
    return Path(spec.csv).parent if data is None and spec is not None else data


def _allow_pickle(weights: str, trusted: bool) -> None:
    """--trust-pickle: the user vouches for this weights file."""
    if trusted and weights not in ("default", "none"):
        from pneumocxr.models.weights import trust_pickle

        trust_pickle(weights)


# -- the main job ---------------------------------------------------------------------------
class Transfer(StrEnum):
    efficientnet = "efficientnet-lite0"
    lite1 = "efficientnet-lite1"
    lite2 = "efficientnet-lite2"
    vgg16 = "vgg16"


@app.command()
def run(
    data: DataOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("runs"),
    transfer: Annotated[Transfer, typer.Option(help="The transfer-learning model.")] = (
        Transfer.efficientnet
    ),
    transfer_weights: Annotated[
        str,
        typer.Option(
            help="The transfer model's ImageNet weights: default (download or "
            "package) or a local file (a .pth such as vgg16-397923af.pth needs --trust-pickle)."
        ),
    ] = "default",
    quick: Annotated[bool, typer.Option(help="A few-minute profile for a first look.")] = False,
    seed: SeedOpt = 42,
    external: ExternalOpt = None,
    method: SplitOpt = SplitMethod.auto,
    trust_pickle: TrustPickleOpt = False,
    strict: StrictOpt = False,
    labels: LabelsOpt = None,
    path_column: PathColumnOpt = "path",
    label_column: LabelColumnOpt = "label",
    patient_column: PatientColumnOpt = "patient",
    patient_pattern: PatientPatternOpt = None,
    positive: PositiveOpt = None,
    negative: NegativeOpt = None,
    uncertain: UncertainOpt = None,
    separator: SeparatorOpt = None,
):
    """The tutorial from the top: split, plots, SmallNet and a transfer model, side by side."""
    from pneumocxr.data.download import resolve_data
    from pneumocxr.pipeline import run_tutorial

    spec = _labels_spec(labels, path_column, label_column, patient_column, patient_pattern,
                        positive, negative, uncertain, separator)  # fmt: skip
    _allow_pickle(transfer_weights, trust_pickle)
    run_tutorial(
        resolve_data(_data_folder(data, spec)), out, transfer.value, quick, seed,
        transfer_weights, external, method.value, strict, spec,
    )  # fmt: skip


# -- using a model --------------------------------------------------------------------------
class OnOff(StrEnum):
    on = "on"
    off = "off"


ScopeOpt = Annotated[
    OnOff,
    typer.Option(
        "--scope-check",
        help="on: images unlike the model's training X-rays (other body parts or modalities, "
        "photos, documents, turned or negative X-rays) get OUT_OF_SCOPE. off: label every "
        "image (research).",
    ),
]


@app.command()
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Images (JPEG, PNG, DICOM) or folders.")],
    model: Annotated[
        str | None, typer.Option(help="Run folder or model.json. [default model]")
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Decision threshold on the calibrated P: a number or model (model.json's). [model]"
        ),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Also write the results to this CSV.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead.")] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Images per batch (memory grows with it).")
    ] = 32,
    scope_check: ScopeOpt = OnOff.on,
    strict: StrictOpt = False,
):
    """Print the label (NORMAL, PNEUMONIA, UNCERTAIN or OUT_OF_SCOPE), the calibrated
    P(pneumonia) and, for the last two, why, for each image."""
    from pneumocxr.api import load_model
    from pneumocxr.display import display_path

    if csv is not None:  # before any work, and never over an input or a stranger's file
        from pneumocxr.fileio import INPUT_SUFFIXES, check_output_file, starts_with

        check_output_file(csv, "--csv", paths, starts_with(b"path,"), INPUT_SUFFIXES)
    from pneumocxr.evaluation.inference import expand_inputs

    loaded = load_model(model or "default")
    settings = loaded.settings(threshold, scope_check == OnOff.on)
    files = expand_inputs(paths, strict)  # missing inputs fail before anything is printed
    log.info("%s", _decision_rule(settings, loaded))
    found, failures = loaded.predict_paths(
        files, threshold=threshold, batch_size=batch_size, scope_check=settings.scope_check,
        strict=strict,
    )  # fmt: skip
    for _, reason in failures:
        log.warning("skipped %s", reason)
    for answer in found:
        if as_json:
            typer.echo(json.dumps(_json_answer(answer)))
        else:
            extra = f"\t{answer.reason}" if answer.reason else ""
            typer.echo(
                f"{display_path(answer.path)}\t{answer.label}\t{answer.p_pneumonia:.4f}{extra}"
            )
    if csv is not None and found:
        from pneumocxr.evaluation.inference import ANSWER_COLUMNS, answers_table
        from pneumocxr.fileio import write_csv

        write_csv(csv, answers_table(found)[ANSWER_COLUMNS])
    if failures and not found:
        raise PneumoError("no image could be read")


def _json_answer(answer) -> dict:
    """predict --json's line; the path escaped as in the text output (valid UTF-8 for jq)."""
    from pneumocxr.display import display_path

    score = None if answer.scope_score is None else round(answer.scope_score, 4)
    return {
        "path": display_path(answer.path),
        "label": answer.label,
        "p_pneumonia": round(answer.p_pneumonia, 6),
        "in_scope": answer.in_scope,
        "scope_score": score,
        "reason": answer.reason,
    }


def _decision_rule(settings, model) -> str:
    """One line: the threshold, the UNCERTAIN band and the scope check in use."""
    text = f"threshold {settings.threshold:.4f} on the calibrated P(pneumonia)"
    if settings.band is not None and settings.band.low < settings.band.high:
        text += f"; UNCERTAIN for {settings.band.low:.4f} <= P < {settings.band.high:.4f}"
    if not settings.scope_check:
        return text + "; scope check off"
    if not model.loaded.has_scope:
        return text + "; this model has no scope check (export it with --splits-from RUN)"
    return text + "; scope check on"


ModelArg = Annotated[
    str,
    typer.Argument(help="Run folder, model folder, model.json, or 'default' (the shipped model)."),
]
TTAOpt = Annotated[
    bool,
    typer.Option(
        help="Test-time augmentation: average each image with its mirror image (measured to "
        "lower external AUC on this data; see docs/BENCHMARKS.md)."
    ),
]
ThresholdOpt = Annotated[
    str | None,
    typer.Option(
        help="Decision threshold on the calibrated P: a number, or model: the model's operating "
        "threshold from model.json (for models you train: where their own sigmoid is 0.5; the "
        "shipped model's is in its model card). [model]"
    ),
]


@app.command()
def evaluate(
    model: ModelArg,
    out: Annotated[Path, typer.Option(help="Folder for predictions, metrics and figures.")],
    data: Annotated[Path | None, typer.Option(help="Labelled folder (Kaggle layout).")] = None,
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
    labels: LabelsOpt = None,
    path_column: PathColumnOpt = "path",
    label_column: LabelColumnOpt = "label",
    patient_column: PatientColumnOpt = "patient",
    patient_pattern: PatientPatternOpt = None,
    positive: PositiveOpt = None,
    negative: NegativeOpt = None,
    uncertain: UncertainOpt = None,
    separator: SeparatorOpt = None,
):
    """Metrics with 95% CIs over every image, the decisions (out of scope, referred, answered),
    calibration (ECE, Brier), report, confusion matrix, ROC, reliability and risk-coverage."""
    from pneumocxr.pipeline import evaluate_to_folder

    spec = _labels_spec(labels, path_column, label_column, patient_column, patient_pattern,
                        positive, negative, uncertain, separator)  # fmt: skip
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
        labels=spec,
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
def compare(
    models: Annotated[list[str], typer.Argument(help="Run folders or models to compare.")],
    out: Annotated[Path, typer.Option(help="Folder for the ROC plot and tables.")] = Path(
        "compare"
    ),
    data: Annotated[Path | None, typer.Option(help="Labelled folder (Kaggle layout).")] = None,
    split: Annotated[
        str | None, typer.Option(help="A split of the first model's run instead of --data.")
    ] = None,
    threshold: ThresholdOpt = None,
    external: ExternalOpt = None,
    tta: TTAOpt = False,
    scope_check: ScopeOpt = OnOff.on,
    strict: StrictOpt = False,
    labels: LabelsOpt = None,
    path_column: PathColumnOpt = "path",
    label_column: LabelColumnOpt = "label",
    patient_column: PatientColumnOpt = "patient",
    patient_pattern: PatientPatternOpt = None,
    positive: PositiveOpt = None,
    negative: NegativeOpt = None,
    uncertain: UncertainOpt = None,
    separator: SeparatorOpt = None,
):
    """One ROC plot with every model, and a table of their metrics, calibration and decisions
    (markdown and JSON); with --external, internal and external side by side with the gap."""
    from pneumocxr.evaluation.evaluate import comparison_markdown
    from pneumocxr.pipeline import compare_models

    spec = _labels_spec(labels, path_column, label_column, patient_column, patient_pattern,
                        positive, negative, uncertain, separator)  # fmt: skip
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
        labels=spec,
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
):
    """Grad-CAM heatmap over each image, and a panel of up to three side by side; titles give
    the decision. Unreadable images are skipped with a warning."""
    from pneumocxr.display import display_path
    from pneumocxr.pipeline import gradcam_to_folder

    for path in gradcam_to_folder(model, images, out, threshold, scope_check == OnOff.on):
        typer.echo(f"wrote {display_path(path)}")


@app.command()
def stress(
    model: ModelArg,
    out: Annotated[Path, typer.Option(help="Folder for stress.csv/.json/.md and stress.png.")],
    data: Annotated[Path | None, typer.Option(help="Labelled folder (Kaggle layout).")] = None,
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
    labels: LabelsOpt = None,
    path_column: PathColumnOpt = "path",
    label_column: LabelColumnOpt = "label",
    patient_column: PatientColumnOpt = "patient",
    patient_pattern: PatientPatternOpt = None,
    positive: PositiveOpt = None,
    negative: NegativeOpt = None,
    uncertain: UncertainOpt = None,
    separator: SeparatorOpt = None,
):
    """AUC and accuracy under acquisition changes (MedMNIST-C's 13 corruptions for chest X-rays,
    masked borders, a stamped text label) at five severities each, and the mean-corruption AUC."""
    from pneumocxr.pipeline import stress_to_folder

    spec = _labels_spec(labels, path_column, label_column, patient_column, patient_pattern,
                        positive, negative, uncertain, separator)  # fmt: skip
    summary = stress_to_folder(
        model, out, data, split, threshold, corruption, limit, seed, strict=strict, labels=spec
    )
    typer.echo(
        f"{summary['n']} images: clean AUC {summary['clean_auc']:.4f}, mean-corruption AUC "
        f"{summary['mean_corruption_auc']:.4f} (MedMNIST-C's 13: "
        f"{summary['mean_corruption_auc_medmnist_c']:.4f}); worst "
        f"{summary['worst']['corruption']} at severity {summary['worst']['severity']} "
        f"(AUC {summary['worst']['auc']:.4f})"
    )
    typer.echo(f"wrote {out}/ (stress.csv, stress.json, stress.md, stress.png)")


@app.command()
def dicom2png(
    source: Annotated[Path, typer.Argument(help="A DICOM file or a folder tree of them.")],
    target: Annotated[Path, typer.Argument(help="PNG file, or folder for a tree.")],
    overwrite: Annotated[
        bool, typer.Option(help="Replace PNGs already at TARGET (by default they are kept).")
    ] = False,
):
    """Convert DICOM radiographs to 8-bit PNGs (LUTs, MONOCHROME1, the tutorial's scaling)."""
    from pneumocxr.data.dicom import dicom_to_png

    written, failures = dicom_to_png(source, target, overwrite)
    for _, reason in failures:
        log.warning("skipped %s", reason)
    if not written:
        raise PneumoError(f"none of the {len(failures)} DICOM files could be converted")
    typer.echo(f"wrote {written[0] if len(written) == 1 else target}")


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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Cohen's kappa per pair of raters and Fleiss' kappa for all, with 95% CIs."""
    from pneumocxr.evaluation.agreement import agreement_text
    from pneumocxr.pipeline import rater_agreement

    result = rater_agreement(ratings, model, threshold)
    typer.echo(json.dumps(result, indent=2) if as_json else agreement_text(result))


CardThreshold = Annotated[
    str | None,
    typer.Option(
        "--threshold",
        help="The operating threshold to store: a number, model (keep it), youden (Youden's J "
        "on the run's validation split) or operating (the most accurate one with sensitivity "
        ">= --min-sensitivity on --threshold-on DIR). [model; ensembles: 0.5]",
    ),
]
ThresholdOnOpt = Annotated[
    Path | None, typer.Option(help="Labelled folder the operating threshold is chosen on.")
]
MinSensitivityOpt = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Sensitivity the operating threshold keeps.")
]


SplitsFromOpt = Annotated[
    Path | None,
    typer.Option(
        help="The model's training run folder or its splits.csv (for the shipped model, rebuilt "
        "by `pneumocxr split`): its train split refits the scope check, its val split gives the "
        "internal figures and, without --calibrate-on, the calibration."
    ),
]


def _card(threshold, threshold_on, min_sensitivity, external, calibrate_on=None,
          calibration=None, refer_at_most=None, splits_from=None):  # fmt: skip
    from pneumocxr.evaluation.validation import Card

    return Card(threshold, threshold_on, min_sensitivity, external, calibrate_on,
                calibration.value if calibration else None, refer_at_most, splits_from)  # fmt: skip


@app.command()
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
    threshold: CardThreshold = None,
    threshold_on: ThresholdOnOpt = None,
    min_sensitivity: MinSensitivityOpt = 0.97,
    external: ExternalOpt = None,
    calibrate_on: CalibrateOnOpt = None,
    calibration: CalibrationOpt = None,
    refer_at_most: ReferOpt = None,
    splits_from: SplitsFromOpt = None,
    overwrite: OverwriteOpt = False,
):
    """Copy an exported model elsewhere, optionally as float16 or as an ONNX graph, with its
    metadata; optionally with a new operating threshold, calibration, UNCERTAIN band, scope
    check and external-validation figures."""
    from pneumocxr.pipeline import export_model

    card = _card(threshold, threshold_on, min_sensitivity, external, calibrate_on, calibration,
                 refer_at_most, splits_from)  # fmt: skip
    written = export_model(model, out, half, overwrite, card, export_format.value)
    typer.echo(f"wrote {written}")


@app.command()
def ensemble(
    models: Annotated[list[str], typer.Argument(help="Exported models (run folders) to average.")],
    out: Annotated[Path, typer.Option(help="Folder for the ensemble (model.json, members/).")],
    threshold: CardThreshold = None,
    threshold_on: ThresholdOnOpt = None,
    min_sensitivity: MinSensitivityOpt = 0.97,
    external: ExternalOpt = None,
    calibrate_on: CalibrateOnOpt = None,
    calibration: CalibrationOpt = None,
    refer_at_most: ReferOpt = None,
    overwrite: OverwriteOpt = False,
):
    """Combine models into one that averages their logits (out of scope when any member says
    so); every command takes the folder."""
    from pneumocxr.pipeline import make_ensemble

    card = _card(threshold, threshold_on, min_sensitivity, external, calibrate_on, calibration,
                 refer_at_most)  # fmt: skip
    path, figures = make_ensemble(models, out, card, overwrite)
    typer.echo(f"threshold {figures['threshold']:.4f} ({figures['threshold_method']})")
    typer.echo(f"wrote {path}")


@app.command()
def bench(
    model: Annotated[
        str | None, typer.Option(help="Model for the inference figures. [default model]")
    ] = None,
    transfer: Annotated[
        str, typer.Option(help="Transfer architecture for the training figures.")
    ] = "efficientnet-lite0",
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
    image_size: Annotated[int, typer.Option(help="Training input size.")] = 224,
    steps: Annotated[
        int | None, typer.Option(help="Timed training steps per figure. [10, --quick 3]")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Fewer steps and files: under a minute.")] = False,
    data: Annotated[
        Path | None,
        typer.Option(help="Folder of images to read. [synthetic X-ray-sized JPEGs]"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Training and inference speed, each also as a ratio to a plain eager PyTorch SmallNet and
    to a large matrix multiply measured in the same run."""
    from pneumocxr.bench.suite import BenchOptions, bench_table, run_bench

    opts = BenchOptions(
        model, transfer, batch_size, image_size, steps, quick, str(data) if data else None
    )
    result = run_bench(opts, progress=lambda message: log.info("bench: %s", message))
    typer.echo(json.dumps(result, indent=2) if as_json else bench_table(result))


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A folder made by `pneumocxr run`.")]):
    """Rebuild report.html of a run folder."""
    from pneumocxr.report.html import write_report

    typer.echo(f"wrote {write_report(run_dir)}")


# -- the web app ----------------------------------------------------------------------------
@app.command()
def serve(
    model: Annotated[
        str | None, typer.Option(help="Run folder, model folder or model.json. [default model]")
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other than loopback, anyone can reach it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    threshold: Annotated[
        str, typer.Option(help="Decision threshold: a number, or model (model.json's).")
    ] = "model",
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest upload accepted, in MB (larger: 413).")
    ] = 20,
    max_megapixels: Annotated[
        float, typer.Option(min=0.01, help="Largest image accepted, in millions of pixels.")
    ] = 40,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Most requests that share one forward pass.")
    ] = 16,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="A host name the server answers to (repeatable), as browsers send it in the "
            "Host header, without the port; others get 400, which stops DNS-rebinding pages. "
            "[localhost, 127.0.0.1, [::1] and --host]",
        ),
    ] = None,
):
    """Web page and HTTP API: upload X-rays, see label, P(pneumonia) and Grad-CAM."""
    from pneumocxr.serve.server import serve as run_server

    run_server(model, host, port, threshold, max_upload_mb, max_megapixels, max_batch,
               allowed_host)  # fmt: skip


@app.command()
def loadtest(
    images: Annotated[list[Path], typer.Argument(help="Images (or folders of them) to upload.")],
    url: Annotated[str, typer.Option(help="The server; loopback addresses only.")] = (
        "http://127.0.0.1:8000"
    ),
    requests: Annotated[int, typer.Option(min=1, help="Requests per level.")] = 64,
    clients: Annotated[
        str, typer.Option(help="Concurrent clients per level, comma-separated.")
    ] = "1,4,16",
    time_limit: Annotated[
        float, typer.Option(min=1, help="Seconds for the whole test; then no request starts.")
    ] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    scope_check: ScopeOpt = OnOff.on,
):
    """Requests/s and p50/p99 latency of a running server, with and without Grad-CAM."""
    from pneumocxr.serve.loadtest import check_target, load_test, table

    check_target(url)  # before anything else: nothing goes to another machine
    from pneumocxr.evaluation.inference import expand_inputs

    try:
        levels = [int(x) for x in clients.split(",") if x.strip()]
    except ValueError:
        raise PneumoError(
            f"--clients must be numbers separated by commas, got {clients!r}"
        ) from None
    if not levels or min(levels) < 1:
        raise PneumoError(f"--clients needs at least one positive number, got {clients!r}")
    result = load_test(url, expand_inputs(images), requests, levels, (False, True), time_limit,
                       scope_check == OnOff.on)  # fmt: skip
    typer.echo(json.dumps(result, indent=2) if as_json else table(result))


# -- entry point ----------------------------------------------------------------------------
def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from pneumocxr.display import display_path

        text = record.getMessage()
        # A warning is one line even when it quotes a file name holding a line break.
        return f"warning: {display_path(text)}" if record.levelno >= logging.WARNING else text


def main() -> None:
    from pneumocxr._malloc import tune_malloc

    # Idle OpenMP threads sleep instead of spinning: on two shared cores a spinning thread
    # took the core the Python thread needed (SmallNet training 24 -> 38 img/s, one third
    # less CPU time; docs/PERFORMANCE.md). Must be set before torch loads; overridable.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Figures are only ever saved: no window toolkit (the library itself leaves the backend to
    # its user, so plots still show in a notebook).
    os.environ.setdefault("MPLBACKEND", "Agg")
    tune_malloc()
    _setup_logging()
    try:
        app()
    except PneumoError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as err:
        _fail_if_disk_full(err)
        where = f": {err.filename}" if getattr(err, "filename", None) else ""
        _fail(f"{err.strerror or err}{where}")
    except Exception as err:  # a bug: one line by default, the traceback on request
        _fail_if_disk_full(err)  # libraries wrap ENOSPC in their own errors (safetensors)
        if os.environ.get("PNEUMOCXR_DEBUG"):
            raise
        _fail(
            f"internal error ({type(err).__name__}: {err}); "
            "set PNEUMOCXR_DEBUG=1 to see the traceback"
        )


def _fail_if_disk_full(err: BaseException) -> None:
    from pneumocxr.fileio import disk_full_message, is_disk_full

    if is_disk_full(err):
        _fail(disk_full_message(err))


def _fail(message: str) -> None:
    from pneumocxr.display import one_line

    # Messages may quote a library's multi-line text (pandas, pydicom): keep them on one line.
    typer.echo("error: " + one_line(message), err=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
