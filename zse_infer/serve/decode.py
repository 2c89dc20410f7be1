"""Uploaded sketch bytes -> a validated RGB array, in the decode thread pool (never on the event loop).

The array handed to the model thread is the full decoded image, exactly what
:mod:`zse_infer.preprocess` decodes from the same bytes, so the server's
results equal ``Retriever.search(bytes)`` in one process: the model thread
only crops, resizes and normalises.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging

import numpy as np

from ..errors import ImageError, ZseError
from ..preprocess import _decode_sketch, sketch_to_rgb  # the library's own decoder: one implementation
from .errors import ServeError, bad_request, from_zse_error, too_large

_log = logging.getLogger(__name__)


def from_base64(text: object, field: str, max_bytes: int) -> bytes:
    if not isinstance(text, str) or not text:
        raise bad_request(f"{field}: expected a base64 string (optionally a data: URL)")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) * 3 // 4 > max_bytes + 3:
        raise too_large(f"{field}: about {len(text) * 3 // 4} bytes decoded, expected at most {max_bytes}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"{field}: not valid base64 ({exc})") from exc


def check_pixels(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse images whose header announces more than ``max_pixels`` before anything is decoded."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            w, h = image.size
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"image is too large ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(name, f"is not a readable image ({exc}); expected PNG, JPEG, WebP, BMP or GIF") from exc
    if w * h > max_pixels:
        raise ImageError(name, f"image is {w}x{h} pixels, expected at most {max_pixels} pixels")


def decode_sketch(data: bytes, name: str, config, max_pixels: int) -> np.ndarray:
    """Bytes -> HxWx3 uint8 RGB, checked to be a readable sketch with ink. Raises :class:`ServeError`."""
    if not data:
        raise ServeError(422, "invalid_image", f"{name}: is empty (0 bytes), expected an image")
    try:
        check_pixels(data, name, max_pixels)
        rgb = _decode_sketch(data, name)
        try:
            sketch_to_rgb(rgb, config)  # the blank-sketch check (and any crop/resize failure) happens here, not in a batch
        except ImageError as exc:  # it names the array: name the upload instead
            raise type(exc)(name, exc.reason) from exc
        return rgb
    except ZseError as exc:
        raise from_zse_error(exc) from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure on uploaded bytes is bad input, not a server error
        _log.info("undecodable upload %s: %r", name, exc)
        raise ServeError(422, "invalid_image", f"{name}: cannot be decoded as an image ({type(exc).__name__})") from exc
