"""Training a model end to end: data -> run directory -> phases -> best weights -> export.

A *phase* trains the stages from one index onwards. Models trained from scratch have one phase;
transfer models train their head on a frozen backbone and, with `--unfreeze`, then fine-tune
the top of the backbone at a lower learning rate. Frozen stages are served from a feature cache.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from pneumocxr import __version__
from pneumocxr.data.datamodule import ImageDataModule
from pneumocxr.data.dataset import Dataset, load_dataset, load_external
from pneumocxr.data.labels import LabelsSpec
from pneumocxr.data.split import PROTOCOLS, split_summary
from pneumocxr.errors import PneumoError
from pneumocxr.fileio import ensure_dir, write_json, write_text
from pneumocxr.models.base import PneumoNet
from pneumocxr.models.calibration import (
    METHODS,
    Calibration,
    calibration_error,
    fit_band,
    fit_calibration,
    sigmoid,
)
from pneumocxr.models.io import save_model
from pneumocxr.models.predict import predict_logits
from pneumocxr.models.registry import build_model, model_class
from pneumocxr.models.scope import MAX_TRAIN, fit_scope
from pneumocxr.models.summary import parameter_counts, summary_text
from pneumocxr.training import rundir
from pneumocxr.training.checkpoints import (
    AtomicCheckpointIO,
    RandomState,
    damaged_checkpoints,
    newest_checkpoint,
    require_sound,
    set_aside,
)
from pneumocxr.training.features import FeatureCache, FeatureDataModule, feature_bytes
from pneumocxr.training.history import HistoryCallback, exported_epoch, read_history
from pneumocxr.training.module import Classifier
from pneumocxr.training.scaling import follower_run_dir, is_global_zero, trainer_device_kwargs
from pneumocxr.training.threshold import summary_metrics, youden_threshold

log = logging.getLogger("pneumocxr")
# Lightning's advice that does not apply here: frozen stages are in eval mode on purpose,
# small validation sets have few batches, and resumed runs reuse their checkpoint folder.
for _message in (
    ".*module\\(s\\) in eval mode.*",
    ".*smaller than the logging interval.*",
    ".*exists and is not empty.*",
    ".*does not have many workers.*",
    ".*LeafSpec.*",
):
    warnings.filterwarnings("ignore", message=_message)


def _quiet_lightning() -> None:
    """Keep Lightning's start-up banners (GPU/TPU availability, tips) out of the output."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


# Defaults for options left unset; --quick swaps in a profile of a few minutes.
DEFAULTS = {"epochs": 15, "head_epochs": 5, "image_size": None, "limit": None}
QUICK = {"epochs": 8, "head_epochs": 2, "image_size": 128, "limit": 800}
# `pneumocxr run`'s recipes. SmallNet as the tutorial trains it. The transfer model with the
# recipe that held up best outside the training pool within the run's time budget (strong
# augmentation, stress-test corruptions, balanced loss, the last epoch's weights; see
# docs/BENCHMARKS.md, "Recipes measured on the external set").
RUN_RECIPES = {
    "smallnet": {},
    "transfer": {
        "class_weight": "balanced",
        "augment": "strong",
        "corruption_p": 0.5,
        "keep": "last",
    },
}


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs"
    model: str = "smallnet"
    epochs: int | None = None  # 15 (8 with --quick)
    batch_size: int = 32
    image_size: int | None = None  # the model's default (128 with --quick)
    split: str = "auto"  # official when the data has a Kaggle test/ folder, else patient
    test_size: float = 0.2
    val_size: float = 0.2
    seed: int = 42
    lr: float | None = None  # the model's default
    class_weight: str = "none"  # or "balanced"
    weights: str = "default"  # "default" (ImageNet for transfer models), "none" or a file
    unfreeze: str | None = None  # backbone stages to fine-tune: N or "all"; None: model's default
    head_epochs: int | None = None  # head-only epochs before fine-tuning: 5 (2 with --quick)
    finetune_lr: float | None = None  # default: lr / 10
    augment: str = "tutorial"  # "tutorial", "strong" or "none" (data/augment.py)
    corruption_p: float = 0.0  # share of training images given a stress-test corruption
    mixup: float = 0.0  # mixup's Beta parameter; 0 turns it off
    label_smoothing: float = 0.0
    labels: dict | None = None  # a labels CSV read with `data` (data/labels.py's LabelsSpec)
    external: str | None = None  # an external validation folder, evaluated every epoch
    select_on: str = "val"  # what checkpoints, early stopping and the lr schedule follow
    feature_cache: bool = True
    cache_views: int = 4
    cache_limit_gb: float = 4.0
    patience: int = 20
    keep: str = "best"  # the weights each phase ends with: "best" (lowest monitored loss) or "last"
    lr_patience: int = 3
    lr_factor: float = 0.3
    min_lr: float = 1e-6
    limit: int | None = None  # use about this many images, whole patients (800 with --quick)
    calibrate_on: str | None = None  # a labelled folder; default: the validation split
    calibration: str = "platt"  # platt, temperature, isotonic or none (models/calibration.py)
    refer_at_most: float = 0.08  # UNCERTAIN band's budget (docs/VALIDATION.md); 0 turns it off
    strict: bool = False
    quick: bool = False
    # Passed to Lightning's Trainer (training/scaling.py, docs/SCALING.md).
    accelerator: str = "auto"  # cpu, gpu, ... ; auto takes a GPU when there is one
    devices: str = "1"  # a count, "auto", or device ids "0,1"
    num_nodes: int = 1
    strategy: str = "auto"  # ddp with several devices or nodes
    precision: str = "32-true"  # or 16-mixed, bf16-mixed

    def resolved(self) -> TrainConfig:
        """Fill in the model's defaults and the --quick profile."""
        cls = model_class(self.model)
        values = dataclasses.asdict(self)
        for key, default in (QUICK if self.quick else DEFAULTS).items():
            if values[key] is None:
                values[key] = default
        if values["image_size"] is None:
            values["image_size"] = cls.default_image_size
        for name in ("lr", "finetune_lr"):
            if values[name] is not None and values[name] <= 0:
                raise PneumoError(f"--{name.replace('_', '-')} must be above 0")
        if values["lr"] is None:
            values["lr"] = cls.default_lr
        if values["finetune_lr"] is None:
            values["finetune_lr"] = values["lr"] / 10
        pretrained = cls.pretrained_source is not None and self.weights != "none"
        if values["unfreeze"] is None:
            values["unfreeze"] = cls.default_unfreeze if pretrained else "all"
        values["augment"] = _augment_policy(values["augment"])
        if not 0 <= values["label_smoothing"] < 1 or values["mixup"] < 0:
            raise PneumoError("--label-smoothing must be in [0, 1) and --mixup at least 0")
        if self.keep not in ("best", "last"):
            raise PneumoError(f"--keep must be 'best' or 'last', got {self.keep!r}")
        if self.select_on not in ("val", "external"):
            raise PneumoError(f"--select-on must be 'val' or 'external', got {self.select_on!r}")
        if self.select_on == "external" and not self.external:
            raise PneumoError("--select-on external needs --external DIR")
        if self.calibration not in METHODS:
            raise PneumoError(
                f"--calibration must be one of {', '.join(METHODS)}, got {self.calibration!r}"
            )
        if not 0 <= self.refer_at_most < 1:
            raise PneumoError("--refer-at-most must be in [0, 1)")
        if self.class_weight not in ("none", "balanced"):
            raise PneumoError(
                f"--class-weight must be 'none' or 'balanced', got {self.class_weight!r}"
            )
        for name in ("epochs", "batch_size", "head_epochs", "cache_views"):
            if values[name] < 1:
                raise PneumoError(f"--{name.replace('_', '-')} must be at least 1")
        return TrainConfig(**values)


def _augment_policy(value) -> str:
    """Older config.json files stored augmentation as true/false."""
    if isinstance(value, bool):
        return "tutorial" if value else "none"
    from pneumocxr.data.augment import POLICIES

    if value not in POLICIES:
        raise PneumoError(f"--augment must be one of {', '.join(POLICIES)}, got {value!r}")
    return value


@dataclass
class Phase:
    name: str
    start: int  # first trainable stage
    epochs: int
    lr: float


@dataclass
class TrainResult:
    run_dir: Path
    model: PneumoNet
    threshold: float
    val_metrics: dict = field(default_factory=dict)
    external_metrics: dict | None = None


def plan_phases(cfg: TrainConfig, model: PneumoNet) -> list[Phase]:
    if model.pretrained_source is None:
        return [Phase("train", 0, cfg.epochs, cfg.lr)]
    start = model.first_trainable_stage(cfg.unfreeze)
    head = model.backbone_stages
    if start == head:
        return [Phase("head", head, cfg.epochs, cfg.lr)]
    if start == 0 and cfg.weights == "none":
        return [Phase("train", 0, cfg.epochs, cfg.lr)]
    return [
        Phase("head", head, cfg.head_epochs, cfg.lr),
        Phase("finetune", start, cfg.epochs, cfg.finetune_lr),
    ]


