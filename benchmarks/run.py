"""Measurements behind docs/BENCHMARKS.md. Rerun with `make benchmarks` (or one by name).

    python benchmarks/run.py smallnet-lr       # lr 1e-2 (the tutorial's), 1e-3, 1e-4; 3 seeds
    python benchmarks/run.py smallnet-lr-quick # --quick: lr 1e-3 vs 1e-4, 3 vs 8 epochs
    python benchmarks/run.py smallnet-full     # 15 epochs at 224 px, patient split
    python benchmarks/run.py default-model     # the model card's command
    python benchmarks/run.py quick-run         # `pneumocxr run --quick`
    python benchmarks/run.py full-run          # `pneumocxr run` (about 40 minutes)
    python benchmarks/run.py inference         # ms per image, with and without malloc tuning
    python benchmarks/run.py serve-load        # `pneumocxr loadtest` against `pneumocxr serve`
    python benchmarks/run.py bench             # `pneumocxr bench --json` (about 3 minutes)
    python benchmarks/run.py predict-folder    # `pneumocxr predict` on 2,000 files: img/s, RSS
    python benchmarks/run.py predict-cold      # `pneumocxr predict IMAGE` from a cold start
    python benchmarks/run.py speed             # the three above, then report (about 6 minutes)
    python benchmarks/run.py onnx-int8         # torch vs ONNX Runtime fp32 / int8 (tried, dropped)
    python benchmarks/run.py scope             # the scope check on outside images (about 10 min)
    python benchmarks/run.py calibration       # cross-fitted ECE and UNCERTAIN, external set
    python benchmarks/run.py serve-scope       # web API p50 with the scope check on and off
    python benchmarks/run.py onnx-speed        # PyTorch vs the ONNX export, same predict path
    python benchmarks/run.py bulk              # predict --csv: 1 vs 2 processes (2,000 rows)
    python benchmarks/run.py bulk-memory       # predict --csv: RSS over 100,000 rows
    python benchmarks/run.py fresh-run         # `make run ... EXTERNAL=...` on a fresh clone
    python benchmarks/run.py fresh-test        # `make test` on a fresh clone
    python benchmarks/run.py report            # rewrite docs/BENCHMARKS.md from results/

Each measurement writes benchmarks/results/<name>.json; `report` turns them into markdown.
"""

from __future__ import annotations

import argparse
import sys

from jobs_fresh import fresh_run, fresh_test

from common import DATA, ROOT, report
from jobs_bulk import bulk, bulk_memory
from jobs_models import (
    default_model,
    full_run,
    quick_run,
    smallnet_full,
    smallnet_lr,
    smallnet_lr_quick,
)
from jobs_speed import (
    bench,
    calibration,
    inference,
    onnx_int8,
    onnx_speed,
    predict_cold,
    predict_folder,
    scope,
    serve_load,
    serve_scope,
    speed,
)

JOBS = {
    "smallnet-lr": smallnet_lr,
    "smallnet-lr-quick": smallnet_lr_quick,
    "smallnet-full": smallnet_full,
    "default-model": default_model,
    "quick-run": quick_run,
    "full-run": full_run,
    "inference": inference,
    "serve-load": serve_load,
    "bench": bench,
    "predict-folder": predict_folder,
    "predict-cold": predict_cold,
    "onnx-int8": onnx_int8,
    "scope": scope,
    "serve-scope": serve_scope,
    "calibration": calibration,
    "onnx-speed": onnx_speed,
    "bulk": bulk,
    "bulk-memory": bulk_memory,
    "fresh-run": fresh_run,
    "fresh-test": fresh_test,
    "speed": speed,
    "report": report,
}



def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job", choices=[*JOBS, "all"])
    parser.add_argument(
        "--ship", action="store_true", help="default-model: replace the shipped model"
    )
    parser.add_argument(
        "--from", dest="source", help="default-model: export this finished run, do not train"
    )
    parser.add_argument(
        "--wall-s", type=float, help="default-model --from: the run's measured wall time (s)"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"the shared data was expected at {DATA}")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    every = [j for j in JOBS if j not in ("speed", "report", "fresh-run", "fresh-test")]
    every.append("report")
    jobs = every if args.job == "all" else [args.job]
    for job in jobs:
        JOBS[job](args)


if __name__ == "__main__":
    main()
