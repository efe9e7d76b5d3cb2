"""Re-saving models: `export` (float16, ONNX, a new threshold, calibration, band, scope check,
figures) and `ensemble`; each refits through the one model-card builder (`training.card`)."""

from __future__ import annotations

import logging
from pathlib import Path

from pneumocxr.errors import PneumoError

# Imports of torch, Lightning and friends happen inside the functions that need them, so that
# light commands (agreement, report, --help) start in a fraction of a second.
log = logging.getLogger("pneumocxr")


EXPORT_FORMATS = ("safetensors", "onnx")


def export_model(model, out, half: bool = False, overwrite: bool = False, card=None,
                 fmt: str = "safetensors") -> Path:  # fmt: skip
    """Re-save a model (e.g. as float16 for shipping), keeping its threshold, calibration, band,
    scope check and training summary; `card` (training.card.Card) refits what it names.
    The model folder is replaced as a whole, so weights and metadata always belong together.

    `fmt` "onnx" writes model.onnx (the forward pass with the scope check, float32, for ONNX
    Runtime: artifact/onnx_graph.py) instead of model.safetensors; ensembles too, as one graph."""
    import torch

    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.artifact.save import save_model
    from pneumocxr.artifact.schema import EXPORT_FILES, META_NAME, ONNX_FORMAT
    from pneumocxr.fileio.atomic import check_replaceable, replace_dir
    from pneumocxr.training.card import Card

    if fmt not in EXPORT_FORMATS:
        raise PneumoError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    onnx = fmt == "onnx"
    if onnx and half:
        raise PneumoError(
            "--half applies to model.safetensors; an ONNX export is float32 (what ONNX "
            "Runtime's CPU kernels compute in): export without --half"
        )
    card = card or Card()
    inputs = _inputs(model, card)
    check_replaceable(out, EXPORT_FILES, overwrite, "export", inputs)
    loaded = resolve_model(model, legacy=True)
    if loaded.meta.get("format") == ONNX_FORMAT:
        raise PneumoError(
            f"{loaded.path} is already an ONNX export; export the model folder it came from"
        )
    inputs.append(loaded.path)
    if loaded.meta.get("members"):
        if not onnx:
            raise PneumoError("export takes a single model; an ensemble folder is already exported")
        return _export_ensemble_onnx(loaded, out, overwrite, card, inputs)
    keep = {k: loaded.meta[k] for k in KEPT if k in loaded.meta}
    keep["exported_from"] = loaded.meta.get("exported_from") or Path(loaded.path).resolve().name
    scope = _scope(loaded, card)
    if scope is not None:
        loaded.predictor.scope, keep["scope"] = scope
    if _refits(card, loaded):
        keep.update(card_figures(loaded, card))
    with replace_dir(out, EXPORT_FILES, overwrite, "export", inputs) as tmp:
        if onnx:
            from pneumocxr.artifact.onnx_save import save_onnx

            save_onnx(loaded.predictor, tmp, keep, loaded.meta["architecture"])
        else:
            save_model(loaded.predictor, tmp, keep, torch.float16 if half else torch.float32)
    return Path(out) / META_NAME


def _inputs(model, card) -> list:
    """What export reads: never replaced by its output, not even with --overwrite."""
    given = [model, card.threshold_on, card.external, card.calibrate_on, card.splits_from,
             card.temper_on]  # fmt: skip
    return [p for p in given if isinstance(p, (str, Path)) and p != "default"]


def _export_ensemble_onnx(loaded, out, overwrite: bool, card, inputs=()) -> Path:
    """An ensemble as one ONNX graph, with the threshold, calibration and band it was made
    with (`pneumocxr ensemble` is where they are chosen)."""
    from pneumocxr.artifact.onnx_save import save_onnx
    from pneumocxr.artifact.schema import EXPORT_FILES, META_NAME
    from pneumocxr.fileio.atomic import replace_dir

    if card.asks():
        raise PneumoError(
            "an ensemble is exported with the threshold, calibration and band it was made with; "
            "to change them, make it again (pneumocxr ensemble ... --threshold ...)"
        )
    keep = {k: loaded.meta[k] for k in (*KEPT, "combine") if k in loaded.meta}
    keep.pop("scope", None)  # the members' checks, combined (onnx_save.ensemble_scope)
    keep["exported_from"] = Path(loaded.path).resolve().name
    with replace_dir(out, EXPORT_FILES, overwrite, "export", inputs) as tmp:
        save_onnx(loaded.predictor, tmp, keep, loaded.meta["architecture"])
    return Path(out) / META_NAME


