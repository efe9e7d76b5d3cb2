"""Model.predict on a long list decodes a chunk at a time while the model runs (it decoded the
whole list first: 1.26 GB for 5,000 small arrays), and answers bit for bit as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import pneumocxr.inference.predict as predict_module
from conftest import shared_images
from pneumocxr.api import load_model
from pneumocxr.errors import PneumoError

BATCH = 4  # the stream decodes chunks of 4 batches: at most 2 chunks are held at once


@pytest.fixture(scope="module")
def model():
    return load_model("default")


def _inputs(count: int) -> list:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (40 + i % 7, 48), dtype=np.uint8) for i in range(count - 2)]
    photo = Image.open(shared_images("PNEUMONIA", 1)[0])
    return [*arrays, photo, str(shared_images("NORMAL", 1)[0])]


def _as_before(model, items) -> list:
    """What Model.predict computed before: every input decoded, then one stack in batches."""
    decoded = [model.decode(item) for item in items]
    pixels = torch.from_numpy(np.stack([d[0] for d in decoded]))[:, None]
    names = [item if isinstance(item, str) else None for item in items]
    return predict_module.predict_arrays(
        model.loaded, pixels, model.settings(), names, [d[1] for d in decoded], BATCH
    )


def test_a_long_list_is_decoded_while_the_model_runs_with_the_same_answers(model, monkeypatch):
    items = _inputs(40)
    decoded, first_batch = [], []
    decode, outputs = model.decode, predict_module.batch_outputs

    def counting(item):
        decoded.append(1)
        return decode(item)

    def watching(predictor, batches):
        def watched():
            for batch in batches:
                first_batch.append(len(decoded))
                yield batch

        return outputs(predictor, watched())

    monkeypatch.setattr(model, "decode", counting)
    monkeypatch.setattr(predict_module, "batch_outputs", watching)
    found = model.predict(items, batch_size=BATCH)
    assert len(decoded) == 40 and first_batch[0] <= 2 * 4 * BATCH  # not all 40 first
    monkeypatch.undo()
    before = _as_before(model, items)
    assert [(f.path, f.label, f.p_pneumonia, f.scope_score, f.reason) for f in found] == [
        (b.path, b.label, b.p_pneumonia, b.scope_score, b.reason) for b in before
    ]


def test_a_bad_item_in_a_long_list_is_still_one_clear_error(model):
    items = _inputs(20)
    items[13] = np.zeros(10)  # one dimension
    with pytest.raises(PneumoError, match=r"H x W or H x W x 1, 3 or 4; got \(10,\)"):
        model.predict(items, batch_size=BATCH)
