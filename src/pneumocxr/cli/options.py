"""Options and arguments several commands share, and the helpers that read them."""

from __future__ import annotations

import functools
import inspect
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pneumocxr.errors import PneumoError


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
# The folder a model is measured on (evaluate, compare, stress): never downloaded.
LabelledDataOpt = Annotated[Path | None, typer.Option(help="Labelled folder (Kaggle layout).")]
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
TemperOnOpt = Annotated[
    Path | None,
    typer.Option(
        help="Labelled images nothing was trained on (a NORMAL/ PNEUMONIA/ folder, or a run's "
        "splits.csv: all but its train split) to fit shift tempering on: P made less sure as "
        "the scope score grows (docs/VALIDATION.md). [keep the model's]"
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


AcceleratorOpt = Annotated[
    str, typer.Option(help="Lightning accelerator: auto (a GPU if any), cpu, gpu...")
]
DevicesOpt = Annotated[
    str, typer.Option(help="Devices per node: a count, auto, or ids such as 0,1.")
]
NumNodesOpt = Annotated[int, typer.Option(min=1, help="Machines (see docs/SCALING.md).")]
StrategyOpt = Annotated[
    str, typer.Option(help="Lightning strategy: auto, ddp, ddp_find_unused_parameters_true...")
]
PrecisionOpt = Annotated[str, typer.Option(help="32-true, 16-mixed (GPU) or bf16-mixed.")]
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
          calibration=None, refer_at_most=None, temper_on=None):  # fmt: skip
    """export's and ensemble's options for what model.json records (evaluation.validation)."""
    from pneumocxr.training.card import Card

    return Card(threshold, threshold_on, min_sensitivity, external, calibrate_on,
                calibration.value if calibration else None, refer_at_most,
                temper_on=temper_on)  # fmt: skip


# The --labels options every command that reads labelled folders takes, and their defaults.
LABEL_OPTIONS = {
    "labels": (LabelsOpt, None), "path_column": (PathColumnOpt, "path"),
    "label_column": (LabelColumnOpt, "label"), "patient_column": (PatientColumnOpt, "patient"),
    "patient_pattern": (PatientPatternOpt, None), "positive": (PositiveOpt, None),
    "negative": (NegativeOpt, None), "uncertain": (UncertainOpt, None),
    "separator": (SeparatorOpt, None),
}  # fmt: skip


def option_group(name: str, options: dict, build):
    """A decorator giving a command the options `options` ({parameter: (type, default)}); it
    receives them as one argument `name`, `build(*values)`. One declaration for options that
    several commands share, instead of each repeating them."""

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        kept = [p for n, p in signature.parameters.items() if n != name]
        added = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=t)
            for n, (t, d) in options.items()
        ]

        @functools.wraps(command)
        def run(*args, **kwargs):
            return command(*args, **{name: build(*(kwargs.pop(n) for n in options))}, **kwargs)

        run.__signature__ = signature.replace(parameters=[*kept, *added])
        run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}
        return run

    return decorate


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


# A command decorated so receives the --labels options as `labels`: a LabelsSpec or None.
with_labels_options = option_group("labels", LABEL_OPTIONS, _labels_spec)


def _data_folder(data, spec):
    """--data; with --labels and no --data, the CSV's folder (never a download)."""
    return Path(spec.csv).parent if data is None and spec is not None else data


def _allow_pickle(weights: str, trusted: bool) -> None:
    """--trust-pickle: the user vouches for this weights file."""
    if trusted and weights not in ("default", "none"):
        from pneumocxr.networks.weights import trust_pickle

        trust_pickle(weights)


# The options by which export and ensemble set what model.json records, received as `card`.
CARD_OPTIONS = {
    "threshold": (CardThreshold, None), "threshold_on": (ThresholdOnOpt, None),
    "min_sensitivity": (MinSensitivityOpt, 0.97), "external": (ExternalOpt, None),
    "calibrate_on": (CalibrateOnOpt, None), "calibration": (CalibrationOpt, None),
    "refer_at_most": (ReferOpt, None), "temper_on": (TemperOnOpt, None),
}  # fmt: skip
with_card_options = option_group("card", CARD_OPTIONS, _card)
