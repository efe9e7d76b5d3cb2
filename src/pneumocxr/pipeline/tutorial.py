"""`pneumocxr run`: the tutorial from the top, on one split: class counts, augmentation preview,
SmallNet and a transfer model trained on the same split, each evaluated (and on an external
set), Grad-CAM on the same three test images, the comparison and the report."""

from __future__ import annotations

import logging
from pathlib import Path

from pneumocxr.fileio.formats import save_figure

# Imports of torch, Lightning and friends happen inside the functions that need them, so that
# light commands (agreement, report, --help) start in a fraction of a second.
log = logging.getLogger("pneumocxr")


def model_table() -> list[dict]:
    """Each architecture at its default size, frozen as its first training phase freezes it."""
    from pneumocxr.networks.registry import MODELS, build_model
    from pneumocxr.networks.summary import parameter_counts

    rows = []
    for name, cls in MODELS.items():
        model = build_model(name, weights="none")
        start = model.backbone_stages if cls.pretrained_source else 0
        model.freeze_before(start)
        rows.append({"name": name, "input_size": model.image_size, **parameter_counts(model)})
    return rows


def write_preview(root, out, image_size: int = 224, seed: int = 42) -> Path:
    """16 augmented training images (of the default patient split)."""
    from pneumocxr.data.decode import decode_all
    from pneumocxr.data.index import index_images, require_both_classes
    from pneumocxr.data.plots import augmentation_figure
    from pneumocxr.data.split import make_splits

    table = index_images(root)
    require_both_classes(table, root)
    table = make_splits(table, seed=seed)
    train_rows = table[table["split"] == "train"]
    train_rows = train_rows.sample(n=min(16, len(train_rows)), random_state=seed)
    decoded = decode_all(train_rows["path"], image_size)
    labels = (train_rows["label"][decoded.ok] == "PNEUMONIA").astype(int).tolist()
    return save_figure(augmentation_figure(decoded.pixels, labels, seed), out)


def run_tutorial(
    root,
    out,
    transfer: str,
    quick: bool,
    seed: int = 42,
    transfer_weights: str = "default",
    external=None,
    split: str = "auto",
    strict: bool = False,
    labels=None,
) -> Path:
    """Split, plots, SmallNet and a transfer model on the same split, compared (and on an
    external set, when given)."""
    from pneumocxr._malloc import release_memory
    from pneumocxr.data.dataset import load_dataset, load_external
    from pneumocxr.data.plots import augmentation_figure
    from pneumocxr.data.split import PROTOCOLS
    from pneumocxr.data.split_file import write_splits
    from pneumocxr.fileio.outputs import check_outside
    from pneumocxr.networks.registry import build_model
    from pneumocxr.training import rundir
    from pneumocxr.training.config import QUICK, RUN_RECIPES, TrainConfig
    from pneumocxr.training.fit import train

    check_outside(out, [None if labels else root, external])  # figures there would be data
    build_model(transfer, weights=transfer_weights)  # fail now, not after SmallNet
    run_dir = rundir.new_run_dir(out, "run")
    log.info("run folder: %s", run_dir)
    size = QUICK["image_size"] if quick else 224  # one decoded cache serves both models
    limit = QUICK["limit"] if quick else None
    dataset = load_dataset(
        root, size, split=split, seed=seed, limit=limit, strict=strict, labels=labels
    )
    log.info("split protocol: %s", PROTOCOLS[dataset.protocol])
    split = dataset.protocol
    outside = None if external is None else load_external(external, size, dataset.table, strict)
    write_splits(run_dir, dataset.table)
    train_labels = dataset.labels[dataset.split_index()["train"]].int().tolist()
    train_pixels = dataset.pixels[dataset.split_index()["train"]]
    save_figure(augmentation_figure(train_pixels, train_labels, seed), run_dir / "preview.png")
    results = {}
    for name in ("smallnet", transfer):
        log.info("== training %s ==", name)
        recipe = RUN_RECIPES["smallnet" if name == "smallnet" else "transfer"]
        cfg = TrainConfig(
            data=str(root),
            model=name,
            seed=seed,
            quick=quick,
            image_size=size,
            split=split,
            weights="default" if name == "smallnet" else transfer_weights,
            external=None if external is None else str(external),
            strict=strict,
            labels=None if labels is None else labels.to_dict(),
            **recipe,
        )
        results[name] = train(cfg, dataset, run_dir=run_dir / name, external=outside)
    log.info("\nvalidation metrics (internal):\n%s", _side_by_side(results))
    release_memory()  # the transfer model's training and scope fit, before evaluating
    _evaluate_run(run_dir, dataset.table, results, seed, outside)
    _print_locations(run_dir, results)
    return run_dir


