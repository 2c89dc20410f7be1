"""Pictures of explanations and syntheses (PIL + numpy only), with plain captions computed from the data they
describe (the ``*_caption`` functions) and, where colour means a number, a colour scale with its ends labelled."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import ImageFont

    from .explainer import Explanation
    from .synthesis import Synthesis

_COLORS = np.array([[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], dtype=np.float64)
#: distinct outline colours for source photos (colour-blind safe: Okabe-Ito)
PHOTO_COLOURS = [(230, 159, 0), (0, 114, 178), (204, 121, 167), (0, 158, 115), (213, 94, 0), (86, 180, 233)]
#: one colour per numbered match in an explanation (Okabe-Ito, then its yellow and black)
MATCH_COLOURS = [*PHOTO_COLOURS, (240, 228, 66), (0, 0, 0)]
#: the smallest side a picture's main images are drawn at
MIN_SIDE = 448


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB on a magma-like ramp (no matplotlib needed)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0, 1) * (len(_COLORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_COLORS) - 2)
    t = (v - lo)[..., None]
    return ((1 - t) * _COLORS[lo] + t * _COLORS[lo + 1]).astype(np.uint8)


def font(size: int = 16) -> ImageFont.BaseImageFont:
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

    return Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.Resampling.NEAREST)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """``heat`` (g, g) over ``image``, scaled to its 98th percentile: one outlying patch does not turn the rest dark."""
    from PIL import Image

    top = float(np.percentile(heat, 98)) if heat.size else 0.0
    h = np.clip(heat / top, 0, 1) if top > 0 else np.zeros_like(heat)
    big = Image.fromarray((h * 255).astype(np.uint8)).resize(image.shape[1::-1], Image.Resampling.BILINEAR)
    return ((1 - alpha) * image + alpha * colormap(np.asarray(big) / 255.0)).astype(np.uint8)


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


def save_picture(canvas, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _cell_box(patch: tuple[int, int], cell: float, x0: int, y0: int) -> tuple[float, float, float, float]:
    r, c = patch
    return x0 + c * cell, y0 + r * cell, x0 + (c + 1) * cell, y0 + (r + 1) * cell


#: matches whose similarities differ by less than this are "about equally alike" (cosine scale -1..1)
EQUAL_SPREAD = 0.05
#: a single square drawing at least this share of an image's attention is outlined and named
CONSPICUOUS_SHARE = 0.1


def match_caption(similarities: Sequence[float]) -> str:
    """What the numbered markers mean, with the shown matches' similarities in plain words."""
    if not similarities:
        return "No match falls on a stroke of the sketch and on the object in the photo."
    hi, lo, n = max(similarities), min(similarities), len(similarities)
    scale = "on a scale where 1 means the same and 0 unrelated"
    if n == 1:
        most = "the model finds most alike"
        return f"Number 1: the part of the sketch and the part of the photo {most} ({hi:.2f}, {scale})."
    if hi - lo < EQUAL_SPREAD:
        strength = f"these {n} are about equally alike ({hi:.2f} to {lo:.2f}, {scale})"
    else:
        strength = f"how alike falls from {hi:.2f} (1) to {lo:.2f} ({n}), {scale}"
    return f"Same number: a part of the sketch and a part of the photo the model finds alike, 1 the most; {strength}."


def attention_caption(
    heat: np.ndarray, region: np.ndarray | None, region_name: str, on: str, off: str, image_name: str
) -> str:
    """Where the attention an image draws goes, as shares: on the squares of ``region`` against how much of the image
    they are, and the :func:`conspicuous_square` (outlined), said to lie ``on`` the region or ``off`` it."""
    heat = heat.reshape(-1)
    parts = []
    if region is not None and region.any():
        parts.append(f"{heat[region].sum():.0%} of it falls on {region_name} ({region.mean():.0%} of the {image_name})")
    square = conspicuous_square(heat)
    if square is not None:
        where = "" if region is None else f", {on}" if region[square] else f", {off}"
        parts.append(f"the outlined square alone draws {heat[square]:.0%}{where}")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "." if text else ""


def conspicuous_square(heat: np.ndarray) -> int | None:
    """The square (flat index) that alone draws :data:`CONSPICUOUS_SHARE` of the attention, if any (to be marked:
    the heat map saturates at its 98th percentile, so such a square looks like its neighbours)."""
    flat = heat.reshape(-1)
    top = int(np.argmax(flat)) if flat.size else 0
    return top if flat.size and flat[top] >= CONSPICUOUS_SHARE else None


