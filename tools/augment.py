"""Batch augmentation on uint8 images, as float tensors in the model's normalisation.

Both modalities get a random affine (scale, rotation, shift) and a horizontal
flip: emoji and icons are drawn centred and upright, so without it the model
would learn their exact framing. The fill is white, the background of every
render. Photos also get a mild brightness/contrast jitter (colour is kept:
a yellow banana is part of the concept, so most photos keep it); icon sketches get their
stroke variety from the renders (several stroke widths). A quarter of the photos lose their
colour, which pushes the match onto shape.

Freehand drawings (strokes) are augmented as strokes first (:func:`augment_strokes`: what
varies between people drawing one thing on the sketch pad) and drawn with
:func:`zse_infer.strokes.strokes_to_rgb`, the pad's own rendering, before the image
augmentation above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from zse_infer.config import PreprocessConfig
from zse_infer.strokes import PAD_FILL, PAD_LINE_WIDTH, Strokes, stroke_points, strokes_to_rgb


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
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Sample 1 - x so that zero padding means a white border.
    x = 1 - F.grid_sample(1 - x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    mean_t = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std_t = torch.tensor(pre.std).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


@dataclass(frozen=True)
class StrokeAugmentConfig:
    """How freehand drawings vary. Shares are of the drawing's longer side."""

    jitter: float = 0.012  # per-point wobble (std), smoothed along the stroke like a shaky hand
    offset: float = 0.02  # each stroke shifted as a whole (std): strokes that do not quite meet
    drop: float = 0.08  # each stroke left out with this probability (never all of them)
    partial: float = 0.25  # probability the drawing stops early ...
    partial_keep: tuple[float, float] = (0.6, 1.0)  # ... keeping this share of its ink, in drawing order
    width: tuple[float, float] = (0.6, 1.8)  # the brush: times the pad's default line width
    fill: tuple[float, float] = (0.55, 0.95)  # how much of the pad the drawing spans
    rotate_deg: float = 10.0
    stretch: float = 0.1  # independent x/y scale, 1 +- this


def _smooth(noise: np.ndarray) -> np.ndarray:
    """A moving average over 5 points (edges kept): wobble, not salt-and-pepper."""
    if len(noise) < 5:
        return noise
    kernel = np.ones(5) / 5
    return np.stack([np.convolve(np.pad(noise[:, i], 2, mode="edge"), kernel, "valid") for i in range(2)], 1)


def _truncate(points: list[np.ndarray], keep: float) -> list[np.ndarray]:
    """The first ``keep`` share of the ink (stroke length), in drawing order; the last stroke cut mid-way."""
    lengths = [float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) for p in points]
    budget, out = keep * sum(lengths), []
    for p, length in zip(points, lengths, strict=False):
        if budget <= 0:
            break
        if length <= budget or len(p) < 2:
            out.append(p)
        else:
            cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
            out.append(p[: max(2, int(np.searchsorted(cum, budget)) + 1)])
        budget -= length
    return out or points[:1]


def augment_strokes(
    strokes: Strokes, cfg: StrokeAugmentConfig, rng: np.random.Generator
) -> tuple[list[np.ndarray], float, float]:
    """(strokes, line width, fill): the drawing as another person might have drawn it on the pad."""
    points = stroke_points(strokes)
    keep = rng.random(len(points)) >= cfg.drop
    if not keep.any():
        keep[int(np.argmax([len(p) for p in points]))] = True
    points = [p for p, k in zip(points, keep, strict=False) if k]
    if rng.random() < cfg.partial:
        points = _truncate(points, rng.uniform(*cfg.partial_keep))
    every = np.concatenate(points)
    size = max(float((every.max(0) - every.min(0)).max()), 1e-9)
    centre = (every.max(0) + every.min(0)) / 2
    angle = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    stretch = np.diag(1 + rng.uniform(-cfg.stretch, cfg.stretch, 2))
    out = []
    for p in points:
        wobble = _smooth(rng.normal(0, cfg.jitter * size, p.shape)) + rng.normal(0, cfg.offset * size, 2)
        out.append((p - centre + wobble) @ (rot @ stretch).T)
    return out, PAD_LINE_WIDTH * rng.uniform(*cfg.width), rng.uniform(*cfg.fill)


def render_freehand(
    strokes: Strokes, pre: PreprocessConfig, cfg: StrokeAugmentConfig | None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The model's input for a drawing (uint8, S x S x 3): as drawn on the pad (``cfg`` None), or
    augmented by :func:`augment_strokes` first."""
    if cfg is None or rng is None:
        return strokes_to_rgb(strokes, pre, PAD_LINE_WIDTH, PAD_FILL)
    points, width, fill = augment_strokes(strokes, cfg, rng)
    return strokes_to_rgb(points, pre, width, fill)
