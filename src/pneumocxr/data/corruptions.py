"""Acquisition changes as image corruptions, for the stress test and as training augmentation.

The thirteen corruptions and their five severities are MedMNIST-C's for PneumoniaMNIST (Di
Salvo et al., 2024, `medmnistc/corruptions/registry.py`), re-implemented here with torch,
kornia and PIL because the `medmnistc` package drags in torchvision and ImageMagick. Two more
probe shortcuts seen in this data: a black frame masking the borders, and a burned-in text
label like the side markers and captions of real radiographs.

Every function takes a batch of gray uint8 images (N x 1 x H x W) and a strength, and returns
uint8 images of the same shape, so a corrupted image goes through exactly the decode-cache path
that a clean one does. Randomness comes from the `generator` argument.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont


def _unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def _uint8(images: torch.Tensor) -> torch.Tensor:
    # medmnistc truncates ((x * 255).astype(uint8)); rounding would be kinder but less faithful
    return (images.clamp(0, 1) * 255).to(torch.uint8)


def pixelate(images, factor: float, generator=None):
    """Box-downsample to `factor` of the size, then box-upsample back (PIL's BOX both ways)."""
    size = images.shape[-1]
    small = max(1, int(size * factor))
    down = F.adaptive_avg_pool2d(images.float(), small)
    index = (torch.arange(size) * small // size).long()  # box upsampling = nearest source cell
    return down[..., index[:, None], index[None, :]].round().to(torch.uint8)


def jpeg(images, quality: float, generator=None):
    """Re-encode each image as a JPEG of `quality` (PIL's encoder, as medmnistc)."""
    out = torch.empty_like(images)
    for i, image in enumerate(images[:, 0].numpy()):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
        out[i, 0] = torch.from_numpy(np.array(Image.open(buffer)))
    return out


def gaussian_noise(images, scale: float, generator=None):
    x = _unit(images)
    return _uint8(x + torch.randn(x.shape, generator=generator) * scale)


def speckle_noise(images, scale: float, generator=None):
    x = _unit(images)
    return _uint8(x + x * torch.randn(x.shape, generator=generator) * scale)


def impulse_noise(images, amount: float, generator=None):
    """Salt and pepper: `amount` of the pixels set to black or white, half each."""
    x = _unit(images)
    hit = torch.rand(x.shape, generator=generator) < amount
    salt = torch.rand(x.shape, generator=generator) < 0.5
    return _uint8(torch.where(hit, salt.float(), x))


def shot_noise(images, photons: float, generator=None):
    """Poisson noise: fewer photons, more noise."""
    x = _unit(images)
    return _uint8(torch.poisson(x * photons, generator=generator) / photons)


def gaussian_blur(images, kernel: float, generator=None):
    """torchvision's gaussian_blur with its default sigma for an odd `kernel`."""
    import kornia.filters

    k = int(kernel) // 2 * 2 + 1
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    blurred = kornia.filters.gaussian_blur2d(_unit(images), (k, k), (sigma, sigma), "reflect")
    return _uint8(blurred)


def brightness(images, factor: float, generator=None):
    """PIL's ImageEnhance.Brightness: a blend with black."""
    return _uint8(_unit(images) * factor)


def contrast(images, factor: float, generator=None):
    """PIL's ImageEnhance.Contrast: a blend with the image's mean gray level."""
    x = _unit(images)
    mean = (x * 255).mean(dim=(1, 2, 3), keepdim=True).add(0.5).floor() / 255
    return _uint8(mean + (x - mean) * factor)


def gamma(images, value: float, generator=None):
    """torchvision's adjust_gamma: x ** gamma."""
    return _uint8(_unit(images).pow(value))


def masked_borders(images, fraction: float, generator=None):
    """Black out a frame `fraction` of the side wide (collimation, cropped exports)."""
    out = images.clone()
    width = max(1, round(images.shape[-1] * fraction))
    out[..., :width, :] = 0
    out[..., -width:, :] = 0
    out[..., :, :width] = 0
    out[..., :, -width:] = 0
    return out


def text_label(images, height: float, generator=None):
    """Stamp a white side-marker-like caption ("R PORTABLE"), `height` of the side tall, in a
    corner chosen at random."""
    out = torch.empty_like(images)
    size = images.shape[-1]
    font = ImageFont.load_default(size=max(6, round(size * height)))
    corners = torch.randint(0, 4, (len(images),), generator=generator).tolist()
    for i, image in enumerate(images[:, 0].numpy()):
        picture = Image.fromarray(image)
        draw = ImageDraw.Draw(picture)
        box = draw.textbbox((0, 0), "R PORTABLE", font=font)
        w, h = box[2] - box[0], box[3] - box[1]
        margin = size // 20
        x = margin if corners[i] % 2 == 0 else size - w - margin
        y = margin if corners[i] < 2 else size - h - margin - box[1]
        draw.text((x, y), "R PORTABLE", fill=255, font=font)
        out[i, 0] = torch.from_numpy(np.array(picture))
    return out


@dataclass(frozen=True)
class Corruption:
    name: str
    apply: Callable
    severities: tuple[float, ...]  # the strength at severity 1..5

    def __call__(self, images: torch.Tensor, severity: int, generator=None) -> torch.Tensor:
        return self.apply(images, self.severities[severity - 1], generator)


CORRUPTIONS = {
    c.name: c
    for c in (
        Corruption("pixelate", pixelate, (0.8, 0.7, 0.6, 0.5, 0.4)),
        Corruption("jpeg", jpeg, (50, 30, 15, 10, 7)),
        Corruption("gaussian_noise", gaussian_noise, (0.04, 0.05, 0.06, 0.07, 0.08)),
        Corruption("speckle_noise", speckle_noise, (0.05, 0.07, 0.10, 0.15, 0.20)),
        Corruption("impulse_noise", impulse_noise, (0.005, 0.01, 0.013, 0.017, 0.02)),
        Corruption("shot_noise", shot_noise, (300, 200, 150, 100, 80)),
        Corruption("gaussian_blur", gaussian_blur, (3, 5, 7, 9, 11)),
        Corruption("brightness_up", brightness, (1.1, 1.2, 1.3, 1.4, 1.5)),
        Corruption("brightness_down", brightness, (0.9, 0.8, 0.7, 0.6, 0.5)),
        Corruption("contrast_up", contrast, (1.1, 1.2, 1.3, 1.4, 1.6)),
        Corruption("contrast_down", contrast, (0.9, 0.8, 0.7, 0.6, 0.4)),
        Corruption("gamma_up", gamma, (1.1, 1.2, 1.3, 1.4, 1.6)),
        Corruption("gamma_down", gamma, (0.9, 0.8, 0.7, 0.6, 0.4)),
        Corruption("masked_borders", masked_borders, (0.03, 0.06, 0.09, 0.12, 0.15)),
        Corruption("text_label", text_label, (0.04, 0.06, 0.08, 0.10, 0.12)),
    )
}
MEDMNIST_C = tuple(list(CORRUPTIONS)[:13])  # the 13 of MedMNIST-C; the last two are ours


def random_corruption(images: torch.Tensor, generator=None) -> torch.Tensor:
    """One corruption for the whole batch, at a random severity (training augmentation)."""
    names = list(CORRUPTIONS)
    pick = int(torch.randint(0, len(names), (1,), generator=generator))
    severity = int(torch.randint(1, 6, (1,), generator=generator))
    return CORRUPTIONS[names[pick]](images, severity, generator)