def train(
    cfg: TrainConfig,
    dataset: Dataset | None = None,
    run_dir: Path | None = None,
    resume: Path | None = None,
    external: Dataset | None = None,
    restart: bool = False,
) -> TrainResult:
    """Train into a new run folder (`run_dir`, or RUNS/<model>-<time>), or continue the run
    that `resume` (a run folder or a checkpoint in one) belongs to; export the best model.
    A run whose every checkpoint is damaged starts again only with `restart`.

    `dataset` and `external` may be passed already decoded (at the model's image size)."""
    cfg = cfg.resolved()
    _quiet_lightning()
    L.seed_everything(cfg.seed, verbose=False)
    if resume is not None:
        run_dir = rundir.find_run_dir(resume)
    if not is_global_zero():  # other DDP processes write into scratch, rank 0 into the run
        run_dir = follower_run_dir(run_dir)
    model = build_model(cfg.model, cfg.image_size, cfg.weights)  # fails early on bad weights
    phases = plan_phases(cfg, model)  # ... and on a bad --unfreeze
    first, checkpoint = 0, None
    if resume is not None:  # before the data: a refusal should not wait for the decoding
        first, checkpoint = _resume_point(phases, run_dir, resume, restart)
    if resume is None and run_dir is None:
        ensure_dir(cfg.out)  # ... and on an unwritable output folder, before decoding images
    if dataset is None:
        splits = rundir.read_splits(run_dir) if resume is not None else None
        dataset = load_dataset(
            cfg.data,
            cfg.image_size,
            split=cfg.split,
            test_size=cfg.test_size,
            val_size=cfg.val_size,
            seed=cfg.seed,
            strict=cfg.strict,
            limit=cfg.limit,
            splits=splits,
            labels=LabelsSpec.from_dict(cfg.labels) if cfg.labels else None,
        )
    if dataset.protocol in PROTOCOLS:
        cfg.split = dataset.protocol  # config.json and model.json say what "auto" became
        log.info("split protocol: %s", PROTOCOLS[dataset.protocol])
    external = _external(cfg, dataset, external)
    calibrate_on = _calibrate_on(cfg, dataset, external)  # before training: a bad folder fails now
    if resume is None:
        run_dir = rundir.new_run_dir(cfg.out, cfg.model) if run_dir is None else Path(run_dir)
        ensure_dir(run_dir)
        model.freeze_before(phases[0].start)  # the summary shows the first phase's freezing
        _write_run_files(run_dir, cfg, dataset, model)
    log.info("run folder: %s", run_dir)
    class_weights = _class_weights(dataset, cfg.class_weight)
    state = rundir.read_state(run_dir)
    offset = sum(state["phases"].get(p.name, {}).get("epochs", 0) for p in phases[:first])
    cache = _feature_cache(cfg, phases[first:], model, dataset, external)
    for phase in phases[first:]:
        epochs = _run_phase(
            cfg, phase, model, dataset, run_dir, class_weights, offset, checkpoint, cache, external
        )
        checkpoint = None
        state["phases"][phase.name] = {"epochs": epochs}
        rundir.write_state(run_dir, state)
        offset += epochs
    return _finish(cfg, model, dataset, run_dir, external, calibrate_on)


def _external(cfg: TrainConfig, dataset: Dataset, given: Dataset | None) -> Dataset | None:
    """The external set, decoded at the model's size; never part of the training pool."""
    if not cfg.external:
        return None
    if given is None:
        given = load_external(cfg.external, cfg.image_size, dataset.table, cfg.strict)
    log.info(
        "external set: %d images from %s (reported beside validation; %s)",
        len(given.table),
        given.root,
        "used for model selection" if cfg.select_on == "external" else "not used for selection",
    )
    return given


def _calibrate_on(cfg: TrainConfig, dataset: Dataset, external: Dataset | None):
    """The --calibrate-on folder, decoded (the external set itself when it is that folder);
    None: calibrate on the validation split."""
    if not cfg.calibrate_on:
        return None
    if _same_folder(cfg):
        return external
    return load_external(cfg.calibrate_on, cfg.image_size, dataset.table, cfg.strict)


