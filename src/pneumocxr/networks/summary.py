"""Parameter counts and the Keras-style layer summary (torchinfo)."""

from __future__ import annotations

import torch

from pneumocxr.networks.base import PneumoNet


def parameter_counts(model: PneumoNet) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "total_params": total,
        "trainable_params": trainable,
        "frozen_params": total - trainable,
    }


def summary_text(model: PneumoNet) -> str:
    """torchinfo's table for one image at the model's input size."""
    from torchinfo import summary

    was_training = model.training
    with torch.random.fork_rng():  # torchinfo feeds random input: keep training's RNG stream
        stats = summary(
            model,
            input_size=(1, 3, model.image_size, model.image_size),
            col_names=("output_size", "num_params", "trainable"),
            depth=3,
            verbose=0,
            device="cpu",
        )
    model.train(was_training)
    return str(stats)
