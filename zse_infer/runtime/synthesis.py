"""Sketch-to-photo synthesis (numpy only; the choices and why: docs/explanations.md). Each drawing patch takes the
content patch maximising ``evidence_weight * z(evidence[i, j]) - d(i, j)^2 / (2 prior_width^2)``: the model's patch
evidence (:func:`patch_evidence`) z-scored per sketch patch plus a prior for the same place in the two bounding boxes
(the demo model's attention rows correlate 0.98-0.99; raise ``evidence_weight`` for a model with sharper evidence)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

#: a pixel differs from the background when some channel differs by more than this (0..255)
BACKGROUND_TOLERANCE = 24
#: a photo patch has content when at least this fraction of its pixels differ from the background
CONTENT_FRACTION = 0.5
#: defaults of the choice (see the module docstring)
PRIOR_WIDTH = 0.12
EVIDENCE_WEIGHT = 0.25


@dataclass
class Synthesis:
    image: np.ndarray  # uint8 (S, S, 3): the sketch with its drawing's patches replaced
    source: np.ndarray  # (g*g, 3) int: photo index, photo patch index, and 1 if replaced (0: kept)
    evidence: np.ndarray  # (g*g,) z-scored model evidence of the chosen photo patch (0 where kept)
    photo_content: list[np.ndarray] = field(default_factory=list, repr=False)  # (g*g,) bool per photo
    names: list[str] = field(default_factory=list)  # the photos, in source order
    image_path: str | None = None  # the picture written (sketch, synthesis, source photos)
    captions: list[str] = field(default_factory=list, repr=False)  # the text written on it

    @property
    def replaced(self) -> int:
        return int(self.source[:, 2].sum())

    def taken_from(self, photo: int) -> int:
        """How many sketch patches were filled from photo ``photo``."""
        return int(((self.source[:, 2] == 1) & (self.source[:, 0] == photo)).sum())

    def used_patches(self, photo: int) -> np.ndarray:
        """Indices of the patches of photo ``photo`` that the synthesis uses."""
        return np.unique(self.source[(self.source[:, 2] == 1) & (self.source[:, 0] == photo), 1])


def patch_grid(image: np.ndarray, grid: int) -> np.ndarray:
    """(S, S, C) image -> (grid*grid, cell*cell, C) pixels of each patch, row-major."""
    size = image.shape[0]
    cell = size // grid
    if cell * grid != size or image.shape[1] != size:
        raise InputError(
            f"image: received {image.shape[:2]}, expected a square side divisible by the {grid}-patch grid"
        )
    return image.reshape(grid, cell, grid, cell, -1).transpose(0, 2, 1, 3, 4).reshape(grid * grid, cell * cell, -1)


def background_colour(image: np.ndarray) -> np.ndarray:
    """The photo's background colour: the most common colour of its border pixels (coarsely binned), not their
    median, which an object touching two sides of the frame would decide."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.int64)
    _keys, inverse, counts = np.unique(border // 16, axis=0, return_inverse=True, return_counts=True)
    return np.median(border[inverse.reshape(-1) == counts.argmax()], axis=0).astype(np.float64)


def content_mask(image: np.ndarray, grid: int) -> np.ndarray:
    """(grid*grid,) True for photo patches with content: at least :data:`CONTENT_FRACTION` of their pixels differ
    from the background; else any patch touching content, else every patch (no plain background, a tiny object)."""
    pixels = patch_grid(image, grid).astype(np.float64)
    differs = (np.abs(pixels - background_colour(image)).max(axis=2) > BACKGROUND_TOLERANCE).mean(axis=1)
    for mask in (differs >= CONTENT_FRACTION, differs > 0):
        if mask.sum() >= max(2, grid * grid // 50):
            return mask
    return np.ones(grid * grid, dtype=bool)


def ink_mask(image: np.ndarray, grid: int, ink_threshold: int) -> np.ndarray:
    """(grid*grid,) True for sketch patches with a pixel whose R+G+B <= ink_threshold."""
    return (patch_grid(image, grid).astype(np.int64).sum(axis=2) <= ink_threshold).any(axis=1)


def fill_enclosed(mask: np.ndarray, grid: int) -> np.ndarray:
    """``mask`` plus the patches it encloses (not reachable from the border through unmasked patches)."""
    m = mask.reshape(grid, grid)
    outside = np.zeros_like(m)
    stack = [(y, x) for y in range(grid) for x in range(grid) if (y in (0, grid - 1) or x in (0, grid - 1))]
    stack = [(y, x) for y, x in stack if not m[y, x]]
    for y, x in stack:
        outside[y, x] = True
    while stack:
        y, x = stack.pop()
        for a, b in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
            if 0 <= a < grid and 0 <= b < grid and not m[a, b] and not outside[a, b]:
                outside[a, b] = True
                stack.append((a, b))
    return ~outside.reshape(-1)


def components(mask: np.ndarray, grid: int) -> np.ndarray:
    """(grid*grid,) label of each masked patch's 8-connected part (0, 1, ...), -1 outside."""
    labels = np.full(grid * grid, -1, dtype=np.int64)
    count = 0
    for start in np.flatnonzero(mask):
        if labels[start] >= 0:
            continue
        labels[start] = count
        stack = [int(start)]
        while stack:
            y, x = divmod(stack.pop(), grid)
            for a in (y - 1, y, y + 1):
                for b in (x - 1, x, x + 1):
                    j = a * grid + b
                    if 0 <= a < grid and 0 <= b < grid and mask[j] and labels[j] < 0:
                        labels[j] = count
                        stack.append(j)
        count += 1
    return labels


def _box_coords(mask: np.ndarray, grid: int) -> np.ndarray:
    """(grid*grid, 2) patch centres scaled so the masked patches' bounding box spans 0..1."""
    yx = np.stack(np.divmod(np.arange(grid * grid), grid), axis=1).astype(np.float64) + 0.5
    inside = yx[mask] if mask.any() else yx
    lo, hi = inside.min(axis=0) - 0.5, inside.max(axis=0) + 0.5
    return (yx - lo) / (hi - lo)


def _zscore_rows(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    std = x.std(axis=1, keepdims=True)
    return (x - x.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def patch_evidence(
    sketch_tokens: np.ndarray, photo_tokens: np.ndarray, sketch_attention: np.ndarray | None = None
) -> np.ndarray:
    """(n, n) evidence that sketch patch i is photo patch j, z-scored per row: patch-token cosine plus, when given, the
    cross-attention minus its mean over queries (what every query attends to alike says nothing about where)."""
    s, p = sketch_tokens[1:].astype(np.float64), photo_tokens[1:].astype(np.float64)
    s /= np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
    p /= np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    evidence = _zscore_rows(s @ p.T)
    if sketch_attention is not None:
        att = sketch_attention[1:, 1:].astype(np.float64)
        evidence = evidence + _zscore_rows(att - att.mean(axis=0, keepdims=True))
    return _zscore_rows(evidence)


def synthesize_patches(
    sketch_image: np.ndarray,
    photo_images: Sequence[np.ndarray],
    evidence: Sequence[np.ndarray],
    ink_threshold: int = 300,
    ink_only: bool = False,
    prior_width: float = PRIOR_WIDTH,
    evidence_weight: float = EVIDENCE_WEIGHT,
) -> Synthesis:
    """Replace the sketch's drawing by content patches of the photos (see the module docstring). ``evidence[k]``:
    (n, n) model evidence, sketch patch i x patch j of photo k (any scale; higher = more alike)."""
    if len(photo_images) != len(evidence) or not photo_images:
        expected = "expected one map per photo and at least one photo"
        raise InputError(
            f"synthesize: received {len(photo_images)} photos and {len(evidence)} evidence maps, {expected}"
        )
    if prior_width <= 0:
        raise InputError(f"prior_width: received {prior_width}, expected > 0")
    n = evidence[0].shape[0]
    grid = round(np.sqrt(n))
    if grid * grid != n or any(e.shape != (n, n) for e in evidence):
        shapes = [e.shape for e in evidence]
        raise InputError(f"evidence: received shapes {shapes}, expected ({n}, {n}) for a square patch grid")
    cell = sketch_image.shape[0] // grid
    ink = ink_mask(sketch_image, grid, ink_threshold)
    region = ink if ink_only else fill_enclosed(ink, grid)
    here = _box_coords(region, grid)
    contents, per_photo = [], []
    for photo, ev in zip(photo_images, evidence, strict=True):
        content = content_mask(photo, grid)
        there = _box_coords(content, grid)
        dist2 = ((here[:, None] - there[None]) ** 2).sum(axis=-1)
        score = evidence_weight * _zscore_rows(ev) - dist2 / (2 * prior_width**2)
        contents.append(content)
        per_photo.append(np.where(content[None], score, -np.inf))  # background patches are never chosen
    scores = np.stack(per_photo)  # (K, n sketch, n photo)
    best_patch = scores.argmax(axis=2)  # (K, n)
    best_score = np.take_along_axis(scores, best_patch[..., None], axis=2)[..., 0]
    photo = np.zeros(n, dtype=np.int64)
    labels = components(region, grid)
    for part in range(labels.max() + 1):
        members = labels == part
        photo[members] = int(best_score[:, members].mean(axis=1).argmax())
    patch = best_patch[photo, np.arange(n)]
    chosen_ev = np.stack([_zscore_rows(e) for e in evidence])[photo, np.arange(n), patch]
    out = sketch_image.copy()
    for i in np.flatnonzero(region):
        (r, c), (pr, pc) = divmod(int(i), grid), divmod(int(patch[i]), grid)
        out[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = photo_images[int(photo[i])][
            pr * cell : (pr + 1) * cell, pc * cell : (pc + 1) * cell
        ]
    source = np.stack([np.where(region, photo, 0), np.where(region, patch, 0), region.astype(np.int64)], axis=1)
    return Synthesis(image=out, source=source, evidence=np.where(region, chosen_ev, 0.0), photo_content=contents)
