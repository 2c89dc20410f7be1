"""The bad-input set of the preprocessing tests, as upload bytes: (name, bytes), and hostile
files crafted against the server (polyglots, forged headers, formats it must not decode)."""

from __future__ import annotations

import io
import struct
import zlib

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


def polyglot_png() -> bytes:
    """A valid PNG sketch with an HTML page after its end: a browser sniffing it finds a page."""
    return _png(Image.fromarray(_ink())) + b"<html><body><script>document.title='pwned'</script></body></html>"


def forged_png(width: int, height: int) -> bytes:
    """A small valid PNG whose header (IHDR, CRC fixed) claims ``width`` x ``height`` pixels."""
    data = bytearray(_png(Image.fromarray(_ink())))
    ihdr = data[12:29]  # chunk type + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def forged_jpeg(width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) claims ``width`` x ``height`` pixels."""
    data = bytearray(_png(Image.fromarray(_ink()), format="JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def huge_png(side: int = 13000) -> bytes:
    """``side`` x ``side`` pixels in a few hundred kB: a real image, every pixel decodable."""
    return _png(Image.new("1", (side, side), 1))


def bad_inputs() -> list[tuple[str, bytes]]:
    rgb = Image.fromarray(_ink())
    sixteen = Image.fromarray(_ink()[:, :, 0].astype(np.uint16) * 257).convert("I;16")
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
        (
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
            b'<path d="M8 8L56 56" stroke="black"/></svg>',
        ),
        ("bomb.png", _png(Image.new("1", (20000, 20000), 1))),  # 400 M pixels in ~50 kB: PIL's own bomb guard
        ("big.png", _png(Image.new("1", (9000, 9000), 1))),  # 81 M pixels: below PIL's guard, above the server's
        ("blank.png", _png(Image.new("RGB", (64, 64), "white"))),
        # crafted against the server (issue 18)
        ("poly.html", polyglot_png()),  # a PNG with a page appended: a sketch like any other
        ("huge.png", huge_png()),  # 169 M pixels in ~0.5 MB, below Pillow's own bomb guard
        ("forged_ihdr.png", forged_png(60000, 60000)),
        ("forged_sof.jpg", forged_jpeg(65000, 65000)),
        ("sketch.ppm", _png(rgb, format="PPM")),  # Pillow and OpenCV read it; the server does not take it
        (
            "page.eps",
            b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nnewpath 8 8 moveto 56 56 lineto stroke\nshowpage\n",
        ),
        (
            "image.svg.png",
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        ),
        ("html.png", b"<!doctype html><html><script>alert(1)</script></html>"),
    ]
