"""Pictures of explanations and syntheses (PIL + numpy only): what a person looks at.

Both pictures carry plain captions and, where colour means a number, a colour
scale with its ends labelled.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .explainer import Explanation
    from .synthesis import Synthesis

_COLORS = np.array([[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], dtype=np.float64)
#: distinct outline colours for source photos (colour-blind safe: Okabe-Ito)
PHOTO_COLOURS = [(230, 159, 0), (0, 114, 178), (204, 121, 167), (0, 158, 115), (213, 94, 0), (86, 180, 233)]
#: the smallest side a picture's main images are drawn at
MIN_SIDE = 448


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB on a magma-like ramp (no matplotlib needed)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0, 1) * (len(_COLORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_COLORS) - 2)
    t = (v - lo)[..., None]
    return ((1 - t) * _COLORS[lo] + t * _COLORS[lo + 1]).astype(np.uint8)


def font(size: int = 16):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def scale_for(size: int, side: int = MIN_SIDE) -> int:
    """The integer zoom that draws a ``size`` px image at least ``side`` px wide."""
    return max(1, math.ceil(side / size))


def _zoom(image: np.ndarray, scale: int):
    from PIL import Image

    return Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """``heat`` (g, g) over ``image``, scaled to its 98th percentile so one outlying patch does not
    turn the rest dark."""
    from PIL import Image

    top = float(np.percentile(heat, 98)) if heat.size else 0.0
    h = np.clip(heat / top, 0, 1) if top > 0 else np.zeros_like(heat)
    big = np.asarray(Image.fromarray((h * 255).astype(np.uint8)).resize(image.shape[1::-1], Image.BILINEAR)) / 255.0
    return ((1 - alpha) * image + alpha * colormap(big)).astype(np.uint8)


def colour_bar(draw, x: int, y: int, width: int, title: str, low: str, high: str, lo: float = 0.0, hi: float = 1.0) -> int:
    """A horizontal colour scale with its title and labelled ends; returns the y below it."""
    f = font(14)
    draw.text((x, y), title, fill="black", font=f)
    y += 20
    ramp = colormap(np.linspace(lo, hi, width))
    for i, c in enumerate(ramp):
        draw.line([(x + i, y), (x + i, y + 14)], fill=tuple(int(v) for v in c))
    draw.rectangle([x, y, x + width, y + 14], outline="black")
    draw.text((x, y + 17), low, fill="black", font=f)
    draw.text((x + width - draw.textlength(high, font=f), y + 17), high, fill="black", font=f)
    return y + 40


class _Pen:
    """An ImageDraw that remembers the text it writes: the captions, which tests read back."""

    def __init__(self, draw):
        self._draw = draw
        self.texts: list[str] = []

    def text(self, xy, text: str, **kwargs) -> None:
        self.texts.append(text)
        self._draw.text(xy, text, **kwargs)

    def __getattr__(self, name):
        return getattr(self._draw, name)


def _centred_text(draw, cx: float, cy: float, text: str, f, fill) -> None:
    """Text centred on (cx, cy) without ``anchor`` (which old Pillow's bitmap font lacks)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=f)
    draw.text((cx - (left + right) / 2, cy - (top + bottom) / 2), text, fill=fill, font=f)


def _save(canvas, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _cell_box(patch: tuple[int, int], cell: float, x0: int, y0: int) -> tuple[float, float, float, float]:
    r, c = patch
    return x0 + c * cell, y0 + r * cell, x0 + (c + 1) * cell, y0 + (r + 1) * cell


# --------------------------------------------------------------------------- explanation


def render_explanation(exp: "Explanation", path: str | os.PathLike, top: int = 6) -> Path:
    """Sketch and photo side by side with their ``top`` clearest matches as numbered markers
    (same number = matched parts, colour = strength on the scale below), and the attention
    heat maps with their colour scale. Written as PNG."""
    from PIL import Image, ImageDraw

    from ..errors import InputError

    if exp.sketch_image is None or exp.photo_image is None:
        raise InputError("render_explanation: the explanation carries no images")
    shown = exp.readable_matches(top)
    size = exp.sketch_image.shape[0]
    scale = scale_for(size, 320)
    side = size * scale
    grid = exp.sketch_heat.shape[0]
    cell = side / grid
    gap, pad, title_h, caption_h, bar_h = 24, 12, 52, 26, 64
    width = 2 * side + gap + 2 * pad
    height = title_h + 2 * (side + caption_h + bar_h) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = _Pen(ImageDraw.Draw(canvas))
    draw.text((pad, 8), "Why this photo matches the sketch", fill="black", font=font(20))
    draw.text((pad, 32), f"match score {exp.score:.3f} (0 = unrelated, 1 = sure)", fill="black", font=font(14))
    x_s, x_p, y = pad, pad + side + gap, title_h
    canvas.paste(_zoom(exp.sketch_image, scale), (x_s, y))
    canvas.paste(_zoom(exp.photo_image, scale), (x_p, y))
    sims = np.array([m.similarity for m in shown]) if shown else np.zeros(1)
    lo, hi = float(sims.min()), float(sims.max())
    radius = max(9, int(cell * 0.6))
    for number, m in enumerate(shown, start=1):
        strength = (m.similarity - lo) / (hi - lo) if hi > lo else 1.0
        colour = tuple(int(c) for c in colormap(0.3 + 0.7 * strength))
        for patch, x0 in ((m.sketch_patch, x_s), (m.photo_patch, x_p)):
            bx = _cell_box(patch, cell, x0, y)
            cx, cy = (bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour, outline="black", width=2)
            text_colour = "black" if strength > 0.5 else "white"
            _centred_text(draw, cx, cy, str(number), font(max(12, radius)), text_colour)
    y += side + 4
    f = font(14)
    draw.text((x_s, y), "the sketch", fill="black", font=f)
    draw.text((x_p, y), "the photo: same number = parts the model matched", fill="black", font=f)
    y += caption_h
    if shown:
        colour_bar(draw, x_s, y, side, f"match strength of the {len(shown)} clearest matches (feature cosine)",
                   f"{lo:.2f}", f"{hi:.2f}", 0.3, 1.0)
    else:
        draw.text((x_s, y), "no match falls on a stroke of the sketch and on the object in the photo", fill="black", font=f)
    y += bar_h
    canvas.paste(_zoom(overlay(exp.sketch_image, exp.sketch_heat), scale), (x_s, y))
    canvas.paste(_zoom(overlay(exp.photo_image, exp.photo_heat), scale), (x_p, y))
    y += side + 4
    draw.text((x_s, y), "where the model looks on the sketch", fill="black", font=f)
    draw.text((x_p, y), "where the model looks on the photo", fill="black", font=f)
    if exp.photo_content is not None and exp.photo_heat.reshape(-1)[~exp.photo_content].sum() > 0.5:
        # Attention "parked" on blank background is common in transformers; say so rather than let it mislead.
        draw.text((x_p, y + 18), "(most of it on blank background here:", fill="black", font=f)
        draw.text((x_p, y + 36), " the numbered matches are the better guide)", fill="black", font=f)
    y += caption_h
    colour_bar(draw, x_s, y, side, "attention (bright = looked at most)", "low", "high")
    out = _save(canvas, path)
    exp.image_path, exp.captions = str(out), draw.texts
    return out


# --------------------------------------------------------------------------- synthesis


def render_synthesis(
    result: "Synthesis", sketch_image: np.ndarray, photo_images: Sequence[np.ndarray], path: str | os.PathLike,
    names: Sequence[str] | None = None,
) -> Path:
    """The synthesized picture (at least 448 px) beside the sketch, and below them the source
    photos with the patches it used outlined in that photo's colour. Written as PNG."""
    from PIL import Image, ImageDraw

    size = sketch_image.shape[0]
    scale = scale_for(size)
    side = size * scale
    grid = int(round(np.sqrt(len(result.source))))
    pad, gap, title_h, caption_h = 12, 24, 40, 26
    small_scale = max(1, scale // 2)
    small = size * small_scale
    per_row = max(1, (2 * side + gap) // (small + gap))
    n_rows = math.ceil(len(photo_images) / per_row)
    width = 2 * side + gap + 2 * pad
    height = title_h + side + caption_h + 8 + n_rows * (small + 2 * caption_h) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = _Pen(ImageDraw.Draw(canvas))
    f = font(14)
    draw.text((pad, 8), "The sketch drawn with patches of the matched photo" + ("s" if len(photo_images) > 1 else ""),
              fill="black", font=font(20))
    y = title_h
    canvas.paste(_zoom(sketch_image, scale), (pad, y))
    canvas.paste(_zoom(result.image, scale), (pad + side + gap, y))
    for x in (pad, pad + side + gap):  # a frame just outside each image, so white paper has an edge
        draw.rectangle([x - 1, y - 1, x + side, y + side], outline=(200, 200, 200))
    y += side + 4
    draw.text((pad, y), "the sketch", fill="black", font=f)
    n_used = sum(1 for k in range(len(photo_images)) if result.taken_from(k))
    draw.text((pad + side + gap, y), f"synthesized: {result.replaced} of {len(result.source)} patches taken from "
              + ("the photo" if len(photo_images) == 1 else f"{n_used} of the {len(photo_images)} photos"), fill="black", font=f)
    y += caption_h + 8
    cell = small / grid
    for k, photo in enumerate(photo_images):
        row, col = divmod(k, per_row)
        x0, y0 = pad + col * (small + gap), y + row * (small + 2 * caption_h)
        canvas.paste(_zoom(photo, small_scale), (x0, y0))
        colour = PHOTO_COLOURS[k % len(PHOTO_COLOURS)]
        used = result.used_patches(k)
        for j in used:
            box = _cell_box(divmod(int(j), grid), cell, x0, y0)
            draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=colour, width=2)
        name = names[k] if names is not None and k < len(names) else f"photo {k + 1}"
        label = _fit(draw, f"{k + 1}. {name}", small, f)
        draw.text((x0, y0 + small + 2), label, fill="black", font=f)
        note = f"{result.taken_from(k)} patches from {len(used)} outlined" if len(used) else "not used: others fit better"
        note = _fit(draw, note, small, f)
        draw.text((x0, y0 + small + 2 + 18), note, fill=colour if len(used) else "black", font=f)
    out = _save(canvas, path)
    result.image_path, result.captions = str(out), draw.texts
    return out


def _fit(draw, text: str, width: int, f) -> str:
    """``text`` shortened in the middle to fit ``width`` pixels (never cut off at the edge)."""
    if draw.textlength(text, font=f) <= width:
        return text
    keep = len(text)
    while keep > 8 and draw.textlength(text[: keep // 2] + "..." + text[-(keep // 2) :], font=f) > width:
        keep -= 2
    return text[: keep // 2] + "..." + text[-(keep // 2) :]
