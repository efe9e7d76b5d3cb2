"""Not a test: `pneumocxr train` with a record of the training samples each process reads.

test_scaling.py runs `python tests/ddp_train.py train ...` with $PNEUMOCXR_TEST_SEEN set to a
folder. Lightning's DDP launcher starts the second process by running this same command line
again (with the same environment), so both record; each writes seen-<rank>.json there:
[dtype, dataset length, index] per sample read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch.utils.data import TensorDataset

seen: list[tuple[str, int, int]] = []
_getitem = TensorDataset.__getitem__


def _recording_getitem(self, index):
    seen.append((str(self.tensors[0].dtype), len(self), int(index)))
    return _getitem(self, index)


def main() -> None:
    out = Path(os.environ["PNEUMOCXR_TEST_SEEN"])
    TensorDataset.__getitem__ = _recording_getitem
    from pneumocxr.cli import main as cli_main

    try:
        cli_main()
    finally:
        rank = os.environ.get("LOCAL_RANK", "0")
        (out / f"seen-{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
