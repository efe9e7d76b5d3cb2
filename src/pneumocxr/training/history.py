"""Per-epoch history: history.csv, history.png and one readable line per epoch."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import pandas as pd

from pneumocxr.fileio.atomic import atomic_path
from pneumocxr.fileio.formats import save_figure
from pneumocxr.training.module import METRIC_NAMES

log = logging.getLogger("pneumocxr")
# ext_*: the external set (--external), measured each epoch beside validation; empty without.
COLUMNS = ["epoch", "phase", "lr", "seconds"] + [
    f"{s}_{m}" for s in ("train", "val", "ext") for m in METRIC_NAMES
]


class HistoryCallback(L.Callback):
    """Appends each finished epoch to the run's history (epochs count across phases)."""

    def __init__(self, run_dir: Path, phase: str, epoch_offset: int, total_epochs: int):
        self.run_dir, self.phase = Path(run_dir), phase
        self.offset, self.total = epoch_offset, total_epochs

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row = {
            "epoch": self.offset + trainer.current_epoch + 1,
            "phase": self.phase,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - self.started, 2),  # training + validation
            **{c: metrics.get(c) for c in COLUMNS[4:]},
        }
        history = read_history(self.run_dir)
        history = history[history["epoch"] < row["epoch"]]  # a resumed run rewrites its tail
        history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
        write_history(self.run_dir, history)
        external = "" if row["ext_auc"] is None else f" | external auc {row['ext_auc']:.4f}"
        log.info(
            "epoch %d/%d [%s] loss %.4f acc %.4f | val loss %.4f acc %.4f auc %.4f%s | lr %.2g",
            row["epoch"],
            self.total,
            self.phase,
            row["train_loss"],
            row["train_accuracy"],
            row["val_loss"],
            row["val_accuracy"],
            row["val_auc"],
            external,
            row["lr"],
        )


def read_history(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / "history.csv"
    if path.is_file():
        return pd.read_csv(path).reindex(columns=COLUMNS)  # older runs lack the ext_ columns
    return pd.DataFrame(columns=COLUMNS)


def write_history(run_dir: Path, history: pd.DataFrame) -> None:
    with atomic_path(Path(run_dir) / "history.csv") as tmp:
        history.to_csv(tmp, index=False)
    save_figure(plot_history(history), Path(run_dir) / "history.png")


def plot_history(history: pd.DataFrame):
    """Train vs validation loss and accuracy, like the tutorial's plot_history; with an external
    set, its curves too, and a third panel with both AUCs (the gap shows at a glance)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    external = "ext_loss" in history and history["ext_loss"].notna().any()
    metrics = ("loss", "accuracy", "auc") if external else ("loss", "accuracy")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4))
    for ax, metric in zip(axes, metrics):
        if metric != "auc":
            ax.plot(history["epoch"], history[f"train_{metric}"], "o-", label="train")
        ax.plot(history["epoch"], history[f"val_{metric}"], "o-", label="validation (internal)")
        if external:
            ax.plot(history["epoch"], history[f"ext_{metric}"], "o-", label="external")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.set_title(f"Model {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    phases = history["phase"].tolist()
    for i in range(1, len(phases)):
        if phases[i] != phases[i - 1]:
            for ax in axes:
                ax.axvline(history["epoch"].iloc[i] - 0.5, color="grey", ls="--", lw=1)
    fig.tight_layout()
    return fig


def exported_epoch(history: pd.DataFrame, keep: str = "best", monitor: str = "val_loss"):
    """The epoch whose weights were kept: with `best` each phase restores its own lowest
    `monitor`, so the exported model is the best epoch of the last phase; with `last`, the
    last epoch."""
    if not len(history):
        return None
    if keep == "last":
        return int(history["epoch"].iloc[-1])
    last = history[history["phase"] == history["phase"].iloc[-1]]
    return int(last.loc[last[monitor].idxmin(), "epoch"])
