"""Grad-CAM heatmaps with captum, overlaid like the tutorial's VizGradCAM (jet, 0.5 blend).

Grad-CAM weighs the feature maps of the last convolutional layer by the gradient of the
predicted class's score, so the heatmap shows where the model looked for the class it chose.
With one logit, the PNEUMONIA score is the logit and the NORMAL score is its negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image

from pneumocxr.artifact.loaded import LoadedModel
from pneumocxr.artifact.onnx_load import NO_GRADCAM
from pneumocxr.data.decode import decode_all
from pneumocxr.data.index import folder_label
from pneumocxr.data.transforms import to_unit
from pneumocxr.errors import PneumoError
from pneumocxr.networks.base import network_lock
from pneumocxr.predictors.checks import checked_outputs
from pneumocxr.task import CLASS_NAMES


@dataclass
class Explanation:
    path: str
    image: np.ndarray  # uint8 H x W, the model's input before normalisation
    heatmap: np.ndarray  # float H x W in [0, 1]
    probability: float  # P(pneumonia)
    predicted: str  # the decision: NORMAL, PNEUMONIA, or (set by the caller) UNCERTAIN, ...
    true_label: str | None  # from the path's class folder, when it has one
    note: str | None = None  # why the file's header puts it out of scope


def gradcam_heatmaps(predictor, unit: torch.Tensor, signs: torch.Tensor) -> np.ndarray:
    """Grad-CAM of the chosen class for [0, 1] gray images, at their size, in [0, 1].

    A predictor of several networks (an ensemble) gets the mean of its members' heat maps,
    each for the ensemble's decision."""
    predictor.eval()
    members = predictor.members()
    if len(members) == 1:
        return network_heatmaps(members[0], predictor.member_unit(members[0], unit), signs)
    maps = []
    for member in members:
        heat = network_heatmaps(member, predictor.member_unit(member, unit), signs)
        heat = torch.from_numpy(heat)[:, None]
        maps.append(torch.nn.functional.interpolate(heat, size=unit.shape[-2:], mode="bilinear"))
    mean = torch.stack(maps).mean(dim=0)[:, 0]
    peak = mean.flatten(1).max(dim=1).values.clamp(min=1e-12).view(-1, 1, 1)
    return (mean / peak).numpy()


def network_heatmaps(member, unit: torch.Tensor, signs: torch.Tensor) -> np.ndarray:
    """Grad-CAM of one network (a NetworkPredictor's) at its input size, in [0, 1]."""
    model = member.network.eval()
    inputs = member.network_input(unit.detach()).requires_grad_(True)

    def score(x):
        return model(x) * signs.view(-1, 1)

    cam = LayerGradCam(score, model.gradcam_layer())
    with network_lock(model):  # captum's hooks catch other threads' passes through the layer
        attributions = cam.attribute(inputs, target=0, relu_attributions=True)
    upsampled = LayerAttribution.interpolate(attributions, inputs.shape[-2:], "bilinear")
    heat = upsampled[:, 0].detach().clamp(min=0)
    peak = heat.flatten(1).max(dim=1).values.clamp(min=1e-12).view(-1, 1, 1)
    return (heat / peak).numpy()


def require_gradcam(loaded: LoadedModel) -> None:
    """Refuse, in one line, a model without gradients (an ONNX export)."""
    if not loaded.predictor.explainable:
        raise PneumoError(NO_GRADCAM)


def explain_images(loaded: LoadedModel, paths, threshold: float = 0.5) -> list[Explanation]:
    """`explain_files` for files that must all be readable."""
    explanations, failures = explain_files(loaded, paths, threshold)
    if failures:
        raise PneumoError(failures[0][1])
    return explanations


def explain_files(loaded: LoadedModel, paths, threshold: float = 0.5):
    """Prediction and Grad-CAM heat map for each file that can be read, and (path, reason)
    for the others."""
    decoded = decode_all(paths, loaded.preprocessing.image_size)
    kept = [p for p, ok in zip(paths, decoded.ok) if ok]
    if not kept:
        return [], decoded.failures
    explanations = explain_pixels(loaded, decoded.pixels[:, 0].numpy(), threshold)
    notes = [decoded.notes.get(i) for i, ok in enumerate(decoded.ok) if ok]
    for e, p, note in zip(explanations, kept, notes):
        e.path, e.true_label, e.note = str(p), folder_label(Path(p).parent), note
    return explanations, decoded.failures


def explain_pixels(loaded: LoadedModel, images: np.ndarray, threshold: float = 0.5):
    """`explain_files` for images already decoded at the model's size (N x S x S uint8);
    `probability` is calibrated, `threshold` on that scale."""
    require_gradcam(loaded)
    unit = to_unit(torch.from_numpy(images)[:, None])
    with torch.no_grad():  # the prediction path's logits: the heat map is for its answer
        logits = checked_outputs(loaded.predictor.logits(unit), None, len(unit))[0]
    probs = torch.from_numpy(loaded.calibration.apply(logits.numpy()))
    predicted_pneumonia = probs >= threshold
    signs = torch.where(predicted_pneumonia, 1.0, -1.0)
    heatmaps = gradcam_heatmaps(loaded.predictor, unit, signs)
    return [
        Explanation("", img, heat, float(prob), CLASS_NAMES[int(pos)], None)
        for img, heat, prob, pos in zip(images, heatmaps, probs, predicted_pneumonia)
    ]


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Jet-coloured heatmap blended over the gray image: (1 - alpha) * image + alpha * heat.

    A heatmap of another size is stretched to the image's (bilinear), so the model-sized map
    also lies over the original picture: the model saw it squashed, not cropped.
    """
    if heatmap.shape != image.shape:
        stretched = Image.fromarray(heatmap.astype(np.float32)).resize(
            (image.shape[1], image.shape[0]), Image.Resampling.BILINEAR
        )
        heatmap = np.clip(np.asarray(stretched), 0.0, 1.0)
    colour = plt.get_cmap("jet")(heatmap)[..., :3]
    gray = np.repeat(image[..., None] / 255.0, 3, axis=2)
    return np.clip((1 - alpha) * gray + alpha * colour, 0, 1)


def title_for(e: Explanation) -> str:
    title = f"Predicted: {e.predicted}\nP(pneumonia) = {e.probability:.3f}"
    if e.true_label:
        title += f"\nTrue: {e.true_label}"
    return title


def explanation_figure(e: Explanation):
    fig, ax = plt.subplots(figsize=(4.2, 4.8))
    ax.imshow(overlay(e.image, e.heatmap))
    ax.set_title(title_for(e), fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    return fig


def panel_figure(explanations: list[Explanation], suptitle: str = "Grad-CAM"):
    """Up to three explanations side by side (the tutorial's figure)."""
    shown = explanations[:3]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4.9), squeeze=False)
    for ax, e in zip(axes[0], shown):
        ax.imshow(overlay(e.image, e.heatmap))
        ax.set_title(title_for(e), fontsize=10)
        ax.axis("off")
    fig.suptitle(suptitle, fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig
