"""After the last phase: the scope check (`scope_fit.py`), the model card (`card.py`: the
calibration, the threshold, the UNCERTAIN band, validation figures) and the model folder.

The decision stays the tutorial's (sigmoid 0.5), moved to the calibrated scale; the threshold
Youden's J picks on validation is recorded too (it did not transfer better to other
hospitals' images, docs/BENCHMARKS.md)."""

from __future__ import annotations

import logging
from pathlib import Path

from pneumocxr.artifact.save import save_model
from pneumocxr.data.dataset import Dataset
from pneumocxr.data.split import split_summary
from pneumocxr.decision.calibration import Calibration
from pneumocxr.inference.batches import predict_logits
from pneumocxr.networks.base import PneumoNet
from pneumocxr.predictors.single import NetworkPredictor
from pneumocxr.training.card import Card, Scored, model_card
from pneumocxr.training.config import TrainConfig
from pneumocxr.training.history import exported_epoch, read_history
from pneumocxr.training.scope_fit import fit_scope_recorded
from pneumocxr.training.threshold import youden_threshold

log = logging.getLogger("pneumocxr")
TUTORIAL_THRESHOLD = {
    "threshold_logit": 0.0,
    "threshold_method": "0.5, the tutorial's, on the network's own sigmoid",
}


def finish_run(cfg: TrainConfig, model: PneumoNet, dataset: Dataset, run_dir: Path,
               external: Dataset | None = None, calibrate_on: Dataset | None = None,
               monitor: str = "val_loss") -> tuple[float, dict, dict | None]:  # fmt: skip
    """Fit the scope check, build the model card, save the model. (threshold, internal
    validation figures, external ones or None)."""
    run = Path(run_dir).name
    splits = dataset.split_index()
    train, val = dataset.pixels[splits["train"]], dataset.pixels[splits["val"]]
    scope, scope_note = fit_scope_recorded(model, train, val, cfg.seed, run)
    labels = dataset.labels[splits["val"]].numpy()
    internal = Scored(labels, predict_logits(model, val), "val split of the model's run")
    outside = None if external is None else _external(cfg, model, external)
    calib = _calibration_set(cfg, model, internal, outside, calibrate_on)
    card = Card(calibration=cfg.calibration, refer_at_most=cfg.refer_at_most)
    entries = model_card(card, TUTORIAL_THRESHOLD, Calibration(), internal=internal,
                         external=outside, calibrate_on=calib, lenient=True)  # fmt: skip
    probs = Calibration.from_json(entries["calibration"]).apply(internal.logits)
    history = read_history(run_dir)
    extra = {
        **TUTORIAL_THRESHOLD,
        **entries,
        "youden_threshold_val": youden_threshold(internal.labels, probs),
        "scope": scope_note,
        "training": {
            "run": run,
            "data": Path(dataset.root).name,
            **({"labels": Path(cfg.labels["csv"]).name} if cfg.labels else {}),
            "split": cfg.split,
            "seed": cfg.seed,
            "images": split_summary(dataset.table),
            "epochs_run": int(len(history)),
            "best_epoch": exported_epoch(history, cfg.keep, monitor),
            "kept": cfg.keep,
            "selected_on": cfg.select_on,
            "validation": _without_data(entries["validation"]["internal"]),
        },
    }
    save_model(NetworkPredictor(model, scope), run_dir, extra)
    _log_figures(entries)
    log.info("exported %s", Path(run_dir) / "model.safetensors")
    validation = entries["validation"]
    return entries["threshold"], _without_data(validation["internal"]), validation.get("external")


def _external(cfg: TrainConfig, model: PneumoNet, external: Dataset) -> Scored:
    """The external set, named with what it was used for."""
    uses = {"selection": cfg.select_on == "external", "calibration": same_folder(cfg)}
    used = [name for name, yes in uses.items() if yes]
    note = f"used for {' and '.join(used)}" if used else "not used"
    logits = predict_logits(model, external.pixels)
    return Scored(external.labels.numpy(), logits, f"{Path(external.root).name} ({note})")


def _calibration_set(cfg: TrainConfig, model, internal: Scored, outside, calibrate_on):
    """The validation split, or the --calibrate-on folder (the external set's logits again
    when it is that folder)."""
    if calibrate_on is None:
        name = f"val split ({len(internal.labels)} images)"
        return Scored(internal.labels, internal.logits, name)
    labels = calibrate_on.labels.numpy()
    logits = outside.logits if same_folder(cfg) else predict_logits(model, calibrate_on.pixels)
    return Scored(labels, logits, f"{Path(cfg.calibrate_on).name} ({len(labels)} images)")


def same_folder(cfg: TrainConfig) -> bool:
    """Is the calibration folder the external one?"""
    if not cfg.calibrate_on or not cfg.external:
        return False
    return Path(cfg.calibrate_on).resolve() == Path(cfg.external).resolve()


def _without_data(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if k != "data"}


def _log_figures(entries: dict) -> None:
    for name, m in entries["validation"].items():
        log.info(
            "%s validation: AUC %.4f; at threshold %.3f accuracy %.4f, sensitivity %.4f, "
            "specificity %.4f", name, m["auc"], entries["threshold"], m["accuracy"],
            m["sensitivity"], m["specificity"],
        )  # fmt: skip