def wrap_text(text: str, face, width: int) -> list[str]:
    """Lines of ``text`` no wider than ``width`` pixels, nothing dropped: breaks between words, after a
    '/' ("automobile/taxi/police"), and inside a word only where the word alone is wider than a line."""
    pieces: list[tuple[str, str]] = []  # (piece, what joins it to the previous piece)
    for word in text.split():
        for i, piece in enumerate(re.findall(r"[^/]*/|[^/]+", word)):
            pieces.append((piece, "" if i else " "))
    lines: list[str] = []
    for next_piece, next_joint in pieces:
        piece, joint = next_piece, next_joint  # the piece shrinks as over-wide heads are split off
        while face.getlength(piece) > width:  # wider than a line by itself: split it
            cut = 1
            while face.getlength(piece[: cut + 1]) <= width:
                cut += 1
            lines.append(piece[:cut])
            piece, joint = piece[cut:], ""
        if lines and face.getlength(lines[-1] + joint + piece) <= width:
            lines[-1] += joint + piece
        elif piece:
            lines.append(piece)
    return lines


def render_explanation(exp: Explanation, path: str | os.PathLike, top: int = 6) -> Path:
    """Sketch and photo with their ``top`` clearest matches as numbered markers, then the attention heat maps (PNG)."""
    from PIL import Image, ImageDraw

    if exp.sketch_image is None or exp.photo_image is None:
        raise InputError("render_explanation: the explanation carries no images")
    shown = exp.readable_matches(top)
    size, grid = exp.sketch_image.shape[0], exp.sketch_heat.shape[0]
    scale = scale_for(size, 320)
    side = size * scale
    cell = side / grid
    gap, pad, title_h, label_h, line_h, bar_h = 24, 12, 52, 22, 18, 64
    width = 2 * side + gap + 2 * pad
    f = font(14)
    match_lines = wrap_text(match_caption([m.similarity for m in shown]), f, width - 2 * pad)
    sketch_words = ("squares with strokes", "on a stroke", "on blank paper", "sketch")
    photo_words = ("squares showing the object", "on the object", "on blank background", "photo")
    sides = ((exp.sketch_heat, exp.sketch_ink, sketch_words), (exp.photo_heat, exp.photo_content, photo_words))
    heat_lines = [wrap_text(attention_caption(heat, region, *words), f, side) for heat, region, words in sides]
    heat_h = line_h * max(len(lines) for lines in heat_lines)
    height = title_h + 2 * (side + 4 + label_h) + line_h * len(match_lines) + 8 + heat_h + 4 + bar_h + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = _Pen(ImageDraw.Draw(canvas))
    draw.text((pad, 8), "Why this photo matches the sketch", fill="black", font=font(20))
    draw.text((pad, 32), f"relation score {exp.score:.3f} (0 = unrelated, 1 = sure)", fill="black", font=f)
    x_s, x_p, y = pad, pad + side + gap, title_h
    canvas.paste(_zoom(exp.sketch_image, scale), (x_s, y))
    canvas.paste(_zoom(exp.photo_image, scale), (x_p, y))
    radius = max(9, int(cell * 0.6))
    for number, m in enumerate(shown, start=1):
        # one colour per number, so a pair is found by colour as well as by number
        colour = MATCH_COLOURS[(number - 1) % len(MATCH_COLOURS)]
        luma = sum(c * w for c, w in zip(colour, (0.299, 0.587, 0.114), strict=True))
        text_colour = "black" if luma > 140 else "white"
        for patch, x0 in ((m.sketch_patch, x_s), (m.photo_patch, x_p)):
            bx = _cell_box(patch, cell, x0, y)
            cx, cy = (bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour, outline="black", width=2)
            digits, label = font(max(12, radius)), str(number)
            box = draw.textbbox((0, 0), label, font=digits)  # centred by hand: old Pillow's bitmap font lacks anchor
            draw.text((cx - (box[0] + box[2]) / 2, cy - (box[1] + box[3]) / 2), label, fill=text_colour, font=digits)
    y += side + 4
    draw.text((x_s, y), "the sketch", fill="black", font=f)
    draw.text((x_p, y), "the photo", fill="black", font=f)
    y += label_h
    for line in match_lines:
        draw.text((x_s, y), line, fill="black", font=f)
        y += line_h
    y += 8
    for heat, image, x0 in ((exp.sketch_heat, exp.sketch_image, x_s), (exp.photo_heat, exp.photo_image, x_p)):
        canvas.paste(_zoom(overlay(image, heat), scale), (x0, y))
        square = conspicuous_square(heat)
        if square is not None:  # white outside, black inside: visible on dark and on bright heat
            bx = _cell_box(divmod(square, grid), cell, x0, y)
            draw.rectangle([bx[0] - 3, bx[1] - 3, bx[2] + 2, bx[3] + 2], outline="white", width=3)
            draw.rectangle([bx[0], bx[1], bx[2] - 1, bx[3] - 1], outline="black", width=1)
    y += side + 4
    draw.text((x_s, y), "where the model looks on the sketch", fill="black", font=f)
    draw.text((x_p, y), "where the model looks on the photo", fill="black", font=f)
    y += label_h
    for lines, x0 in zip(heat_lines, (x_s, x_p), strict=True):
        for i, line in enumerate(lines):
            draw.text((x0, y + i * line_h), line, fill="black", font=f)
    y += heat_h + 4  # the colour scale, its ends labelled
    draw.text((x_s, y), "attention (bright = looked at most)", fill="black", font=f)
    y += 20
    for i, c in enumerate(colormap(np.linspace(0.0, 1.0, side))):
        draw.line([(x_s + i, y), (x_s + i, y + 14)], fill=tuple(int(v) for v in c))
    draw.rectangle([x_s, y, x_s + side, y + 14], outline="black")
    draw.text((x_s, y + 17), "low", fill="black", font=f)
    draw.text((x_s + side - draw.textlength("high", font=f), y + 17), "high", fill="black", font=f)
    out = save_picture(canvas, path)
    exp.image_path, exp.captions = str(out), draw.texts
    return out


