"""Batch augmentation on uint8 images, as float tensors in the model's normalisation.

Both modalities get a random affine (scale, rotation, shift) and a horizontal
flip: emoji and icons are drawn centred and upright, so without it the model
would learn their exact framing. The fill is white, the background of every
render. Photos also get a mild brightness/contrast jitter (colour is kept:
a yellow banana is part of the concept, so most photos keep it); sketches get their stroke variety
from the renders (several stroke widths and weights). A quarter of the photos
lose their colour, which pushes the match onto shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from zse_infer.config import PreprocessConfig


@dataclass(frozen=True)
class AugmentConfig:
    scale: tuple[float, float] = (0.8, 1.1)
    rotate_deg: float = 12.0
    shift: float = 0.08  # fraction of the image side
    flip: float = 0.5
    brightness: float = 0.15  # photos only
    contrast: float = 0.15  # photos only
    grey: float = 0.25  # photos only: probability of dropping colour, so shape has to carry the match


def to_tensor(images: np.ndarray, pre: PreprocessConfig) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 normalised like :func:`zse_infer.preprocess.load_image`."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(images: np.ndarray, pre: PreprocessConfig, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augmented, normalised (B, 3, S, S) float32 from (B, S, S, 3) uint8."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator)

    if pre.kind == "photo":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrast = uniform(1 - cfg.contrast, 1 + cfg.contrast).view(b, 1, 1, 1)
        brightness = uniform(-cfg.brightness, cfg.brightness).view(b, 1, 1, 1)
        x = ((x - mean) * contrast + mean + brightness).clamp(0, 1)
        grey = (torch.rand(b, generator=generator) < cfg.grey).view(b, 1, 1, 1)
        luma = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
        x = torch.where(grey, luma, x)

    # Affine grid: output pixel -> input pixel. A zoom factor s > 1 shows the drawing larger.
    s = uniform(*cfg.scale)
    angle = uniform(-cfg.rotate_deg, cfg.rotate_deg) * math.pi / 180
    flip = torch.where(torch.rand(b, generator=generator) < cfg.flip, -1.0, 1.0)
    tx, ty = uniform(-cfg.shift, cfg.shift) * 2, uniform(-cfg.shift, cfg.shift) * 2
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Sample 1 - x so that zero padding means a white border.
    x = 1 - F.grid_sample(1 - x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    mean_t = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std_t = torch.tensor(pre.std).view(1, 3, 1, 1)
    return (x - mean_t) / std_t
