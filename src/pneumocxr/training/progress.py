"""What a training run shows in a terminal: Lightning's progress bar cut to the terminal's
width (its own loss only), and each epoch's summary line printed above it, whole, instead of
over it. Without a terminal (a pipe, a log file) there is no bar, only the summary lines."""

from __future__ import annotations

import contextlib
import logging
import sys

from lightning.pytorch.callbacks import TQDMProgressBar

KEPT = ("train_loss",)  # the bar's postfix: the epoch summary line carries the rest


class CompactProgressBar(TQDMProgressBar):
    """Bars on stderr (where the log lines go), no version number, the loss only."""

    def get_metrics(self, trainer, pl_module) -> dict:
        shown = super().get_metrics(trainer, pl_module)
        return {k: v for k, v in shown.items() if k in KEPT}

    def init_train_tqdm(self):
        return _to_stderr(super().init_train_tqdm())

    def init_validation_tqdm(self):
        return _to_stderr(super().init_validation_tqdm())


def _to_stderr(bar):
    bar.fp = sys.stderr  # tqdm writes through `fp`; the log lines share the stream
    return bar


def interactive() -> bool:
    return sys.stderr.isatty()


def lines_above_bars(log: logging.Logger):
    """While bars are drawn, log lines are written above them (tqdm.write), never over them."""
    if not interactive():
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm(loggers=[log])
