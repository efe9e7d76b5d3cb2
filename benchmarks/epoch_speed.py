"""A whole training epoch against the bare training step (docs/PERFORMANCE.md, "The epoch").

Trains `--model` for `--epochs` epochs through `training.fit.train` itself (the run's split of
the shared images, its recipe from `pneumocxr run`, the external set as a second validation
loader, checkpoints, history), and times inside each epoch:

- the training batches (each from its `on_train_batch_start` to its end: forward, backward,
  optimizer, Lightning's logging);
- everything else: fetching and augmenting batches, validation (and the external set),
  checkpoints, the end-of-epoch callbacks;
- a **bare step** on a copy of the model (`prepare_batch`, forward, loss, backward, fused
  Adam: no Lightning, no metrics) after every `--every`-th batch, interleaved like `pneumocxr
  bench`'s references so that it meets the same load as the epoch around it. Its time is
  taken out of the epoch's.

Prints one JSON line per epoch: images/s of the epoch (training images / epoch seconds), of the
bare step, the ratio (target >= 0.85), where the rest of the time went, and the range of the
process's RSS after the epoch's batches.

python benchmarks/epoch_speed.py [--model smallnet] [--epochs 1] [--every 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI has it

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pneumocxr._malloc import resident_bytes, tune_malloc  # noqa: E402
from pneumocxr.data.transforms import prepare_batch  # noqa: E402
from pneumocxr.training import loop  # noqa: E402
from pneumocxr.training.config import RUN_RECIPES, TrainConfig  # noqa: E402
from pneumocxr.training.fit import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "chest_xray").resolve()
EXTERNAL = (ROOT / ".." / "shared" / "data" / "external").resolve()


class EpochClock(L.Callback):
    """Times an epoch's parts; runs a bare step on its own copy of the model every `every`
    batches (outside the epoch's clock)."""

    def __init__(self, every: int):
        self.every, self.epochs = every, []

    def on_fit_start(self, trainer_, module) -> None:  # once per phase
        model = copy.deepcopy(module.model).train()
        optimizer = torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True
        )
        self.bare = (model, optimizer, module.hparams.input_stage)

    def bare_step(self, trainer_) -> float:
        """One step on a batch drawn from the training split, data preparation included."""
        model, optimizer, stage = self.bare
        dm = trainer_.datamodule
        size = dm.batch_size
        if stage == 0:
            train = dm.splits["train"]
            rows = train[torch.randint(0, len(train), (size,))]
            images, labels = dm.pixels[rows], dm.labels[rows]
        else:
            rows = torch.randint(0, len(dm.train_labels), (size,))
            images, labels = dm.train_views[0][rows], dm.train_labels[rows]
        start = time.perf_counter()
        if stage == 0:
            images = prepare_batch(images, dm.prep, dm.augment)
        elif images.ndim == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        logits = model.run_stages(images, stage).squeeze(1)
        F.binary_cross_entropy_with_logits(logits, labels).backward()
        optimizer.step()
        return time.perf_counter() - start

    def on_train_epoch_start(self, trainer_, module) -> None:
        self.current = {
            "start": time.perf_counter(), "batches": 0, "images": 0, "in_batch": 0.0,
            "bare": [], "outside": 0.0, "phase_stage": module.hparams.input_stage, "rss": [],
        }  # fmt: skip

    def on_train_batch_start(self, trainer_, module, batch, batch_idx) -> None:
        self.batch_start = time.perf_counter()

    def on_train_batch_end(self, trainer_, module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        c = self.current
        c["in_batch"] += now - self.batch_start
        c["batches"] += 1
        c["images"] += len(batch[1])
        c["rss"].append(resident_bytes() or 0)
        if batch_idx % self.every == 0:
            with torch.enable_grad():
                c["bare"].append(self.bare_step(trainer_))
            c["outside"] += time.perf_counter() - now

    def on_validation_start(self, trainer_, module) -> None:
        self.val_start = time.perf_counter()

    def on_validation_end(self, trainer_, module) -> None:
        self.current["validation"] = time.perf_counter() - self.val_start

    def on_train_epoch_end(self, trainer_, module) -> None:
        # Lightning validates before this hook; checkpoints are written after it: the next
        # epoch's start (or the fit's end) closes the epoch.
        self.epochs.append(self.current)

    def on_fit_end(self, trainer_, module) -> None:
        self.current["end"] = time.perf_counter()


def summary(clock: EpochClock) -> list[dict]:
    out = []
    for i, e in enumerate(clock.epochs):
        following = clock.epochs[i + 1] if i + 1 < len(clock.epochs) else None
        end = e.get("end") or following["start"]  # a phase's last epoch ends with its fit
        seconds = end - e["start"] - e["outside"]
        bare_s = sum(e["bare"]) / len(e["bare"])
        size = e["images"] / e["batches"]
        out.append({
            "epoch": i + 1,
            "input_stage": e["phase_stage"],
            "train_images": e["images"],
            "epoch_s": seconds,
            "epoch_img_s": e["images"] / seconds,
            "bare_step_img_s": size / bare_s,
            "epoch_vs_bare_step": e["images"] / seconds / (size / bare_s),
            "in_batch_s": e["in_batch"],
            "in_batch_img_s": e["images"] / e["in_batch"],
            "validation_s": e.get("validation", 0.0),
            "rest_s": seconds - e["in_batch"] - e.get("validation", 0.0),
            "bare_steps": len(e["bare"]),
            "rss_after_batches_mb": [round(min(e["rss"]) / 2**20), round(max(e["rss"]) / 2**20)],
            "load_average": os.getloadavg()[0],
        })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smallnet")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--every", type=int, default=5)
    args = parser.parse_args()
    tune_malloc()
    clock = EpochClock(args.every)

    class Timed(loop.RandomState):  # one more callback in run_phase's list
        def __init__(self):
            super().__init__()
            for hook in ("on_train_epoch_start", "on_train_batch_start", "on_train_batch_end",
                         "on_validation_start", "on_validation_end", "on_train_epoch_end",
                         "on_fit_start", "on_fit_end"):  # fmt: skip
                setattr(self, hook, getattr(clock, hook))

    loop.RandomState = Timed
    transfer = args.model != "smallnet"
    recipe = RUN_RECIPES["transfer" if transfer else "smallnet"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            data=str(DATA), model=args.model, epochs=args.epochs, head_epochs=1,
            external=str(EXTERNAL), out=tmp, **recipe,
        )  # fmt: skip
        train(cfg)
    for row in summary(clock):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
