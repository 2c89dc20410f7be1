"""Strokes drawn as the sketch pad draws them: the constants are the page's, the picture is the model's input."""

import re
from pathlib import Path

import numpy as np
import pytest

from zse_infer.config import get_config
from zse_infer.errors import InputError
from zse_infer.strokes import PAD_CANVAS, PAD_LINE_WIDTH, draw_strokes, fit_strokes, stroke_points, strokes_to_rgb

STATIC = Path(__file__).resolve().parents[1] / "zse_infer" / "serve" / "static"
SQUARE = [[[0, 100, 100, 0, 0], [0, 0, 100, 100, 0]]]  # Quick, Draw! layout: [[xs], [ys]]


def test_pad_constants_are_the_pages():
    html, js = (STATIC / "index.html").read_text(), (STATIC / "app.js").read_text()
    canvas = re.search(r'<canvas id="pad" width="(\d+)" height="(\d+)"', html)
    assert canvas and int(canvas[1]) == int(canvas[2]) == PAD_CANVAS
    brush = re.search(r'<input id="brush"[^>]*value="(\d+)"', html)
    factor = re.search(r'size: Number\(\$\("brush"\)\.value\) \* (\d+)', js)
    assert brush and factor and int(brush[1]) * int(factor[1]) == PAD_LINE_WIDTH
    assert 'ctx.lineCap = "round"' in js and 'ctx.lineJoin = "round"' in js  # what draw_strokes draws too


def test_fit_keeps_the_shape_and_fills_the_canvas():
    fitted = fit_strokes([[[10, 30], [5, 15]], np.array([[10.0, 5.0], [50.0, 5.0]])], canvas=400, fill=0.5)
    every = np.concatenate(fitted)
    assert np.allclose(every.max(0) - every.min(0), [200, 50])  # 40 x 10 scaled by 5, aspect kept
    assert np.allclose((every.max(0) + every.min(0)) / 2, [200, 200])  # centred
    assert np.allclose(fit_strokes([[[3], [4]]])[0], [[PAD_CANVAS / 2, PAD_CANVAS / 2]])  # a dot stays a dot


def test_model_input_shows_the_pads_brush_at_the_input_size():
    pre = get_config("zse_demo").preprocess["sketch"]
    image = strokes_to_rgb(SQUARE, pre)
    assert image.shape == (pre.size, pre.size, 3) and image.dtype == np.uint8
    # The square's outline spans the crop: 8 px on the 448 canvas at 75% fill -> about 2.5 px at 112.
    middle_row = image[pre.size // 2, :, 0]
    dark = np.flatnonzero(middle_row < 128)
    runs = np.split(dark, np.flatnonzero(np.diff(dark) > 1) + 1)
    assert len(runs) == 2 and all(1 <= len(r) <= 4 for r in runs), runs
    assert image[pre.size // 2, pre.size // 2].tolist() == [255, 255, 255]  # inside stays white
    thick = strokes_to_rgb(SQUARE, pre, line_width=4 * PAD_LINE_WIDTH)
    assert (thick < 128).sum() > 2.5 * (image < 128).sum()


def test_pad_canvas_has_round_dots_and_white_background():
    canvas = draw_strokes(fit_strokes([[[0], [0]]]), line_width=20)
    ink = np.argwhere(canvas[..., 0] < 128)
    assert canvas[0, 0].tolist() == [255, 255, 255]
    assert 200 < len(ink) < 400  # a disc of diameter 20 (314 px), not a square (400) nor nothing


def test_bad_strokes_are_refused_with_the_reason():
    with pytest.raises(InputError, match="at least one stroke"):
        stroke_points([])
    with pytest.raises(InputError, match="stroke 0"):
        stroke_points([[1, 2, 3]])
    with pytest.raises(InputError, match="stroke 1"):
        stroke_points([[[0], [0]], [[0, 1], [2]]])  # ragged rows
    with pytest.raises(InputError, match="finite"):
        stroke_points([[[0, float("nan")], [0, 1]]])
    with pytest.raises(InputError, match="fill"):
        fit_strokes(SQUARE, fill=0)
    assert stroke_points([[[0, 1], [2, 3], [10, 20]]])[0].tolist() == [[0, 2], [1, 3]]  # timestamps ignored
