"""The bad-input set of the preprocessing tests, as upload bytes: (name, bytes)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _png(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def _ink(size=(64, 64)) -> np.ndarray:
    a = np.full((size[1], size[0], 3), 255, np.uint8)
    a[size[1] // 4 : 3 * size[1] // 4, size[0] // 2 - 1 : size[0] // 2 + 2] = 0
    return a


def bad_inputs() -> list[tuple[str, bytes]]:
    rgb = Image.fromarray(_ink())
    sixteen = Image.fromarray((_ink()[:, :, 0].astype(np.uint16) * 257)).convert("I;16")
    transparent = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    frames = [Image.fromarray(_ink()), Image.new("RGB", (64, 64), "white")]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    wide = np.full((2, 3000, 3), 255, np.uint8)
    wide[:, 1000:2000] = 0
    good = _png(rgb)
    return [
        ("cmyk.jpg", _png(rgb.convert("CMYK"), format="JPEG")),
        ("16bit.png", _png(sixteen)),
        ("palette.png", _png(rgb.convert("P"))),
        ("transparent.png", _png(transparent)),
        ("animated.gif", gif.getvalue()),
        ("1x1_white.png", _png(Image.new("RGB", (1, 1), "white"))),
        ("1x1_black.png", _png(Image.new("RGB", (1, 1), "black"))),
        ("3000x2.png", _png(Image.fromarray(wide))),
        ("text.txt", b"this is not an image, just some text\n"),
        ("empty.png", b""),
        ("truncated.png", good[: len(good) // 2]),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><path d="M8 8L56 56" stroke="black"/></svg>'),
        ("bomb.png", _png(Image.new("1", (20000, 20000), 1))),  # 400 M pixels in ~50 kB: PIL's own bomb guard
        ("big.png", _png(Image.new("1", (9000, 9000), 1))),  # 81 M pixels: below PIL's guard, above the server's
        ("blank.png", _png(Image.new("RGB", (64, 64), "white"))),
    ]