def _resume_point(phases: list[Phase], run_dir: Path, resume: Path, restart: bool = False):
    """(index of the phase to continue, checkpoint to continue it from): the given checkpoint,
    or the newest sound one of the latest phase that has one."""
    names = [p.name for p in phases]
    if Path(resume).is_file():
        name = Path(resume).name.split("-")[0]
        if name not in names:
            raise PneumoError(f"{resume} belongs to no phase of this run ({', '.join(names)})")
        return names.index(name), require_sound(Path(resume))
    for i in reversed(range(len(phases))):
        found = newest_checkpoint(Path(run_dir) / "checkpoints", names[i])
        if found is not None:
            return i, found
    _set_aside_damaged(Path(run_dir) / "checkpoints", restart)
    # Killed before its first checkpoint: the run starts again from its seed, which gives
    # exactly the run it would have been.
    log.info("no complete checkpoint yet in %s: starting the run again", run_dir)
    return 0, None


def _set_aside_damaged(folder: Path, restart: bool) -> None:
    """Starting again would write over checkpoints that did not load: only with --restart,
    and then they are moved aside, not deleted (they may yet be recovered)."""
    damaged = damaged_checkpoints(folder)
    if not damaged:
        return
    if not restart:
        names = ", ".join(p.name for p in damaged)
        raise PneumoError(
            f"every checkpoint in {folder} is damaged ({names}); pass --restart to train the "
            "run again from its start (they are moved to a damaged-<time> folder, not deleted)"
        )
    log.warning("moved %d damaged checkpoint(s) to %s", len(damaged), set_aside(damaged, folder))


def _run_phase(
    cfg, phase, model, dataset, run_dir, class_weights, offset, resume, cache, external
) -> int:
    """Fit one phase with the tutorial's callbacks; leave the best weights in `model`."""
    model.freeze_before(phase.start)
    counts = parameter_counts(model)
    log.info(
        "phase %s: %s trainable, %s frozen parameters, lr %g",
        phase.name,
        f"{counts['trainable_params']:,}",
        f"{counts['frozen_params']:,}",
        phase.lr,
    )
    datamodule, input_stage = _datamodule(cfg, phase, model, dataset, cache, external)
    monitor = _monitor(cfg)
    module = Classifier(
        model,
        phase.lr,
        input_stage,
        class_weights,
        cfg.lr_factor,
        cfg.lr_patience,
        cfg.min_lr,
        monitor=monitor,
        mixup=cfg.mixup,
        label_smoothing=cfg.label_smoothing,
    )
    ckpt_dir = Path(run_dir) / "checkpoints"
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename=f"{phase.name}-best",
        monitor=monitor,
        mode="min",
        save_top_k=1,
        enable_version_counter=False,
    )
    # Lightning's save_last only refreshes last.ckpt in epochs that improved the best one; a
    # second, unmonitored checkpoint keeps the latest epoch for --resume.
    latest = ModelCheckpoint(
        dirpath=ckpt_dir, filename=f"{phase.name}-last", save_top_k=1, enable_version_counter=False
    )
    callbacks = [
        checkpoint,
        latest,
        EarlyStopping(monitor=monitor, mode="min", patience=cfg.patience),
        HistoryCallback(run_dir, phase.name, offset, offset + phase.epochs),
        RandomState(),
    ]
    interactive = sys.stderr.isatty()
    if interactive:
        callbacks.append(TQDMProgressBar())
    trainer = L.Trainer(
        max_epochs=phase.epochs,
        **trainer_device_kwargs(cfg),
        logger=TensorBoardLogger(str(run_dir), name="tb", version=phase.name),
        callbacks=callbacks,
        enable_progress_bar=interactive,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        reload_dataloaders_every_n_epochs=1 if input_stage else 0,
        deterministic=False,
        plugins=[AtomicCheckpointIO()],
    )
    if resume:
        log.info("resuming phase %s from %s", phase.name, resume)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    if cfg.keep == "best":
        _restore_best(module, checkpoint)
    model.train(False)
    return int(trainer.current_epoch)


