"""One phase fitted with Lightning and the tutorial's callbacks (checkpoints, early stopping,
the learning-rate schedule, history), from images or from cached frozen features."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from pneumocxr._malloc import release_memory
from pneumocxr.data.datamodule import ImageDataModule
from pneumocxr.data.dataset import Dataset
from pneumocxr.distributed import trainer_device_kwargs
from pneumocxr.networks.summary import parameter_counts
from pneumocxr.training.checkpoints import AtomicCheckpointIO, RandomState
from pneumocxr.training.config import TrainConfig
from pneumocxr.training.features import FeatureCache, FeatureDataModule, feature_bytes
from pneumocxr.training.history import HistoryCallback
from pneumocxr.training.memory import MemoryBound
from pneumocxr.training.module import Classifier
from pneumocxr.training.phases import Phase
from pneumocxr.training.progress import CompactProgressBar, interactive, lines_above_bars
from pneumocxr.training.rundir import write_state

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


def fit_phases(cfg: TrainConfig, model, dataset: Dataset, run_dir: Path, phases: list[Phase],
               state: dict, offset: int, checkpoint, external) -> None:  # fmt: skip
    """Fit `phases` in turn (the first from `checkpoint` when resuming), recording each in the
    run's state."""
    class_weights = class_weights_of(dataset, cfg.class_weight)
    release_memory()  # what decoding (or a model trained before this one) freed
    cache = feature_cache(cfg, phases, model, dataset, external)
    for phase in phases:
        epochs = run_phase(
            cfg, phase, model, dataset, run_dir, class_weights, offset, checkpoint, cache, external
        )
        checkpoint = None
        state["phases"][phase.name] = {"epochs": epochs}
        write_state(run_dir, state)
        offset += epochs
    del cache  # 0.55 GB for EfficientNet-Lite0's run recipe: not kept through the scope fit
    release_memory()  # ... nor the last phase's activations, optimizer state and Trainer


def class_weights_of(dataset: Dataset, mode: str) -> tuple[float, float]:
    """`balanced`: n / (2 n_c) per class on the training split, as scikit-learn computes it."""
    if mode != "balanced":
        return (1.0, 1.0)
    labels = dataset.labels[dataset.split_index()["train"]]
    n, pos = len(labels), float(labels.sum())
    return (n / (2 * (n - pos)), n / (2 * pos))


def run_phase(
    cfg, phase, model, dataset, run_dir, class_weights, offset, resume, cache, external
) -> int:
    """Fit one phase with the tutorial's callbacks; leave the best weights in `model`."""
    release_memory()  # what filling the feature cache or the phase before freed
    model.freeze_before(phase.start)
    counts = parameter_counts(model)
    log.info(
        "phase %s: %s trainable, %s frozen parameters, lr %g",
        phase.name,
        f"{counts['trainable_params']:,}",
        f"{counts['frozen_params']:,}",
        phase.lr,
    )
    datamodule, input_stage = datamodule_for(cfg, phase, model, dataset, cache, external)
    monitor = monitor_name(cfg)
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
        MemoryBound(),  # the heap's growth within the phase (training/memory.py)
    ]
    shown = interactive()
    if shown:
        callbacks.append(CompactProgressBar())
    trainer = L.Trainer(
        max_epochs=phase.epochs,
        **trainer_device_kwargs(cfg),
        logger=TensorBoardLogger(str(run_dir), name="tb", version=phase.name),
        callbacks=callbacks,
        enable_progress_bar=shown,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        reload_dataloaders_every_n_epochs=1 if input_stage else 0,
        deterministic=False,
        plugins=[AtomicCheckpointIO()],
    )
    if resume:
        log.info("resuming phase %s from %s", phase.name, resume)
    with lines_above_bars(log):
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    if cfg.keep == "best":
        restore_best(module, checkpoint)
    model.train(False)
    return int(trainer.current_epoch)


def feature_cache(cfg: TrainConfig, phases: list[Phase], model, dataset: Dataset, external):
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
        augmenter(cfg, model.image_size),
        cfg.cache_views,
        cfg.seed,
        None if external is None else external.pixels,
    )
    cache.get(min(starts))
    return cache


def monitor_name(cfg: TrainConfig) -> str:
    return "ext_loss" if cfg.select_on == "external" else "val_loss"


def augmenter(cfg: TrainConfig, size: int):
    if cfg.augment == "none" and cfg.corruption_p == 0:
        return None
    from pneumocxr.data.augment import Augment

    return Augment(cfg.augment, cfg.corruption_p, size)


def datamodule_for(cfg: TrainConfig, phase: Phase, model, dataset: Dataset, cache, external):
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
        augmenter(cfg, model.image_size),
        cfg.seed,
        None if external is None else (external.pixels, external.labels),
    )
    return dm, 0


def restore_best(module: Classifier, checkpoint: ModelCheckpoint) -> None:
    """Keras' restore_best_weights: reload the epoch with the lowest validation loss."""
    best = checkpoint.best_model_path
    if not best or not Path(best).is_file():
        return
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)

