"""Memory the malloc tuning keeps is given back between phases and bounded within one
(docs/PERFORMANCE.md, "Memory while training"). Each check runs in a fresh process, since the
tuning changes the process's allocator for good."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

MB = 2**20


def _run(body: str) -> dict:
    script = (
        "import json\n"
        "import numpy as np\n"
        "from pneumocxr import _malloc\n"
        "from pneumocxr._malloc import release_if_grown, release_memory, resident_bytes\n"
        "assert _malloc.tune_malloc()\n"
        "out = {}\n" + body + "\nprint(json.dumps(out))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_release_memory_frees_garbage_in_cycles_and_gives_it_back():
    out = _run(
        "class Node: pass\n"
        "node = Node(); node.me = node; node.data = np.ones(150 * 2**20 // 8)\n"
        "out['held'] = resident_bytes()\n"
        "del node\n"
        "out['unreachable'] = resident_bytes()\n"  # only the cycle keeps it
        "out['trimmed'] = release_memory()\n"
        "out['released'] = resident_bytes()\n"
    )
    assert out["unreachable"] > out["held"] - 50 * MB  # still resident: a cycle, then the heap
    assert out["trimmed"] and out["released"] < out["held"] - 120 * MB


def test_release_if_grown_trims_only_past_its_bound_above_a_batch_base():
    out = _run(
        "limit = 50 * 2**20\n"
        "release_memory()\n"
        "batch = np.ones(60 * 2**20 // 8); del batch\n"  # a batch's working set, kept
        "out['first'] = release_if_grown(limit)\n"  # the base: with that working set
        "batch = np.ones(60 * 2**20 // 8); del batch\n"  # the next batch reuses it
        "out['reused'] = release_if_grown(limit)\n"
        "grown = np.ones(150 * 2**20 // 8); del grown\n"
        "out['before'] = resident_bytes()\n"
        "out['grown'] = release_if_grown(limit)\n"
        "out['after'] = resident_bytes()\n"
        "out['rebased'] = release_if_grown(limit)\n"
    )
    assert not out["first"] and not out["reused"] and not out["rebased"]
    assert out["grown"] and out["after"] < out["before"] - 120 * MB



def test_split_loaders_read_the_images_in_place():
    """The training and validation loaders index the decoded images instead of copying their
    splits (160 + 41 MB at 224 px), and give the batches the copies gave."""
    import torch

    from pneumocxr.data.datamodule import ImageDataModule, loader
    from pneumocxr.data.preprocessing import Preprocessing

    pixels = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8)
    labels = (torch.arange(20) % 3 == 0).float()
    splits = {"train": torch.arange(3, 17), "val": torch.tensor([0, 1, 2, 17, 18, 19])}
    data = ImageDataModule(pixels, labels, splits, Preprocessing(8), 4, "none", seed=7)
    made_loaders = {"train": (data.train_dataloader(), 7), "val": (data.val_dataloader(), None)}
    for name, (made, seed) in made_loaders.items():
        index = splits[name]
        assert made.dataset.dataset.tensors[0].data_ptr() == pixels.data_ptr()  # no copy
        copied = loader(pixels[index], labels[index], 4, seed)
        for (x, y), (cx, cy) in zip(made, copied, strict=True):
            assert torch.equal(x, cx) and torch.equal(y, cy)