def _feature_cache(cfg: TrainConfig, phases: list[Phase], model, dataset: Dataset, external):
    """One cache for the run's phases with a frozen prefix, if it fits in memory."""
    starts = [p.start for p in phases if p.start > 0]
    if not starts or not cfg.feature_cache:
        return None
    splits = dataset.split_index()
    views = cfg.cache_views if cfg.augment != "none" else 1
    images = len(splits["train"]) * views + len(splits["val"])
    images += 0 if external is None else len(external.table)
    needed = feature_bytes(model, min(starts), images)
    if needed > cfg.cache_limit_gb * 2**30:
        log.info(
            "feature cache would need %.1f GB (> --cache-limit-gb %.1f): training uncached",
            needed / 2**30,
            cfg.cache_limit_gb,
        )
        return None
    log.info("caching frozen features: %d training view(s), %.2f GB", views, needed / 2**30)
    cache = FeatureCache(
        model,
        dataset.pixels,
        splits,
        _augment(cfg, model.image_size),
        cfg.cache_views,
        cfg.seed,
        None if external is None else external.pixels,
    )
    cache.get(min(starts))
    return cache


def _monitor(cfg: TrainConfig) -> str:
    return "ext_loss" if cfg.select_on == "external" else "val_loss"


def _augment(cfg: TrainConfig, size: int):
    if cfg.augment == "none" and cfg.corruption_p == 0:
        return None
    from pneumocxr.data.augment import Augment

    return Augment(cfg.augment, cfg.corruption_p, size)


def _datamodule(cfg: TrainConfig, phase: Phase, model, dataset: Dataset, cache, external):
    """(datamodule, stage its batches enter the model at)."""
    splits = dataset.split_index()
    if cache is not None and phase.start > 0:
        train_views, val_features, external_features = cache.get(phase.start)
        extra = None if external is None else (external_features, external.labels)
        dm = FeatureDataModule(
            train_views, val_features, dataset.labels, splits, cfg.batch_size, cfg.seed, extra
        )
        return dm, phase.start
    dm = ImageDataModule(
        dataset.pixels,
        dataset.labels,
        splits,
        model.preprocessing(),
        cfg.batch_size,
        _augment(cfg, model.image_size),
        cfg.seed,
        None if external is None else (external.pixels, external.labels),
    )
    return dm, 0


def _restore_best(module: Classifier, checkpoint: ModelCheckpoint) -> None:
    """Keras' restore_best_weights: reload the epoch with the lowest validation loss."""
    best = checkpoint.best_model_path
    if not best or not Path(best).is_file():
        return
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)


def _class_weights(dataset: Dataset, mode: str) -> tuple[float, float]:
    """`balanced`: n / (2 n_c) per class on the training split, as scikit-learn computes it."""
    if mode != "balanced":
        return (1.0, 1.0)
    labels = dataset.labels[dataset.split_index()["train"]]
    n, pos = len(labels), float(labels.sum())
    return (n / (2 * (n - pos)), n / (2 * pos))


def _finish(cfg: TrainConfig, model: PneumoNet, dataset: Dataset, run_dir: Path, external=None,
            calibrate_on: Dataset | None = None):  # fmt: skip
    """Fit the scope check, calibrate, fit the UNCERTAIN band, and export the model with its
    validation figures. The decision stays the tutorial's (sigmoid 0.5), moved to the
    calibrated scale; the threshold Youden's J picks on validation is recorded too (it did not
    transfer better to other hospitals' images, docs/BENCHMARKS.md)."""
    splits = dataset.split_index()
    val = splits["val"]
    labels = dataset.labels[val].numpy()
    val_logits = predict_logits(model, dataset.pixels[val])
    ext_logits = None if external is None else predict_logits(model, external.pixels)
    model.scope, scope = _fit_scope(cfg, model, dataset, run_dir)
    if calibrate_on is None:
        calib_logits, calib_labels = val_logits, labels
        calib_name = f"val split ({len(labels)} images)"
    else:  # the external set's logits again when it is that folder
        calib_logits = ext_logits if calibrate_on is external else None
        calib_logits, calib_labels, calib_name = _calibration_set(
            cfg, model, calibrate_on, calib_logits
        )
    calibration = _calibrate(calib_logits, calib_labels, cfg.calibration, calib_name)
    threshold = float(calibration.apply(0.0))  # sigmoid 0.5 on the calibrated scale
    calibrated = calibration.apply(calib_logits)
    band = None
    if cfg.refer_at_most > 0:
        band = fit_band(calibrated, calib_labels, threshold, cfg.refer_at_most, calib_name)
    probs = calibration.apply(val_logits)
    val_metrics = summary_metrics(labels, probs, threshold)
    validation = {"internal": {**val_metrics, "data": "val split of the model's run"}}
    if external is not None:
        ext_probs = calibration.apply(ext_logits)
        ext_metrics = summary_metrics(external.labels.numpy(), ext_probs, threshold)
        uses = {"selection": cfg.select_on == "external", "calibration": _same_folder(cfg)}
        used = [name for name, yes in uses.items() if yes]
        note = f"used for {' and '.join(used)}" if used else "not used"
        validation["external"] = {**ext_metrics, "data": f"{Path(external.root).name} ({note})"}
    history = read_history(run_dir)
    extra = {
        "threshold": threshold,
        "threshold_logit": 0.0,
        "threshold_method": "0.5, the tutorial's, on the network's own sigmoid",
        "youden_threshold_val": youden_threshold(labels, probs),
        "calibration": calibration.to_json(),
        "calibration_error": {
            "data": calib_name,
            "before": calibration_error(calib_labels, sigmoid(calib_logits)),
            "after": calibration_error(calib_labels, calibrated),
        },
        "uncertain": None if band is None else band.to_json(),
        "scope": scope,
        "validation": validation,
        "training": {
            "run": Path(run_dir).name,
            "data": Path(dataset.root).name,
            **({"labels": Path(cfg.labels["csv"]).name} if cfg.labels else {}),
            "split": cfg.split,
            "seed": cfg.seed,
            "images": split_summary(dataset.table),
            "epochs_run": int(len(history)),
            "best_epoch": exported_epoch(history, cfg.keep, _monitor(cfg)),
            "kept": cfg.keep,
            "selected_on": cfg.select_on,
            "validation": val_metrics,
        },
    }
    save_model(model, run_dir, extra)
    for name, m in validation.items():
        log.info(
            "%s validation: AUC %.4f; at threshold %.3f accuracy %.4f, sensitivity %.4f, "
            "specificity %.4f",
            name,
            m["auc"],
            threshold,
            m["accuracy"],
            m["sensitivity"],
            m["specificity"],
        )
    log.info("exported %s", Path(run_dir) / "model.safetensors")
    return TrainResult(Path(run_dir), model, threshold, val_metrics, validation.get("external"))


