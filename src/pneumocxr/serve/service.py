"""What the app does with an upload, through the same functions as the CLI and the API.

Decoding is `data.decode.read_gray_bytes` + `squash` (the `predict` path's decoding, from
memory, with the DICOM header's scope note; the picture under a heat map is trimmed of its
uniform borders as the model's input is), answers `inference.predict.predict_arrays`
(scope check, calibration, decision), Grad-CAM `explain.gradcam.explain_pixels` and `overlay`.
Nothing here computes anything of its own.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.artifact.resolve import model_name, resolve_model
from pneumocxr.data.borders import trim_borders
from pneumocxr.data.decode import SCOPE_NOTE, read_gray_bytes, squash
from pneumocxr.data.dicom import shown_header
from pneumocxr.data.index import DICOM_SUFFIXES
from pneumocxr.explain.gradcam import explain_pixels, overlay
from pneumocxr.inference.answers import Prediction, Settings
from pneumocxr.inference.predict import predict_arrays

DISPLAY_SIZE = 384  # longest side of the pictures sent back (the model sees 224 or so)


@dataclass
class Upload:
    """One decoded upload: the model's input and, for Grad-CAM, a picture to draw on."""

    pixels: np.ndarray  # S x S uint8, the model's size
    display: np.ndarray | None  # H x W uint8, aspect kept, at most DISPLAY_SIZE
    gradcam: bool
    note: str | None = None  # why the DICOM header puts it out of scope
    scope_check: bool = True
    header: dict | None = None  # a DICOM's modality, view and body part (data.dicom.SHOWN_TAGS)


@dataclass
class Outcome:
    answer: Prediction
    heatmap: np.ndarray | None


class Service:
    def __init__(self, loaded: LoadedModel, threshold="model", max_pixels: int = 40_000_000):
        """`threshold`: a number on the calibrated scale, or "model" (the model's own)."""
        self.loaded, self.max_pixels = loaded, max_pixels
        self.settings = Settings.of(loaded, threshold)
        self.threshold = self.settings.threshold
        self.name = model_name(loaded)
        self.size = loaded.preprocessing.image_size
        self.explainable = loaded.predictor.explainable  # Grad-CAM: not for an ONNX export

    @classmethod
    def load(cls, model=None, threshold="model", max_pixels: int = 40_000_000) -> Service:
        return cls(resolve_model(model), threshold, max_pixels)

    def decode(self, data: bytes, filename: str | None, gradcam: bool,
               scope_check: bool = True) -> Upload:  # fmt: skip
        """Raises PneumoError (UnsupportedImage for what is not JPEG, PNG or DICOM)."""
        dicom = Path(filename or "").suffix.lower() in DICOM_SUFFIXES
        decoded = read_gray_bytes(data, self.max_pixels, dicom=dicom)
        gray = trim_borders(decoded)  # as squash trims it: the heat map lies over what it saw
        display = None
        if gradcam:
            shown = gray.copy()
            shown.thumbnail((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.BILINEAR)
            display = np.asarray(shown, dtype=np.uint8)
        note = decoded.info.get(SCOPE_NOTE)
        header = shown_header(io.BytesIO(data)) if data[128:132] == b"DICM" else None
        return Upload(squash(gray, self.size), display, gradcam, note, scope_check, header)

    def run_batch(self, uploads: list[Upload]) -> list[Outcome]:
        """One forward pass (with the scope check) per setting of the batch, then Grad-CAM for
        the in-scope images that asked for it (an image out of scope gets no heat map)."""
        outcomes: list[Outcome | None] = [None] * len(uploads)
        for scope_check in (True, False):
            chosen = [i for i, u in enumerate(uploads) if u.scope_check == scope_check]
            if not chosen:
                continue
            pixels = torch.from_numpy(np.stack([uploads[i].pixels for i in chosen]))[:, None]
            settings = replace(self.settings, scope_check=scope_check)
            notes = [uploads[i].note for i in chosen]
            found = predict_arrays(self.loaded, pixels, settings, notes=notes,
                                   batch_size=len(chosen))  # fmt: skip
            for i, answer in zip(chosen, found):
                outcomes[i] = Outcome(answer, None)
        explained = [i for i, u in enumerate(uploads) if u.gradcam and outcomes[i].answer.in_scope]
        if explained:
            images = np.stack([uploads[i].pixels for i in explained])
            for i, e in zip(explained, explain_pixels(self.loaded, images, self.threshold)):
                outcomes[i].heatmap = e.heatmap
        return outcomes

    @staticmethod
    def pictures(upload: Upload, outcome: Outcome) -> tuple[str, str]:
        """(Grad-CAM overlay, the gray picture under it) as base64 PNGs of the same size."""
        blended = overlay(upload.display, outcome.heatmap)
        return _png(np.round(blended * 255).astype(np.uint8)), _png(upload.display)


def _png(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # X-rays hardly compress
    return base64.b64encode(buffer.getvalue()).decode("ascii")
