"""Commands that train: train (one model) and run (the tutorial end to end)."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pneumocxr.cli._app import app
from pneumocxr.cli.options import (
    AcceleratorOpt,
    AugmentPolicy,
    CalibrateOnOpt,
    CalibrationOpt,
    ClassWeight,
    DataOpt,
    DevicesOpt,
    ExternalOpt,
    NumNodesOpt,
    PrecisionOpt,
    ReferOpt,
    SeedOpt,
    SelectOn,
    SplitMethod,
    SplitOpt,
    StrategyOpt,
    StrictOpt,
    TestSizeOpt,
    TrustPickleOpt,
    ValSizeOpt,
    _allow_pickle,
    _data_folder,
    with_labels_options,
)
from pneumocxr.errors import PneumoError


@app.command()
@with_labels_options
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
    cache_limit_gb: Annotated[
        float, typer.Option(min=0.0, help="Largest feature cache, in GB; above it: uncached.")
    ] = 4.0,
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
    labels=None,  # the --labels options (with_labels_options)
    trust_pickle: TrustPickleOpt = False,
    accelerator: AcceleratorOpt = "auto",
    devices: DevicesOpt = "1",
    num_nodes: NumNodesOpt = 1,
    strategy: StrategyOpt = "auto",
    precision: PrecisionOpt = "32-true",
):
    """Train one model into a run folder and export its best weights (on several devices or
    machines with --devices, --num-nodes: docs/SCALING.md)."""
    from pneumocxr.data.download import resolve_data
    from pneumocxr.distributed import is_global_zero
    from pneumocxr.training.config import TrainConfig
    from pneumocxr.training.fit import train as run_training
    from pneumocxr.training.rundir import find_run_dir, read_config

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
            data=str(resolve_data(_data_folder(data, labels))),
            labels=None if labels is None else labels.to_dict(),
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
            cache_limit_gb=cache_limit_gb,
            patience=patience,
            keep=keep,
            limit=limit,
            strict=strict,
            quick=quick,
            calibrate_on=str(calibrate_on) if calibrate_on else None,
        )
        # options left out keep TrainConfig's defaults (one place for them)
        if calibration is not None:
            cfg.calibration = calibration.value
        if refer_at_most is not None:
            cfg.refer_at_most = refer_at_most
    _allow_pickle(cfg.weights, trust_pickle)
    devices_now = {"accelerator": accelerator, "devices": devices, "num_nodes": num_nodes,
                   "strategy": strategy, "precision": precision}  # fmt: skip
    cfg = dataclasses.replace(cfg, **devices_now)  # a resumed run may move to other devices
    result = run_training(cfg, resume=resume, restart=restart)
    if is_global_zero():  # the other DDP processes ran the same command
        typer.echo(f"run folder: {result.run_dir}")


# -- the main job ---------------------------------------------------------------------------
class Transfer(StrEnum):
    efficientnet = "efficientnet-lite0"
    lite1 = "efficientnet-lite1"
    lite2 = "efficientnet-lite2"
    vgg16 = "vgg16"


@app.command()
@with_labels_options
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
    labels=None,  # the --labels options (with_labels_options)
):
    """The tutorial from the top: split, plots, SmallNet and a transfer model, side by side."""
    from pneumocxr.data.download import resolve_data
    from pneumocxr.pipeline.tutorial import run_tutorial

    _allow_pickle(transfer_weights, trust_pickle)
    run_tutorial(
        resolve_data(_data_folder(data, labels)), out, transfer.value, quick, seed,
        transfer_weights, external, method.value, strict, labels,
    )  # fmt: skip
