"""Pen strokes (Quick, Draw!'s ``[xs, ys(, ts)]`` lists or ``(n, 2)`` arrays, any coordinates) -> the image the model
sees, drawn as the sketch pad (``zse_infer/serve/static/``) draws them: one picture everywhere (docs/freehand.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import PreprocessConfig
from .errors import InputError

PAD_CANVAS = 448  # index.html: <canvas id="pad" width="448" height="448">
PAD_LINE_WIDTH = 8  # app.js: lineWidth = brush (default 4, index.html) * 2 for mouse and touch
PAD_FILL = 0.75  # the share of the canvas a drawing spans (an assumption: people leave a border)

Strokes = Sequence["Sequence[Sequence[float]] | np.ndarray"]


def stroke_points(strokes: Strokes) -> list[np.ndarray]:
    """Each stroke as an (n, 2) float array of (x, y); raises :class:`InputError` on another shape."""
    out = []
    for i, stroke in enumerate(strokes):
        try:
            # An array is (n, 2) points; nested lists are Quick, Draw!'s rows [xs, ys(, ts)]
            # (a two-point stroke would read either way, so the type decides, not the shape).
            a = np.asarray(stroke if isinstance(stroke, np.ndarray) else stroke[:2], dtype=np.float64)
            a = a if isinstance(stroke, np.ndarray) else a.T
        except (TypeError, ValueError, IndexError) as exc:
            raise InputError(f"stroke {i}: expected [[x, ...], [y, ...]] or an (n, 2) array ({exc})") from exc
        if a.ndim != 2 or a.shape[1] != 2 or len(a) == 0:
            expected = "expected [[x, ...], [y, ...]] or (n, 2) points"
            raise InputError(f"stroke {i}: {expected}, received shape {np.shape(stroke)}")
        if not np.isfinite(a).all():
            raise InputError(f"stroke {i}: coordinates must be finite numbers")
        out.append(a)
    if not out:
        raise InputError("a drawing needs at least one stroke, received none")
    return out


def fit_strokes(strokes: Strokes, canvas: int = PAD_CANVAS, fill: float = PAD_FILL) -> list[np.ndarray]:
    """The strokes in canvas pixels: aspect kept, the longer side spanning ``fill * canvas``, centred."""
    if not 0 < fill <= 1:
        raise InputError(f"fill {fill}: expected a share of the canvas in (0, 1]")
    points = stroke_points(strokes)
    every = np.concatenate(points)
    lo, hi = every.min(axis=0), every.max(axis=0)
    scale = fill * canvas / max(float((hi - lo).max()), 1e-9)  # a single dot stays a dot
    centre = (lo + hi) / 2
    return [(p - centre) * scale + canvas / 2 for p in points]


def draw_strokes(
    points: Sequence[np.ndarray], canvas: int = PAD_CANVAS, line_width: float = PAD_LINE_WIDTH
) -> np.ndarray:
    """The pad's canvas: (canvas, canvas, 3) uint8, black anti-aliased strokes with round ends on white."""
    import cv2

    image = np.full((canvas, canvas, 3), 255, dtype=np.uint8)
    shift = 4  # sub-pixel precision (1/16 px), as a browser canvas draws
    thickness = max(1, round(line_width))
    for p in points:
        pts = np.round(np.asarray(p) * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)
        if len(pts) == 1:  # a tap: the pad draws a dot
            pts = np.concatenate([pts, pts])
        # A polyline with round caps and joins: OpenCV's thick lines end in half discs.
        cv2.polylines(image, [pts], False, (0, 0, 0), thickness=thickness, lineType=cv2.LINE_AA, shift=shift)
    return image


def strokes_to_rgb(
    strokes: Strokes,
    config: PreprocessConfig,
    line_width: float = PAD_LINE_WIDTH,
    fill: float = PAD_FILL,
    canvas: int = PAD_CANVAS,
) -> np.ndarray:
    """The model's input for a drawing (``config.size`` square, uint8 RGB, before normalisation):
    placed and drawn as on the pad, then preprocessed as the server preprocesses the pad's upload."""
    from .preprocess import sketch_to_rgb

    return sketch_to_rgb(draw_strokes(fit_strokes(strokes, canvas, fill), canvas, line_width), config)
