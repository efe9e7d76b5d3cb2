"""Application workflows behind the CLI: they wire the layers together and hold no ML logic."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from pneumocxr.data.dataset import load_dataset
from pneumocxr.data.decode import decode_all
from pneumocxr.data.index import index_images, require_both_classes
from pneumocxr.data.plots import augmentation_figure
from pneumocxr.data.split import make_splits
from pneumocxr.fileio import save_figure
from pneumocxr.models.registry import MODELS, build_model
from pneumocxr.models.summary import parameter_counts
from pneumocxr.training import rundir
from pneumocxr.training.trainer import QUICK, TrainConfig, train

log = logging.getLogger("pneumocxr")


def model_table() -> list[dict]:
    """Each architecture at its default size, frozen as its first training phase freezes it."""
    rows = []
    for name, cls in MODELS.items():
        model = build_model(name, weights="none")
        start = model.backbone_stages if cls.pretrained_source else 0
        model.freeze_before(start)
        rows.append({"name": name, "input_size": model.image_size, **parameter_counts(model)})
    return rows


def write_preview(root, out, image_size: int = 224, seed: int = 42) -> Path:
    """16 augmented training images (of the default patient split)."""
    table = index_images(root)
    require_both_classes(table, root)
    table = make_splits(table, seed=seed)
    train_rows = table[table["split"] == "train"]
    train_rows = train_rows.sample(n=min(16, len(train_rows)), random_state=seed)
    decoded = decode_all(train_rows["path"], image_size)
    labels = (train_rows["label"][decoded.ok] == "PNEUMONIA").astype(int).tolist()
    return save_figure(augmentation_figure(decoded.pixels, labels, seed), out)


def predict_files(paths, model=None, threshold=None, batch_size: int = 64):
    """Predictions for files and folders: a table (path, p_pneumonia, predicted), failures."""
    from pneumocxr.evaluation.inference import (
        choose_threshold,
        expand_inputs,
        label_for,
        predict_paths,
        resolve_model,
    )

    loaded = resolve_model(model)
    cut = choose_threshold(threshold, loaded)
    table, failures = predict_paths(loaded, expand_inputs(paths), batch_size)
    table["predicted"] = [label_for(p, cut) for p in table["p_pneumonia"]]
    return table, failures


def run_tutorial(root, out, transfer: str, quick: bool, seed: int = 42) -> Path:
    """Split, plots, SmallNet and a transfer model on the same split, compared."""
    build_model(transfer)  # fail now, not after SmallNet, if its weights are unavailable
    run_dir = rundir.new_run_dir(out, "run")
    log.info("run folder: %s", run_dir)
    size = QUICK["image_size"] if quick else 224
    dataset = load_dataset(root, size, seed=seed, limit=QUICK["limit"] if quick else None)
    rundir.write_splits(run_dir, dataset.table)
    labels = dataset.labels[dataset.split_index()["train"]].int().tolist()
    train_pixels = dataset.pixels[dataset.split_index()["train"]]
    save_figure(augmentation_figure(train_pixels, labels, seed), run_dir / "preview.png")
    results = {}
    for name in ("smallnet", transfer):
        log.info("== training %s ==", name)
        cfg = TrainConfig(data=str(root), model=name, seed=seed, quick=quick, image_size=size)
        results[name] = train(cfg, dataset, run_dir=run_dir / name)
    log.info("\nvalidation metrics (patient split):\n%s", _side_by_side(results))
    _print_locations(run_dir, results)
    return run_dir


def _side_by_side(results) -> str:
    table = pd.DataFrame({name: r.val_metrics for name, r in results.items()})
    table.loc["threshold"] = [r.threshold for r in results.values()]
    return table.to_string(float_format=lambda v: f"{v:.4f}")


def _print_locations(run_dir: Path, results) -> None:
    log.info("\nwhere everything is:")
    log.info("  splits        %s", run_dir / "splits.csv")
    log.info("  distribution  %s", run_dir / "distribution.png")
    log.info("  augmentation  %s", run_dir / "preview.png")
    for name, result in results.items():
        log.info("  %-13s %s (history.png, summary.txt, model.json, tb/)", name, result.run_dir)

