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

from torch.utils.data import Subset, TensorDataset

seen: list[tuple[str, int, int]] = []
_getitem = TensorDataset.__getitem__
_subset_getitem = Subset.__getitem__


def _recording_getitem(self, index):
    seen.append((str(self.tensors[0].dtype), len(self), int(index)))
    return _getitem(self, index)


def _recording_subset_getitem(self, index):
    """A split read in place from all the decoded images: recorded as the split's sample."""
    if not isinstance(self.dataset, TensorDataset):
        return _subset_getitem(self, index)
    seen.append((str(self.dataset.tensors[0].dtype), len(self), int(index)))
    return _getitem(self.dataset, self.indices[index])


def main() -> None:
    out = Path(os.environ["PNEUMOCXR_TEST_SEEN"])
    TensorDataset.__getitem__ = _recording_getitem
    Subset.__getitem__ = _recording_subset_getitem
    Subset.__getitems__ = lambda self, indices: [self[i] for i in indices]  # the loader's call
    from pneumocxr.cli import main as cli_main

    try:
        cli_main()
    finally:
        rank = os.environ.get("LOCAL_RANK", "0")
        (out / f"seen-{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
