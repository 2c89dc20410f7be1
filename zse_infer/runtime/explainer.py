"""Explanations from the explain graph's outputs: matched patches, heat maps, synthesis.

Numpy and PIL only (no torch): a deployed system explains its own results
from its export folder. See ``zse_infer/model/explain.py`` for what the
graph outputs and why anchors are located through exact patch attribution.

* **Matched pairs**: for every sketch anchor ``a``, its most similar photo
  anchor ``b`` (the argmax of the 49x49 anchor kernel) with their cosine; each
  side is placed at the patch that contributes most to that cosine.
* **Heat maps**: cross-attention received by each patch, averaged over the
  other image's patch queries and over heads.
* **Synthesis**: every sketch patch replaced by the photo patch its token
  attends to most (over one photo, or several, taking the strongest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class PatchMatch:
    sketch_anchor: int
    photo_anchor: int
    similarity: float  # kernel[sketch_anchor, photo_anchor]
    sketch_patch: tuple[int, int]  # (row, col) on the token grid
    photo_patch: tuple[int, int]
    sketch_share: float  # that patch's term in the cosine
    photo_share: float

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class Explanation:
    score: float
    kernel: np.ndarray  # (A, A)
    matches: list[PatchMatch]  # one per sketch anchor, strongest first
    sketch_heat: np.ndarray  # (g, g), sums to 1
    photo_heat: np.ndarray  # (g, g), sums to 1
    sketch_relevance: np.ndarray = field(repr=False)  # (A, g*g)
    photo_relevance: np.ndarray = field(repr=False)
    sketch_image: np.ndarray | None = field(default=None, repr=False)  # uint8 (S, S, 3), as the encoder saw it
    photo_image: np.ndarray | None = field(default=None, repr=False)
    image_path: str | None = None

    def to_dict(self) -> dict:
        return {
            "score": self.score,
            "matches": [m.to_dict() for m in self.matches],
            "kernel": self.kernel.tolist(),
            "sketch_heat": self.sketch_heat.tolist(),
            "photo_heat": self.photo_heat.tolist(),
            "image": self.image_path,
        }


def _heat(attention: np.ndarray, grid: int) -> np.ndarray:
    """(N, N) queries x keys -> (g, g) attention received per key patch (cls query and key dropped)."""
    received = attention[1:, 1:].mean(axis=0)
    total = received.sum()
    return (received / total if total > 0 else received).reshape(grid, grid)


def build_explanation(outputs: dict[str, np.ndarray], row: int = 0) -> Explanation:
    """One pair's :class:`Explanation` from the explain graph's outputs (row ``row`` of the batch)."""
    kernel = outputs["kernel"][row]
    best = outputs["best_photo_anchor"][row].astype(np.int64)
    s_rel, p_rel = outputs["sketch_relevance"][row], outputs["photo_relevance"][row]
    grid = int(round(np.sqrt(s_rel.shape[1])))
    matches = []
    for a in range(kernel.shape[0]):
        b = int(best[a])
        sp, pp = int(np.argmax(s_rel[a])), int(np.argmax(p_rel[a]))
        matches.append(
            PatchMatch(
                sketch_anchor=a,
                photo_anchor=b,
                similarity=float(kernel[a, b]),
                sketch_patch=divmod(sp, grid),
                photo_patch=divmod(pp, grid),
                sketch_share=float(s_rel[a, sp]),
                photo_share=float(p_rel[a, pp]),
            )
        )
    matches.sort(key=lambda m: (-m.similarity, m.sketch_anchor))
    return Explanation(
        score=float(outputs["score"][row]),
        kernel=kernel,
        matches=matches,
        sketch_heat=_heat(outputs["photo_attention"][row], grid),
        photo_heat=_heat(outputs["sketch_attention"][row], grid),
        sketch_relevance=s_rel,
        photo_relevance=p_rel,
    )


# --------------------------------------------------------------------------- pictures

_COLORS = np.array([[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], dtype=np.float64)


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB on a magma-like ramp (no matplotlib needed)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0, 1) * (len(_COLORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_COLORS) - 2)
    t = (v - lo)[..., None]
    return ((1 - t) * _COLORS[lo] + t * _COLORS[lo + 1]).astype(np.uint8)


def _overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    from PIL import Image

    h = heat / heat.max() if heat.max() > 0 else heat
    big = np.asarray(Image.fromarray((h * 255).astype(np.uint8)).resize(image.shape[1::-1], Image.BILINEAR)) / 255.0
    return ((1 - alpha) * image + alpha * colormap(big)).astype(np.uint8)


def _patch_center(patch: tuple[int, int], grid: int, size: int, scale: int, x0: int, y0: int) -> tuple[float, float]:
    cell = size / grid
    return x0 + (patch[1] + 0.5) * cell * scale, y0 + (patch[0] + 0.5) * cell * scale


def render_explanation(exp: Explanation, path: str | os.PathLike, top: int = 12, scale: int = 2) -> Path:
    """Sketch and photo side by side, the ``top`` strongest matches joined by lines coloured by
    strength, and below them the attention heat maps over each image. Written as PNG."""
    from PIL import Image, ImageDraw

    if exp.sketch_image is None or exp.photo_image is None:
        raise InputError("render_explanation: the explanation carries no images")
    size = exp.sketch_image.shape[0]
    side = size * scale
    gap, header = 24, 28
    canvas = Image.new("RGB", (2 * side + gap, 2 * side + gap + header), "white")
    big = lambda img: Image.fromarray(img).resize((side, side), Image.NEAREST)  # noqa: E731
    canvas.paste(big(exp.sketch_image), (0, header))
    canvas.paste(big(exp.photo_image), (side + gap, header))
    canvas.paste(big(_overlay(exp.sketch_image, exp.sketch_heat)), (0, header + side + gap))
    canvas.paste(big(_overlay(exp.photo_image, exp.photo_heat)), (side + gap, header + side + gap))
    draw = ImageDraw.Draw(canvas)
    grid = exp.sketch_heat.shape[0]
    shown = exp.matches[:top]
    if shown:
        sims = np.array([m.similarity for m in shown])
        lo, hi = sims.min(), sims.max()
        for m in reversed(shown):  # strongest drawn last, on top
            strength = (m.similarity - lo) / (hi - lo) if hi > lo else 1.0
            color = tuple(int(c) for c in colormap(0.25 + 0.75 * strength))
            a = _patch_center(m.sketch_patch, grid, size, scale, 0, header)
            b = _patch_center(m.photo_patch, grid, size, scale, side + gap, header)
            draw.line([a, b], fill=color, width=3)
            for x, y in (a, b):
                draw.ellipse([x - 5, y - 5, x + 5, y + 5], outline=color, width=2)
    draw.text((4, 6), f"relation score {exp.score:.4f}  |  top {len(shown)} anchor matches (line colour = cosine)", fill="black")
    draw.text((4, header + side + 6), "cross-attention received (sketch <- photo queries, photo <- sketch queries)", fill="black")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    exp.image_path = str(out)
    return out


# --------------------------------------------------------------------------- synthesis


@dataclass
class Synthesis:
    image: np.ndarray  # uint8 (S, S, 3)
    source: np.ndarray  # (g*g, 3) int: photo index, photo patch index, and 1 if replaced (0: kept)
    weight: np.ndarray  # (g*g,) attention weight of the chosen photo patch
    image_path: str | None = None


def synthesize_patches(
    sketch_image: np.ndarray,
    photo_images: Sequence[np.ndarray],
    sketch_attentions: Sequence[np.ndarray],
    ink_threshold: int | None = None,
) -> Synthesis:
    """Replace every sketch patch by the photo patch its token attends to most.

    ``sketch_attentions[k]``: (N, N) sketch queries over photo ``k``'s keys. With
    several photos, each patch takes the photo whose best patch has the highest
    attention weight. ``ink_threshold``: keep sketch patches without ink (no pixel
    with R+G+B <= threshold) as they are.
    """
    if len(photo_images) != len(sketch_attentions) or not photo_images:
        raise InputError("synthesize: give one attention map per photo, and at least one photo")
    size = sketch_image.shape[0]
    n = sketch_attentions[0].shape[0] - 1
    grid = int(round(np.sqrt(n)))
    cell = size // grid
    att = np.stack([a[1:, 1:] for a in sketch_attentions])  # (K, n, n): photo k, sketch patch i, photo patch j
    best_patch = att.argmax(axis=2)  # (K, n)
    best_weight = np.take_along_axis(att, best_patch[..., None], axis=2)[..., 0]
    photo = best_weight.argmax(axis=0)  # (n,)
    patch = best_patch[photo, np.arange(n)]
    weight = best_weight[photo, np.arange(n)]
    out = sketch_image.copy()
    replaced = np.ones(n, dtype=np.int64)
    for i in range(n):
        r, c = divmod(i, grid)
        ys, xs = slice(r * cell, (r + 1) * cell), slice(c * cell, (c + 1) * cell)
        if ink_threshold is not None and not (sketch_image[ys, xs].astype(int).sum(axis=2) <= ink_threshold).any():
            replaced[i] = 0
            continue
        pr, pc = divmod(int(patch[i]), grid)
        out[ys, xs] = photo_images[int(photo[i])][pr * cell : (pr + 1) * cell, pc * cell : (pc + 1) * cell]
    return Synthesis(image=out, source=np.stack([photo, patch, replaced], axis=1), weight=weight)