def _evaluate_run(run_dir: Path, table, results: dict, seed: int, external=None) -> None:
    """Test-split evaluation, Grad-CAM on the same three test images, comparison, report;
    `external` is the external set as loaded for training (indexed and checked once)."""
    from pneumocxr.artifact.load import load_model
    from pneumocxr.evaluation.evaluate import (
        comparison_markdown,
        evaluate_model,
        write_comparison,
        write_evaluation,
    )
    from pneumocxr.inference.answers import Settings
    from pneumocxr.pipeline.assess import gradcam_to_folder
    from pneumocxr.report.html import write_report

    test = table[table["split"] == "test"][["path", "label"]].reset_index(drop=True)
    outside = None if external is None else external.table[["path", "label"]]
    examples = gradcam_examples(table[table["split"] == "test"], seed)
    evaluations, external_evaluations = [], []
    for name, result in results.items():
        log.info("evaluating %s on %d test images", name, len(test))
        loaded = load_model(result.run_dir)
        settings = Settings.of(loaded)
        evaluation = evaluate_model(loaded, test, settings, name)
        write_evaluation(evaluation, result.run_dir / "evaluation")
        evaluations.append(evaluation)
        if outside is not None:
            log.info("evaluating %s on %d external images", name, len(outside))
            ext = evaluate_model(loaded, outside, settings, name)
            write_evaluation(ext, result.run_dir / "evaluation_external")
            external_evaluations.append(ext)
        gradcam_to_folder(loaded, examples, result.run_dir / "gradcam")
    comparison = write_comparison(evaluations, run_dir / "comparison", external_evaluations or None)
    log.info("\ntest metrics:\n%s", comparison_markdown(comparison))
    log.info("report: %s", write_report(run_dir))


def gradcam_examples(test, seed: int) -> list[str]:
    """Three test images to explain: a normal, a bacterial and a viral pneumonia if present."""
    picks = []
    for label, subtype in (("NORMAL", ""), ("PNEUMONIA", "bacteria"), ("PNEUMONIA", "virus")):
        rows = test[(test["label"] == label) & (test["subtype"].fillna("") == subtype)]
        if len(rows):
            picks.append(rows.sample(1, random_state=seed)["path"].iloc[0])
    rest = test[~test["path"].isin(picks)]
    picks += list(rest.sample(min(3 - len(picks), len(rest)), random_state=seed)["path"])
    return picks


def _side_by_side(results) -> str:
    import pandas as pd

    table = pd.DataFrame({name: r.val_metrics for name, r in results.items()})
    table.loc["threshold"] = [r.threshold for r in results.values()]
    return table.to_string(float_format=lambda v: f"{v:.4f}")


def _print_locations(run_dir: Path, results) -> None:
    log.info("\nwhere everything is:")
    log.info("  splits        %s", run_dir / "splits.csv")
    log.info("  distribution  %s", run_dir / "distribution.png")
    log.info("  augmentation  %s", run_dir / "preview.png")
    log.info("  comparison    %s", run_dir / "comparison")
    log.info("  report        %s", run_dir / "report.html")
    for name, result in results.items():
        log.info("  %-13s %s", name, result.run_dir)
    log.info("  (each model: history.png, summary.txt, model.json, evaluation/, gradcam/, tb/)")