def synthesis_caption(replaced: int, total: int, photos: int, photos_used: int) -> str:
    """What the synthesized image is made of, in squares (the patches a person sees outlined)."""
    source = "the photo" if photos == 1 else f"{photos_used} of the {photos} photos"
    return f"the drawing: {replaced} of the {total} squares, taken from {source}"


def source_caption(taken: int, used: int) -> str:
    """What one source photo gave: ``used`` distinct squares (outlined) filling ``taken`` squares of the drawing."""
    if not used:
        return "not used: the others fit better"
    again = "; some are used more than once" if taken > used else ", each once"
    return f"its {used} outlined squares fill {taken} squares of the drawing{again}"


def render_synthesis(
    result: Synthesis,
    sketch_image: np.ndarray,
    photo_images: Sequence[np.ndarray],
    path: str | os.PathLike,
    names: Sequence[str] | None = None,
) -> Path:
    """The synthesis (at least 448 px) beside the sketch; below, the source photos with the patches used outlined."""
    from PIL import Image, ImageDraw

    size, grid = sketch_image.shape[0], round(np.sqrt(len(result.source)))
    scale = scale_for(size)
    side = size * scale
    pad, gap, title_h, line_h = 12, 24, 40, 18
    f = font(14)
    small_scale = max(1, scale // 2)
    small = size * small_scale
    per_row = max(1, (2 * side + gap) // (small + gap))
    n_rows = math.ceil(len(photo_images) / per_row)
    photos = range(len(photo_images))
    n_used = sum(1 for k in photos if result.taken_from(k))
    caption = wrap_text(synthesis_caption(result.replaced, len(result.source), len(photo_images), n_used), f, side)
    notes = [wrap_text(source_caption(result.taken_from(k), len(result.used_patches(k))), f, small) for k in photos]
    note_h = line_h * max(len(lines) for lines in notes)
    width = 2 * side + gap + 2 * pad
    height = title_h + side + 4 + line_h * len(caption) + 12 + n_rows * (small + 4 + line_h + note_h + gap) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = _Pen(ImageDraw.Draw(canvas))
    title = "The sketch drawn with squares of the matched photo" + ("s" if len(photo_images) > 1 else "")
    draw.text((pad, 8), title, fill="black", font=font(20))
    y = title_h
    canvas.paste(_zoom(sketch_image, scale), (pad, y))
    canvas.paste(_zoom(result.image, scale), (pad + side + gap, y))
    for x in (pad, pad + side + gap):  # a frame just outside each image, so white paper has an edge
        draw.rectangle([x - 1, y - 1, x + side, y + side], outline=(200, 200, 200))
    y += side + 4
    draw.text((pad, y), "the sketch", fill="black", font=f)
    for i, line in enumerate(caption):
        draw.text((pad + side + gap, y + i * line_h), line, fill="black", font=f)
    y += line_h * len(caption) + 12
    cell = small / grid
    for k, photo in enumerate(photo_images):
        row, col = divmod(k, per_row)
        x0, y0 = pad + col * (small + gap), y + row * (small + 4 + line_h + note_h + gap)
        canvas.paste(_zoom(photo, small_scale), (x0, y0))
        colour, used = PHOTO_COLOURS[k % len(PHOTO_COLOURS)], result.used_patches(k)
        for j in used:
            box = _cell_box(divmod(int(j), grid), cell, x0, y0)
            draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=colour, width=2)
        name = names[k] if names is not None and k < len(names) else f"photo {k + 1}"
        draw.text((x0, y0 + small + 4), _fit(draw, f"{k + 1}. {name}", small, f), fill="black", font=f)
        for i, line in enumerate(notes[k]):
            draw.text((x0, y0 + small + 4 + line_h * (i + 1)), line, fill=colour if len(used) else "black", font=f)
    out = save_picture(canvas, path)
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
