"""The `pneumocxr` command line: thin wrappers over the library, one subcommand per task."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from enum import Enum
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


class SplitMethod(str, Enum):
    patient = "patient"
    image = "image"


class ClassWeight(str, Enum):
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
SplitOpt = Annotated[SplitMethod, typer.Option("--split", help="patient (no patient in two "
                     "splits) or image (the tutorial's protocol).")]  # fmt: skip
TestSizeOpt = Annotated[float, typer.Option(help="Fraction of all images held out for testing.")]
ValSizeOpt = Annotated[float, typer.Option(help="Fraction of the rest used for validation.")]
StrictOpt = Annotated[bool, typer.Option(help="Fail on unreadable images instead of skipping.")]


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
    method: SplitOpt = SplitMethod.patient,
    test_size: TestSizeOpt = 0.2,
    val_size: ValSizeOpt = 0.2,
    seed: SeedOpt = 42,
    strict: StrictOpt = False,
):
    """Split the images into train/val/test and plot the class counts."""
    from pneumocxr.data.dataset import load_dataset
    from pneumocxr.data.download import resolve_data
    from pneumocxr.data.split import split_summary
    from pneumocxr.fileio import ensure_dir
    from pneumocxr.training.rundir import write_splits

    ensure_dir(out)
    root = resolve_data(data)
    dataset = load_dataset(root, 32, split=method.value, test_size=test_size,
                           val_size=val_size, seed=seed, strict=strict)  # fmt: skip
    write_splits(out, dataset.table)
    for name, counts in split_summary(dataset.table).items():
        typer.echo(f"{name:5s} {counts['images']:5d} images, {counts['patients']:5d} patients "
                   f"(NORMAL {counts['NORMAL']}, PNEUMONIA {counts['PNEUMONIA']})")  # fmt: skip
    typer.echo(f"wrote {out / 'splits.csv'} and {out / 'distribution.png'}")


@app.command()
def preview(
    out: Annotated[Path, typer.Option(help="PNG file for the 4x4 grid.")],
    data: DataOpt = None,
    image_size: Annotated[int, typer.Option(help="Image size in pixels.")] = 224,
    seed: SeedOpt = 42,
):
    """Write a 4x4 grid of augmented training images."""
    from pneumocxr.data.download import resolve_data
    from pneumocxr.pipeline import write_preview

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
        typer.echo(f"{r['name']:20s} {size:>9s} {r['total_params']:>13,} "
                   f"{r['trainable_params']:>13,} {r['frozen_params']:>13,}")  # fmt: skip


@app.command()
def train(
    data: DataOpt = None,
    model: Annotated[str, typer.Option(help="smallnet, vgg16 or efficientnet-lite0.")] = "smallnet",
    out: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("runs"),
    epochs: Annotated[int | None, typer.Option(help="Epochs (of the last phase). [15]")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
    image_size: Annotated[int | None, typer.Option(help="Input size. [model's]")] = None,
    method: SplitOpt = SplitMethod.patient,
    test_size: TestSizeOpt = 0.2,
    val_size: ValSizeOpt = 0.2,
    seed: SeedOpt = 42,
    lr: Annotated[float | None, typer.Option(help="Learning rate. [model's]")] = None,
    class_weight: Annotated[ClassWeight, typer.Option(help="balanced: inverse class "
                            "frequency loss weights.")] = ClassWeight.none,  # fmt: skip
    weights: Annotated[str, typer.Option(help="Backbone weights: default (ImageNet), none, "
                       "or a file.")] = "default",  # fmt: skip
    unfreeze: Annotated[str | None, typer.Option(help="Backbone stages to fine-tune after "
                        "the head: N or all. [0]")] = None,  # fmt: skip
    head_epochs: Annotated[int, typer.Option(help="Head-only epochs before fine-tuning.")] = 5,
    finetune_lr: Annotated[float | None, typer.Option(help="Fine-tuning rate. [lr/10]")] = None,
    augment: Annotated[bool, typer.Option(help="Random rotation and shifts in training.")] = True,
    feature_cache: Annotated[bool, typer.Option(help="Cache frozen-backbone features.")] = True,
    cache_views: Annotated[int, typer.Option(help="Augmented views cached per image.")] = 4,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).")] = 20,
    limit: Annotated[int | None, typer.Option(help="Use about this many images.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue a run from its checkpoint "
                      "(or run folder).")] = None,  # fmt: skip
    quick: Annotated[bool, typer.Option(help="A few-minute profile: 3 epochs, 128 px, "
                     "800 images.")] = False,  # fmt: skip
    strict: StrictOpt = False,
):
    """Train one model into a run folder and export its best weights."""
    from pneumocxr.data.download import resolve_data
    from pneumocxr.training.rundir import find_run_dir, read_config
    from pneumocxr.training.trainer import TrainConfig
    from pneumocxr.training.trainer import train as run_training

    if resume is not None:
        saved = read_config(find_run_dir(resume))
        fields = TrainConfig.__dataclass_fields__
        cfg = TrainConfig(**{k: v for k, v in saved.items() if k in fields})
        if epochs is not None:
            cfg.epochs = epochs
    else:
        cfg = TrainConfig(
            data=str(resolve_data(data)), out=str(out), model=model, epochs=epochs or 15,
            batch_size=batch_size, image_size=image_size, split=method.value, test_size=test_size,
            val_size=val_size, seed=seed, lr=lr, class_weight=class_weight.value, weights=weights,
            unfreeze=unfreeze, head_epochs=head_epochs, finetune_lr=finetune_lr, augment=augment,
            feature_cache=feature_cache, cache_views=cache_views, patience=patience, limit=limit,
            strict=strict, quick=quick,
        )  # fmt: skip
    result = run_training(cfg, resume=resume)
    typer.echo(f"run folder: {result.run_dir}")


# -- the main job ---------------------------------------------------------------------------
class Transfer(str, Enum):
    efficientnet = "efficientnet-lite0"
    vgg16 = "vgg16"


@app.command()
def run(
    data: DataOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("runs"),
    transfer: Annotated[Transfer, typer.Option(help="The transfer-learning model.")] = (
        Transfer.efficientnet
    ),
    quick: Annotated[bool, typer.Option(help="A few-minute profile for a first look.")] = False,
    seed: SeedOpt = 42,
):
    """The tutorial from the top: split, plots, SmallNet and a transfer model, side by side."""
    from pneumocxr.data.download import resolve_data
    from pneumocxr.pipeline import run_tutorial

    run_tutorial(resolve_data(data), out, transfer.value, quick, seed)


# -- using a model --------------------------------------------------------------------------
@app.command()
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Images (JPEG, PNG, DICOM) or folders.")],
    model: Annotated[str | None, typer.Option(help="Run folder or model.json. [default model]")] = None,
    threshold: Annotated[str | None, typer.Option(help="Decision threshold: a number or "
                         "'model'. [0.5]")] = None,  # fmt: skip
    csv: Annotated[Path | None, typer.Option(help="Also write the results to this CSV.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 64,
):
    """Print the predicted label and P(pneumonia) for each image."""
    from pneumocxr.pipeline import predict_files

    table, failures = predict_files(paths, model, threshold, batch_size)
    for path, reason in failures:
        log.warning("skipped %s", reason)
    if csv is not None:
        from pneumocxr.fileio import atomic_path

        with atomic_path(csv) as tmp:
            table.to_csv(tmp, index=False)
    for row in table.itertuples():
        if as_json:
            typer.echo(json.dumps({"path": row.path, "label": row.predicted,
                                   "p_pneumonia": round(row.p_pneumonia, 6)}))  # fmt: skip
        else:
            typer.echo(f"{row.path}\t{row.predicted}\t{row.p_pneumonia:.4f}")
    if failures and table.empty:
        raise PneumoError("no image could be read")


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
        text = record.getMessage()
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


def main() -> None:
    _setup_logging()
    try:
        app()
    except PneumoError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as err:
        where = f": {err.filename}" if getattr(err, "filename", None) else ""
        typer.echo(f"error: {err.strerror or err}{where}", err=True)
        sys.exit(1)
    except Exception as err:  # a bug: one line by default, the traceback on request
        if os.environ.get("PNEUMOCXR_DEBUG"):
            raise
        typer.echo(f"error: internal error ({type(err).__name__}: {err}); "
                   "set PNEUMOCXR_DEBUG=1 to see the traceback", err=True)  # fmt: skip
        sys.exit(1)


if __name__ == "__main__":
    main()