# What export carries over from the model's own model.json.
KEPT = ("threshold", "threshold_logit", "threshold_method", "youden_threshold_val", "calibration",
        "calibration_error", "uncertain", "scope", "validation", "training",
        "shift_tempering")  # fmt: skip


def _refits(card, loaded) -> bool:
    """Does the export change the calibration, threshold, band or figures?"""
    return card.asks() or "calibration" not in loaded.meta


def _scope(loaded, card):
    """(scope check, its record) fitted on a run's training split: the one `--splits-from`
    names, or the model's own run when the model has none yet; None to keep the model's."""
    from pneumocxr.pipeline.card_sets import run_split

    if card.splits_from is None and loaded.predictor.scope is not None:
        return None
    train = run_split(loaded, "train", card.splits_from)
    val = run_split(loaded, "val", card.splits_from)
    if train is None or val is None:
        log.warning(
            "this model has no scope check and no training split to fit one on (give "
            "--splits-from RUN_OR_SPLITS_CSV): it will label any image"
        )
        return None
    return fit_scope_on(loaded, train, val)


def fit_scope_on(loaded, train, val):
    """Decode a run's train and val images at the model's size and fit the scope check."""
    from pneumocxr.data.decode import decode_all
    from pneumocxr.training.scope_fit import fit_scope_recorded

    size = loaded.preprocessing.image_size
    train_pixels = decode_all(train["path"], size).pixels
    val_pixels = decode_all(val["path"], size).pixels
    return fit_scope_recorded(loaded.predictor.network, train_pixels, val_pixels)


def make_ensemble(models, out, card=None, overwrite: bool = False):
    """An ensemble of exported models (mean of logits) in the folder `out`, with its
    calibration, threshold, band and validation figures."""
    from pneumocxr.artifact.loaded import LoadedModel
    from pneumocxr.artifact.resolve import resolve_model
    from pneumocxr.artifact.save import save_ensemble
    from pneumocxr.artifact.schema import ENSEMBLE_FILES, ONNX_FORMAT
    from pneumocxr.fileio.atomic import check_replaceable
    from pneumocxr.predictors.ensemble import NAME, Ensemble
    from pneumocxr.training.card import Card

    card = card or Card()
    members = [resolve_model(m) for m in models]
    inputs = [m.path for m in members] + _inputs(None, card)
    check_replaceable(out, ENSEMBLE_FILES, overwrite, "ensemble", inputs)  # before refitting
    if any(m.meta.get("format") == ONNX_FORMAT for m in members):
        raise PneumoError(
            "ensemble members must be PyTorch model folders (model.safetensors), not ONNX "
            "exports; make the ensemble, then export it with --format onnx"
        )
    if any(m.meta.get("members") for m in members):
        raise PneumoError("ensemble members must be single models, not ensembles")
    ensemble = Ensemble([m.predictor for m in members]).eval()
    meta = {
        "architecture": NAME,
        "preprocessing": ensemble.preprocessing().to_json(),
        "members": [{"from": Path(m.path).resolve().name} for m in members],
        "threshold_logit": 0.0,
        "threshold_method": "0.5 on the mean logit's sigmoid",
    }
    figures = card_figures(LoadedModel(ensemble, meta, Path(out)), card)
    return save_ensemble(members, out, figures, overwrite, inputs), figures


def card_figures(loaded, card) -> dict:
    """The model card of `loaded` refitted as `card` asks (training.card.model_card)."""
    from pneumocxr.pipeline.card_sets import card_sets
    from pneumocxr.training.card import model_card

    sets = card_sets(loaded, card)
    figures = model_card(card, loaded.meta, loaded.calibration, **sets)
    if card.temper_on is not None:
        figures["shift_tempering"] = _tempering(loaded, card.temper_on, figures)
    for name, m in figures["validation"].items():
        log.info(
            "%s validation (%s): AUC %.4f; at threshold %.3f accuracy %.4f, sensitivity %.4f, "
            "specificity %.4f", name, m["data"], m["auc"], figures["threshold"], m["accuracy"],
            m["sensitivity"], m["specificity"],
        )  # fmt: skip
    return figures



def _tempering(loaded, source, figures: dict) -> dict:
    """Shift tempering fitted with the calibration, threshold and band just recorded."""
    from pneumocxr.decision.band import Band
    from pneumocxr.decision.calibration import Calibration
    from pneumocxr.pipeline.tempering import fit_tempering_on

    cut = figures["threshold"]
    band = Band.from_json(figures.get("uncertain"), cut)
    fitted = fit_tempering_on(loaded, source, Calibration.from_json(figures["calibration"]), cut,
                              band)  # fmt: skip
    log.info("shift tempering: gamma %g, fitted on %s", fitted.gamma, fitted.fit_on)
    return fitted.to_json()
