"""What the app does with an upload, through the same functions as the CLI.

Decoding is `data.decode.read_gray_bytes` + `squash` (the `predict` path's decoding, from
memory), prediction `evaluation.inference.predict_images`, Grad-CAM
`explain.gradcam.explain_pixels` and `overlay`. Nothing here computes anything of its own.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pneumocxr.data.decode import read_gray_bytes, squash
from pneumocxr.data.index import DICOM_SUFFIXES
from pneumocxr.evaluation.inference import (
    choose_threshold,
    label_for,
    model_name,
    predict_images,
    resolve_model,
)
from pneumocxr.explain.gradcam import explain_pixels, overlay
from pneumocxr.models.io import LoadedModel

DISPLAY_SIZE = 384  # longest side of the pictures sent back (the model sees 224 or so)


@dataclass
class Upload:
    """One decoded upload: the model's input and, for Grad-CAM, a picture to draw on."""

    pixels: np.ndarray  # S x S uint8, the model's size
    display: np.ndarray | None  # H x W uint8, aspect kept, at most DISPLAY_SIZE
    gradcam: bool


@dataclass
class Outcome:
    probability: float
    heatmap: np.ndarray | None


class Service:
    def __init__(self, loaded: LoadedModel, threshold: float, max_pixels: int):
        self.loaded, self.threshold, self.max_pixels = loaded, threshold, max_pixels
        self.name = model_name(loaded)
        self.size = loaded.preprocessing.image_size

    @classmethod
    def load(cls, model=None, threshold="model", max_pixels: int = 40_000_000) -> Service:
        loaded = resolve_model(model)
        return cls(loaded, choose_threshold(threshold, loaded), max_pixels)

    def decode(self, data: bytes, filename: str | None, gradcam: bool) -> Upload:
        """Raises PneumoError (UnsupportedImage for what is not JPEG, PNG or DICOM)."""
        dicom = Path(filename or "").suffix.lower() in DICOM_SUFFIXES
        gray = read_gray_bytes(data, self.max_pixels, dicom=dicom)
        display = None
        if gradcam:
            shown = gray.copy()
            shown.thumbnail((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.BILINEAR)
            display = np.asarray(shown, dtype=np.uint8)
        return Upload(squash(gray, self.size), display, gradcam)

    def run_batch(self, uploads: list[Upload]) -> list[Outcome]:
        """One forward pass for the plain requests, one Grad-CAM pass for the others."""
        outcomes: list[Outcome | None] = [None] * len(uploads)
        plain = [i for i, u in enumerate(uploads) if not u.gradcam]
        explained = [i for i, u in enumerate(uploads) if u.gradcam]
        if plain:
            pixels = torch.from_numpy(np.stack([uploads[i].pixels for i in plain]))[:, None]
            for i, p in zip(plain, predict_images(self.loaded, pixels, len(plain))):
                outcomes[i] = Outcome(float(p), None)
        if explained:
            images = np.stack([uploads[i].pixels for i in explained])
            for i, e in zip(explained, explain_pixels(self.loaded, images, self.threshold)):
                outcomes[i] = Outcome(e.probability, e.heatmap)
        return outcomes

    def label(self, probability: float) -> str:
        return label_for(probability, self.threshold)

    @staticmethod
    def pictures(upload: Upload, outcome: Outcome) -> tuple[str, str]:
        """(Grad-CAM overlay, the gray picture under it) as base64 PNGs of the same size."""
        blended = overlay(upload.display, outcome.heatmap)
        return _png(np.round(blended * 255).astype(np.uint8)), _png(upload.display)


def _png(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # X-rays hardly compress
    return base64.b64encode(buffer.getvalue()).decode("ascii")