def _calibrate(logits, labels, method: str, name: str):
    """The model's calibration; a model that ranks the set backwards (or sees one class only)
    is exported uncalibrated, with a warning, rather than not at all."""
    try:
        return fit_calibration(logits, labels, method, name)
    except PneumoError as err:
        log.warning("%s; P(pneumonia) is left uncalibrated", err)
        return Calibration(fit_on=name, n=len(logits))


def _same_folder(cfg: TrainConfig) -> bool:
    """Is the calibration folder the external one?"""
    if not cfg.calibrate_on or not cfg.external:
        return False
    return Path(cfg.calibrate_on).resolve() == Path(cfg.external).resolve()


def _fit_scope(cfg: TrainConfig, model: PneumoNet, dataset: Dataset, run_dir: Path):
    """The scope check, fitted on this run's training split, cut on its validation split."""
    splits = dataset.split_index()
    started = time.perf_counter()
    check = fit_scope(model, dataset.pixels[splits["train"]], dataset.pixels[splits["val"]],
                      cfg.seed)  # fmt: skip
    seconds = time.perf_counter() - started
    fitted = min(len(splits["train"]), MAX_TRAIN)
    log.info("scope check fitted in %.1f s (%s features)", seconds, check.source)
    record = {
        "fit_on": f"train split of {Path(run_dir).name} ({fitted} of {len(splits['train'])} "
        "images) and synthetic outliers made from others",
        "cut_on": f"val split of {Path(run_dir).name} ({len(splits['val'])} images)",
        "fit_seconds": round(seconds, 1),
    }
    return check, record


def _calibration_set(cfg: TrainConfig, model, images: Dataset, logits=None):
    """(logits, labels, name) of the --calibrate-on folder."""
    if logits is None:
        logits = predict_logits(model, images.pixels)
    labels = images.labels.numpy()
    return logits, labels, f"{Path(cfg.calibrate_on).name} ({len(labels)} images)"


def _write_run_files(run_dir: Path, cfg: TrainConfig, dataset: Dataset, model) -> None:
    rundir.write_splits(run_dir, dataset.table)
    write_text(Path(run_dir) / "summary.txt", summary_text(model) + "\n")
    config = {
        **dataclasses.asdict(cfg),
        "data": str(Path(cfg.data).resolve()) if cfg.data else str(dataset.root),
        "pneumocxr_version": __version__,
        "torch_version": torch.__version__,
        "command": " ".join(sys.argv),
        "images": split_summary(dataset.table),
        "parameters": parameter_counts(model),
        "weights_source": model.weights_source,
    }
    write_json(Path(run_dir) / rundir.CONFIG_NAME, config)
